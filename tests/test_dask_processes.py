"""DaskProcesses: a scheduler and workers as separate `dask` processes on loopback (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'gbifxdl[dask]'")
import psutil  # noqa: E402  (a dependency of distributed)

import cloudpickle  # noqa: E402  (a dependency of distributed)

from gbifxdl.testing.dask_processes import DaskProcesses  # noqa: E402

pytestmark = pytest.mark.slow  # whole file: see the README's Development section

# the workers cannot import this test module (tests/ is not a package on their path):
# send its functions by value, as a user's script would be sent
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _start_sleeper() -> int:
    """A task's child process, as a worker's own processing pool would start one."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]).pid


def _getenv(name: str) -> str | None:
    return os.environ.get(name)  # os.environ.get itself would pickle the test's environment


def _listening(pids: set[int]) -> set[str]:
    addresses = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            conns = (proc.net_connections if hasattr(proc, "net_connections") else proc.connections)("inet")
        except psutil.NoSuchProcess:
            continue
        addresses |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return addresses


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_workers_are_separate_processes_that_can_be_killed_and_all_stop() -> None:
    with DaskProcesses(2, env={"GBIFXDL_TEST_FAULTS": "marker-42"}) as cluster:
        assert cluster.address.startswith("tcp://127.0.0.1:")
        assert cluster.dashboard_address is None
        with cluster.client() as client:
            task_pids = set(client.run(os.getpid).values())
            assert len(task_pids) == 2 and os.getpid() not in task_pids
            assert task_pids == {cluster.worker_pid(0), cluster.worker_pid(1)}
            assert set(client.run(_getenv, "GBIFXDL_TEST_FAULTS").values()) == {"marker-42"}
            sleepers = set(client.run(_start_sleeper).values())
            everything = cluster.pids()
            assert sleepers <= everything
            assert _listening(everything) == {"127.0.0.1"}

            # the worker process dies, its nanny starts a new one that joins the scheduler
            nanny, killed = cluster.nanny_pid(0), cluster.worker_pid(0)
            assert cluster.kill_worker(0, with_nanny=False) == [killed]
            cluster.wait_workers(2, without_pids=[killed])
            assert cluster.worker_pid(0) != killed and cluster.nanny_pid(0) == nanny
            assert killed not in set(client.run(os.getpid).values())

            # the whole worker dies (nanny, worker and the task's child): it stays gone
            nanny, worker = cluster.nanny_pid(1), cluster.worker_pid(1)
            whole = set(cluster.kill_worker(1, with_nanny=True))
            assert {nanny, worker} <= whole and whole & sleepers
            cluster.wait_workers(1)
            assert not _alive(whole)
            assert list(client.run(os.getpid).values()) == [cluster.worker_pid(0)]
            everything |= cluster.pids()
    assert not _alive(everything)


def test_processes_stop_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError, match="test failed"):
        with DaskProcesses(1, nanny=False) as cluster:
            with cluster.client() as client:
                assert list(client.run(os.getpid).values()) == [cluster.worker_pid(0)]
            everything = cluster.pids()
            assert len(everything) >= 2  # the scheduler and the worker
            raise RuntimeError("test failed")
    assert not _alive(everything)
