"""One live progress bar (images/s, MB/s, ok and failed, ETA) and the run's log file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("gbifxdl.fetch")


class Progress:
    """Counts outcomes as they come and shows them on one bar (or nothing when off).

    The engine's :class:`~gbifxdl.fetch._seams.ProgressReport` here (a Dask worker's is
    :class:`~gbifxdl.fetch._shared_limits.WorkerSide`).
    """

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.ok = 0
        self.failed = 0
        self.bytes = 0
        self._start = time.monotonic()
        self._last_postfix = 0.0
        self._bar = tqdm(total=total, initial=done, unit="img", disable=not enabled,
                         dynamic_ncols=True, smoothing=0.05, desc="fetch") if enabled else None

    def update(self, outcome: str, nbytes: int) -> None:
        """Count one finished row."""
        if outcome == "ok":
            self.ok += 1
            self.bytes += nbytes
        else:
            self.failed += 1
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix > 0.5:
            self._last_postfix = now
            rate = self.bytes / max(now - self._start, 1e-6) / 1e6
            self._bar.set_postfix_str(f"ok {self.ok}, failed {self.failed}, {rate:.1f} MB/s", refresh=False)

    def add(self, ok: int, failed: int, nbytes: int) -> None:
        """Count many finished rows at once (a cluster's workers report in batches)."""
        self.ok += ok
        self.failed += failed
        self.bytes += nbytes
        if self._bar is None or not ok + failed:
            return
        self._bar.update(ok + failed)
        rate = self.bytes / max(time.monotonic() - self._start, 1e-6) / 1e6
        self._bar.set_postfix_str(f"ok {self.ok}, failed {self.failed}, {rate:.1f} MB/s", refresh=False)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()


def open_log(out_dir: Path) -> logging.Handler:
    """Return a handler appending the fetch log to ``DIR/fetch.log`` (remove it when done)."""
    handler = logging.FileHandler(out_dir / "fetch.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    # one line per failed image belongs in the file, not on the terminal
    log.propagate = False
    return handler


def close_log(handler: logging.Handler) -> None:
    """Detach and close the log handler."""
    log.removeHandler(handler)
    log.propagate = True
    handler.close()
