"""Benchmark of near-duplicate detection: false matches per image as the dataset grows, and recall.

    python bench/dedupe.py                    # 16,000 photos x 4 images = 64,000 images (about 40 min on
                                              # 2 cores the first time; the images' hashes, signatures and
                                              # pixels are cached in bench/.cache, later runs take minutes)
    python bench/dedupe.py --photos 1000      # 4,000 images, quicker

The set: photos of four kinds in equal shares, every fourth photo of each kind, so that any
prefix holds all four:

- *photos*: procedurally generated natural-looking scenes (``photo`` below: a 1/f
  background, a sharp textured subject near the centre, grass and twigs, light and grain);
- *herbarium sheets*, *pinned insects* and *camera-trap frames* from
  ``gbifxdl.testing.lookalike``: collections that look alike on purpose (100 sheets or
  insects per collection, photographed the same way; 20 frames per camera site, one scene).

Each photo comes with its three copies, as portals make them: another resolution, another
JPEG quality, 1-5 % cropped off some sides. Every image goes through fetch's resize route
(``resize=512``, re-encoded: ``process_bytes``), which gives its perceptual hashes and its
signature, and its written JPEG is decoded as curation reads the file (``_images.pixels_of``).

For each size (the first 4,000, 16,000 and 64,000 images), both decisions run on curation's
own candidate search (``phash_edges``):

- *baseline*: gbifxdl before pixel confirmation: a pair within 10 bits of phash and 20 of
  chroma_hash is a near duplicate;
- *this tree*: pairs within 16 and 32 bits (its defaults) are candidates, each confirmed on
  its signatures, then on its pixels (``_near.decide``, the first two stages: the 128-pixel
  images are cached). At the largest size the pairs they link then go through the third stage
  (the 256-pixel files, made again: every pair of different photos, and the copy pairs of
  ``--sample`` photos drawn at random, for the recall).

Printed per size: the pairs of images of different photos, the candidate pairs, and per
decision the false matches (pairs of different photos it links), their rate per pair, the
share of images with at least one false match, and the recall on true copies (pairs of
one photo's images it links, and photos whose four images end in one group). Then the
rate extrapolated to 10,000,000 images, per kind of photo, and a stress test of the pixel
confirmation alone: *every* pair of images of one collection (not only the candidates).
"""

from __future__ import annotations

import sys
from pathlib import Path

# this folder holds select.py, which would shadow the standard library's `select`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from multiprocessing import get_context  # noqa: E402

import numpy as np  # noqa: E402
import simplejpeg  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from gbifxdl.curate import CurateSettings, _dedupe, _near, _pixels  # noqa: E402
from gbifxdl.curate._images import pixels_of  # noqa: E402
from gbifxdl.fetch import hashing  # noqa: E402
from gbifxdl.fetch.image_types import ProcessOptions  # noqa: E402
from gbifxdl.fetch.process import process_bytes  # noqa: E402
from gbifxdl.testing import lookalike  # noqa: E402

COPIES = 3
OPTIONS = ProcessOptions(resize=512, reencode=True, jpeg_quality=95)
KINDS = ("photo", "herbarium", "pinned", "camera_trap")
COLLECTION = {"herbarium": 100, "pinned": 100, "camera_trap": 20}  # photos per collection (per camera site)
BASELINE_T = (10, 20)  # the hash thresholds that decided alone before pixel confirmation
PHASH_T, CHROMA_T = CurateSettings().phash_threshold, CurateSettings().chroma_threshold  # curation's defaults
CACHE = ROOT / "bench" / ".cache"
SIDE = _pixels.PIXEL_SIDE
STRESS_PAIRS = 40_000


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


def photo(seed: int, widths: tuple[int, int] = (1024, 1601)) -> bytes:
    """Return the JPEG of one generated natural-looking photo (an "iNaturalist original")."""
    rng = np.random.default_rng(seed)
    w = int(rng.integers(*widths))
    h = int(w * rng.choice([0.75, 0.667, 1.0, 1.333]))
    small_w, small_h = max(w // 8, 16), max(h // 8, 16)
    background = _palette(rng, _pink(rng, small_h, small_w, rng.uniform(1.6, 2.4)), bright=False)
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(2, 8)))
    # the subject: a few overlapping textured blobs near the centre, soft-edged, sharp
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


def _original(p: int, seed: int) -> bytes:
    """Return the original of photo ``p``: kind ``p % 4``, in its collection."""
    kind, nth = KINDS[p % 4], p // 4
    s = seed * 1_000_003 + p
    if kind == "photo":
        return photo(s, (700, 1101))
    group = seed * 100_000 + nth // COLLECTION[kind]
    if kind == "herbarium":
        return lookalike.herbarium_sheet(s, group)
    if kind == "pinned":
        return lookalike.pinned_insect(s, group)
    return lookalike.camera_trap_frame(s, group)


def _images(args: tuple[int, int]) -> list[tuple[int, tuple[int, int], bytes, np.ndarray, int]]:
    """Return, for photo ``p`` and its copies: phash, chroma words, signature, pixels, shorter side."""
    p, seed = args
    original = _original(p, seed)
    return [measure(data) for data in [original] + lookalike.copies(original, seed * 1_000_003 + p)]


def measure(data: bytes) -> tuple[int, tuple[int, int], bytes, np.ndarray, int]:
    """Return what curation sees of one image as fetch writes it: phash, chroma words, signature, pixels,
    shorter side."""
    written, measured = process_bytes(data, OPTIONS)
    chroma = measured.chroma_hash or 0
    pixels, shorter = pixels_of(written, SIDE)
    return (measured.phash, (chroma >> 64, chroma & (2**64 - 1)), bytes.fromhex(measured.signature),
            pixels, shorter)


def detail_pixels(args: tuple[int, int]) -> list[tuple[np.ndarray, int] | None]:
    """Return photo ``p``'s images (as ``_images``) decoded at the third stage's side: made again, not cached
    (a 256-pixel cache of 64,000 images would take 12 GB)."""
    p, seed = args
    original = _original(p, seed)
    return [pixels_of(process_bytes(data, OPTIONS)[0], _pixels.DETAIL_SIDE)
            for data in [original] + lookalike.copies(original, seed * 1_000_003 + p)]


def third_stage(ka: np.ndarray, kb: np.ndarray, photo_of: np.ndarray, seed: int, sigs: np.ndarray, sample: int,
                small, images=detail_pixels, per: int = 1 + COPIES) -> tuple[np.ndarray, np.ndarray, int]:
    """Return, of the pairs ``ka``-``kb`` that the first two stages linked, which the whole decision (with the
    third stage) keeps: every pair of different photos, and the pairs of ``sample`` photos drawn at random
    (the recall's estimate; the third stage reads the files again, too slow for all); and how many photos
    were sampled. Curation's own ``_near.decide`` decides, on the cached 128-pixel images (``small``: image ->
    (pixels, shorter side)) and the 256-pixel ones ``images`` makes again."""
    differ = np.flatnonzero(photo_of[ka] != photo_of[kb])
    same = np.flatnonzero(photo_of[ka] == photo_of[kb])
    photos = np.unique(photo_of[ka[same]])
    drawn = np.random.default_rng(seed).permutation(photos)[:sample]
    picked = np.concatenate([differ, same[np.isin(photo_of[ka[same]], drawn)]])
    needed = np.unique(np.concatenate([photo_of[ka[picked]], photo_of[kb[picked]]]))
    large: dict[int, tuple[np.ndarray, int] | None] = {}
    with get_context("fork").Pool(os.cpu_count()) as pool:
        for p, group in zip(needed.tolist(), pool.imap(images, [(p, seed) for p in needed.tolist()], chunksize=4)):
            for k, got in enumerate(group):
                large[p * per + k] = got
    keep, _, _ = _near.decide(ka[picked], kb[picked], sigs, np.ones(len(sigs), bool), small,
                              detail=large.__getitem__)
    return picked, keep, len(drawn)



def build(photos: int, seed: int, images=None, per: int = 1 + COPIES, name: str = "dedupe") -> Path:
    """Return the cache folder holding every image's hashes, signature and pixels (made once).

    ``images`` (default ``_images``) gives a photo's ``per`` images, as ``_images`` does;
    the folder is ``bench/.cache/<name>-<photos>-<seed>``.
    """
    images = images or _images
    folder = CACHE / f"{name}-{photos}-{seed}"
    if (folder / "done.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    n = photos * per
    pixels = np.lib.format.open_memmap(folder / "pixels.npy", "w+", np.uint8, (n, SIDE, SIDE, 3))
    phash = np.zeros(n, np.uint64)
    chroma = np.zeros((n, 2), np.uint64)
    sigs = np.zeros((n, 32, 32), np.uint8)
    shorter = np.zeros(n, np.int32)
    started = time.perf_counter()
    with get_context("fork").Pool(os.cpu_count()) as pool:
        for p, group in enumerate(pool.imap(images, [(p, seed) for p in range(photos)], chunksize=8)):
            for k, (h, words, sig, pix, side) in enumerate(group):
                i = p * per + k
                phash[i], chroma[i], shorter[i] = h, words, side
                sigs[i] = np.frombuffer(sig, np.uint8).reshape(32, 32)
                pixels[i] = pix
            if p % 500 == 499:
                print(f"  {p + 1:,} photos made in {time.perf_counter() - started:.0f} s", flush=True)
    pixels.flush()
    np.save(folder / "phash.npy", phash)
    np.save(folder / "chroma.npy", chroma)
    np.save(folder / "signatures.npy", sigs)
    np.save(folder / "shorter.npy", shorter)
    (folder / "done.json").write_text(json.dumps({"photos": photos, "seed": seed,
                                                  "seconds": time.perf_counter() - started}))
    return folder


def _recall(a: np.ndarray, b: np.ndarray, photo_of: np.ndarray, n: int) -> tuple[float, float]:
    """Return (share of same-photo pairs linked directly, share of photos whose images form one group)."""
    same = photo_of[a] == photo_of[b]
    pairs = len(np.unique(np.minimum(a[same], b[same]) * n + np.maximum(a[same], b[same])))
    total = (n // (1 + COPIES)) * (1 + COPIES) * COPIES // 2
    whole = 0
    for group in _dedupe.components(a[same], b[same]):
        whole += len(group) == 1 + COPIES
    return pairs / total, whole / (n // (1 + COPIES))


def _false(a: np.ndarray, b: np.ndarray, photo_of: np.ndarray, n: int) -> tuple[int, float]:
    """Return (false pairs, share of images with at least one false match)."""
    differ = photo_of[a] != photo_of[b]
    return int(np.count_nonzero(differ)), len(np.unique(np.concatenate([a[differ], b[differ]]))) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=16_000, help="photos (each with 3 copies: 4 images)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-only", action="store_true", help="make (and cache) the images, nothing more")
    parser.add_argument("--sample", type=int, default=400,
                        help="photos whose copy pairs the third stage checks (it makes their files again)")
    args = parser.parse_args()
    if args.build_only:
        print(build(args.photos, args.seed))
        return
    folder = build(args.photos, args.seed)
    made = json.loads((folder / "done.json").read_text())
    phash, chroma = np.load(folder / "phash.npy"), np.load(folder / "chroma.npy")
    sigs, shorter = np.load(folder / "signatures.npy"), np.load(folder / "shorter.npy")
    pixels = np.load(folder / "pixels.npy", mmap_mode="r")
    n_all = len(phash)
    photo_of = np.arange(n_all) // (1 + COPIES)
    kind_of = photo_of % 4
    print(f"{args.photos:,} photos x {1 + COPIES} images = {n_all:,} images (made in {made['seconds']:.0f} s, "
          f"cached in {folder}); kinds: " + ", ".join(KINDS))
    sizes = [s for s in (4_000, 16_000, 64_000, 256_000) if s <= n_all] or [n_all]
    got = lambda i: (np.asarray(pixels[i]), int(shorter[i]))  # noqa: E731
    print(f"\n{'images':>8} {'pairs of different photos':>26} {'candidates':>10} | {'baseline (hashes alone, 10/20 bits)':^44} | "
          f"{'this tree (hashes, then pixels)':^58}")
    print(f"{'':>8} {'':>26} {'':>10} | {'false':>7} {'per pair':>9} {'images hit':>10} {'recall':>7} {'groups':>7} | "
          f"{'false':>5} {'per pair':>9} {'images hit':>10} {'recall':>7} {'groups':>7} {'ms/cand.':>8}")
    rows = []
    for n in sizes:
        words = chroma[:n]
        # the baseline: gbifxdl before pixel confirmation, whose hash match (10 and 20 bits) decided
        a, b = _dedupe.phash_edges(phash[:n], np.arange(n), BASELINE_T[0], confirm=words,
                                   has_confirm=words.any(axis=1), confirm_threshold=BASELINE_T[1])
        different = n * (n - 1) // 2 - (n // 4) * 6
        base_false, base_hit = _false(a, b, photo_of, n)
        base_recall, base_groups = _recall(a, b, photo_of, n)
        a, b = _dedupe.phash_edges(phash[:n], np.arange(n), PHASH_T, confirm=words,
                                   has_confirm=words.any(axis=1), confirm_threshold=CHROMA_T)
        a, b = np.minimum(a, b), np.maximum(a, b)
        started = time.perf_counter()
        keep, evidence, _ = _near.decide(a, b, sigs, np.ones(n_all, bool), got)
        took = time.perf_counter() - started
        ka, kb = a[keep], b[keep]
        new_false, new_hit = _false(ka, kb, photo_of, n)
        new_recall, new_groups = _recall(ka, kb, photo_of, n)
        rows.append((n, different, new_false, evidence, ka, kb))
        print(f"{n:>8,} {different:>26,} {len(a):>10,} | {base_false:>7,} {base_false / different:>9.1e} "
              f"{base_hit:>10.2%} {base_recall:>7.2%} {base_groups:>7.2%} | {new_false:>5,} "
              f"{new_false / different:>9.1e} {new_hit:>10.2%} {new_recall:>7.2%} {new_groups:>7.2%} "
              f"{took / max(len(a), 1) * 1000:>8.2f}", flush=True)
    n, different, false, evidence, ka, kb = rows[-1]
    print(f"\nat {n:,} images, how the {evidence.candidates:,} candidates were decided by the first two stages: "
          + ", ".join(f"{k} {v:,}" for k, v in evidence.as_dict().items() if k != "candidates"))
    started = time.perf_counter()
    picked, kept, drawn = third_stage(ka, kb, photo_of, args.seed, sigs, args.sample, got)
    differ = photo_of[ka[picked]] != photo_of[kb[picked]]
    pairs_recall, _ = _recall(ka, kb, photo_of, n)
    passing = kept[~differ].mean() if (~differ).any() else float("nan")
    print(f"third stage (the 256-pixel files, made again; {time.perf_counter() - started:.0f} s): of the "
          f"{int(differ.sum())} false matches of the first two stages, {int(kept[differ].sum())} remain; of the "
          f"{int((~differ).sum()):,} copy pairs they linked among {drawn} photos drawn at random, {passing:.2%} "
          f"pass (recall with the third stage, estimated: {pairs_recall * passing:.2%} of pairs)")
    for k in np.flatnonzero(differ & kept).tolist():
        print(f"  still linked: images {ka[picked[k]]} and {kb[picked[k]]} ({KINDS[kind_of[ka[picked[k]]]]})")
    false = int(kept[differ].sum())
    rate = max(false, 1) / different
    print(f"per pair of different photos: {false} false matches in {different:,} pairs"
          + (f" (none seen: below {rate:.1e})" if not false else f" = {rate:.1e}"))
    for big in (1_000_000, 10_000_000):
        print(f"  extrapolated to {big:,} images: {rate * (big - 1) / 2:.2g} false matches per image, "
              f"{rate * big * (big - 1) / 2:,.0f} in all")
    print("\nper kind, at the largest size (the first two stages): false matches   recall (pairs)   photos in one group")
    for k, name in enumerate(KINDS):
        mine = kind_of[ka] == k
        f = int(np.count_nonzero((photo_of[ka] != photo_of[kb]) & mine))
        rec, groups = _recall(ka[mine], kb[mine], photo_of, n)
        print(f"  {name:<30} {f:>13,} {rec * 4:>16.2%} {groups * 4:>21.2%}")  # a quarter of the photos each
    # the stress test: every pair of images of different photos in one collection, candidates or not
    n = sizes[0]
    group_of = np.where(kind_of == 0, -1, kind_of * 1_000_000 + (photo_of // 4) // np.array(
        [1, COLLECTION["herbarium"], COLLECTION["pinned"], COLLECTION["camera_trap"]])[kind_of])[:n]
    i, j = np.triu_indices(n, 1)
    hard = np.flatnonzero((group_of[i] == group_of[j]) & (group_of[i] >= 0) & (photo_of[i] != photo_of[j]))
    rng = np.random.default_rng(0)  # at most STRESS_PAIRS of each kind, drawn at random
    hard = np.concatenate([rng.permutation(hard[kind_of[i[hard]] == k])[:STRESS_PAIRS] for k in range(1, 4)])
    i, j = i[hard], j[hard]
    started = time.perf_counter()
    keep, evidence, scores = _near.decide(i, j, sigs, np.ones(n_all, bool), got)
    took = time.perf_counter() - started
    print(f"\nstress test at {n:,} images: {len(i):,} pairs of different photos of one collection (look-alikes, "
          f"candidates or not; at most {STRESS_PAIRS:,} of each kind), decided in {took:.0f} s: "
          f"{int(keep.sum())} false matches; "
          + ", ".join(f"{k} {v:,}" for k, v in evidence.as_dict().items() if k != "candidates"))
    for k, name in enumerate(KINDS[1:], 1):
        mine = kind_of[i] == k
        s1, s2 = scores[mine, 0], scores[mine, 1]
        print(f"  {name:<12} {int(mine.sum()):>9,} pairs: signature score min {np.nanmin(s1):.2f} "
              f"(passing {int((s1 <= _pixels.SIGNATURE_THRESHOLD).sum()):,}), pixel score min "
              f"{np.nanmin(s2) if np.isfinite(s2).any() else float('nan'):.2f}; "
              f"lines {_pixels.SIGNATURE_THRESHOLD}, {_pixels.PIXEL_THRESHOLD}")
    sample = [Image.open(io.BytesIO(process_bytes(_original(p, 1), OPTIONS)[0])) for p in range(40)]
    best = lambda fn: min(_time(fn, sample) for _ in range(3))  # noqa: E731
    print(f"\ncost per 512 px image (fetch, in the image processes): phash {best(hashing.phash):.3f} ms, "
          f"phash + chroma_hash + signature (fingerprints) {best(hashing.fingerprints):.3f} ms")


def _time(fn, images: list) -> float:
    started = time.perf_counter()
    for img in images:
        fn(img)
    return (time.perf_counter() - started) / len(images) * 1000


if __name__ == "__main__":
    main()
