"""curate(): files and table in agreement, duplicates, idempotence, kill-safety, both layouts."""

from __future__ import annotations

import importlib

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from _dataset_factory import snapshot, standard_dataset
from gbifxdl.curate import CurateSettings, curate
from gbifxdl.errors import ConfigError, CurateError

LAYOUTS = ["folders", "webdataset"]


def _reasons(root: Path) -> dict[str, str]:
    removed = pq.read_table(root / "removed.parquet")
    return dict(zip(removed["url_hash"].to_pylist(), removed["removed_reason"].to_pylist()))


def _kept(root: Path) -> set[str]:
    return set(pq.read_table(root / "metadata.parquet")["url_hash"].to_pylist())


def _tar_keys(root: Path) -> dict[str, set[str]]:
    out = {}
    for shard in sorted((root / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            out[shard.relative_to(root).as_posix()] = {n.split(".")[0] for n in tar.getnames()}
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_curate_keeps_files_and_table_in_exact_agreement(tmp_path: Path, layout: str) -> None:
    expected = standard_dataset(tmp_path / "ds", layout)
    root = expected.root
    if layout == "webdataset":  # what a shard rewrite killed midway leaves behind
        (root / "shards" / ".shard-000000.tar.tmp-4242").write_bytes(b"partial")

    summary = curate(root, progress=False)

    assert _kept(root) == expected.kept
    assert _reasons(root) == expected.removed
    table = pq.read_table(root / "metadata.parquet")
    assert set(table["outcome"].to_pylist()) == {"ok"}
    if layout == "folders":
        on_disk = {p.relative_to(root).as_posix() for p in (root / "images").rglob("*") if p.is_file()}
        assert on_disk == set(table["path"].to_pylist())
        for rel in on_disk:
            with Image.open(root / rel) as img:
                img.load()
        assert not (root / "images" / "8888").exists()  # emptied by deleting its stray file
    else:
        kept_keys: dict[str, set[str]] = {}
        for shard, key in zip(table["shard"].to_pylist(), table["key"].to_pylist()):
            kept_keys.setdefault(shard, set()).add(key)
        assert _tar_keys(root) == kept_keys  # stray shard gone, stray and removed samples dropped
    saved = json.loads((root / "curate_summary.json").read_text())
    assert saved["images"] == len(expected.kept) == summary.kept
    assert saved["removed"]["fetch_failed"] == 2 and saved["failures"] == {"http_404": 1, "timeout": 1}
    assert sum(saved["splits"].values()) == len(expected.kept)
    assert "near_duplicate" in summary.format()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_second_run_changes_nothing(tmp_path: Path, layout: str) -> None:
    root = standard_dataset(tmp_path / "ds", layout).root
    curate(root, progress=False)
    before = snapshot(root)

    again = curate(root, progress=False)

    assert snapshot(root) == before
    assert again.removed == {} and again.files_set_aside == again.samples_set_aside == again.restored == 0


def test_dry_run_only_reports(tmp_path: Path) -> None:
    expected = standard_dataset(tmp_path / "ds")
    before = snapshot(expected.root)

    summary = curate(expected.root, CurateSettings(dry_run=True), progress=False)

    assert snapshot(expected.root) == before
    assert summary.kept == len(expected.kept)
    assert sum(summary.removed.values()) == len(expected.removed)
    assert summary.files_set_aside > 0 and "would remove" in summary.format()


def test_a_run_killed_after_the_table_is_replaced_is_completed_by_the_next(tmp_path: Path, monkeypatch) -> None:
    reference = standard_dataset(tmp_path / "ref").root
    curate(reference, progress=False)
    root = standard_dataset(tmp_path / "ds").root

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("gbifxdl.curate._setaside"), "sync_folder_files", killed)
    with pytest.raises(KeyboardInterrupt):
        curate(root, progress=False)
    monkeypatch.undo()
    assert (root / "images" / "8888" / "lost.jpg").exists()  # the kill came before any file moved

    curate(root, progress=False)

    assert snapshot(root) == snapshot(reference)


def test_a_run_killed_between_its_two_tables_records_each_removal_once(tmp_path: Path, monkeypatch) -> None:
    expected = standard_dataset(tmp_path / "ds")
    table_module = importlib.import_module("gbifxdl.curate._table")

    real_write = table_module.write_table
    calls = []

    def write_then_die(table, path):
        calls.append(path)
        if len(calls) == 2:  # removed.parquet is written; die before metadata.parquet
            raise KeyboardInterrupt
        real_write(table, path)

    monkeypatch.setattr(table_module, "write_table", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        curate(expected.root, progress=False)
    monkeypatch.undo()

    curate(expected.root, progress=False)

    removed = pq.read_table(expected.root / "removed.parquet")["url_hash"].to_pylist()
    assert sorted(removed) == sorted(expected.removed)
    assert _kept(expected.root) == expected.kept


def test_cross_class_policies(tmp_path: Path) -> None:
    expected = standard_dataset(tmp_path / "a")
    cross = {h for h, r in expected.removed.items() if r == "duplicate_across_classes"}
    curate(expected.root, CurateSettings(cross_class_duplicates="keep-per-class"), progress=False)
    assert cross <= _kept(expected.root)

    other = standard_dataset(tmp_path / "b")
    curate(other.root, CurateSettings(cross_class_duplicates="keep-one"), progress=False)
    assert len(cross & _kept(other.root)) == 1
    assert len(cross & set(_reasons(other.root))) == 1


def test_near_duplicates_can_be_kept(tmp_path: Path) -> None:
    expected = standard_dataset(tmp_path / "a")
    near = {h for h, r in expected.removed.items() if r == "near_duplicate"}
    curate(expected.root, CurateSettings(near_duplicates=False), progress=False)
    assert near <= _kept(expected.root)
    assert "near_duplicate" not in _reasons(expected.root).values()


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="gbifxdl fetch"):
        curate(tmp_path, progress=False)
    root = standard_dataset(tmp_path / "ds").root
    with pytest.raises(CurateError, match="choose one of"):
        curate(root, CurateSettings(class_column="nope"), progress=False)
    with pytest.raises(ConfigError, match="drop-all"):
        CurateSettings(cross_class_duplicates="sometimes")
    with pytest.raises(ConfigError, match="fractions"):
        CurateSettings(fractions=(0.8, 0.2))


def test_cli_curates_and_writes_the_card(tmp_path: Path) -> None:
    from gbifxdl.cli import cli

    expected = standard_dataset(tmp_path / "ds", "webdataset")
    runner = CliRunner()
    dry = runner.invoke(cli, ["curate", str(expected.root), "--dry-run", "--no-progress"])
    assert dry.exit_code == 0, dry.output
    assert "would remove 10 rows" in dry.output and not (expected.root / "README.md").exists()

    result = runner.invoke(cli, ["curate", str(expected.root), "--no-progress", "--split-by-time", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "removed 10 rows" in result.output
    assert (expected.root / "README.md").is_file() and (expected.root / "ATTRIBUTION.csv").is_file()
    prov = json.loads(pq.read_schema(expected.root / "metadata.parquet").metadata[b"gbifxdl.provenance"])
    assert prov["curate_settings"]["split_by_time"] is True and prov["curate_settings"]["seed"] == 3
    assert prov["doi"] == "10.15468/dl.29wbtx"  # provenance travels on

    bad = runner.invoke(cli, ["curate", str(expected.root), "--fractions", "0.8,0.2"])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_fractions_that_do_not_add_up_to_one_are_refused_in_one_line(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds").root
    before = (root / "metadata.parquet").read_bytes()
    bad = subprocess.run([sys.executable, "-m", "gbifxdl", "curate", str(root), "--fractions", "0.8,0.3,0.1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and not bad.stdout
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "add up to 1.2" in lines[0] and "0.8,0.1,0.1" in lines[0]
    assert (root / "metadata.parquet").read_bytes() == before  # nothing was rescaled, nothing changed
    with pytest.raises(ConfigError, match="add up to 0.5"):
        CurateSettings(fractions=(0.3, 0.1, 0.1))


def test_the_stage_module_holds_curate_whatever_was_imported_first(tmp_path: Path) -> None:
    import gbifxdl
    import gbifxdl.curate._files  # noqa: F401  (a submodule first: gbifxdl.curate stays the module)

    root = standard_dataset(tmp_path / "ds").root
    assert gbifxdl.curate.curate(root, gbifxdl.CurateSettings(), progress=False).kept == 35


def test_images_beside_the_tables_never_cost_a_table_or_fetch_state(tmp_path: Path) -> None:
    from _dataset_factory import PROVENANCE, Row, jpeg, photo, write_dataset

    prov = {**PROVENANCE, "fetch_settings": {"images_dir": "."}}
    root = write_dataset(tmp_path / "ds", [Row(1, 7, jpeg(photo(1))), Row(2, 7, jpeg(photo(2)))], provenance=prov)
    spool = root / ".gbifxdl" / "fetch" / "spool" / "unit-000000"
    spool.mkdir(parents=True)
    (spool / "pending.jpg").write_bytes(jpeg(photo(3)))
    (root / "notes.txt").write_text("mine")

    curate(root, progress=False)

    assert (spool / "pending.jpg").exists() and (root / "notes.txt").exists()
    assert (root / "metadata.parquet").exists() and not (root / "removed.parquet").exists()
    assert not (root / "images" / "8888").exists()  # stray images still go


@pytest.mark.parametrize("layout", LAYOUTS)
def test_verify_hashes_catches_images_changed_after_fetch(tmp_path: Path, layout: str) -> None:
    from _dataset_factory import Row, jpeg, photo, write_dataset

    original, other = jpeg(photo(1)), jpeg(photo(2), quality=50)
    damaged = other[: len(original)] + b"\0" * (len(original) - len(other))  # same size, valid header
    rows = [Row(1, 7, original, file_bytes=damaged), Row(2, 7, jpeg(photo(3)))]
    root = write_dataset(tmp_path / "ds", rows, layout=layout, orphans=False)
    assert curate(root, CurateSettings(dry_run=True), progress=False).removed == {}  # the cheap check passes

    summary = curate(root, CurateSettings(verify_hashes=True), progress=False)

    assert summary.removed == {"file_changed": 1} and summary.kept == 1
