"""Workers started as separate `dask scheduler` / `dask worker` processes on loopback (as on
separate machines: they share nothing but the network and the S3 store): the dataset equals
a single machine's, and a SIGKILLed worker loses nothing and re-downloads nothing written."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import gbifxdl
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch._sink import StoreSink
from gbifxdl.store import open_store
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

pytestmark = pytest.mark.slow  # whole file: see the README's Development section

for module in ("distributed", "s3fs", "moto"):
    pytest.importorskip(module, reason=f"{module} is a test extra (pip install -e '.[test]')")

N = 240
SHARD = 20
SRC = str(Path(gbifxdl.__file__).resolve().parents[1])


def _as_one_machine(store: Any, single: Path, hosts: ImageHosts, urls: list[str], done_before: set[int]) -> None:
    """Check the store holds the files and rows of the single-machine fetch in ``single``, and that
    no image of a unit finished before the fault was downloaded again."""
    reference = {p.relative_to(single).as_posix(): p.read_bytes() for p in (single / "images").rglob("*.jpg")}
    assert {k: store.read_bytes(k) for k in store.list("images/")} == reference
    table = pq.read_table(io.BytesIO(store.read_bytes("metadata.parquet")))
    assert table.drop_columns(["attempts"]).equals(pq.read_table(single / "metadata.parquet").drop_columns(["attempts"]))
    for unit in done_before:
        for url in urls[unit * SHARD:(unit + 1) * SHARD]:
            assert hosts.requests_for(url) == 1, url


@pytest.mark.parametrize("with_nanny", [False, True], ids=["worker-process", "whole-worker"])
def test_a_sigkilled_worker_loses_nothing_and_the_store_equals_one_machine(tmp_path: Path, with_nanny: bool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gbifxdl.testing.dask_processes import DaskProcesses
    from gbifxdl.testing.object_stores import S3Server

    monkeypatch.setenv("GBIFXDL_STAGING", str(tmp_path / "client-staging"))
    settings = FetchSettings(resize=64, shard_size=SHARD, workers=1, per_host=4)
    with ImageHosts(2, latency=0.06, max_side=200) as hosts, S3Server() as s3:
        urls = [hosts.photo_url(i, i % 2) for i in range(N)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        fetch(sel, tmp_path / "single", settings, progress=False)
        hosts.reset_counts()
        url = s3.url("cluster")
        store = open_store(url)
        sink = StoreSink(store, settings)
        # each "machine" stages in its own folder; they see the S3 server through AWS_* variables
        with DaskProcesses(2, env={"GBIFXDL_STAGING": str(tmp_path / "workers-staging")}) as cluster:
            result: dict[str, Any] = {}

            def run() -> None:
                try:
                    result["summary"] = fetch(sel, url, settings, progress=False, cluster=cluster.address)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    result["error"] = exc

            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 60
            while len(sink.done_units()) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            done_before = sink.done_units()
            assert 3 <= len(done_before) < N // SHARD, "the kill must come mid-run"
            cluster.kill_worker(0, with_nanny=with_nanny)
            thread.join(timeout=180)
            assert not thread.is_alive() and "error" not in result, result.get("error")
        summary = result["summary"]
        assert summary.ok == N
        # nothing lost, and nothing written before the kill downloaded again
        _as_one_machine(store, tmp_path / "single", hosts, urls, done_before)
        assert hosts.total_requests() <= N + 2 * SHARD  # at most the killed worker's units again


def _cli(sel: Path, url: str, address: str) -> list[str]:
    return [sys.executable, "-m", "gbifxdl", "fetch", str(sel), "-o", url, "--resize", "64", "--shard-size",
            str(SHARD), "--workers", "1", "--per-host", "4", "--cluster", address]


def _env(staging: Path) -> dict[str, str]:
    # the client gives up on a lost scheduler after 5 s instead of Dask's 30
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "GBIFXDL_STAGING": str(staging), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}


@pytest.mark.parametrize("stop", ["client", "cluster"])
def test_the_same_command_resumes_after_the_client_or_the_whole_cluster_stops(tmp_path: Path, stop: str) -> None:
    from gbifxdl.testing.dask_processes import DaskProcesses
    from gbifxdl.testing.object_stores import S3Server

    settings = FetchSettings(resize=64, shard_size=SHARD, workers=1, per_host=4)
    with ImageHosts(2, latency=0.06, max_side=200) as hosts, S3Server() as s3:
        urls = [hosts.photo_url(i, i % 2) for i in range(N)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        fetch(sel, tmp_path / "single", settings, progress=False)
        hosts.reset_counts()
        url = s3.url(f"stop-{stop}")
        store = open_store(url)
        sink = StoreSink(store, settings)
        workers_env = {"GBIFXDL_STAGING": str(tmp_path / "workers-staging")}
        cluster = DaskProcesses(2, env=workers_env).start()
        try:
            proc = subprocess.Popen(_cli(sel, url, cluster.address), env=_env(tmp_path / "c1"),
                                    start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            deadline = time.monotonic() + 60
            while len(sink.done_units()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            done_before = sink.done_units()
            assert 2 <= len(done_before) < N // SHARD, "the stop must come mid-run"
            if stop == "client":
                os.killpg(proc.pid, signal.SIGKILL)  # the client's machine went away
                proc.wait(timeout=10)
            else:
                cluster.stop()
                _, err = proc.communicate(timeout=120)
                assert proc.returncode == 1
                assert err.strip().splitlines()[-1] == (
                    f"error: lost the Dask scheduler at {cluster.address}; start it (and workers) again, then run "
                    "the same command: it resumes")
                cluster = DaskProcesses(2, env=workers_env).start()
            again = subprocess.run(_cli(sel, url, cluster.address), env=_env(tmp_path / "c2"),
                                   capture_output=True, text=True, timeout=180)
            assert again.returncode == 0, again.stderr[-2000:]
        finally:
            cluster.stop()
        _as_one_machine(store, tmp_path / "single", hosts, urls, done_before)
