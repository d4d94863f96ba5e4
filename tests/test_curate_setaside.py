"""Curation sets aside what it removes; curating again with other settings brings it back;
only `gbifxdl clean` (purge_removed) deletes for good."""

from __future__ import annotations

import glob
import importlib
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from _dataset_factory import standard_dataset
from gbifxdl.curate import CurateSettings, curate, purge_removed

LAYOUTS = ["folders", "webdataset"]
ASIDE = Path(".gbifxdl") / "removed"


def _kept(root: Path) -> set[str]:
    return set(pq.read_table(root / "metadata.parquet")["url_hash"].to_pylist())


def _removed(root: Path) -> dict[str, str]:
    table = pq.read_table(root / "removed.parquet")
    return dict(zip(table["url_hash"].to_pylist(), table["removed_reason"].to_pylist()))


def _images(root: Path, layout: str, base: Path | None = None) -> dict[str, bytes]:
    """Return {url_hash: image bytes} of what a loader sees (or what lies under ``base``)."""
    out = {}
    if layout == "folders":
        for path in ((base or root) / "images").rglob("*.jpg"):
            out[path.stem] = path.read_bytes()
        return out
    for shard in sorted(glob.glob(str((base or root) / "shards" / "*.tar"))):
        with tarfile.open(shard) as tar:
            for info in tar:
                if info.name.endswith(".jpg"):
                    out[info.name.split(".")[0]] = tar.extractfile(info).read()
    return out


def _agree(root: Path, layout: str) -> None:
    """Assert that the files a loader sees are exactly the kept rows'."""
    table = pq.read_table(root / "metadata.parquet")
    if layout == "folders":
        on_disk = {p.relative_to(root).as_posix() for p in (root / "images").rglob("*") if p.is_file()}
        assert on_disk == set(table["path"].to_pylist())
    else:
        assert set(_images(root, layout)) == set(table["key"].to_pylist())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_other_settings_bring_back_what_an_earlier_curation_removed(tmp_path: Path, layout: str) -> None:
    expected = standard_dataset(tmp_path / "ds", layout)
    root = expected.root
    near = next(h for h, r in expected.removed.items() if r == "near_duplicate")
    before = _images(root, layout)

    curate(root)
    assert near not in _kept(root) and near not in _images(root, layout)  # loaders do not see it
    assert _images(root, layout, base=root / ASIDE)[near] == before[near]  # it is set aside, whole
    _agree(root, layout)
    first = (_kept(root), _removed(root), set(_images(root, layout)))

    summary = curate(root, CurateSettings(near_duplicates=False))

    assert summary.restored == 1 and near in _kept(root) and near not in _removed(root)
    assert _images(root, layout)[near] == before[near]
    _agree(root, layout)

    # and the first settings again give the first dataset
    again = curate(root)
    assert (_kept(root), _removed(root), set(_images(root, layout))) == first
    assert again.removed == {"near_duplicate": 1} and again.restored == 0
    _agree(root, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_table_fetch_reassembles_is_curated_with_the_set_aside_files(tmp_path: Path, layout: str) -> None:
    # what `gbifxdl run --allow-changed-settings` does on a curate-only change: it deletes
    # the curated tables and fetch reassembles the full one from its units
    expected = standard_dataset(tmp_path / "ds", layout)
    root = expected.root
    fetched = tmp_path / "fetched.parquet"
    shutil.copy(root / "metadata.parquet", fetched)
    near = next(h for h, r in expected.removed.items() if r == "near_duplicate")
    curate(root)
    for name in ("metadata.parquet", "removed.parquet", "curate_summary.json"):
        (root / name).unlink()
    shutil.copy(fetched, root / "metadata.parquet")

    curate(root, CurateSettings(near_duplicates=False))

    assert near in _kept(root) and _kept(root) == expected.kept | {near}
    _agree(root, layout)


def test_strays_are_set_aside_not_deleted(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds", "webdataset").root
    (root / "shards" / ".shard-000000.tar.tmp-4242").write_bytes(b"partial")

    curate(root)

    assert (root / ASIDE / "shards" / ".shard-000000.tar.tmp-4242").read_bytes() == b"partial"
    assert all(Path(p).parent == root / "shards" for p in glob.glob(str(root / "shards" / "**" / "*.tar"),
                                                                    recursive=True))


def test_clean_deletes_the_set_aside_files_for_good(tmp_path: Path) -> None:
    from gbifxdl.cli import cli

    expected = standard_dataset(tmp_path / "ds")
    root = expected.root
    curate(root)
    aside = [p for p in (root / ASIDE).rglob("*") if p.is_file()]
    assert aside

    dry = CliRunner().invoke(cli, ["clean", str(root), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would delete {len(aside)} set-aside files" in dry.output
    assert all(p.exists() for p in aside)

    size = sum(p.stat().st_size for p in aside)
    assert f"({size / 1e6:.1f} MB)" in dry.output

    done = purge_removed(root)
    assert (done.files, done.bytes) == (len(aside), size)
    assert not (root / ASIDE).exists()
    # nothing left to restore: what the other settings would keep is missing now
    near = next(h for h, r in expected.removed.items() if r == "near_duplicate")
    curate(root, CurateSettings(near_duplicates=False))
    assert _removed(root)[near] == "file_missing"


def test_a_restoring_run_killed_between_its_tables_loses_no_row(tmp_path: Path, monkeypatch) -> None:
    expected = standard_dataset(tmp_path / "ds")
    root = expected.root
    near = next(h for h, r in expected.removed.items() if r == "near_duplicate")
    curate(root)
    table_module = importlib.import_module("gbifxdl.curate._table")
    real_write, calls = table_module.write_table, []

    def write_then_die(table, path):
        calls.append(path.name)
        if path.name == "metadata.parquet":
            raise KeyboardInterrupt
        real_write(table, path)

    monkeypatch.setattr(table_module, "write_table", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        curate(root, CurateSettings(near_duplicates=False))
    monkeypatch.undo()
    every = _kept(root) | set(_removed(root))
    assert every == expected.kept | set(expected.removed)  # the two tables still hold every row

    curate(root, CurateSettings(near_duplicates=False))

    assert near in _kept(root)
    _agree(root, "folders")


@pytest.mark.parametrize("die_at", [1, 2])
def test_a_shard_rewrite_killed_midway_loses_no_sample(tmp_path: Path, monkeypatch, die_at: int) -> None:
    expected = standard_dataset(tmp_path / "ds", "webdataset")
    root = expected.root
    before = _images(root, "webdataset")
    curate(root)
    setaside = importlib.import_module("gbifxdl.curate._setaside")
    real_write, calls = setaside._write_tar, []

    def write_then_die(target, parts):
        calls.append(target)
        if len(calls) == die_at:
            raise KeyboardInterrupt
        real_write(target, parts)

    monkeypatch.setattr(setaside, "_write_tar", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        curate(root, CurateSettings(near_duplicates=False, cross_class_duplicates="keep-per-class"))
    monkeypatch.undo()
    somewhere = {**_images(root, "webdataset", base=root / ASIDE), **_images(root, "webdataset")}
    assert {k: somewhere.get(k) for k in before} == before  # every sample in a shard or a side shard

    curate(root, CurateSettings(near_duplicates=False, cross_class_duplicates="keep-per-class"))

    _agree(root, "webdataset")
    assert not set(_images(root, "webdataset", base=root / ASIDE)) & _kept(root)  # no stale copy left aside
