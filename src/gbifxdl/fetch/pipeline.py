"""The fetch engine: units of rows -> polite downloads -> image processes -> writers -> journal.

One way in, wherever units are fetched and wherever they go: :func:`unit_folder` sets up
the folder they are fetched into (its lock, log, state and writer; a killed run's
temporaries removed), then :meth:`UnitFolder.run` runs units there with :class:`UnitRun`.
Where each finished unit goes is the folder's sink (:mod:`~gbifxdl.fetch._sink`): nowhere
for the output folder (:mod:`~gbifxdl.fetch.stage`), a store for a staging folder (here:
:mod:`~gbifxdl.fetch.scaleout`; on a Dask worker: :mod:`~gbifxdl.fetch._on_dask_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Collection, Coroutine, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pyarrow as pa

from gbifxdl.errors import FetchError
from gbifxdl.fetch._host_stats import HostStats, trace_config
from gbifxdl.fetch.adopt import MEASURES, adopt_unit, finish_renames
from gbifxdl.fetch.download import make_session
from gbifxdl.fetch._loop import batch_scheduled, run_loop
from gbifxdl.fetch.image_types import ProcessOptions, fault_of
from gbifxdl.fetch.progress import close_log, log, open_log
from gbifxdl.fetch.per_host import Backlog, HostScheduler
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.journal import RESULT_COLUMNS, FetchState, iter_units
from gbifxdl.fetch.image_processes import ImageProcessPool, start_fork_server
from gbifxdl.fetch.writers import make_writer

if TYPE_CHECKING:
    from gbifxdl.fetch._seams import GateFactory, ProgressReport, Sink, Writer


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
class UnitFolder:
    """A folder units are fetched into, set up by :func:`unit_folder`, and where its finished units go."""

    folder: Path
    settings: FetchSettings
    state: FetchState
    writer: Writer
    sink: Sink

    def take_up(self, units: set[int]) -> set[int]:
        """Return which of ``units`` are still to fetch (what is finished of them goes to the sink first)."""
        return self.sink.take_up(self.state, self.writer, units)

    def run(self, rows: Path, schema: pa.Schema, units: set[int], progress: ProgressReport, *,
            unit_base: int = 0, gate: GateFactory | None = None, pool: ImageProcessPool | None = None,
            loop: Callable[[Coroutine[Any, Any, int]], int] | None = None) -> tuple[int, list[HostStats]]:
        """Fetch ``units`` of ``rows`` here; return the rows finished and the hosts' stats.

        ``progress`` is told of every finished row (and closed at the end). ``unit_base``: the
        number of the first unit of ``rows`` (a Dask task's rows are one unit of many). ``gate``
        makes what admits each request to its host (default: this process's limits). ``pool``:
        image processes that outlive this run; ``loop`` runs the engine's coroutine (default:
        a new event loop in this thread).
        """
        run = UnitRun(self, rows, schema, units, unit_base=unit_base, gate=gate, pool=pool)
        fetched = run.run(progress) if loop is None else loop(run.main(progress))
        return fetched, run.scheduler.stats()


@contextlib.contextmanager
def unit_folder(folder: Path, settings: FetchSettings, fingerprint: dict[str, Any], sink: Sink, *,
                lock: int | None = None, log_here: bool = True) -> Iterator[UnitFolder]:
    """Set ``folder`` up for fetching units of the input ``fingerprint`` names, whose finished units go to ``sink``.

    Its lock is taken (``lock``: the lock's descriptor when the caller holds it already; it is
    closed at the end either way), its log opened (``log_here``: ``folder/fetch.log``), its
    state checked (by the sink) and a killed run's temporaries removed.
    """
    try:
        state = sink.state(folder, fingerprint)
        if lock is None:
            lock = lock_folder(state.dir / "lock")
        handler = open_log(folder) if log_here else None
        try:
            resuming = sink.resumes(state, fingerprint)
            writer = make_writer(folder, settings, state)
            if resuming:
                # rows journalled but not yet renamed into place first, then the rest goes
                renamed = finish_renames(state, writer)
                if renamed:
                    log.info("%d images a killed run had journalled renamed into place, not fetched again", renamed)
                state.remove_temporaries()
                writer.cleanup()
            yield UnitFolder(folder, settings, state, writer, sink)
        finally:
            if handler is not None:
                close_log(handler)
    finally:
        if lock is not None:
            os.close(lock)


@dataclass
class _Unit:
    number: int
    rows: list[dict[str, Any]]
    journal: TextIO | None
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    submitted: bool = False
    closing: bool = False


class UnitRun:
    """Fetches units of a selection with one engine: downloads, workers, writers, journal."""

    def __init__(self, place: UnitFolder, selection: Path, schema: pa.Schema, pending: set[int], *,
                 unit_base: int = 0, gate: GateFactory | None = None, pool: ImageProcessPool | None = None) -> None:
        settings = place.settings
        self.selection = selection
        self.out_dir = place.folder
        self.settings = settings
        self.state = place.state
        self.writer = place.writer
        # where finished units go next (the folder itself, or a store; see fetch._sink)
        self.sink = place.sink
        self.pending = pending
        # the number of the selection's first unit (a cluster task's rows are one unit of many)
        self.unit_base = unit_base
        # what admits each request to a host (the cluster's shared limits; default: this process's own)
        self.gate = gate
        # image processes that outlive this run (a cluster worker's, kept from unit to unit)
        self.shared_pool = pool
        self.has_hash = "url_hash" in schema.names
        self.has_class = settings.class_column in schema.names
        self.options = process_options(settings)
        self.handled = 0

    def run(self, progress: ProgressReport) -> int:
        """Return how many rows this run finished; ``progress`` is told of every one."""
        if self.settings.uses_processes:
            start_fork_server()  # before the policy changes: the workers inherit the server's
        with batch_scheduled():
            return int(run_loop(self.main(progress)))

    async def main(self, progress: ProgressReport) -> int:
        settings = self.settings
        workers = (os.cpu_count() or 1) if settings.workers is None else settings.workers
        self.pool: Executor | None = None
        self.workers: ImageProcessPool | None = None
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
                self.workers = self.shared_pool or ImageProcessPool(workers, self.options, self.out_dir / "fetch.log")
            async with make_session(settings, [trace_config(lambda host: self.scheduler.stats_of(host))]) as session:
                self.scheduler = HostScheduler(session, settings, gate=self.gate)
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
            started = self.state.journal_path(number).exists()
            journalled = self.state.read_journal(number)
            for i, entry in journalled.items():
                if entry["outcome"] != "ok" or self.writer.valid(number, entry) or self.sink.holds(entry):
                    unit.results[i] = entry
            unit.journal = self.state.open_journal(number)
            if started:
                await self._adopt(unit, journalled.keys())
            for i, row in enumerate(rows):
                if i in unit.results:
                    continue
                await self.row_slots.acquire()
                task = asyncio.create_task(self._row(unit, i, row))
                self.tasks.add(task)
                task.add_done_callback(self._task_done)
            unit.submitted = True
            self._maybe_close(unit)

    async def _adopt(self, unit: _Unit, journalled: Collection[int]) -> None:
        """Journal the files a killed run left at their final paths without their lines (fetch.adopt).

        A row with a line is not looked at: its line holds how it was fetched, and a file that
        no longer matches it is fetched again.
        """
        todo = []
        for i, row in enumerate(unit.rows):
            if i not in journalled:
                url, key, cls = self._identify(row)
                if url.startswith(("http://", "https://")):
                    todo.append((i, url, key, cls))
        if not todo:
            return
        adopted = await asyncio.to_thread(adopt_unit, self.writer, self.settings, unit.number, todo)
        if adopted:
            unit.journal.write("".join(json.dumps({"i": i, **entry}) + "\n" for i, entry in adopted))
            unit.results.update(adopted)
            log.info("unit %d: %d images a killed run had written taken up, not fetched again",
                     unit.number, len(adopted))

    def _identify(self, row: dict[str, Any]) -> tuple[str, str, str]:
        """Return a row's URL, key (its file's name) and class (its folder)."""
        settings = self.settings
        url = row.get(settings.url_column) or ""
        key = row.get("url_hash") if self.has_hash else None
        key = key or hashlib.sha1(url.encode()).hexdigest()
        cls = row.get(settings.class_column) if self.has_class else None
        return url, key, settings.unlabeled if cls is None or cls == "" else str(cls)

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
        url, key, cls = self._identify(row)
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
                    entry.update(outcome="ok", error=None, **{k: getattr(done, k) for k in MEASURES})
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
        self.sink.unit_closed(self.state, unit.number)


def process_options(settings: FetchSettings) -> ProcessOptions:
    """Return what the image processes do with each body under ``settings``."""
    return ProcessOptions(settings.resize, settings.resize_mode, settings.should_reencode, settings.jpeg_quality,
                          settings.max_pixels, settings.pixel_hash)


def _in_thread_function(settings: FetchSettings, options: ProcessOptions) -> Callable[[list[bytes], str], Any]:
    """Return what a thread runs per body when there are no image processes."""
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


def _empty_entry() -> dict[str, Any]:
    return {k: None for k in RESULT_COLUMNS}
