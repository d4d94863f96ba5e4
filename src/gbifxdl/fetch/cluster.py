"""The fetch on a Dask cluster: units go to the workers, each runs the single-machine engine.

The client reads the selection a unit at a time and submits each unfinished unit (its
rows travel with the task) to the cluster, a few per worker at most; a worker fetches
the unit into its staging folder with the usual engine (async downloads, its own image
processes), asking the scheduler's :mod:`~gbifxdl.fetch._shared_limits` before each
request, and puts the finished unit into the store (:mod:`~gbifxdl.fetch._sink`). A unit
whose worker dies is run again elsewhere by Dask, skipping what reached the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import io
import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gbifxdl.errors import ConfigError, FetchError, GbifxdlError
from gbifxdl.fetch.progress import Progress, log
from gbifxdl.fetch.settings import FetchSettings
from gbifxdl.fetch.shards import iter_units
from gbifxdl.store import redact_url

UNITS_PER_WORKER = 2  # units queued on each worker: the next one starts as one ends
POLL = 0.5            # seconds between progress polls
MAX_RESUBMITS = 3     # a unit whose workers keep dying (KilledWorker) is submitted again this often
NO_WORKERS_TIMEOUT = 300.0  # seconds without any worker before the client gives up (it resumes later)


def parse_cluster(value: str) -> tuple[str, int | str]:
    """Return ("local", N) for ``local:N`` or ("address", ADDRESS) for a scheduler address; raise on others."""
    text = value.strip()
    if text.startswith("local"):
        rest = text[len("local"):]
        n = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
        if n == "":
            return "local", os.cpu_count() or 1
        if n.isdigit() and int(n) >= 1:
            return "local", int(n)
    elif "://" in text or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return "address", text
    raise ConfigError(f"cluster {value!r}: expected local:N (N workers here) or a Dask scheduler address "
                      "such as tcp://HOST:8786")


@dataclass(frozen=True)
class UnitJob:
    """What a worker needs to fetch one unit: its rows, where they go, and how."""

    run_id: str
    unit: int
    rows: pa.Table
    target: str
    storage_options: dict[str, Any] | None
    settings: FetchSettings


def fetch_on_cluster(selection: Path, target: str, storage_options: dict[str, Any] | None,
                     settings: FetchSettings, pending: set[int], schema: pa.Schema, cluster: str,
                     make_bar: Callable[[], Progress], progress: bool) -> tuple[int, list[Any]]:
    """Fetch the ``pending`` units on ``cluster``; return the rows fetched and the hosts' stats."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("--cluster needs Dask's distributed scheduler: pip install 'gbifxdl[dask]'") from None
    from gbifxdl.fetch._shared_limits import SharedLimits, snapshot

    kind, where = parse_cluster(cluster)
    if kind == "local" and settings.workers is None:
        # the local workers share this machine's cores: their image processes too
        settings = dataclasses.replace(settings, workers=max(1, (os.cpu_count() or 1) // int(where)))
    # the output names the limits: a later client of the same output shares them with any
    # task an earlier one left running
    run_id = hashlib.sha256(redact_url(target).encode()).hexdigest()[:16]
    with _client(distributed, kind, where) as client:
        link = client.dashboard_link if client.run_on_scheduler(_has_dashboard) else None
        if progress:
            print(f"Dask cluster {client.scheduler.address}: {len(client.scheduler_info()['workers'])} workers"
                  + (f", dashboard {link}" if link else ""))
        client.register_plugin(SharedLimits(run_id, settings))
        bar = make_bar()
        try:
            with _quiet_client_log():
                return _drive(distributed, client, run_id, selection, target, storage_options, settings, pending,
                              bar, snapshot)
        except FetchError:
            raise
        except Exception as exc:
            if client.status == "running" and "connection" not in str(exc).lower():
                raise
            raise FetchError(f"lost the Dask scheduler at {client.scheduler.address}; start it (and workers) "
                             "again, then run the same command: it resumes") from None
        finally:
            bar.close()


@contextlib.contextmanager
def _quiet_client_log() -> Iterator[None]:
    """Keep Dask's client from logging a lost scheduler to the terminal: the fetch says it in one line."""
    import logging

    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _has_dashboard(dask_scheduler: Any) -> bool:
    """Return whether the scheduler serves its dashboard (its HTTP server runs even without one)."""
    import importlib.util

    return bool(dask_scheduler.services.get("dashboard")) and importlib.util.find_spec("bokeh") is not None


def start_local_cluster(n: int) -> Any:
    """Return the LocalCluster of ``--cluster local:N``: N one-thread worker processes on 127.0.0.1.

    Dask's sampling profiler is off in them: it samples every thread's stack 100 times a
    second, which costs the engine's busy threads a tenth of their time for a flame graph
    nobody asked for.
    """
    import dask
    import distributed

    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address="127.0.0.1:0", silence_logs=40)


@contextlib.contextmanager
def _client(distributed: Any, kind: str, where: int | str) -> Iterator[Any]:
    if kind == "local":
        from gbifxdl.fetch.workers import _sigint_ignored

        # loopback only; one thread per worker process: each runs its own engine and image
        # processes. Started with SIGINT ignored, the processes keep ignoring it: a Ctrl-C
        # reaches the whole process group, and the client shuts them down itself
        with _sigint_ignored():
            local = start_local_cluster(int(where))
        with local, distributed.Client(local) as client:
            yield client
        return
    try:
        client = distributed.Client(str(where))  # waits distributed.comm.timeouts.connect (30 s)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError (a bad address)...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FetchError(f"cannot reach the Dask scheduler at {where} ({reason}); start it with `dask scheduler` "
                         "or check --cluster") from None
    with client:
        yield client


def _drive(distributed: Any, client: Any, run_id: str, selection: Path, target: str,
           storage_options: dict[str, Any] | None, settings: FetchSettings, pending: set[int], bar: Progress,
           snapshot: Any) -> tuple[int, list[Any]]:
    units = ((n, t) for n, t in iter_units(selection, settings.shard_size) if n in pending)
    running: dict[Any, UnitJob] = {}
    resubmits: dict[int, int] = {}
    shown = [0, 0, 0]
    fetched = 0
    hosts: list[Any] = []
    sockets: dict[str, list[int]] = {}  # host -> connections opened, DNS lookups (every worker's)
    workers = [0, -1e9]  # the cluster's workers, and when they were counted (a round trip each)

    def n_workers() -> int:
        if time.monotonic() - workers[1] > 2.0:
            workers[:] = [len(client.scheduler_info()["workers"]), time.monotonic()]
        return int(workers[0])

    def submit(job: UnitJob) -> None:
        future = client.submit(fetch_unit, job, key=f"gbifxdl-unit-{run_id}-{job.unit}-{resubmits.get(job.unit, 0)}",
                               pure=False, retries=2)
        running[future] = job

    def top_up() -> None:
        while len(running) < UNITS_PER_WORKER * max(1, n_workers()):
            nxt = next(units, None)
            if nxt is None:
                return
            submit(UnitJob(run_id, nxt[0], nxt[1], target, storage_options, settings))

    def show() -> None:
        nonlocal hosts
        snap = client.run_on_scheduler(snapshot, run_id=run_id)
        hosts = snap["hosts"] or hosts
        now = snap["totals"]
        bar.add(max(0, now[0] - shown[0]), max(0, now[1] - shown[1]), max(0, now[2] - shown[2]))
        shown[:] = [max(a, b) for a, b in zip(shown, now)]

    top_up()
    seen_workers = time.monotonic()
    while running:
        if n_workers():
            seen_workers = time.monotonic()
        elif time.monotonic() - seen_workers > NO_WORKERS_TIMEOUT:
            raise FetchError(f"the Dask cluster has had no worker for {NO_WORKERS_TIMEOUT:.0f} s; start workers "
                             "(`dask worker ADDRESS`), then run the same command again: it resumes")
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11
            distributed.wait(list(running), timeout=POLL, return_when="FIRST_COMPLETED")
        for future in [f for f in running if f.done()]:
            job = running.pop(future)
            try:
                result = future.result()
            except distributed.KilledWorker:
                resubmits[job.unit] = resubmits.get(job.unit, 0) + 1
                if resubmits[job.unit] > MAX_RESUBMITS:
                    raise FetchError(f"unit {job.unit} killed {MAX_RESUBMITS + 1} workers in a row (out of memory?); "
                                     "see the workers' logs, then run the same command again") from None
                log.warning("unit %d lost its worker; submitted again", job.unit)
                submit(job)
                continue
            except GbifxdlError:
                raise
            except Exception as exc:
                if client.status != "running" or "connection" in str(exc).lower():
                    raise
                raise FetchError(f"unit {job.unit} failed on the cluster ({type(exc).__name__}: {exc}); see the "
                                 "worker's log, then run the same command again: it resumes") from None
            fetched += result["fetched"]
            for host, (conns, lookups) in result.get("sockets", {}).items():
                opened = sockets.setdefault(host, [0, 0])
                opened[0] += conns
                opened[1] += lookups
        top_up()
        show()
    for stats in hosts:
        stats.connections, stats.dns_lookups = sockets.get(stats.host, (0, 0))
    return fetched, hosts


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
    from gbifxdl.fetch._sink import StoreSink, unit_key
    from gbifxdl.fetch.pipeline import UnitRun
    from gbifxdl.fetch.scaleout import prepare_staging, staging_dir, upload_finished
    from gbifxdl.fetch.shards import input_fingerprint
    from gbifxdl.fetch.writers import make_writer
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
        rows = folder / "rows.parquet"
        if not rows.exists():  # a unit taken up again on this machine keeps its journal
            buffer = io.BytesIO()
            pq.write_table(job.rows, buffer)
            tmp = folder / f"rows.parquet.tmp-{os.getpid()}"
            tmp.write_bytes(buffer.getvalue())
            os.replace(tmp, rows)
        fingerprint, schema = input_fingerprint(rows, settings)
        state = prepare_staging(folder, fingerprint, settings)
        try:
            state.remove_temporaries()
            writer = make_writer(folder, settings, state)
            writer.cleanup()
            fetched = 0
            sockets: dict[str, tuple[int, int]] = {}
            if upload_finished(state, sink, {job.unit}):
                worker = get_worker()
                owner = f"{worker.address}|{job.unit}|{uuid.uuid4().hex[:8]}"
                side = WorkerSide(worker, job.run_id, job.unit, owner)
                engine = _engine(settings, folder.parents[1] / "fetch.log")
                run = UnitRun(rows, folder, settings, state, writer, {job.unit}, schema, unit_base=job.unit,
                              sink=sink, gate=side.gate, pool=engine.pool)
                fetched = engine.run(run.main(side))
                # what only the worker sees: the connections it opened, the names it looked up
                sockets = {h.host: (h.connections, h.dns_lookups) for h in run.scheduler.stats()}
            result = _counts(sink.read_unit(job.unit), fetched) | {"sockets": sockets}
        finally:
            os.close(lock)
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
        from gbifxdl.fetch.workers import WorkerPool, start_fork_server

        self.options = process_options(settings)
        self.workers = settings.workers
        self.loop = _new_loop()
        threading.Thread(target=self._serve, name="gbifxdl-engine", daemon=True).start()
        self.pool: Any = None
        if settings.uses_processes:
            with _children_allowed():
                start_fork_server()

                async def make() -> Any:
                    return WorkerPool(settings.workers or (os.cpu_count() or 1), self.options, log_path)

                self.pool = asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    def _serve(self) -> None:
        from gbifxdl.fetch._loop import batch_scheduled

        with batch_scheduled():  # this thread only, as on one machine (see fetch._loop)
            self.loop.run_forever()

    def fits(self, settings: FetchSettings) -> bool:
        from gbifxdl.fetch.pipeline import process_options

        return (process_options(settings) == self.options and settings.workers == self.workers
                and (self.pool is None) == (not settings.uses_processes) and not getattr(self.pool, "_broken", False))

    def run(self, coro: Any) -> int:
        import asyncio

        return int(asyncio.run_coroutine_threadsafe(coro, self.loop).result())

    def close(self) -> None:
        import asyncio

        if self.pool is not None:
            async def shut() -> None:
                self.pool.shutdown()

            asyncio.run_coroutine_threadsafe(shut(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


_ENGINE: list[_Engine] = []


def _engine(settings: FetchSettings, log_path: Path) -> _Engine:
    """Return this worker process's engine for ``settings`` (made, or remade, as needed)."""
    if _ENGINE and not _ENGINE[0].fits(settings):
        _ENGINE.pop().close()
    if not _ENGINE:
        _ENGINE.append(_Engine(settings, log_path))
    return _ENGINE[0]


def _wait_for_unit(folder: Path, store: Any, done_key: str) -> int | None:
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
