"""Workers started as separate `dask scheduler` / `dask worker` processes on loopback (as on
separate machines: they share nothing but the network and the S3 store): the dataset equals
a single machine's, and a SIGKILLed worker loses nothing and re-downloads nothing written."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch._sink import StoreSink
from gbifxdl.store import open_store
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

for module in ("distributed", "s3fs", "moto"):
    pytest.importorskip(module, reason=f"{module} is a test extra (pip install -e '.[test]')")

N = 240
SHARD = 20


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
        # nothing lost: the same files and rows as one machine's fetch
        reference = {p.relative_to(tmp_path / "single").as_posix(): p.read_bytes()
                     for p in (tmp_path / "single" / "images").rglob("*.jpg")}
        assert {k: store.read_bytes(k) for k in store.list("images/")} == reference
        table = pq.read_table(io.BytesIO(store.read_bytes("metadata.parquet")))
        single = pq.read_table(tmp_path / "single" / "metadata.parquet")
        assert table.drop_columns(["attempts"]).equals(single.drop_columns(["attempts"]))
        # no image written before the kill was downloaded again
        for unit in done_before:
            for url_ in urls[unit * SHARD:(unit + 1) * SHARD]:
                assert hosts.requests_for(url_) == 1, url_
        assert hosts.total_requests() <= N + 2 * SHARD  # at most the killed worker's units again
