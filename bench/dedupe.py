"""Benchmark of near-duplicate detection: the old and the new perceptual hash side by side.

    python bench/dedupe.py                 # 1,000 photos, 3 copies each
    python bench/dedupe.py --photos 200    # quicker

Photos: procedurally generated natural-looking scenes (no internet, no image corpus
installed). Each is a 1/f ("pink") noise background -- the power spectrum of natural
images falls as 1/f^2 -- coloured through a random earthy palette and blurred like an
out-of-focus background, with a sharp, textured, soft-edged subject near the centre
(the usual composition of an iNaturalist photo) whose texture is full-resolution 1/f
noise, a hundred or more sharp 1-3 px lines (grass, twigs, hairs: the fine high-contrast
detail that makes a nearest-pixel hash depend on the resolution), a light gradient and
sensor grain, saved as a JPEG of 1,024 to 1,600 px. All photos share this style, which makes them
*harder* to tell apart than real photos of different scenes.

Copies, as a portal makes them of an iNaturalist original: (1) another resolution
(500-1,000 px, Lanczos, quality 85-95), (2) another JPEG quality (40-75, slightly
smaller), (3) 1-5 % cropped off up to four sides, then resized (600-1,200 px, quality
70-95). Every image goes through fetch's resize route (``resize=512``, re-encoded) and,
separately, through the kept-original route (the DCT-scaled greyscale decode); the hashes
are of the very pixels fetch hashes (checked against ``process_bytes`` on a sample).

Printed per threshold: recall over all same-photo pairs (original-copy and copy-copy),
the share of photos whose four images end in one group (what dedupe needs), and the
false-positive rate over all pairs of images of different photos, and the share of images
with at least one false match; for the old hash, the new one, and the new one confirmed by
the 128-bit colour hash ``chroma_hash`` within ``CONFIRM_THRESHOLD`` bits (what curation does); then a sweep
of the confirming threshold at t=10, and the cost per image of ``phash`` and ``phashes``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this folder holds select.py, which would shadow the standard library's `select`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import io
import time

import numpy as np
import simplejpeg
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from gbifxdl.curate._dedupe import CONFIRM_THRESHOLD, UnionFind, popcount64  # noqa: E402
from gbifxdl.fetch import hashing  # noqa: E402
from gbifxdl.fetch.image_types import ProcessOptions  # noqa: E402
from gbifxdl.fetch.process import process_bytes, target_size  # noqa: E402

COPIES = 3
OPTIONS = ProcessOptions(resize=512, reencode=True, jpeg_quality=95)


def _pink(rng: np.random.Generator, h: int, w: int, slope: float) -> np.ndarray:
    """Return an (h, w) field with a 1/f^slope power spectrum, scaled to 0..1."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (slope / 2)
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(h, w))
    field -= field.min()
    return field / max(field.max(), 1e-9)


def _palette(rng: np.random.Generator, field: np.ndarray, bright: bool) -> np.ndarray:
    """Return RGB (h, w, 3) floats: ``field`` mapped through three random colours."""
    base = rng.uniform([20, 40, 10], [120, 140, 90], size=(3, 3))  # greens, browns, greys
    if bright:  # a flower, an insect, a bird: any hue, more saturated
        base = rng.uniform(0, 255, size=(3, 3))
    t = field[..., None]
    return np.where(t < 0.5, base[0] + (base[1] - base[0]) * (t * 2), base[1] + (base[2] - base[1]) * (t * 2 - 1))


def photo(seed: int) -> bytes:
    """Return the JPEG of one generated photo (an "iNaturalist original")."""
    rng = np.random.default_rng(seed)
    w, h = (int(rng.integers(1024, 1601)), 0)
    h = int(w * rng.choice([0.75, 0.667, 1.0, 1.333]))
    small_w, small_h = max(w // 8, 16), max(h // 8, 16)
    background = _palette(rng, _pink(rng, small_h, small_w, rng.uniform(1.6, 2.4)), bright=False)
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(2, 8)))
    # the subject: a few overlapping textured blobs near the centre, soft-edged, sharp
    # its texture at full resolution (fur, petals, leaves): the fine detail a hash must not alias
    subject = _palette(rng, _pink(rng, h, w, rng.uniform(1.0, 1.8)), bright=True)
    texture = Image.fromarray(np.clip(subject, 0, 255).astype(np.uint8))
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    for _ in range(int(rng.integers(1, 5))):
        rx, ry = w * rng.uniform(0.05, 0.25), h * rng.uniform(0.05, 0.25)
        ox, oy = rng.normal(0, w * 0.08), rng.normal(0, h * 0.08)
        if rng.random() < 0.5:
            draw.ellipse((cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry), fill=255)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 10))))
            radii = rng.uniform(0.5, 1.0, len(angles))
            draw.polygon([(cx + ox + rx * r * np.cos(a), cy + oy + ry * r * np.sin(a)) for a, r in zip(angles, radii)],
                         fill=255)
    img = Image.composite(texture, img, mask.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4))))
    # sharp, high-contrast fine structure: grass blades, twigs, hairs (1-3 px wide)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(100, 400))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        length, angle = rng.uniform(0.02, 0.15) * h, rng.normal(-np.pi / 2, 0.4)
        tone = int(rng.integers(0, 60)) if rng.random() < 0.5 else int(rng.integers(180, 256))
        draw.line((x, y, x + length * np.cos(angle), y + length * np.sin(angle)),
                  fill=(tone, min(255, tone + int(rng.integers(0, 60))), tone // 2), width=int(rng.integers(1, 4)))
    # light from one side, and sensor grain
    arr = np.asarray(img, dtype=np.float32)
    gx, gy = np.meshgrid(np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32))
    angle = rng.uniform(0, 2 * np.pi)
    arr *= (1 + 0.25 * (np.cos(angle) * gx + np.sin(angle) * gy))[..., None]
    arr += rng.normal(0, rng.uniform(1, 5), size=arr.shape).astype(np.float32)
    out = np.clip(arr, 0, 255).astype(np.uint8)
    return simplejpeg.encode_jpeg(out, quality=int(rng.integers(88, 96)), colorsubsampling="420")


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def copies(original: bytes, seed: int) -> list[bytes]:
    """Return the portal's copies of one photo: other resolution, other quality, cropped."""
    rng = np.random.default_rng(10_000_000 + seed)
    img = Image.open(io.BytesIO(original)).convert("RGB")
    w, h = img.size

    def scaled(im: Image.Image, longest: int, resample: int = Image.LANCZOS) -> Image.Image:
        f = longest / max(im.size)
        return im.resize((max(1, round(im.size[0] * f)), max(1, round(im.size[1] * f))), resample)

    resolution = _jpeg(scaled(img, int(rng.integers(500, 1001))), int(rng.integers(85, 96)))
    quality = _jpeg(scaled(img, int(max(w, h) * rng.uniform(0.8, 1.0)), Image.BICUBIC), int(rng.integers(40, 76)))
    cut = rng.uniform(0.0, 0.05, size=4) * (rng.random(4) < 0.7)
    box = (round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3]))
    cropped = _jpeg(scaled(img.crop(box), int(rng.integers(600, 1201))), int(rng.integers(70, 96)))
    return [resolution, quality, cropped]


def resized_pixels(data: bytes) -> Image.Image:
    """Return the pixels fetch hashes on its resize route (as ``process._jpeg_route`` makes them)."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    tw, th = target_size(width, height, OPTIONS.resize, OPTIONS.resize_mode)
    img = Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=tw, min_height=th,
                                                 fastupsample=True))
    return img if img.size == (tw, th) else img.resize((tw, th), Image.BOX)


try:
    import pdqhash  # optional: the 256-bit PDQ hash, measured for comparison only
except ImportError:  # pragma: no cover
    pdqhash = None


def _pdq(img: Image.Image) -> np.ndarray:
    bits, _ = pdqhash.compute(np.asarray(img))
    return np.packbits(bits.astype(bool)).view(">u8").astype(np.uint64)  # 4 words


def _distances(h: np.ndarray) -> np.ndarray:
    """Return the (n, n) Hamming distances of hashes of shape (n,) or (n, words)."""
    h = h.reshape(len(h), -1)
    out = np.zeros((len(h), len(h)), dtype=np.int32)
    for word in range(h.shape[1]):
        col = h[:, word]
        for i in range(len(h)):
            out[i] += popcount64(col ^ col[i]).astype(np.int32)
    return out


def _words(value: int | None) -> np.ndarray:
    """Return a chroma hash as 2 uint64 words (as curation holds it); a grey image's None as zeros."""
    return np.frombuffer((value or 0).to_bytes(16, "big"), dtype=">u8").astype(np.uint64)


def _evaluate(dist: np.ndarray, photo_of: np.ndarray, t: int, confirm: np.ndarray | None = None,
              ct: int = CONFIRM_THRESHOLD) -> str:
    """Return "recall groups false-pos (count) photos-hit" at threshold ``t`` (confirmed within ``ct``)."""
    same = photo_of[:, None] == photo_of[None, :]
    upper = np.triu(np.ones(same.shape, dtype=bool), 1)
    close = dist <= t
    if confirm is not None:
        close &= confirm <= ct
    uf = UnionFind(len(dist))
    for a, b in zip(*np.nonzero(close & upper & same)):
        uf.union(int(a), int(b))
    group_size = np.bincount(photo_of)
    whole = sum(1 for g in uf.groups(range(len(dist))) if len(g) == group_size[photo_of[g[0]]])
    hit = np.unique(np.nonzero(close & ~same)[0]).size / len(dist)
    false = int(np.count_nonzero(close & ~same & upper))
    return (f"{np.mean(close[same & upper]):7.2%} {whole / len(group_size):7.2%} "
            f"{false / np.count_nonzero(~same & upper):9.2e} {false:>6} {hit:7.2%}")


def _cost_ms(fn, images: list, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for img in images:
            fn(img)
        best = min(best, time.perf_counter() - started)
    return best / len(images) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    routes = {"resize route (512 px)": {"old": [], "new": [], "chroma": [], **({"pdq": []} if pdqhash else {})},
              "kept originals (DCT-scaled decode)": {"old": [], "new": [], "chroma": []}}
    sample: list[Image.Image] = []  # kept for timing; the rest is hashed and dropped
    photo_of = []
    for p in range(args.photos):
        original = photo(args.seed * 1_000_000 + p)
        for data in [original] + copies(original, args.seed * 1_000_000 + p):
            img = resized_pixels(data)
            if p < 5:  # the bench hashes exactly what fetch stores
                stored = process_bytes(data, OPTIONS)[1]
                assert hashing.phashes(img) == (stored.phash, stored.chroma_hash), "bench and fetch disagree"
            if len(sample) < 300:
                sample.append(img)
            grey = hashing.jpeg_small(data, 1)  # what fetch hashes for a kept JPEG
            for route, inputs in zip(routes.values(), (img, grey)):
                route["old"].append(hashing.legacy_phash(inputs))
                short, wide = hashing.phashes(inputs)
                route["new"].append(short)
                route["chroma"].append(_words(wide))
                if "pdq" in route:
                    route["pdq"].append(_pdq(inputs))
            photo_of.append(p)
    photo_of_arr = np.array(photo_of)
    n = len(photo_of)
    print(f"{args.photos} photos x {1 + COPIES} images = {n} images, generated and processed in "
          f"{time.perf_counter() - started:.0f} s; same-photo pairs {args.photos * 6:,}, "
          f"different-photo pairs {n * (n - 1) // 2 - args.photos * 6:,}")
    cols = f"{'recall':>7} {'groups':>7} {'false+':>9} {'pairs':>6} {'hit':>7}"
    for route, hashes in routes.items():
        d_old = _distances(np.array(hashes["old"], dtype=np.uint64))
        d_new = _distances(np.array(hashes["new"], dtype=np.uint64))
        d_chroma = _distances(np.stack(hashes["chroma"]))
        grey = ~np.stack(hashes["chroma"]).any(axis=1)  # no chroma hash: phash alone, as curation does
        d_chroma[grey, :] = 0
        d_chroma[:, grey] = 0
        print(f"\n{route}\n{'t':>3}  old pHash (baseline): {cols}  | new pHash: {cols}  "
              f"| new + chroma <= {CONFIRM_THRESHOLD}: {cols}")
        for t in (4, 6, 8, 10, 12):
            print(f"{t:>3}  {'':>22}{_evaluate(d_old, photo_of_arr, t)}  | {'':>11}{_evaluate(d_new, photo_of_arr, t)}"
                  f"  | {'':>22}{_evaluate(d_new, photo_of_arr, t, d_chroma)}")
        print(f"  confirming threshold at t=10 (chroma_hash <= T): {cols}")
        for ct in (12, 14, 16, 18, 20, 22, 24, 28, 32):
            print(f"  T={ct:<3}{'':>43}{_evaluate(d_new, photo_of_arr, 10, d_chroma, ct)}")
        differ = photo_of_arr[:, None] != photo_of_arr[None, :]
        same = ~differ & np.triu(np.ones(differ.shape, dtype=bool), 1)  # each same-photo pair once
        false_candidates = d_chroma[(d_new <= 10) & differ]
        print(f"  different photos within 10 bits of phash: their chroma_hash distance is at least "
              f"{false_candidates.min() if false_candidates.size else '-'}; same-photo pairs within 10 bits: "
              f"99th percentile {np.percentile(d_chroma[(d_new <= 10) & same], 99):.0f}")
        if "pdq" in hashes:
            d_pdq = _distances(np.stack(hashes["pdq"]))
            for t in (31, 50, 70):
                print(f"{t:>3}  {'PDQ (256 bits):':>22}{_evaluate(d_pdq, photo_of_arr, t)}")
    print(f"\ncost per image on the 512 px image ({len(sample)} images, best of 3): "
          f"old {_cost_ms(hashing.legacy_phash, sample):.3f} ms, new {_cost_ms(hashing.phash, sample):.3f} ms, "
          f"new + chroma_hash (phashes) {_cost_ms(hashing.phashes, sample):.3f} ms"
          + (f", PDQ {_cost_ms(_pdq, sample[:100], 1):.3f} ms" if pdqhash else ""))
    print("recall: same-photo pairs within t bits; groups: photos whose 4 images form one group; "
          "false+: share of different-photo pairs within t, pairs: their count; "
          "hit: images with any false match")
    print("with N images a false+ rate p gives each image about N*p false matches: "
          "N=100,000 at p=3e-4 is 30 each; at p<=1e-6 one image in ten has one")


if __name__ == "__main__":
    main()
