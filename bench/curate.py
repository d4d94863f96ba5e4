"""Benchmark of curation: near-duplicate search, splits, and curate() end to end.

    python bench/curate.py                       # hashes: 10k, 100k, 1M; curate: 20k images
    python bench/curate.py --sizes 1000000 --images 0

- near duplicates: ``phash_edges`` (what curate runs) on random 64-bit hashes with 1 %
  exact copies and 1 % two-bit variants (the default threshold, 10), against an all-pairs comparison timed on 10k hashes
  and extrapolated quadratically (said so in the output);
- splits: ``assign`` with 5,000 classes and two images per occurrence;
- curate: a synthetic folders-layout dataset of small JPEGs (files checked, deduplicated,
  split, table rewritten), second run included to show idempotence costs a re-check only.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this folder holds select.py, which would shadow the standard library's `select`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import shutil
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
T = 10  # CurateSettings().phash_threshold, checked in main()
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from gbifxdl.curate import curate  # noqa: E402
from gbifxdl.curate import CurateSettings  # noqa: E402
from gbifxdl.curate._dedupe import choose_bands, phash_edges, popcount64  # noqa: E402
from gbifxdl.curate._splits import SplitSpec, assign  # noqa: E402


def hashes(n: int) -> list[int]:
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2)
    k = n // 100
    h[:k] = h[k : 2 * k] ^ np.uint64(0b101)
    h[2 * k : 3 * k] = h[3 * k : 4 * k]
    return h.tolist()


def all_pairs_seconds(n: int) -> float:
    h = np.array(hashes(n), dtype=np.uint64)
    started = time.perf_counter()
    for i in range(n):
        popcount64(h[i + 1 :] ^ h[i]) <= T
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--images", type=int, default=20_000)
    args = parser.parse_args()
    assert T == CurateSettings().phash_threshold
    base = all_pairs_seconds(10_000)
    for n in args.sizes:
        values = hashes(n)
        started = time.perf_counter()
        pairs = phash_edges(np.array(values, dtype=np.uint64), np.arange(n), T)[0]
        took = time.perf_counter() - started
        print(f"near duplicates  n={n:>9,}  bands={choose_bands(n, T)}  pairs={len(pairs):>7,}  {took:6.1f} s"
              f"   (all pairs, extrapolated from 10k: {base * (n / 10_000) ** 2:,.0f} s)")
        classes = [str(i % 5000) for i in range(n)]
        started = time.perf_counter()
        assign(classes, [str(i // 2) for i in range(n)], [None] * n, SplitSpec())
        print(f"splits           n={n:>9,}  {time.perf_counter() - started:6.1f} s")
    if args.images:
        from _dataset_factory import Row, jpeg, photo, write_dataset

        tmp = Path(tempfile.mkdtemp(prefix="gbifxdl-bench-"))
        try:
            copies = [jpeg(photo(i, (64, 48)), quality=80) for i in range(50)]  # 5 % of rows are copies
            rows = [Row(i // 2, i % 300, copies[i % 50] if i % 20 == 0 else jpeg(photo(10_000 + i, (64, 48))))
                    for i in range(args.images)]  # fmt: skip
            write_dataset(tmp, rows, orphans=False)
            for label in ("first run", "second run"):
                started = time.perf_counter()
                summary = curate(tmp, card=False)
                print(f"curate {label:<10} {args.images:,} images  kept {summary.kept:,}  "
                      f"{time.perf_counter() - started:6.1f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
