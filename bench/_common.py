"""Shared helpers of the benchmarks: emulator archives cached under ``bench/.cache/``."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def cached_archive(n_occurrences: int, seed: int = 0) -> Path:
    """Return the path of an emulator DWCA of ``n_occurrences``, generating it once."""
    from gbifxdl.testing.dwca import write_dwca

    path = CACHE / f"emulator-{n_occurrences}-seed{seed}.zip"
    if not path.exists():
        print(f"generating {path.name} (cached for next runs)...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        stats = write_dwca(path, n_occurrences=n_occurrences, seed=seed,
                           created=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))
        print(f"  {stats.n_occurrences:,} occurrences, {stats.n_media:,} media rows, "
              f"{stats.size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path
