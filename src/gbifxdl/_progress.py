"""Progress on a terminal: a ``(what, done, total)`` callback that draws a tqdm bar per step.

Curation, inference and the review's features report progress through such a callback (the
library itself draws nothing); the commands and ``gbifxdl run`` pass this one.
"""

from __future__ import annotations

from typing import Any


class StepBars:
    """A progress callback drawing one bar for the step in progress (a new step closes the last one's).

    Use it as a context manager, so the last bar is closed however the work ends.
    """

    def __init__(self, enabled: bool, prefix: str = "") -> None:
        self.enabled = enabled
        self.prefix = prefix  # before each step's name ("infer ": infer's steps are the models' names)
        self.bar: Any = None
        self.what = ""

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled or total < 2:
            return
        if self.bar is None or what != self.what:
            self.close()
            from tqdm import tqdm

            self.bar, self.what = tqdm(total=total, desc=self.prefix + what, leave=False), what
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "StepBars":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
