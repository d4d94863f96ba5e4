"""The fetch both Slurm tests run: ``gbifxdl fetch --cluster slurm:...`` longer than its jobs' walltime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

import gbifxdl

SRC = str(Path(gbifxdl.__file__).resolve().parents[1])
SHARD = 20


def fetch_longer_than_the_jobs(tmp_path: Path, env: dict[str, str], cluster: str, *, n: int, latency: float,
                               connections: int) -> None:
    """Fetch ``n`` images from two loopback hosts answering after ``latency`` s, ``connections`` at a
    time on each Dask worker, on ``cluster``; check every image of every unit arrived."""
    from gbifxdl.testing.image_hosts import ImageHosts, write_selection

    env = {**env, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "GBIFXDL_STAGING": str(tmp_path / "staging")}
    with ImageHosts(2, latency=latency, max_side=200) as hosts:
        urls = [hosts.photo_url(i, i % 2) for i in range(n)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        done = subprocess.run(
            [sys.executable, "-m", "gbifxdl", "fetch", str(sel), "-o", str(tmp_path / "ds"), "--resize", "64",
             "--shard-size", str(SHARD), "--connections", str(connections), "--quiet", "--cluster", cluster],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
        assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "ds" / "metadata.parquet")
    assert table.num_rows == n and set(table.column("outcome").to_pylist()) == {"ok"}
    assert sorted(table.column("identifier").to_pylist()) == sorted(urls)
    assert len(list((tmp_path / "ds" / "images").rglob("*.jpg"))) == n
