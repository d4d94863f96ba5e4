"""Issue 20, item 3: a rebuild that delivers nothing (or too little) is an error, and a host
that cannot be reached is `unreachable_host`, not a vanished image.

Built as a user builds it: a dataset fetched from image hosts on loopback, exported, then
`gbifxdl rebuild` (the command) with some or all of its URLs on a port where nothing listens.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gbifxdl.cli import cli
from gbifxdl.curate import curate
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.publish import export_manifest
from gbifxdl.select import SelectSettings, select
from gbifxdl.testing.dwca import write_dwca
from gbifxdl.testing.image_hosts import ImageHosts

CLAIMS = ("README.md", "report.html", "croissant.json")


@pytest.fixture(scope="module")
def hosts():
    with ImageHosts(2, seed=1) as h:
        yield h


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, hosts: ImageHosts) -> Path:
    root = tmp_path_factory.mktemp("rebuild")
    archive = write_dwca(root / "0000001-250101000000000.zip", n_occurrences=60, image_base_urls=hosts.base_urls)
    select(archive.path, root / "sel.parquet", SelectSettings(max_per_class=3), progress=False)
    fetch(root / "sel.parquet", root / "ds", FetchSettings(resize=64, workers=0, retry_backoff=0.05), progress=False)
    curate(root / "ds", progress=False)
    export_manifest(root / "ds", root / "m.parquet")
    return root / "m.parquet"


def _on_a_dead_host(manifest: Path, out: Path, rows: int) -> Path:
    """Write a copy of ``manifest`` whose first ``rows`` images are on a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    table = pq.read_table(manifest)
    urls = table.column("identifier").to_pylist()
    urls = [dead + "/photos/" + u.split("/photos/", 1)[1] if i < rows else u for i, u in enumerate(urls)]
    for name, values in (("identifier", urls), ("url_hash", [hashlib.sha1(u.encode()).hexdigest() for u in urls])):
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
    pq.write_table(table.replace_schema_metadata(pq.read_schema(manifest).metadata), out)
    return out


def _rebuild(manifest: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gbifxdl", "rebuild", str(manifest), "-o", str(out), "--no-progress",
                           *flags], capture_output=True, text=True, timeout=240)  # fmt: skip


@pytest.mark.slow
def test_a_rebuild_that_delivers_nothing_fails_and_claims_no_dataset(manifest: Path, tmp_path: Path) -> None:
    n = pq.read_metadata(manifest).num_rows
    out = tmp_path / "again"
    done = _rebuild(_on_a_dead_host(manifest, tmp_path / "m.parquet", n), out)
    assert done.returncode == 1
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: ") and f"delivered none of its {n} images" in error, error
    assert not [name for name in CLAIMS if (out / name).exists()]  # no card, report or croissant.json
    state = json.loads((out / "rebuild.json").read_text())
    assert state["identical"] == 0 and state["incomplete"] is True
    assert {d["reason"] for d in state["differences"]} == {"unreachable_host"}  # not vanished_connection
    assert state["unreachable"] == n and state["vanished"] == 0
    fetched = pq.read_table(out / "metadata.parquet").column("outcome").to_pylist()
    assert set(fetched) == {"unreachable_host"}


@pytest.mark.slow
def test_min_delivered_sets_the_share_a_rebuild_must_deliver(manifest: Path, tmp_path: Path) -> None:
    n = pq.read_metadata(manifest).num_rows
    half = n // 2
    moved = _on_a_dead_host(manifest, tmp_path / "m.parquet", half)
    strict = _rebuild(moved, tmp_path / "strict", "--min-delivered", "0.9")
    assert strict.returncode == 1 and f"delivered {n - half} of {n}" in strict.stderr
    assert not [name for name in CLAIMS if (tmp_path / "strict" / name).exists()]
    lenient = _rebuild(moved, tmp_path / "lenient", "--min-delivered", "0.3")
    assert lenient.returncode == 0, lenient.stderr
    assert all((tmp_path / "lenient" / name).is_file() for name in CLAIMS)
    state = json.loads((tmp_path / "lenient" / "rebuild.json").read_text())
    assert state["identical"] == n - half and state["unreachable"] == half
    assert {d["reason"] for d in state["differences"]} == {"unreachable_host"}
    assert f"{n - half} images" in (tmp_path / "lenient" / "README.md").read_text()


def test_min_delivered_is_documented_and_checked() -> None:
    shown = CliRunner().invoke(cli, ["rebuild", "--help"]).output
    assert "--min-delivered" in shown and "0.5" in shown
