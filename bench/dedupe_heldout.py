"""Near-duplicate detection on a held-out set, with copies whose colours went through another space.

    python bench/dedupe_heldout.py                  # 1,000 photos of seed 1 (6,000 images; about 15 min
                                                    # on 2 cores the first time, cached in bench/.cache)
    python bench/dedupe_heldout.py --photos 2000 --seed 2

bench/dedupe.py measures false matches and recall on seed 0, and its lines were drawn on what
it showed. This bench draws other photos (``--seed``, the same four kinds as bench/dedupe.py)
and gives each, besides bench/dedupe.py's three copies (``lookalike.copies``), the two of
``lookalike.profile_copies``: converted to Display P3 and to Adobe RGB and read as sRGB (a
portal that drops the ICC profile). Those are harder than the copies the issue counts, and
bench/dedupe.py does not make them.

Printed: the recall of each kind of copy against its original (pairs the decision links),
the recall on bench/dedupe.py's four images of a photo, the false matches among all the
candidate pairs of different photos, and for each false match its kind and scores. Only
curation's own code decides (``phash_edges``, then ``_near.decide``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from gbifxdl.curate import CurateSettings, _dedupe, _near  # noqa: E402
from gbifxdl.testing import lookalike  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_dedupe", Path(__file__).with_name("dedupe.py"))
dedupe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dedupe)  # type: ignore[union-attr]

COPY_NAMES = ("original", "resolution", "quality", "cropped", "display_p3", "adobe_rgb")
PER = len(COPY_NAMES)


def _images(args: tuple[int, int]) -> list[tuple[int, tuple[int, int], bytes, np.ndarray, int]]:
    """Return a photo's six images as bench/dedupe.py's ``_images`` does (its three copies, then the two
    of ``lookalike.profile_copies``)."""
    p, seed = args
    original = dedupe._original(p, seed)
    key = seed * 1_000_003 + p
    return [dedupe.measure(data) for data in [original] + lookalike.copies(original, key)
            + lookalike.profile_copies(original, key)]


def _detail(args: tuple[int, int]) -> list:
    """Return a photo's six images decoded at the third stage's side (as ``_images`` makes them)."""
    p, seed = args
    original = dedupe._original(p, seed)
    key = seed * 1_000_003 + p
    return [dedupe.pixels_of(dedupe.process_bytes(data, dedupe.OPTIONS)[0], dedupe._pixels.DETAIL_SIDE)
            for data in [original] + lookalike.copies(original, key) + lookalike.profile_copies(original, key)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=300,
                        help="photos whose pairs the third stage checks (it makes their files again)")
    args = parser.parse_args()
    folder = dedupe.build(args.photos, args.seed, _images, PER, "dedupe-heldout")
    phash, chroma = np.load(folder / "phash.npy"), np.load(folder / "chroma.npy")
    sigs, shorter = np.load(folder / "signatures.npy"), np.load(folder / "shorter.npy")
    pixels = np.load(folder / "pixels.npy", mmap_mode="r")
    n = len(phash)
    photo = np.arange(n) // PER
    settings = CurateSettings()
    a, b = _dedupe.phash_edges(phash, np.arange(n), settings.phash_threshold, confirm=chroma,
                               has_confirm=chroma.any(axis=1), confirm_threshold=settings.chroma_threshold)
    a, b = np.minimum(a, b), np.maximum(a, b)
    different = photo[a] != photo[b]
    a, b = a[different], b[different]
    # every pair of one photo's images, decided whether or not the hashes proposed it
    i, j = np.triu_indices(PER, 1)
    first = np.arange(n // PER)[:, None] * PER
    ta, tb = (first + i[None]).ravel(), (first + j[None]).ravel()
    ia, ib = np.concatenate([ta, a]), np.concatenate([tb, b])
    got = lambda k: (np.asarray(pixels[k]), int(shorter[k]))  # noqa: E731
    started = time.perf_counter()
    keep, evidence, scores = _near.decide(ia, ib, sigs, np.ones(n, bool), got)
    print(f"seed {args.seed}: {n // PER:,} photos x {PER} images = {n:,} images; {len(a):,} candidate pairs of "
          f"different photos and {len(ta):,} pairs of one photo's images decided in "
          f"{time.perf_counter() - started:.0f} s")
    same = np.arange(len(ia)) < len(ta)
    print("\nrecall, each copy against its original (pairs linked):")
    for k, name in enumerate(COPY_NAMES[1:], 1):
        mine = same & (ia % PER == 0) & (ib % PER == k)
        print(f"  {name:<12} {keep[mine].mean():8.2%}")
    four = same & (ib % PER < 4)
    print(f"  bench/dedupe.py's four images of a photo, every pair: {keep[four].mean():.2%}")
    pairs = n * (n - 1) // 2 - (n // PER) * len(i)
    # the third stage, on the pairs the first two linked: of different photos all, of one photo's images a sample
    started = time.perf_counter()
    linked = np.flatnonzero(keep)
    picked, kept, drawn = dedupe.third_stage(ia[linked], ib[linked], photo, args.seed, sigs, args.sample, got,
                                             images=_detail, per=PER)
    chosen = linked[picked]
    print(f"\nthird stage (the 256-pixel files, made again; {time.perf_counter() - started:.0f} s), on the pairs "
          f"the first two stages linked among {drawn} photos drawn at random: share that pass, and the recall "
          f"with it (estimated: the first two stages' recall times that share)")
    for k, name in enumerate(COPY_NAMES[1:], 1):
        mine = same & (ia % PER == 0) & (ib % PER == k)
        here = same[chosen] & (ia[chosen] % PER == 0) & (ib[chosen] % PER == k)
        print(f"  {name:<12} {kept[here].mean():8.2%} pass  -> recall {keep[mine].mean() * kept[here].mean():8.2%}")
    here = same[chosen] & (ib[chosen] % PER < 4)
    print(f"  bench/dedupe.py's four images of a photo, every pair: {kept[here].mean():.2%} pass -> recall "
          f"{keep[four].mean() * kept[here].mean():.2%}")
    keep[chosen] = kept  # the different photos' pairs were all checked: the false matches below are final
    false = np.flatnonzero(keep & ~same)
    print(f"\nfalse matches: {len(false)} in {pairs:,} pairs of different photos")
    for k in false.tolist():
        print(f"  images {ia[k]} and {ib[k]}: {dedupe.KINDS[photo[ia[k]] % 4]} and {dedupe.KINDS[photo[ib[k]] % 4]}, "
              f"scores {scores[k, 0]:.2f} (signatures), {scores[k, 1]:.2f} (pixels)")


if __name__ == "__main__":
    main()
