"""A Dask cluster of separate processes on loopback, as on separate machines (issue 13 tests).

``DaskProcesses`` starts ``dask scheduler`` and N ``dask worker`` commands as real
subprocesses, each in its own session (so each can be signalled alone), sharing nothing
with the test but the network:

    with DaskProcesses(2, env={"GBIFXDL_TEST_FAULTS": "..."}) as cluster:
        fetch(..., cluster=cluster.address)
        cluster.kill_worker(0, with_nanny=False)   # the nanny restarts the worker process
        cluster.kill_worker(1, with_nanny=True)    # the whole worker is gone
        cluster.wait_workers(1)

Every socket listens on 127.0.0.1 (the HTTP servers too: ``dask`` binds them to 0.0.0.0
unless told otherwise, even with ``--no-dashboard``). The processes never outlive the
test: ``stop()`` runs on leaving the ``with`` block, at interpreter exit, and each process
is sent SIGTERM by the kernel if the thread that started it dies (so start the cluster
from a thread that lives as long as it, e.g. the test's own).

Worker processes started by a nanny are daemonic (``distributed.worker.daemon``, the
default of a real ``dask worker``): a task in them cannot start a ``multiprocessing``
process. Pass ``env={"DASK_DISTRIBUTED__WORKER__DAEMON": "False"}`` to lift that.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Collection

_PR_SET_PDEATHSIG = 1
_LOOPBACK = "127.0.0.1"
_live: set[DaskProcesses] = set()  # started and not stopped: stopped at exit


class DaskClusterError(RuntimeError):
    """The processes of a ``DaskProcesses`` cluster did not start or went away."""


def _find_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: stop() and atexit still apply
        return None


_prctl = _find_prctl()  # looked up here: the child of a fork must not dlopen (locks)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the starting thread ends, even on SIGKILL."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a reused group id of someone else's: not ours any more
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Proc:
    """One started command: its Popen (leader of its own session and group) and its log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent, cwd=log.parent,
            )
        self.pid = self.popen.pid  # also its process group id

    def tail(self, lines: int = 15) -> str:
        """Return the last ``lines`` lines of the process's output, labelled with its name."""
        try:
            text = [line for line in self.log.read_text(errors="replace").splitlines()
                    if "Run out-of-band function" not in line][-lines:]  # our own polling
        except OSError:
            text = []
        state = "running" if self.popen.poll() is None else f"exited {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}) ---\n" + "\n".join(text)


class DaskProcesses:
    """A scheduler and ``workers`` workers as separate ``dask`` processes on 127.0.0.1.

    ``address``: the scheduler's ``tcp://127.0.0.1:PORT``. ``dashboard_address``: its
    dashboard's URL, or None (the default: ``dashboard=False``; also None when bokeh is
    not installed, though the scheduler's log still prints a "dashboard at" line).
    ``env``: variables added to the environment of every process (the workers see the
    test's environment plus these). ``nanny``: start workers with a nanny (the default of
    ``dask worker``), which restarts a worker process that dies. ``timeout``: seconds to
    wait for the processes to start or the scheduler to see the workers.
    """

    def __init__(self, workers: int = 2, *, nthreads: int = 1, env: dict[str, str] | None = None,
                 nanny: bool = True, dashboard: bool = False, timeout: float = 60.0) -> None:
        if workers < 0 or nthreads < 1:
            raise ValueError("DaskProcesses needs workers >= 0 and nthreads >= 1")
        self.n_workers = workers
        self.nthreads = nthreads
        self.nanny = nanny
        self.dashboard = dashboard
        self.timeout = timeout
        self.address: str | None = None
        self.dashboard_address: str | None = None
        self._extra_env = dict(env or {})
        self._dir: Path | None = None
        self._scheduler: _Proc | None = None
        self._workers: list[_Proc] = []
        self._client: Any = None

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> DaskProcesses:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DaskProcesses:
        """Start the scheduler and the workers; return self once the scheduler sees them all."""
        from distributed import Client

        self._dir = Path(tempfile.mkdtemp(prefix="gbifxdl-dask-"))
        _live.add(self)
        try:
            self._start_scheduler()
            self._client = Client(self.address, timeout=self.timeout, set_as_default=False)
            for _ in range(self.n_workers):
                self.start_worker(wait=False)
            self.wait_workers(self.n_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process (SIGTERM, then SIGKILL after ``grace`` s) and remove the temp dir."""
        if self._client is not None:
            try:
                self._client.close(timeout=5)
            except Exception:  # the scheduler may be gone already
                pass
            self._client = None
        # the workers first, and the scheduler once they are gone: a worker told to stop
        # while the scheduler closes can hang in its own close (seen with --no-nanny)
        for procs in (self._workers, [self._scheduler] if self._scheduler else []):
            for proc in procs:
                _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in procs:
                self._reap(proc, deadline)
            for proc in procs:
                _signal_group(proc.pid, signal.SIGKILL)
            for proc in procs:
                self._reap(proc, time.monotonic() + 5)
        self._workers, self._scheduler = [], None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        _live.discard(self)

    @staticmethod
    def _reap(proc: _Proc, deadline: float) -> None:
        """Wait until the process and every other member of its group have ended."""
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- processes ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PYTHONUNBUFFERED": "1",
            # neither the user's ~/.config/dask nor scratch files in the current directory
            "DASK_CONFIG": str(self._dir / "dask-config"),
            "DASK_TEMPORARY_DIRECTORY": str(self._dir),
        })
        env.update(self._extra_env)
        return env

    def _start_scheduler(self) -> None:
        assert self._dir is not None
        scheduler_file = self._dir / "scheduler.json"
        argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", _LOOPBACK,
                "--port", "0", "--dashboard-address", f"{_LOOPBACK}:0",
                "--dashboard" if self.dashboard else "--no-dashboard",
                "--scheduler-file", str(scheduler_file)]
        self._scheduler = _Proc("scheduler", argv, self._env(), self._dir / "scheduler.log")
        deadline = time.monotonic() + self.timeout
        while True:
            info = self._read_json(scheduler_file)
            if info and info.get("address"):
                break
            if self._scheduler.popen.poll() is not None or time.monotonic() > deadline:
                raise DaskClusterError("dask scheduler did not start; its output:\n"
                                       + self._scheduler.tail())
            time.sleep(0.05)
        self.address = info["address"]
        port = info.get("services", {}).get("dashboard")
        if self.dashboard and port and self._has_bokeh():
            self.dashboard_address = f"http://{_LOOPBACK}:{port}/status"

    @staticmethod
    def _has_bokeh() -> bool:
        import importlib.util

        return importlib.util.find_spec("bokeh") is not None

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet, or half-written
            return None

    def start_worker(self, wait: bool = True) -> int:
        """Start one more worker (named ``worker-<i>``); return its index ``i``."""
        if self.address is None or self._dir is None:
            raise DaskClusterError("start the cluster before adding a worker")
        i = len(self._workers)
        argv = [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                "--name", f"worker-{i}", "--nthreads", str(self.nthreads),
                "--host", _LOOPBACK, "--dashboard-address", f"{_LOOPBACK}:0", "--no-dashboard",
                "--nanny" if self.nanny else "--no-nanny",
                "--local-directory", str(self._dir), "--death-timeout", str(int(self.timeout))]
        self._workers.append(_Proc(f"worker-{i}", argv, self._env(), self._dir / f"worker-{i}.log"))
        if wait:
            self.wait_workers(len(self.alive_workers()))
        return i

    def alive_workers(self) -> list[int]:
        """Return the indices of the workers whose ``dask worker`` command still runs."""
        return [i for i, w in enumerate(self._workers) if w.popen.poll() is None]

    # -- inspection ---------------------------------------------------------------------

    def client(self, **kwargs: Any) -> Any:
        """Return a new ``distributed.Client`` connected to the scheduler (close it yourself)."""
        from distributed import Client

        if self.address is None:
            raise DaskClusterError("the cluster is not started")
        return Client(self.address, **{"timeout": self.timeout, "set_as_default": False, **kwargs})

    def scheduler_workers(self) -> dict[str, dict[str, Any]]:
        """Return the workers the scheduler knows now: address -> {name, pid, nanny}."""
        def known(dask_scheduler: Any) -> dict[str, dict[str, Any]]:
            return {ws.address: {"name": ws.name, "pid": ws.pid, "nanny": ws.nanny}
                    for ws in dask_scheduler.workers.values()}

        return self._client.run_on_scheduler(known)

    def wait_workers(self, n: int, timeout: float | None = None, *,
                     without_pids: Collection[int] = ()) -> None:
        """Return once the scheduler sees exactly ``n`` workers, none in ``without_pids``.

        ``without_pids`` (e.g. a killed worker's pid) tells a restarted worker from the
        one the scheduler has not yet noticed is gone. Raises with the processes' logs.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self._scheduler is None or self._scheduler.popen.poll() is not None:
                break
            try:
                seen = self.scheduler_workers()
            except (OSError, TimeoutError):  # the scheduler is going away: its poll() will say
                seen = {}
            else:
                if len(seen) == n and not any(w["pid"] in without_pids for w in seen.values()):
                    return
            time.sleep(0.1)
        raise DaskClusterError(f"the scheduler sees {len(seen)} workers, not {n}; their output:\n"
                               + self.logs())

    def logs(self, lines: int = 15) -> str:
        """Return the last lines of every process's output (for an error message)."""
        procs = [*([self._scheduler] if self._scheduler else []), *self._workers]
        return "\n".join(p.tail(lines) for p in procs)

    @property
    def scheduler_pid(self) -> int:
        """Return the scheduler process's pid (also its process group id)."""
        if self._scheduler is None:
            raise DaskClusterError("the cluster is not started")
        return self._scheduler.pid

    def nanny_pid(self, i: int) -> int:
        """Return the pid of ``dask worker`` number ``i``: the nanny (or the worker, without one)."""
        return self._workers[i].pid

    def worker_pid(self, i: int) -> int:
        """Return the pid of the process that runs worker ``i``'s tasks."""
        import psutil

        top = self._workers[i].pid
        if not self.nanny:
            return top
        try:
            children = psutil.Process(top).children()
        except psutil.NoSuchProcess:
            raise DaskClusterError(f"worker-{i} (pid {top}) is gone") from None
        # the nanny's children: its worker (multiprocessing.spawn) and a resource tracker
        workers = [c for c in children if "spawn_main" in " ".join(self._cmdline(c))]
        if len(workers) != 1:
            raise DaskClusterError(f"worker-{i}'s nanny (pid {top}) has {len(workers)} worker "
                                   "processes now (restarting?); try again")
        return workers[0].pid

    @staticmethod
    def _cmdline(proc: Any) -> list[str]:
        import psutil

        try:
            return proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return []

    def pids(self) -> set[int]:
        """Return the pids of every live process of the cluster, children of tasks included."""
        found: set[int] = set()
        for top in [*([self._scheduler] if self._scheduler else []), *self._workers]:
            found |= self._tree(top.pid)
        return found

    # -- faults -------------------------------------------------------------------------

    def kill_worker(self, i: int, with_nanny: bool) -> list[int]:
        """SIGKILL worker ``i``; return the pids killed.

        ``with_nanny=False`` kills only the process that runs the tasks: its nanny starts a
        new one, which joins the scheduler under a new address. ``with_nanny=True`` kills
        the whole ``dask worker`` (its process group: nanny, worker, their children), as
        if its machine went away. Without a nanny both kill the one worker process.
        """
        if with_nanny or not self.nanny:
            proc = self._workers[i]
            pids = sorted(self._tree(proc.pid))
            _signal_group(proc.pid, signal.SIGKILL)
            proc.popen.wait(timeout=10)
            return pids
        pid = self.worker_pid(i)
        os.kill(pid, signal.SIGKILL)
        return [pid]

    @staticmethod
    def _tree(pid: int) -> set[int]:
        import psutil

        try:
            proc = psutil.Process(pid)
            return {pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live):
        cluster.stop(grace=3.0)
