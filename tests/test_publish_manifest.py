"""`gbifxdl export` and `gbifxdl rebuild`: a dataset rebuilt from its manifest, checked image by image."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _dataset_factory import jpeg, photo
from gbifxdl.curate import curate
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.publish import export_manifest, rebuild
from gbifxdl.run import RunSettings, SourceSettings, WaitSettings, run
from gbifxdl.select import SelectSettings
from gbifxdl.testing.image_hosts import ImageHosts
from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset made by `run` against the local GBIF, whose hosts stay up for the module."""
    out = tmp_path_factory.mktemp("manifest") / "ds"
    with local_gbif(LocalGbifSettings(n_occurrences=80, fault_rate=0.0, prepare_seconds=0.2, run_seconds=0.2)) as local:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in (("GBIF_USER", DEMO_USER), ("GBIF_PWD", DEMO_PASSWORD), ("GBIF_EMAIL", "d@example.org")):
                mp.setenv(name, value)
            settings = RunSettings(
                output=str(out),
                source=SourceSettings(predicate={"type": "equals", "key": "TAXON_KEY", "value": "7017"},
                                      api_url=local.api_url),
                wait=WaitSettings(min_interval=0.2, max_interval=0.5, timeout=120),
                select=SelectSettings(max_per_class=10),
                fetch=dataclasses.replace(FetchSettings(), resize=128, workers=0),
            )  # fmt: skip
            run(settings, progress=False, echo=lambda _: None)
        yield out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "images").rglob("*")) if p.is_file()}


def test_the_manifest_lists_every_image_with_what_a_rebuild_needs(source: Path, tmp_path: Path) -> None:
    n = export_manifest(source, tmp_path / "m.parquet")
    manifest = pq.read_table(tmp_path / "m.parquet")
    kept = pq.read_table(source / "metadata.parquet")
    assert n == manifest.num_rows == kept.num_rows
    assert {"identifier", "gbifID", "license", "attribution", "label", "split", "sha256", "creator",
            "rightsHolder", "kingdom", "speciesKey"} <= set(manifest.column_names)  # fmt: skip
    row = manifest.slice(0, 1).to_pylist()[0]
    assert row["sha256"] == hashlib.sha256((source / row["path"]).read_bytes()).hexdigest()
    prov = json.loads(manifest.schema.metadata[b"gbifxdl.provenance"])
    assert prov["fetch_settings"]["resize"] == 128 and prov["doi"].startswith("10.15468/dl.")


@pytest.mark.slow
def test_a_rebuild_from_the_same_sources_is_byte_identical(source: Path, tmp_path: Path) -> None:
    export_manifest(source, tmp_path / "m.parquet")
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "rebuild", str(tmp_path / "m.parquet"), "-o",
                           str(tmp_path / "again"), "--no-progress"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again"
    assert _files(source) and _files(again) == _files(source)
    original, rebuilt = (pq.read_table(p / "metadata.parquet").to_pylist() for p in (source, again))
    assert [(r["url_hash"], r["split"], r["sha256"]) for r in rebuilt] == \
        [(r["url_hash"], r["split"], r["sha256"]) for r in original]  # fmt: skip
    assert json.loads((again / "rebuild.json").read_text())["differences"] == []
    assert "identical to the manifest" in done.stdout


@pytest.mark.slow
def test_a_manifest_made_before_the_origin_comment_still_rebuilds_identical(source: Path, tmp_path: Path) -> None:
    from gbifxdl.fetch.process import ORIGIN_PREFIX, without_origin

    export_manifest(source, tmp_path / "m.parquet")
    manifest = pq.read_table(tmp_path / "m.parquet")
    # what an older gbifxdl recorded: the re-encoded JPEG without the `gbifxdl orig=WxH` comment
    files = [(source / path).read_bytes() for path in manifest.column("path").to_pylist()]
    assert all(ORIGIN_PREFIX in data[:200] for data in files)
    old = [hashlib.sha256(without_origin(data)).hexdigest() for data in files]
    assert old != manifest.column("sha256").to_pylist()
    at = manifest.schema.get_field_index("sha256")
    pq.write_table(manifest.set_column(at, manifest.schema.field(at), pa.array(old)), tmp_path / "old.parquet")
    summary = rebuild(tmp_path / "old.parquet", tmp_path / "again", progress=False)
    assert summary.identical == manifest.num_rows and summary.changed == 0
    assert _files(tmp_path / "again") == _files(source)


def _samples(root: Path) -> dict[str, bytes]:
    """Return every image of a dataset by its url_hash (file or shard member)."""
    out = {}
    for row in pq.read_table(root / "metadata.parquet").to_pylist():
        if row["path"]:
            out[row["url_hash"]] = (root / row["path"]).read_bytes()
    for shard in sorted((root / "shards").glob("*.tar")) if (root / "shards").is_dir() else []:
        with tarfile.open(shard) as tar:
            out.update({m.name.split(".")[0]: tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")})
    return out


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_an_image_changed_or_gone_at_its_host_is_reported_not_replaced(source: Path, tmp_path: Path,
                                                                       layout: str) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for i in range(8):
        (files / f"{i}.jpg").write_bytes(jpeg(photo(100 + i, (160, 120))))
    with ImageHosts(1, files_dir=files) as hosts:
        selection = pq.read_table(source / "selection.parquet").slice(0, 8)
        urls = [f"{hosts.base_urls[0]}/files/{i}.jpg" for i in range(8)]
        selection = selection.set_column(selection.schema.get_field_index("identifier"), "identifier", pa.array(urls))
        selection = selection.set_column(selection.schema.get_field_index("url_hash"), "url_hash",
                                         pa.array([hashlib.sha1(u.encode()).hexdigest() for u in urls]))
        pq.write_table(selection, tmp_path / "selection.parquet")
        ds = tmp_path / "ds"
        fetch(tmp_path / "selection.parquet", ds, FetchSettings(resize=96, workers=0, layout=layout), progress=False)
        curate(ds, progress=False)
        export_manifest(ds, tmp_path / "m.parquet")
        table = pq.read_table(ds / "metadata.parquet").to_pylist()
        changed, gone = table[0], table[1]
        number = lambda row: row["identifier"].rsplit("/", 1)[1]  # noqa: E731
        (files / number(changed)).write_bytes(jpeg(photo(999, (160, 120))))  # the owner replaced the photo
        (files / number(gone)).unlink()  # and deleted another
        summary = rebuild(tmp_path / "m.parquet", tmp_path / "again", progress=False)

    again = tmp_path / "again"
    assert (summary.identical, summary.changed, summary.vanished) == (len(table) - 2, 1, 1)
    reasons = {d["url_hash"]: d["reason"] for d in summary.differences}
    assert reasons == {changed["url_hash"]: "changed_at_source", gone["url_hash"]: "vanished_http_404"}
    kept = pq.read_table(again / "metadata.parquet").to_pylist()
    assert {r["url_hash"] for r in kept} == {r["url_hash"] for r in table[2:]}
    original, rebuilt = _samples(ds), _samples(again)
    assert set(rebuilt) == {r["url_hash"] for r in kept}  # the changed image is not kept under the old name
    assert all(rebuilt[h] == original[h] for h in rebuilt)
    if layout == "folders":
        assert not (again / changed["path"]).exists() and not (again / gone["path"]).exists()
    removed = pq.read_table(again / "removed.parquet").to_pylist()
    assert {r["url_hash"]: r["removed_reason"] for r in removed} == reasons
    report = (again / "report.html").read_text()
    assert changed["identifier"] in report and gone["identifier"] in report and "changed at the source" in report


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 99_999), st.integers(1, 99_999))
def test_the_origin_comment_is_read_back_and_taken_out_of_any_bytes(data: bytes, width: int, height: int) -> None:
    from gbifxdl.fetch.process import origin_of, with_origin, without_origin

    origin_of(data), without_origin(data)  # any bytes: an answer, never an exception
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xda" + data
    marked = with_origin(jpeg, (width, height))
    assert origin_of(marked) == (width, height) and without_origin(marked) == jpeg
