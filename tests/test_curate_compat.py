"""The original postprocess() and add_set_column() on a table of the original pipeline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _dataset_factory import jpeg, photo
from gbifxdl.compat import add_set_column, postprocess
from gbifxdl.errors import ConfigError


def _original_folder(tmp_path: Path) -> tuple[Path, Path]:
    """Write images as AsyncImagePipeline did, and its processing-metadata table."""
    img_dir = tmp_path / "images"
    rows = []

    def add(species: int | None, data: bytes | None, status: str = "processing_success", write: bool = True) -> None:
        name = f"{len(rows):040x}.jpg"
        folder = img_dir / ("unlabeled_species" if species is None else str(species))
        if data is not None and write:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        img_hash = hashlib.sha256(data).hexdigest() if data else None
        rows.append({"speciesKey": species, "filename": name, "img_hash": img_hash, "status": status})

    for i in range(12):
        add(1, jpeg(photo(100 + i)))
    for i in range(3):
        add(2, jpeg(photo(200 + i)))
    add(None, jpeg(photo(300)))
    same = jpeg(photo(400))
    add(1, same)  # a copy within species 1: one copy stays
    add(1, same)
    other = jpeg(photo(401))
    add(1, other)  # one photo under two species: both go
    add(2, other)
    add(1, None, status="downloading_failed")
    add(1, jpeg(photo(402)), write=False)  # missing file
    (img_dir / "9").mkdir()
    (img_dir / "9" / "extra.jpg").write_bytes(jpeg(photo(403)))  # no row: deleted, folder too
    table_path = tmp_path / "0001_processing_metadata.parquet"
    pq.write_table(pa.Table.from_pylist(rows), table_path)
    (img_dir / "notes.parquet").write_bytes(b"user data")  # not an image: never touched
    return table_path, img_dir


def test_postprocess_cleans_like_the_original(tmp_path: Path, capsys) -> None:
    table_path, img_dir = _original_folder(tmp_path)
    out = postprocess(table_path, img_dir)

    assert out == tmp_path / "0001_processing_metadata_postprocessed.parquet"
    table = pq.read_table(out).to_pylist()
    assert len(table) == 12 + 3 + 1 + 1  # one copy of the within-species duplicate stays
    on_disk = {p.name for p in img_dir.rglob("*.jpg")}
    assert on_disk == {r["filename"] for r in table}
    assert not (img_dir / "9").exists() and (img_dir / "notes.parquet").exists()
    sets = {(r["speciesKey"], r["set"]) for r in table}
    assert (2, "test_ood") in sets and (None, "test_ood") in sets
    assert {s for k, s in sets if k == 1} == {"0", "1", "2", "3", "4"}
    assert "kept 17" in capsys.readouterr().out


def test_postprocess_dry_run_deletes_nothing(tmp_path: Path) -> None:
    table_path, img_dir = _original_folder(tmp_path)
    before = sorted(p for p in img_dir.rglob("*"))
    postprocess(table_path, img_dir, dry_run=True)
    assert sorted(p for p in img_dir.rglob("*")) == before


def test_add_set_column_and_sftp_refusal(tmp_path: Path) -> None:
    table_path, img_dir = _original_folder(tmp_path)
    out = add_set_column(table_path, n_split=4, ood_th=3)
    assert out.name == "0001_processing_metadata_set.parquet"
    sets = pq.read_table(out)["set"].to_pylist()
    assert set(sets) == {"0", "1", "2", "3", "test_ood"}
    with pytest.raises(ConfigError, match="sshfs"):
        postprocess(table_path, img_dir, sftp_params={"host": "127.0.0.1"})
