"""What a killed run left on disk is taken up on resume, not fetched again (issue 20, item 8): a file at
its final path without its journal line is adopted (checked, measured, journalled without a request);
a journalled file still at its temporary name is renamed into place; a file that is not a whole image
of this fetch is fetched again. The output equals an uninterrupted run's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch.journal import FetchState
from gbifxdl.fetch.process import origin_of, with_origin
from gbifxdl.fetch.writers import make_writer
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

N = 12
DROPPED = (0, 2, 4, 5, 9)  # rows whose journal line the "killed run" never wrote (PNG, GIF, TIFF, oriented JPEG, JPEG)

SETTINGS = {
    "reencoded": FetchSettings(resize=64, shard_size=N, workers=0),
    "kept": FetchSettings(shard_size=N, workers=0, pixel_hash=True),
    "header": FetchSettings(shard_size=N, workers=0, validate="header"),
    "webdataset": FetchSettings(resize=64, shard_size=N, workers=0, layout="webdataset"),
}


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path / "metadata.parquet").to_pylist()


def _killed_copy(reference: Path, out: Path, settings: FetchSettings, dropped: tuple[int, ...]) -> list[Path]:
    """Make ``out`` what a run killed in unit 0 leaves: every image written, the lines of ``dropped``
    missing from the journal. Return the files of the dropped rows (at their final paths)."""
    shutil.copytree(reference, out)
    (out / "metadata.parquet").unlink()
    state = FetchState(out, settings)
    ok = state.ok_rows(0)
    assert len(ok) == N
    if settings.layout == "webdataset":
        for name in make_writer(out, settings, state).restore(0, ok):  # the samples back in the spool
            (out / name).unlink()
        files = [state.spool_dir(0) / ok[i]["path"] for i in dropped]
    else:
        files = [out / ok[i]["path"] for i in dropped]
    state.reopen(0, [r for r in ok if r["i"] not in dropped])
    assert all(f.is_file() for f in files)
    return files


@pytest.fixture()
def hosts():
    with ImageHosts(2, max_side=200) as served:
        yield served


def _selection(hosts: ImageHosts, path: Path) -> tuple[Path, list[str]]:
    # ids 0, 2, 3, 5 ... by id % 50: a PNG with alpha, a GIF, a WebP, an oriented JPEG among them
    urls = [hosts.photo_url(i, i % 2) for i in range(N)]
    return write_selection(path, urls), urls


@pytest.mark.parametrize("kind", list(SETTINGS))
def test_a_file_at_its_final_path_without_its_journal_line_is_adopted(tmp_path: Path, hosts: ImageHosts,
                                                                      kind: str) -> None:
    settings = SETTINGS[kind]
    sel, urls = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "reference", settings, progress=False)
    _killed_copy(tmp_path / "reference", tmp_path / "out", settings, DROPPED)
    hosts.reset_counts()

    summary = fetch(sel, tmp_path / "out", settings, progress=False)

    assert hosts.total_requests() == 0  # nothing asked again, the dropped rows included
    assert summary.ok == N
    assert _rows(tmp_path / "out") == _rows(tmp_path / "reference")
    if settings.layout == "webdataset":
        shards = sorted(p.name for p in (tmp_path / "reference" / "shards").iterdir())
        for name in shards:
            assert (tmp_path / "out" / "shards" / name).read_bytes() == \
                (tmp_path / "reference" / "shards" / name).read_bytes()
    assert "taken up, not fetched again" in (tmp_path / "out" / "fetch.log").read_text()


def test_a_reencoded_image_keeps_its_size_before_processing_in_a_comment(tmp_path: Path, hosts: ImageHosts) -> None:
    sel, _ = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "ds", SETTINGS["reencoded"], progress=False)
    for row in _rows(tmp_path / "ds"):
        data = (tmp_path / "ds" / row["path"]).read_bytes()
        assert origin_of(data) == (row["orig_width"], row["orig_height"])
        assert max(row["width"], row["height"]) == 64 < max(row["orig_width"], row["orig_height"])


@pytest.mark.parametrize("damage", ["half", "garbage", "no_comment", "wrong_size"])
def test_a_file_that_is_not_a_whole_image_of_this_fetch_is_fetched_again(tmp_path: Path, hosts: ImageHosts,
                                                                          damage: str) -> None:
    from PIL import Image

    settings = SETTINGS["reencoded"]
    sel, urls = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "reference", settings, progress=False)
    (bad,) = _killed_copy(tmp_path / "reference", tmp_path / "out", settings, (5,))
    data = bad.read_bytes()
    if damage == "half":  # cannot come of a fetch (it writes a temporary name, then renames), but a user may
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 8)
    elif damage == "no_comment":  # a re-encoded file written by a version before the comment
        bad.write_bytes(data.replace(b"\xff\xfe", b"\xff\xe1", 1))
    else:  # another image's comment: its size before processing says the file is not what it claims
        img = Image.open(bad)
        img.resize((img.width // 2, img.height // 2)).save(bad, "JPEG")
        bad.write_bytes(with_origin(bad.read_bytes(), (img.width * 4, img.height * 4)))
    hosts.reset_counts()

    fetch(sel, tmp_path / "out", settings, progress=False)

    assert hosts.request_counts() == {urls[5]: 1}
    assert _rows(tmp_path / "out") == _rows(tmp_path / "reference")
    assert bad.read_bytes() == data


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_a_journalled_image_left_at_its_temporary_name_is_renamed_into_place(tmp_path: Path, hosts: ImageHosts,
                                                                             layout: str) -> None:
    settings = SETTINGS["reencoded" if layout == "folders" else "webdataset"]
    sel, _ = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "reference", settings, progress=False)
    _killed_copy(tmp_path / "reference", tmp_path / "out", settings, ())
    # killed between the journal lines and the renames: two files still at a dead process's temporary name
    ok = FetchState(tmp_path / "reference", settings).ok_rows(0)
    if layout == "webdataset":  # the journal's paths: the samples' names in the spool
        ok = [dict(r, path=f"{r['key']}.jpg") for r in ok]
    state = FetchState(tmp_path / "out", settings)
    for i in (3, 7):
        where = (state.spool_dir(0) / ok[i]["path"]) if layout == "webdataset" else tmp_path / "out" / ok[i]["path"]
        where.rename(where.with_name(f".{where.name.split('.')[0]}.tmp-99999999"))
    hosts.reset_counts()

    fetch(sel, tmp_path / "out", settings, progress=False)

    assert hosts.total_requests() == 0
    assert _rows(tmp_path / "out") == _rows(tmp_path / "reference")
    assert not list((tmp_path / "out").rglob("*.tmp-*"))
    assert "2 images a killed run had journalled renamed into place" in (tmp_path / "out" / "fetch.log").read_text()


def test_a_staging_folder_of_a_fetch_to_a_store_adopts_too(tmp_path: Path, hosts: ImageHosts,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch to a store (and a Dask worker) fetches units in a staging folder with the same engine."""
    from gbifxdl.fetch._sink import staging_dir
    from gbifxdl.fetch.scaleout import fetch_here, fetch_to_store

    settings = SETTINGS["reencoded"]
    sel, _ = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "reference", settings, progress=False)
    monkeypatch.setenv("GBIFXDL_STAGING", str(tmp_path / "staging"))
    target = f"file://{tmp_path / 'store'}"
    here = staging_dir(target, "here")
    here.rmdir()
    _killed_copy(tmp_path / "reference", here, settings, DROPPED)
    hosts.reset_counts()

    # (fetch() itself takes a file:// URL for the local folder it names: the store's way is asked for here)
    fetch_to_store(sel, target, settings, fetch_here, progress=False, storage_options=None)

    assert hosts.total_requests() == 0
    assert pq.read_table(tmp_path / "store" / "metadata.parquet").to_pylist() == _rows(tmp_path / "reference")


@pytest.mark.slow
def test_a_dask_workers_unit_folder_adopts_too(tmp_path: Path, hosts: ImageHosts,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dask worker fetches its unit in its own staging folder (fetch._on_dask_worker), with the same engine."""
    pytest.importorskip("distributed")
    from gbifxdl.fetch._sink import staging_dir
    from gbifxdl.fetch.journal import input_fingerprint, iter_units, wanted_state

    settings = SETTINGS["reencoded"]
    sel, _ = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "reference", settings, progress=False)
    monkeypatch.setenv("GBIFXDL_STAGING", str(tmp_path / "staging"))
    target = str(tmp_path / "cluster")
    folder = staging_dir(target, "units", "unit-000000")
    folder.rmdir()
    _killed_copy(tmp_path / "reference", folder, settings, DROPPED)
    # the unit's rows as its Dask task keeps them, and the state they make
    ((_, rows),) = iter_units(sel, settings.shard_size)
    pq.write_table(rows, folder / "rows.parquet")
    fingerprint, _ = input_fingerprint(folder / "rows.parquet", settings)
    (folder / ".gbifxdl" / "fetch" / "state.json").write_text(
        json.dumps(wanted_state(fingerprint, settings), indent=1, default=str))
    hosts.reset_counts()

    fetch(sel, target, settings, progress=False, cluster="local:1")

    assert hosts.total_requests() == 0
    assert _rows(Path(target)) == _rows(tmp_path / "reference")


def test_adoption_looks_for_every_extension_a_kept_original_may_have() -> None:
    from gbifxdl.fetch.adopt import KEPT_EXTENSIONS
    from gbifxdl.fetch.process import _EXTENSIONS

    assert set(KEPT_EXTENSIONS) == set(_EXTENSIONS.values())


def test_a_unit_stopped_on_a_closing_dask_worker_journals_its_rows_before_its_lock_goes(tmp_path: Path) -> None:
    """Its lock goes when the task returns: a task taking the unit up then must find every finished row journalled."""
    import asyncio
    import threading
    import types

    from gbifxdl.fetch._on_dask_worker import _Engine

    engine = _Engine(FetchSettings(workers=0), tmp_path / "fetch.log")
    worker = types.SimpleNamespace(status=types.SimpleNamespace(name="running"))
    journalled: list[str] = []

    async def unit() -> int:
        try:
            await asyncio.sleep(30)
        finally:  # as the engine does when cancelled: journal and rename what finished
            await asyncio.sleep(0.5)
            journalled.append("rows")
        return 0

    threading.Timer(0.3, lambda: setattr(worker.status, "name", "closing")).start()
    try:
        with pytest.raises(RuntimeError, match="the Dask worker is closing"):
            engine.run(unit(), worker)
        assert journalled == ["rows"]
    finally:
        engine.close()


def test_a_metadata_file_a_killed_run_was_writing_is_removed_on_resume(tmp_path: Path, hosts: ImageHosts) -> None:
    settings = SETTINGS["reencoded"]
    sel, _ = _selection(hosts, tmp_path / "sel.parquet")
    fetch(sel, tmp_path / "out", settings, progress=False)
    (tmp_path / "out" / "metadata.parquet").rename(tmp_path / "out" / ".metadata.parquet.tmp-99999999")

    fetch(sel, tmp_path / "out", settings, progress=False)

    assert (tmp_path / "out" / "metadata.parquet").is_file()
    assert not list((tmp_path / "out").rglob("*.tmp-*"))
