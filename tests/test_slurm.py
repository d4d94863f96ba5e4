"""Dask workers as Slurm (or PBS) batch jobs: ``--cluster slurm:...`` through dask-jobqueue.

These tests check the job script dask-jobqueue writes for the options and ``[cluster]`` keys,
the one-line errors, and Ctrl-C once a job cluster has started. The fetch itself, with jobs
that reach their walltime and are replaced without losing a unit, runs against a real Slurm
in ``tests/test_slurm_real.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gbifxdl.errors import ConfigError
from gbifxdl.fetch._jobqueue import job_cluster
from gbifxdl.fetch.cluster import cluster_address, parse_cluster

_SIGINT = signal.getsignal(signal.SIGINT)
pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is a test extra (pip install -e '.[test]')")
signal.signal(signal.SIGINT, _SIGINT)  # importing dask_jobqueue makes Ctrl-C exit at once; gbifxdl puts it back

def _script(address: str, keys: dict | None = None) -> str:
    _, spec = parse_cluster(cluster_address(address, keys))
    with job_cluster(spec) as cluster:  # the scheduler only: no job is submitted
        return cluster.job_script()


def test_starting_batch_jobs_leaves_ctrl_c_to_gbifxdl() -> None:
    # importing dask_jobqueue makes Ctrl-C call sys.exit at once: the fetch would stop without its one line
    code = """import signal
from gbifxdl.fetch._jobqueue import job_cluster
from gbifxdl.fetch.cluster import parse_cluster
_, spec = parse_cluster("slurm:jobs=1,host=127.0.0.1")
with job_cluster(spec):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGINT)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_job_script_asks_what_the_options_say() -> None:
    script = _script("slurm:jobs=3,cores=8,memory=16GB,walltime=02:00:00,queue=short,account=lab,host=127.0.0.1")
    header = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert header == ["#SBATCH -J gbifxdl", "#SBATCH -p short", "#SBATCH -A lab", "#SBATCH -n 1",
                      "#SBATCH --cpus-per-task=8", "#SBATCH --mem=15G", "#SBATCH -t 02:00:00"]
    worker = script.strip().splitlines()[-1]
    # one worker process with one thread a job (a unit at a time, 8 image processes), connecting back
    assert "-m distributed.cli.dask_worker tcp://127.0.0.1:" in worker and "--nthreads 1" in worker
    # it retires itself 5 minutes before the walltime (give or take 60 s), so a new job takes over
    assert "--lifetime 6900s --lifetime-stagger 60s" in worker


def test_cluster_section_keys_reach_the_job_and_the_option_wins(tmp_path: Path) -> None:
    from gbifxdl.cli.run import run as run_command
    from gbifxdl.cli.run import settings_from_context

    (tmp_path / "x.zip").write_bytes(b"")
    config = tmp_path / "c.toml"
    config.write_text(f'output = "ds"\n[source]\narchive = "{tmp_path / "x.zip"}"\n[cluster]\naddress = "slurm"\njobs = 2\ncores = 6\n'
                      'memory = "6GB"\nwalltime = "00:30:00"\nqueue = "long"\nhost = "127.0.0.1"\n')
    settings = settings_from_context(run_command.make_context("run", ["--config", str(config)]))
    script = _script(settings.cluster)
    assert "#SBATCH -p long" in script and "#SBATCH --cpus-per-task=6" in script and "#SBATCH -t 00:30:00" in script
    # --cluster gives the address (and its own keys, which win); the section's other keys stay
    settings = settings_from_context(run_command.make_context(
        "run", ["--config", str(config), "--cluster", "slurm:jobs=5,queue=short"]))
    assert settings.cluster == ("slurm:jobs=5,cores=6,memory=6GB,walltime=00:30:00,queue=short,host=127.0.0.1")
    # PBS, from the same keys
    script = _script("pbs:jobs=2,cores=4,memory=6GB,walltime=00:30:00,queue=long,host=127.0.0.1")
    assert "#PBS -q long" in script and "#PBS -l select=1:ncpus=4:mem=" in script and "#PBS -l walltime=00:30:00" in script


def test_the_readme_cluster_section_is_a_working_config(tmp_path: Path) -> None:
    import re

    from gbifxdl.cli.run import run as run_command
    from gbifxdl.cli.run import settings_from_context

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"^```toml\n(.*?)^```", readme, re.M | re.S) if 'address = "slurm"' in b)
    (tmp_path / "x.zip").write_bytes(b"")
    config = tmp_path / "c.toml"
    config.write_text(f'output = "ds"\n[source]\narchive = "{tmp_path / "x.zip"}"\n{block}')
    settings = settings_from_context(run_command.make_context("run", ["--config", str(config)]))
    assert settings.cluster.startswith("slurm:jobs=10,cores=16,memory=32GB,walltime=04:00:00,queue=normal")
    # batch-job keys without a batch system to give them to: one line
    config.write_text(f'output = "ds"\n[source]\narchive = "{tmp_path / "x.zip"}"\n[cluster]\njobs = 3\n')
    with pytest.raises(ConfigError, match=r'^\[cluster\] jobs: batch-job keys need address = "slurm"'):
        settings_from_context(run_command.make_context("run", ["--config", str(config)]))


@pytest.mark.parametrize("address,keys,words", [
    ("slurm:cores=0", None, "cores=0"),
    ("slurm:jobs=two", None, "jobs=two"),
    ("slurm:walltime=2h", None, "walltime '2h'"),
    ("slurm:memory=lots", None, "memory=lots"),
    ("slurm:partition=short", None, "unknown key 'partition'"),
    ("slurm:4,queue", None, "slurm:N or slurm:key=value"),
    ("sge:4", None, "SGE"),
    ("local:2", {"jobs": 3}, "only for batch jobs"),
])
def test_bad_values_are_one_line(address: str, keys: dict | None, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        cluster_address(address, keys)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_the_command_says_a_bad_cluster_in_one_line_before_anything(tmp_path: Path) -> None:
    (tmp_path / "sel.parquet").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "fetch", str(tmp_path / "sel.parquet"), "-o",
                           str(tmp_path / "out"), "--cluster", "slurm:walltime=forever"],
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and "walltime 'forever'" in lines[0], done.stderr
    assert not (tmp_path / "out").exists()
