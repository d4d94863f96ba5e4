"""Helpers for tests that kill or interrupt a command: its process group, its progress."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq


def group_ends(pgid: int, timeout: float) -> bool:
    """Return whether every process of group ``pgid`` has ended within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def fetched_rows(dataset: Path) -> int:
    """Count the rows fetch has finished: its journals and finished units (either layout)."""
    state = dataset / ".gbifxdl" / "fetch"
    if not state.is_dir():
        return 0
    done = sum(pq.read_metadata(p).num_rows for p in state.glob("unit-*.parquet"))
    return done + sum(len(p.read_text().splitlines()) for p in state.glob("unit-*.jsonl"))
