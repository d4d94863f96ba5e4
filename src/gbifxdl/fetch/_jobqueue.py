"""Dask workers as batch jobs (``--cluster slurm:...``, ``pbs:...``), through dask-jobqueue.

``slurm:4`` or ``slurm:jobs=4,cores=8,memory=16GB,walltime=02:00:00,queue=short,account=lab``:
each job runs one Dask worker process with one thread, which fetches a unit at a time with
the job's ``cores`` as its image processes (as each ``local:N`` worker does with its share of
this machine). The scheduler runs in this process; the jobs connect back to it, so the
machine gbifxdl runs on (a login node) must be reachable from the compute nodes (``host``
names the address it listens on, ``interface`` the workers' network interface, e.g. ``ib0``).

Walltime: every worker retires itself (Dask's ``--lifetime``) a margin before its job's
walltime, its unit going back to the scheduler, and the cluster keeps ``jobs`` jobs
(``adapt(minimum_jobs=jobs, maximum_jobs=jobs)``), submitting a new one for each that ended;
a job killed at its walltime all the same is a killed worker: its unit runs again elsewhere,
skipping what reached the store. PBS takes the same keys (``select=1:ncpus=CORES:mem=MEMORY``);
SGE is refused: how it asks for cores and memory is each site's own (a parallel environment,
``h_vmem``...), which dask-jobqueue does not do the same way.
"""

from __future__ import annotations

import dataclasses
import math
import re
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gbifxdl.errors import ConfigError

if TYPE_CHECKING:
    from dask_jobqueue.core import JobQueueCluster

__all__ = ["JOB_KEYS", "JOB_SYSTEMS", "JobSpec", "job_cluster", "parse_jobs", "start_job_cluster", "walltime_seconds"]

JOB_SYSTEMS = ("slurm", "pbs")
# the keys of slurm:... and of the [cluster] section, with what each is
JOB_KEYS = {
    "jobs": "batch jobs kept running, one Dask worker each",
    "cores": "CPU cores each job asks for (the worker's image processes)",
    "memory": "memory each job asks for, e.g. 16GB",
    "walltime": "each job's time limit, [D-]HH:MM:SS",
    "queue": "the partition (Slurm) or queue (PBS)",
    "account": "the account the jobs are charged to",
    "interface": "the workers' network interface, e.g. ib0",
    "host": "the address the scheduler listens on (default: every interface)",
}
_WALLTIME = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?$")


@dataclass(frozen=True)
class JobSpec:
    """One batch system's jobs: how many, and what each asks for."""

    system: str
    jobs: int = 1
    cores: int = 4
    memory: str = "8GB"
    walltime: str = "01:00:00"
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
    host: str | None = None

    def text(self) -> str:
        """Return the spec as ``--cluster`` takes it (every key that is not the default)."""
        default = JobSpec(self.system)
        keys = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if f.name != "system" and getattr(self, f.name) != getattr(default, f.name)]
        return f"{self.system}:{','.join(keys)}" if keys else self.system

    def lifetime(self) -> tuple[int, int]:
        """Return (lifetime, stagger) in seconds: workers retire this long after they start, give or take
        the stagger, a margin before the walltime (a quarter of it, at most 5 minutes: the worker starts
        some seconds after its job)."""
        seconds = walltime_seconds(self.walltime)
        margin = min(300.0, seconds / 4)
        return max(1, math.floor(seconds - margin)), max(0, math.floor(margin / 5))


def walltime_seconds(text: str) -> int:
    """Return the seconds of a walltime ``[D-]HH:MM:SS`` (or ``MM:SS``); raise ConfigError on others."""
    match = _WALLTIME.match(text.strip())
    if not match:
        raise ConfigError(f"walltime {text!r}: expected [D-]HH:MM:SS, e.g. 02:00:00 or 1-00:00:00")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 10:
        raise ConfigError(f"walltime {text!r}: a job needs at least 10 seconds")
    return total


def parse_jobs(system: str, text: str, defaults: dict[str, Any] | None = None) -> JobSpec:
    """Return the JobSpec of ``SYSTEM[:N | :key=value,...]``, on top of ``defaults`` (the [cluster] keys).

    Raises ConfigError, in one line, for an unknown system or key or a bad value.
    """
    if system == "sge":
        raise ConfigError("cluster sge: not supported: how SGE asks for cores and memory is each site's own "
                          "(a parallel environment, h_vmem); start `dask worker` jobs yourself and give "
                          "--cluster tcp://HOST:8786")
    if system not in JOB_SYSTEMS:
        raise ConfigError(f"cluster {system!r}: expected one of {', '.join(JOB_SYSTEMS)}")
    values: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v is not None}
    text = text.strip()
    if text.isdigit():
        values["jobs"] = text
    elif text:
        for part in text.split(","):
            key, equals, value = (p.strip() for p in part.partition("="))
            if not equals or not value:
                raise ConfigError(f"cluster {system}:{text}: expected {system}:N or {system}:key=value,... "
                                  f"(keys: {', '.join(JOB_KEYS)})")
            values[key] = value
    unknown = sorted(set(values) - set(JOB_KEYS))
    if unknown:
        raise ConfigError(f"cluster {system}: unknown key {unknown[0]!r} (keys: {', '.join(JOB_KEYS)})")
    for key in ("jobs", "cores"):
        if key in values:
            value = str(values[key]).strip()
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"cluster {system}: {key}={values[key]}: expected a whole number of at least 1")
            values[key] = int(value)
    for key in ("memory", "walltime", "queue", "account", "interface", "host"):
        if key in values:
            values[key] = str(values[key]).strip()
    if "memory" in values and not _MEMORY.match(values["memory"]):
        raise ConfigError(f"cluster {system}: memory={values['memory']}: expected a size such as 16GB")
    spec = JobSpec(system, **values)
    walltime_seconds(spec.walltime)
    return spec


def start_job_cluster(spec: JobSpec) -> JobQueueCluster:
    """Return a dask-jobqueue cluster for ``spec``, adapting to keep ``spec.jobs`` jobs running
    (a job that ended, at its walltime or otherwise, is replaced by a new one)."""
    cluster = job_cluster(spec)
    cluster.adapt(minimum_jobs=spec.jobs, maximum_jobs=spec.jobs)
    return cluster


def job_cluster(spec: JobSpec) -> JobQueueCluster:
    """Return a dask-jobqueue cluster for ``spec`` with its scheduler started and no job submitted yet
    (``job_script()`` shows what each job will run).

    Raises ConfigError when dask-jobqueue is not installed.
    """
    # importing dask_jobqueue (its runner module) makes Ctrl-C exit the process at once; gbifxdl's own
    # handling (stop the units, say so in one line, exit 130) is put back
    previous = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError(f"--cluster {spec.system}: needs dask-jobqueue: pip install 'gbifxdl[slurm]'") from None
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
    lifetime, stagger = spec.lifetime()
    kwargs: dict[str, Any] = {
        # one worker process, one thread: it runs one unit at a time with `cores` image processes
        "cores": 1, "processes": 1, "memory": spec.memory, "walltime": spec.walltime, "queue": spec.queue,
        "account": spec.account, "job_name": "gbifxdl", "interface": spec.interface,
        "worker_extra_args": ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"],
        "scheduler_options": {"dashboard_address": ":0", **({"host": spec.host} if spec.host else {})},
    }
    if spec.system == "slurm":
        cluster_class = dask_jobqueue.SLURMCluster
        kwargs["job_cpu"] = spec.cores
    else:
        from dask_jobqueue.pbs import pbs_format_bytes_ceil
        from dask.utils import parse_bytes

        cluster_class = dask_jobqueue.PBSCluster
        kwargs["resource_spec"] = f"select=1:ncpus={spec.cores}:mem={pbs_format_bytes_ceil(parse_bytes(spec.memory))}"
    return cluster_class(**kwargs)
