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
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from gbifxdl.errors import ConfigError, FetchError, GbifxdlError
from gbifxdl.fetch._jobqueue import JOB_SYSTEMS, JobSpec, parse_jobs, start_job_cluster
from gbifxdl.fetch._on_dask_worker import fetch_unit
from gbifxdl.fetch._sink import take_staging
from gbifxdl.fetch.progress import Progress, log
from gbifxdl.fetch.journal import iter_units
from gbifxdl.fetch.settings import FetchSettings
from gbifxdl.store import redact_url

if TYPE_CHECKING:
    from distributed import Client, LocalCluster, Scheduler

    from gbifxdl.fetch._host_stats import HostStats
    from gbifxdl.fetch.scaleout import StoreJob

UNITS_PER_WORKER = 2  # units queued on each worker: the next one starts as one ends
POLL = 0.5            # seconds between progress polls
MAX_RESUBMITS = 3     # a unit whose workers keep dying (KilledWorker) is submitted again this often
NO_WORKERS_TIMEOUT = 300.0  # seconds without any worker before the client gives up (it resumes later)


def parse_cluster(value: str, defaults: dict[str, Any] | None = None) -> tuple[str, int | str | JobSpec]:
    """Return ("local", N) for ``local:N``, ("jobs", JobSpec) for ``slurm:...``/``pbs:...`` (batch jobs,
    on top of ``defaults``, the [cluster] section's keys) or ("address", ADDRESS) for a scheduler
    address; raise ConfigError on others."""
    text = value.strip()
    system, colon, rest = text.partition(":")
    if system.lower() in (*JOB_SYSTEMS, "sge") and not rest.startswith("//"):
        return "jobs", parse_jobs(system.lower(), rest, defaults)
    if text.startswith("local"):
        rest = text[len("local"):]
        n = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
        if n == "":
            return "local", os.cpu_count() or 1
        if n.isdigit() and int(n) >= 1:
            return "local", int(n)
    elif "://" in text or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return "address", text
    raise ConfigError(f"cluster {value!r}: expected local:N (N workers here), slurm:N or pbs:N (N batch jobs, "
                      "see the README) or a Dask scheduler address such as tcp://HOST:8786")


def cluster_address(value: str, job_keys: dict[str, Any] | None = None) -> str:
    """Return ``--cluster``'s value checked, with the [cluster] section's batch-job keys (``jobs``,
    ``cores``...) written into a ``slurm:``/``pbs:`` one; raise ConfigError (one line) on a bad one."""
    keys = {k: v for k, v in (job_keys or {}).items() if v is not None}
    kind, where = parse_cluster(value, keys)
    if isinstance(where, JobSpec):
        return where.text()
    if keys:
        raise ConfigError(f"[cluster] {', '.join(sorted(keys))}: only for batch jobs (address = \"slurm\" or "
                          f"\"pbs\"), not for {value!r}")
    return value


@dataclass(frozen=True)
class UnitJob:
    """What a worker needs to fetch one unit: its rows, where they go, and how."""

    run_id: str
    unit: int
    rows: pa.Table
    target: str
    storage_options: dict[str, Any] | None
    settings: FetchSettings


def fetch_on_cluster(job: StoreJob, cluster: str) -> tuple[int, list[HostStats], str]:
    """Fetch ``job``'s pending units on ``cluster``; return the rows fetched, the hosts' stats and the
    workers' fetch logs."""
    selection, target, storage_options = job.selection, job.target, job.storage_options
    settings, pending, progress = job.settings, job.pending, job.progress
    try:
        import distributed
    except ImportError:
        raise ConfigError("--cluster needs Dask's distributed scheduler: pip install 'gbifxdl[dask]'") from None
    from gbifxdl.fetch._shared_limits import SharedLimits, snapshot

    kind, where = parse_cluster(cluster)
    if kind == "local" and settings.workers is None:
        # the local workers share this machine's cores: their image processes too
        settings = dataclasses.replace(settings, workers=max(1, (os.cpu_count() or 1) // int(where)))  # type: ignore[arg-type]
    if isinstance(where, JobSpec) and settings.workers is None:
        settings = dataclasses.replace(settings, workers=where.cores)  # a job's cores: one worker's image processes
    # the output names the limits: a later client of the same output shares them with any
    # task an earlier one left running
    run_id = hashlib.sha256(redact_url(target).encode()).hexdigest()[:16]
    patience = math.inf if isinstance(where, JobSpec) else NO_WORKERS_TIMEOUT  # batch jobs may queue for hours
    with open_client(distributed, kind, where) as client:
        link = client.dashboard_link if client.run_on_scheduler(_has_dashboard) else None
        if progress:
            # Dask serves its dashboard only with bokeh: say how to get it (issue 20, item 15)
            print(f"Dask cluster {client.scheduler.address}: {len(client.scheduler_info()['workers'])} workers, "
                  + (f"dashboard {link}" if link else "no dashboard (Dask's needs bokeh on the scheduler: "
                     "pip install bokeh)"))
        client.register_plugin(SharedLimits(run_id, settings))
        bar = job.bar()  # the bar starts once the cluster answers (what it says comes first)
        try:
            with _quiet_client_log():
                fetched, hosts = _drive(distributed, client, run_id, selection, target, storage_options, settings,
                                        pending, bar, snapshot, patience)
                # every unit is in the store: each worker's staging goes, its log comes back for the store
                logs = client.run(take_staging, target)
                return fetched, hosts, "".join(logs[w] for w in sorted(logs))
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


def _has_dashboard(dask_scheduler: Scheduler) -> bool:
    """Return whether the scheduler serves its dashboard (its HTTP server runs even without one)."""
    import importlib.util

    return bool(dask_scheduler.services.get("dashboard")) and importlib.util.find_spec("bokeh") is not None


LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def start_local_cluster(n: int) -> LocalCluster:
    """Return the LocalCluster of ``--cluster local:N``: N one-thread worker processes on 127.0.0.1.

    Dask's sampling profiler is off in them: it samples every thread's stack 100 times a
    second, which costs the engine's busy threads a tenth of their time for a flame graph
    nobody asked for. Dask's own timers (loop ticks every 20 ms, memory every 100 ms, system
    every 500 ms) run less often: each wakes a worker's event loop thread, which then takes
    the interpreter from the engine's; idle, the cluster used 0.8 % of a core per process,
    0.3 % this way.
    """
    import dask
    import distributed

    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        return distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address="127.0.0.1:0", silence_logs=40)


@contextlib.contextmanager
def open_client(distributed: ModuleType, kind: str, where: int | str | JobSpec) -> Iterator[Client]:
    """Yield a Dask client of the cluster :func:`parse_cluster` gave (started here for local:N and batch
    jobs, and stopped after), the same for the fetch and for ``gbifxdl infer --cluster``."""
    if isinstance(where, JobSpec):
        with start_job_cluster(where) as jobs, distributed.Client(jobs) as client:
            yield client
        return
    if kind == "local":
        from gbifxdl.fetch.image_processes import _sigint_ignored

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


def _drive(distributed: ModuleType, client: Client, run_id: str, selection: Path, target: str,
           storage_options: dict[str, Any] | None, settings: FetchSettings, pending: set[int], bar: Progress,
           snapshot: Any, patience: float = NO_WORKERS_TIMEOUT) -> tuple[int, list[Any]]:
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
        elif time.monotonic() - seen_workers > patience:
            raise FetchError(f"the Dask cluster has had no worker for {patience:.0f} s; start workers "
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
