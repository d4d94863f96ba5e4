"""The fetch engine: units of rows -> polite downloads -> image processes -> writers -> journal.

:class:`UnitRun` runs units wherever they are fetched: into the output folder
(:func:`gbifxdl.fetch.fetch`, in :mod:`~gbifxdl.fetch.stage`), into a staging folder on
their way to a store (:mod:`~gbifxdl.fetch.scaleout`), or on a Dask worker
(:mod:`~gbifxdl.fetch._on_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from gbifxdl.errors import FetchError
from gbifxdl.fetch._host_stats import trace_config
from gbifxdl.fetch.download import make_session
from gbifxdl.fetch._loop import batch_scheduled, run_loop
from gbifxdl.fetch.image_types import ProcessOptions, fault_of
from gbifxdl.fetch.progress import log
from gbifxdl.fetch.scheduler import Backlog, Scheduler
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.shards import RESULT_COLUMNS, FetchState, iter_units
from gbifxdl.fetch.workers import WorkerPool, start_fork_server


def _nothing_to_do(summary: FetchSummary, progress: bool) -> FetchSummary:
    message = (f"Nothing to do: all {summary.total} rows were already fetched, {summary.ok} ok and "
               f"{summary.failed} failed ({summary.metadata_path})."
               + (" Use --retry-failed to try the failed ones again." if summary.failed else ""))
    log.info("%s", message)
    if progress:
        print(message)
    return summary


def lock_folder(path: Path) -> int:
    """Return the descriptor of the lock that keeps a second fetch out of one folder."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FetchError(f"another gbifxdl fetch is writing to {path.parents[2]}; wait for it to end") from None
    return fd


@dataclass
class _Unit:
    number: int
    rows: list[dict[str, Any]]
    journal: Any
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    submitted: bool = False
    closing: bool = False


class UnitRun:
    """Fetches units of a selection with one engine: downloads, workers, writers, journal."""

    def __init__(self, selection: Path, out_dir: Path, settings: FetchSettings, state: FetchState,
                 writer: Any, pending: set[int], schema: pa.Schema, *, unit_base: int = 0,
                 sink: Any = None, gate: Any = None, pool: WorkerPool | None = None) -> None:
        self.selection = selection
        self.out_dir = out_dir
        self.settings = settings
        self.state = state
        self.writer = writer
        self.pending = pending
        # the number of the selection's first unit (a cluster task's rows are one unit of many)
        self.unit_base = unit_base
        # where finished units go next (a store; see fetch.scaleout), and what admits each
        # request to a host (the cluster's shared limits; default: this process's own)
        self.sink = sink
        self.gate = gate
        # image processes that outlive this run (a cluster worker's, kept from unit to unit)
        self.shared_pool = pool
        self.has_hash = "url_hash" in schema.names
        self.has_class = settings.class_column in schema.names
        self.options = process_options(settings)
        self.handled = 0

    def run(self, progress: Any) -> int:
        """Return how many rows this run finished; ``progress`` is told of every one."""
        if self.settings.uses_processes:
            start_fork_server()  # before the policy changes: the workers inherit the server's
        with batch_scheduled():
            return int(run_loop(self.main(progress)))

    async def main(self, progress: Any) -> int:
        settings = self.settings
        workers = (os.cpu_count() or 1) if settings.workers is None else settings.workers
        self.pool: Executor | None = None
        self.workers: WorkerPool | None = None
        self.progress = progress
        self.loop = asyncio.get_running_loop()
        # images waiting for a worker: about 0.3 s of work at 80 images/s per worker, so
        # that 200 ms of latency never lets the workers run dry; bodies up to 32 MiB each
        self.backlog = Backlog(max(32, 24 * max(workers, 1)), max(128, 32 * max(workers, 1)) << 20)
        # rows queued ahead of the downloads: cheap (no bytes), deep enough that one slow
        # host does not starve the others
        self.row_slots = asyncio.Semaphore(max(4 * settings.connections, 2 * settings.shard_size, 512))
        self.tasks: set[asyncio.Task[Any]] = set()
        self._batch: list[tuple[_Unit, int, dict[str, Any], str | None]] = []
        self._committing: asyncio.Task[None] | None = None
        try:
            if not settings.uses_processes:
                self.pool = ThreadPoolExecutor(max_workers=2)
                self.in_thread = _in_thread_function(settings, self.options)
            else:
                # downloads start at once: tasks wait in the pipes while workers start
                # their stderr (native decoders' warnings) goes to the log, not the terminal
                self.workers = self.shared_pool or WorkerPool(workers, self.options, self.out_dir / "fetch.log")
            async with make_session(settings, [trace_config(lambda host: self.scheduler.stats_of(host))]) as session:
                self.scheduler = Scheduler(session, settings, gate=self.gate)
                try:
                    await self._feed()
                    while self.tasks:
                        await asyncio.gather(*list(self.tasks))
                finally:
                    # interrupted (Ctrl-C cancels this task) or failed: end every row quietly
                    # while the session is open, and journal the rows already finished
                    await self._cancel_rows()
        finally:
            progress.close()
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            if self.workers is not None and self.workers is not self.shared_pool:
                self.workers.shutdown()
        return self.handled

    async def _cancel_rows(self) -> None:
        """Cancel the rows still running and wait for them; journal the rows already done.

        Units being closed are waited for, not cancelled (their thread would go on anyway).
        """
        running = [t for t in self.tasks if not t.done()]
        for task in running:
            if task.get_name() != _CLOSING:
                task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        batch, self._batch = self._batch, []
        if batch:
            self._commit(batch)
            for unit, i, entry, _ in batch:
                unit.results[i] = entry
                self.handled += 1

    async def _feed(self) -> None:
        columns = None if self.settings.layout == "webdataset" else self._columns()
        for number, table in iter_units(self.selection, self.settings.shard_size, columns):
            number += self.unit_base
            if number not in self.pending:
                continue
            rows = table.to_pylist()
            unit = _Unit(number, rows, None)
            for i, entry in self.state.read_journal(number).items():
                if (entry["outcome"] != "ok" or self.writer.valid(number, entry)
                        or (self.sink is not None and self.sink.holds(entry))):
                    unit.results[i] = entry
            unit.journal = self.state.open_journal(number)
            for i, row in enumerate(rows):
                if i in unit.results:
                    continue
                await self.row_slots.acquire()
                task = asyncio.create_task(self._row(unit, i, row))
                self.tasks.add(task)
                task.add_done_callback(self._task_done)
            unit.submitted = True
            self._maybe_close(unit)

    def _columns(self) -> list[str]:
        cols = [self.settings.url_column]
        if self.has_hash:
            cols.append("url_hash")
        if self.has_class:
            cols.append(self.settings.class_column)
        return cols

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        self.row_slots.release()

    async def _row(self, unit: _Unit, i: int, row: dict[str, Any]) -> None:
        settings = self.settings
        url = row.get(settings.url_column) or ""
        key = row.get("url_hash") if self.has_hash else None
        key = key or hashlib.sha1(url.encode()).hexdigest()
        cls = row.get(settings.class_column) if self.has_class else None
        cls = settings.unlabeled if cls is None or cls == "" else str(cls)
        entry = _empty_entry()
        temp = None
        if not url.startswith(("http://", "https://")):
            entry.update(outcome="bad_url", error=f"not an http(s) URL: {url[:200]!r}", attempts=0)
        else:
            got = await self.scheduler.fetch(url, self.backlog.wait_room)
            entry.update(outcome=got.outcome, error=got.error, attempts=got.attempts,
                         http_status=got.status, host=got.host, fetched_url=got.fetched_url)
            if got.data is not None:
                temp = self.writer.temp_path(unit.number, key, cls)
                size = sum(map(len, got.data))
                self.backlog.add(1, size)
                try:
                    if self.workers is not None:
                        # a worker writes the result to the temporary path
                        done = await self.workers.process(temp, got.data)
                    else:
                        done = await self.loop.run_in_executor(self.pool, self.in_thread, got.data, temp)
                    entry.update(outcome="ok", error=None, **{k: getattr(done, k) for k in _MEASURES})
                    entry["path"] = self.writer.final_path(unit.number, key, cls, done.ext)
                except BrokenProcessPool as exc:
                    raise FetchError(f"{exc}; run the same command again to resume") from None
                except Exception as exc:  # noqa: BLE001 - whatever one image does is its outcome
                    fault = fault_of(exc)  # raises FetchError when the disk, not the image, failed
                    entry.update(outcome=fault.kind, error=fault.message)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
                    temp = None
                finally:
                    self.backlog.add(-1, -size)
        if entry["outcome"] != "ok":
            log.info("%s %s: %s", entry["outcome"], url, entry["error"])
        self._batch.append((unit, i, entry, temp))
        if self._committing is None:
            self._committing = asyncio.create_task(self._commit_batches())
            self.tasks.add(self._committing)
            self._committing.add_done_callback(self.tasks.discard)

    async def _commit_batches(self) -> None:
        # rows finish in batches (whatever finished in the same turn of the loop): one
        # journal write per unit, then the renames. Done in the loop itself: a few
        # syscalls each, measured cheaper than handing every batch to a thread
        await asyncio.sleep(0)
        while self._batch:
            batch, self._batch = self._batch, []
            self._commit(batch)
            for unit, i, entry, _ in batch:
                unit.results[i] = entry
                self.handled += 1
                self.progress.update(entry["outcome"], entry["bytes"] or 0)
                self._maybe_close(unit)
        self._committing = None

    def _commit(self, batch: list[tuple[_Unit, int, dict[str, Any], str | None]]) -> None:
        lines: dict[int, tuple[_Unit, list[str]]] = {}
        for unit, i, entry, _ in batch:
            lines.setdefault(unit.number, (unit, []))[1].append(json.dumps({"i": i, **entry}) + "\n")
        for unit, unit_lines in lines.values():
            unit.journal.write("".join(unit_lines))  # line-buffered: reaches the OS now
        # the journal lines come first: a file at its final path always has its line
        for _, _, entry, temp in batch:
            if temp is not None:
                self.writer.write(temp, entry)

    def _maybe_close(self, unit: _Unit) -> None:
        if unit.submitted and not unit.closing and len(unit.results) == len(unit.rows):
            unit.closing = True
            task = asyncio.create_task(asyncio.to_thread(self._close_unit, unit), name=_CLOSING)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _close_unit(self, unit: _Unit) -> None:
        unit.journal.close()
        entries = [unit.results[i] for i in range(len(unit.rows))]
        self.writer.close_unit(unit.number, entries, unit.rows)
        self.state.write_unit(unit.number, entries)
        if self.sink is not None:
            self.sink.unit_closed(self.state, unit.number)


def process_options(settings: FetchSettings) -> ProcessOptions:
    """Return what the image processes do with each body under ``settings``."""
    return ProcessOptions(settings.resize, settings.resize_mode, settings.should_reencode, settings.jpeg_quality,
                          settings.max_pixels, settings.pixel_hash)


def _in_thread_function(settings: FetchSettings, options: ProcessOptions) -> Callable[[list[bytes], str], Any]:
    """Return what a thread runs per body when there are no worker processes."""
    from gbifxdl.fetch import _faults

    run = _in_thread(settings, options)
    if not _faults.enabled():
        return run

    def run_with_faults(chunks: list[bytes], temp: str) -> Any:
        _faults.inject(chunks[0])  # tests only (GBIFXDL_TEST_FAULTS=1)
        return run(chunks, temp)

    return run_with_faults


def _in_thread(settings: FetchSettings, options: ProcessOptions) -> Callable[[list[bytes], str], Any]:
    if settings.header_only:
        from gbifxdl.fetch.validate import keep_to_file

        # header parsing is cheap but sha256 and the write are not: a thread runs them
        # (both release the GIL) while the loop carries on
        return lambda chunks, temp: keep_to_file(chunks, settings.max_pixels, temp)
    from gbifxdl.fetch.process import process_to_file

    return lambda chunks, temp: process_to_file(b"".join(chunks), temp, options)


_CLOSING = "gbifxdl-close-unit"  # the name of the tasks closing a finished unit
_MEASURES = ("orig_width", "orig_height", "width", "height", "bytes", "sha256", "pixel_hash", "phash",
             "chroma_hash", "signature")


def _empty_entry() -> dict[str, Any]:
    return {k: None for k in RESULT_COLUMNS}
