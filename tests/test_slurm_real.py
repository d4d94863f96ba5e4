"""``--cluster slurm:...`` against a real Slurm: munged, slurmctld and slurmd started by the test on 127.0.0.1.

Debian's slurm-wlm (``apt-get install -y slurm-wlm``; ``.ci/run`` installs it) starts here in a
few seconds: a one-node cluster with its own munge key, ports, state and spool folders, all in
the test's temporary folder (nothing in /etc is read or written). The fetch submits its Dask
workers with the real ``sbatch``; jobs reach their walltime (Slurm counts walltime in whole
minutes: these jobs have one), their workers retire before it, new jobs replace them, and
every image of every unit arrives.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from _slurm_fetch import fetch_longer_than_the_jobs

pytestmark = pytest.mark.slow  # a minute and a half: jobs of one minute
_SIGINT = signal.getsignal(signal.SIGINT)
pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is a test extra (pip install -e '.[test]')")
signal.signal(signal.SIGINT, _SIGINT)  # importing dask_jobqueue makes Ctrl-C exit at once; gbifxdl puts it back

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "sinfo", "scontrol")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Start a one-node Slurm on 127.0.0.1; yield the environment its commands need (SLURM_CONF)."""
    missing = [name for name in DAEMONS if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        pytest.fail(f"Slurm is needed for the Slurm tests (no {', '.join(missing)}): apt-get install -y slurm-wlm")
    root = tmp_path / "slurm-system"
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=gbifxdltest", "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory", "SlurmUser=root",
        "ReturnToService=2", "KillWait=5", "MinJobAge=600",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=4000 State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    sbin = lambda name: shutil.which(name) or f"/usr/sbin/{name}"  # noqa: E731
    procs = [subprocess.Popen([sbin("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
                               f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
                               f"--seed-file={root / 'munge' / 'munged.seed'}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, (root / "log" / "munged.log").read_text()
            time.sleep(0.05)
        procs.append(subprocess.Popen([sbin("slurmctld"), "-D", "-c"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sbin("slurmd"), "-D", "-N", "localhost"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while True:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            logs = "".join(p.read_text()[-1500:] for p in (root / "log").glob("slurm*.log"))
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, f"Slurm did not start: {logs}"
            time.sleep(0.2)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
        for proc in reversed(procs):
            _stop(proc)


def _jobs(env: dict[str, str]) -> dict[str, str]:
    """Return {job id: state} of every job Slurm remembers (MinJobAge: ten minutes)."""
    out = subprocess.run(["scontrol", "-o", "show", "jobs"], env=env, capture_output=True, text=True).stdout
    fields = [dict(part.split("=", 1) for part in line.split() if "=" in part) for line in out.splitlines()]
    return {f["JobId"]: f["JobState"] for f in fields if "JobId" in f}


def test_a_fetch_longer_than_the_walltime_on_a_real_slurm(slurm: dict[str, str], tmp_path: Path) -> None:
    # one-minute jobs: each worker retires 45 s after it starts; the fetch (40 units of 20 images,
    # 1 s each, 8 at a time on each of the 2 workers) takes longer than that
    fetch_longer_than_the_jobs(
        tmp_path, slurm, "slurm:jobs=2,cores=1,memory=500MB,walltime=00:01:00,queue=debug,host=127.0.0.1",
        n=800, latency=1.0, connections=8)
    jobs = _jobs(slurm)
    # the first two jobs ended during the fetch (their workers retired, or Slurm stopped them at one
    # minute) and later jobs took their place; the last are cancelled as the fetch ends
    assert len(jobs) >= 3, jobs
    ended = [job for job, state in jobs.items() if state in ("COMPLETED", "TIMEOUT", "FAILED")]
    assert ended, jobs
    assert all(state in ("COMPLETED", "TIMEOUT", "FAILED", "CANCELLED", "COMPLETING") for state in jobs.values()), jobs
