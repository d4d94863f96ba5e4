"""A Dask worker's side of the fetch on a cluster: one unit, fetched by the single-machine engine.

:func:`fetch_unit` is the task :mod:`~gbifxdl.fetch.cluster` submits. It fetches the unit
into this machine's staging folder (:mod:`~gbifxdl.fetch._sink`) with the engine's one way in
(:func:`~gbifxdl.fetch.pipeline.unit_folder`), asking the scheduler's
:mod:`~gbifxdl.fetch._shared_limits` before each request, and puts the finished unit into
the store (:mod:`~gbifxdl.fetch._sink`). The engine (its event loop thread and image
processes) stays from unit to unit in the worker process.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from gbifxdl.fetch.progress import log
from gbifxdl.fetch.settings import FetchSettings

if TYPE_CHECKING:
    from gbifxdl.fetch.cluster import UnitJob
    from gbifxdl.fetch.image_processes import ImageProcessPool
    from gbifxdl.store import Store


def fetch_unit(job: UnitJob) -> dict[str, Any]:
    """Fetch one unit on this worker into the store; return its counts (runs in a Dask worker)."""
    try:
        return _fetch_unit(job)
    except Exception:
        # the worker's log says why (Dask then runs the unit again, here or elsewhere)
        log.exception("unit %d failed on this worker", job.unit)
        raise


def _fetch_unit(job: UnitJob) -> dict[str, Any]:
    from distributed import get_worker

    from gbifxdl.fetch._shared_limits import WorkerSide
    from gbifxdl.fetch._sink import StoreSink, staging_dir, unit_key
    from gbifxdl.fetch.pipeline import unit_folder
    from gbifxdl.fetch.journal import input_fingerprint
    from gbifxdl.store import open_store

    settings = job.settings
    with open_store(job.target, storage_options=job.storage_options) as store:
        sink = StoreSink(store, settings)
        if store.exists(unit_key(job.unit)):
            return _counts(sink.read_unit(job.unit), fetched=0)
        folder = staging_dir(job.target, "units", f"unit-{job.unit:06d}")
        lock = _wait_for_unit(folder, store, unit_key(job.unit))
        if lock is None:  # another task of this unit (an earlier client's) finished it meanwhile
            return _counts(sink.read_unit(job.unit), fetched=0)
        try:
            rows = folder / "rows.parquet"
            if not rows.exists():  # a unit taken up again on this machine keeps its journal
                buffer = io.BytesIO()
                pq.write_table(job.rows, buffer)
                tmp = folder / f"rows.parquet.tmp-{os.getpid()}"
                tmp.write_bytes(buffer.getvalue())
                os.replace(tmp, rows)
            fingerprint, schema = input_fingerprint(rows, settings)
        except BaseException:
            os.close(lock)
            raise
        # the worker's log is Dask's: no fetch.log in the unit's folder (its image processes' goes beside)
        with unit_folder(folder, settings, fingerprint, sink, lock=lock, log_here=False) as place:
            fetched = 0
            sockets: dict[str, tuple[int, int]] = {}
            if place.take_up({job.unit}):
                worker = get_worker()
                owner = f"{worker.address}|{job.unit}|{uuid.uuid4().hex[:8]}"
                side = WorkerSide(worker, job.run_id, job.unit, owner)
                engine = _engine(settings, folder.parents[1] / "fetch.log")
                fetched, hosts = place.run(rows, schema, {job.unit}, side, unit_base=job.unit, gate=side.gate,
                                           pool=engine.pool, loop=lambda coro: engine.run(coro, worker))
                # what only the worker sees: the connections it opened, the names it looked up
                sockets = {h.host: (h.connections, h.dns_lookups) for h in hosts}
            result = _counts(sink.read_unit(job.unit), fetched) | {"sockets": sockets}
        shutil.rmtree(folder, ignore_errors=True)
        return result


class _Engine:
    """This worker process's event loop thread and image processes, kept from unit to unit.

    Starting the image processes (and their fork server) for every unit cost more than the
    scheduling; one loop runs every unit the worker is given, one after the other.
    """

    def __init__(self, settings: FetchSettings, log_path: Path) -> None:
        import asyncio
        import threading

        from gbifxdl.fetch._loop import _new_loop
        from gbifxdl.fetch.pipeline import process_options
        from gbifxdl.fetch.image_processes import ImageProcessPool, start_fork_server

        self.options = process_options(settings)
        self.workers = settings.workers
        self.loop = _new_loop()
        threading.Thread(target=self._serve, name="gbifxdl-engine", daemon=True).start()
        self.pool: ImageProcessPool | None = None
        if settings.uses_processes:
            with _children_allowed():
                start_fork_server()

                async def make() -> Any:
                    return ImageProcessPool(settings.workers or (os.cpu_count() or 1), self.options, log_path)

                self.pool = asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    def _serve(self) -> None:
        from gbifxdl.fetch._loop import batch_scheduled

        with batch_scheduled():  # this thread only, as on one machine (see fetch._loop)
            self.loop.run_forever()

    def fits(self, settings: FetchSettings) -> bool:
        from gbifxdl.fetch.pipeline import process_options

        return (process_options(settings) == self.options and settings.workers == self.workers
                and (self.pool is None) == (not settings.uses_processes) and not getattr(self.pool, "_broken", False))

    def run(self, coro: Any, worker: Any) -> int:
        """Run ``coro`` on the engine's loop; cancel it once ``worker`` is closing.

        A closing worker (its cluster stopped, by Ctrl-C say) waits for its running task, and
        its nanny kills it after a few seconds: the unit stops at once instead, its journal
        kept in staging, and is taken up again by the next run. The unit's lock is let go only
        once its finished rows are journalled and in place (or after :data:`STOP_WAIT`): a
        task taking the unit up meanwhile would find files without their journal lines.
        """
        import asyncio
        import threading
        from concurrent.futures import TimeoutError as StillRunning  # not the builtin before 3.11

        ended = threading.Event()

        async def watched() -> Any:
            try:
                return await coro
            finally:
                ended.set()

        future = asyncio.run_coroutine_threadsafe(watched(), self.loop)
        while True:
            try:
                return int(future.result(timeout=CLOSING_POLL))
            except StillRunning:
                if worker.status.name in _CLOSING:
                    future.cancel()
                    ended.wait(STOP_WAIT)
                    raise RuntimeError("the Dask worker is closing: unit stopped, to be resumed") from None

    def close(self) -> None:
        import asyncio

        if self.pool is not None:
            async def shut() -> None:
                self.pool.shutdown()

            asyncio.run_coroutine_threadsafe(shut(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


_ENGINE: list[_Engine] = []
CLOSING_POLL = 0.25  # seconds between looks at the worker's status while a unit runs
STOP_WAIT = 5.0  # seconds a stopped unit is given to journal its finished rows before its lock goes
_CLOSING = {"closing", "closed", "stopping", "stopped", "failed"}  # not closing_gracefully: that one waits


def _engine(settings: FetchSettings, log_path: Path) -> _Engine:
    """Return this worker process's engine for ``settings`` (made, or remade, as needed)."""
    if _ENGINE and not _ENGINE[0].fits(settings):
        _ENGINE.pop().close()
    if not _ENGINE:
        _ENGINE.append(_Engine(settings, log_path))
    return _ENGINE[0]


def _wait_for_unit(folder: Path, store: Store, done_key: str) -> int | None:
    """Return this unit's lock once held, or None when the unit is done in the store meanwhile.

    Another task may hold it: one an earlier client started, which Dask cannot stop.
    """
    path = folder / ".gbifxdl" / "fetch" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if store.exists(done_key):
                os.close(fd)
                return None
            time.sleep(1.0)
            continue
        if store.exists(done_key) or os.fstat(fd).st_nlink == 0:
            # done by the task that held the lock (which then removed its staging folder)
            os.close(fd)
            return None
        return fd


def _counts(table: pa.Table, fetched: int) -> dict[str, Any]:
    import pyarrow.compute as pc

    ok = pc.equal(table.column("outcome"), "ok")
    n_ok = int(pc.sum(ok).as_py() or 0)
    return {"ok": n_ok, "failed": table.num_rows - n_ok, "fetched": fetched,
            "bytes": int(pc.sum(table.column("bytes")).as_py() or 0)}


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let this (daemonic, nanny-started) worker process start the image processes meanwhile.

    multiprocessing refuses children to a daemonic process lest they be orphaned when it
    exits; the engine ends its image processes itself before the unit ends (and they end
    on their own when their parent dies), so the rule does not apply here.
    """
    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    daemon = config.get("daemon")
    config["daemon"] = False
    try:
        yield
    finally:
        if daemon is not None:
            config["daemon"] = daemon
