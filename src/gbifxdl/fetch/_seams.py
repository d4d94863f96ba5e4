"""The engine's seams, typed: what writes a unit's images, where a finished unit goes, what admits
each request to its host, and whom the engine tells of each finished row.

Each is a :class:`typing.Protocol`: the engine (:mod:`~gbifxdl.fetch.pipeline`) is written
against these, and every implementation stays where its work is:

- :class:`Writer`: :class:`~gbifxdl.fetch.writers.FolderWriter`,
  :class:`~gbifxdl.fetch.writers.WebDatasetWriter`
- :class:`Sink`: :class:`~gbifxdl.fetch._sink.FolderSink` (the output folder itself: the
  units stay where they were fetched), :class:`~gbifxdl.fetch._sink.StoreSink` (a store)
- :class:`Gate` and :class:`GateFactory`: :class:`~gbifxdl.fetch.per_host._Gate` (this
  process's host limits), :class:`~gbifxdl.fetch._shared_limits.RemoteGate` (the cluster's,
  made by :meth:`~gbifxdl.fetch._shared_limits.WorkerSide.gate`)
- :class:`ProgressReport`: :class:`~gbifxdl.fetch.progress.Progress` (the bar),
  :class:`~gbifxdl.fetch._shared_limits.WorkerSide` (a Dask worker's reports to the client)

Nothing here runs: the module imports only for annotations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from gbifxdl.fetch.download import Attempt
    from gbifxdl.fetch.journal import FetchState
    from gbifxdl.fetch.per_host import HostScheduler


class Writer(Protocol):
    """Where processed images go: species folders or WebDataset shards (see :mod:`~gbifxdl.fetch.writers`)."""

    def temp_path(self, unit: int, key: str, cls: str) -> str:
        """Return where a worker writes an image before it is journalled."""

    def final_path(self, unit: int, key: str, cls: str, ext: str) -> str:
        """Return the image's ``path`` as journalled."""

    def write(self, temp: str, entry: dict[str, Any]) -> None:
        """Move a journalled image into place."""

    def valid(self, unit: int, entry: dict[str, Any]) -> bool:
        """Return whether a journalled image is still there (on resume)."""

    def full_path(self, unit: int, entry: dict[str, Any]) -> str:
        """Return where a journalled image lies (on resume)."""

    def close_unit(self, unit: int, entries: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
        """Finish a unit, filling each row's ``path`` or ``shard``/``key``."""

    def restore(self, unit: int, entries: list[dict[str, Any]]) -> list[str]:
        """Bring a finished unit's images back into play (``--retry-failed``); return the files it replaced."""

    def cleanup(self) -> None:
        """Delete the temporary files a killed run left behind."""


class Sink(Protocol):
    """Where the units fetched into a folder go once finished: nowhere (the folder is the output) or a store."""

    def state(self, folder: Path, fingerprint: dict[str, Any]) -> FetchState:
        """Return ``folder``'s fetch state, before its lock is taken."""

    def resumes(self, state: FetchState, fingerprint: dict[str, Any]) -> bool:
        """Return whether ``state``'s folder may hold a killed run's temporaries (once its lock is held)."""

    def take_up(self, state: FetchState, writer: Writer, units: set[int]) -> set[int]:
        """Return which of ``units`` are still to fetch, once what is finished of them went where it goes."""

    def holds(self, entry: dict[str, Any]) -> bool:
        """Return whether a journalled image is already where it goes (so it is not fetched again)."""

    def unit_closed(self, state: FetchState, unit: int) -> None:
        """Take a unit just finished in ``state``'s folder."""


class Gate(Protocol):
    """Where each request (each redirect hop) waits for its host's slot and rate."""

    entered: int  # hosts entered in the current attempt (the scheduler resets it)

    async def enter(self, host: str) -> Any:
        """Return a ticket once a request to ``host`` may start."""

    def leave(self, ticket: Any, result: Attempt | None, nbytes: int = 0) -> None:
        """Give the ticket back, with how the host answered (None: no answer)."""


class GateFactory(Protocol):
    """Makes the gate of one image: what the :class:`~gbifxdl.fetch.per_host.HostScheduler` asks for per image."""

    def __call__(self, scheduler: HostScheduler, before_request: Callable[[], Awaitable[None]] | None) -> Gate: ...


class ProgressReport(Protocol):
    """Whom the engine tells of every finished row: the bar here, the client from a Dask worker."""

    def update(self, outcome: str, nbytes: int) -> None:
        """Count one finished row."""

    def close(self) -> None:
        """The run ended."""
