"""The selection stage: archive -> Parquet table of images to fetch, its options and its summary."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_archive import REAL_CSV, REAL_DWCA, build_archive, media, occurrence

from gbifxdl.errors import ArchiveError, ConfigError, NoMediaError, SelectionError
from gbifxdl.select import OUTPUT_SCHEMA, NothingSelectedError, SelectSettings, select, summary_path

CONTRACT_COLUMNS = [
    "gbifID", "basisOfRecord", "recordedBy", "countryCode", "eventDate", "lifeStage", "sex", "scientificName",
    "taxonRank", "datasetKey", "decimalLatitude", "decimalLongitude", "kingdom", "phylum", "class", "order",
    "family", "genus", "species", "kingdomKey", "phylumKey", "classKey", "orderKey", "familyKey", "genusKey",
    "speciesKey", "taxonKey", "acceptedTaxonKey", "type", "format", "identifier", "references", "created",
    "creator", "publisher", "license", "rightsHolder", "url_hash",
]  # fmt: skip


def run(archive: Path, out: Path, **settings: object) -> tuple[list[dict], dict]:
    """Return the selected rows and the summary JSON of selecting ``archive`` into ``out``."""
    select(archive, out, SelectSettings(**settings), progress=False)
    return pq.read_table(out).to_pylist(), json.loads(summary_path(out).read_text())


def assert_counts_add_up(summary: dict) -> None:
    dropped = sum(summary["dropped_media_rows"].values())
    assert summary["media_rows_read"] == summary["images_selected"] + dropped


def test_real_archive_selection(shared_gbif: Path, tmp_path: Path) -> None:
    out = tmp_path / "sel.parquet"
    rows, summary = run(shared_gbif / REAL_DWCA, out)
    table = pq.read_table(out)
    assert table.schema.names == CONTRACT_COLUMNS
    assert table.schema.remove_metadata() == OUTPUT_SCHEMA
    assert str(table.schema.field("speciesKey").type) == "int64"
    assert str(table.schema.field("decimalLatitude").type) == "double"
    # 6 media rows, one occurrence has two photos: one per occurrence by default
    assert len(rows) == 5 and len({r["gbifID"] for r in rows}) == 5
    first = next(r for r in rows if r["gbifID"] == 3044795455)
    assert first["identifier"] == "https://inaturalist-open-data.s3.amazonaws.com/photos/67764576/original.jpg"
    assert first["speciesKey"] == 7972617 and first["species"] == "Polydrusus planifrons"
    assert first["license"] == "http://creativecommons.org/licenses/by-nc/4.0/"  # the media's licence
    assert first["countryCode"] == "BE" and first["decimalLatitude"] == pytest.approx(51.354473)
    assert first["url_hash"] == hashlib.sha1(first["identifier"].encode()).hexdigest()
    provenance = json.loads(table.schema.metadata[b"gbifxdl.provenance"])
    assert provenance["download_key"] == "0076720-210914110416597"
    assert provenance["doi"] == "10.15468/dl.x4cwjr" and provenance["archive"] == Path(REAL_DWCA).name
    assert "Country is Belgium" in provenance["query"]
    assert provenance["select_settings"]["media_type"] == "StillImage"
    assert summary["dropped_media_rows"]["other_image_of_occurrence"] == 1
    assert_counts_add_up(summary)


def test_simple_csv_is_one_line_no_media_error(shared_gbif: Path, tmp_path: Path) -> None:
    with pytest.raises(NoMediaError, match='"format": "DWCA"'):
        select(shared_gbif / REAL_CSV, tmp_path / "x.parquet", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_media_type_is_case_insensitive_and_raw_quotes_survive(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "a.zip",
                            [occurrence(1, recordedBy='"Bob'), occurrence(2), occurrence(3)],
                            [media(1, "http://h/1.jpg", type="STILLIMAGE", creator='"quoted" name'),
                             media(2, "http://h/2.jpg", type="stillimage"),
                             media(3, "http://h/3.mp3", type="Sound", format="audio/mpeg")])
    rows, summary = run(archive, tmp_path / "o.parquet")
    assert sorted(r["identifier"] for r in rows) == ["http://h/1.jpg", "http://h/2.jpg"]
    bob = next(r for r in rows if r["gbifID"] == 1)
    assert bob["recordedBy"] == '"Bob' and bob["creator"] == '"quoted" name'
    assert summary["dropped_media_rows"]["media_type"] == 1
    rows, _ = run(archive, tmp_path / "s.parquet", media_type="sound")
    assert [r["identifier"] for r in rows] == ["http://h/3.mp3"]
    rows, _ = run(archive, tmp_path / "any.parquet", media_type=None)
    assert len(rows) == 3


def test_default_only_media_type(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "a.zip", [occurrence(1)], [media(1, "http://h/1.jpg")],
                            media_defaults={"type": "StillImage"})
    rows, _ = run(archive, tmp_path / "o.parquet")
    assert [(r["identifier"], r["type"]) for r in rows] == [("http://h/1.jpg", "StillImage")]


def test_shared_urls(tmp_path: Path) -> None:
    occs = [occurrence(1, 100), occurrence(2, 100), occurrence(3, 100), occurrence(4, 200), occurrence(5, 200)]
    meds = [media(1, "http://h/same-class.jpg"), media(2, "http://h/same-class.jpg"),
            media(3, "http://h/across.jpg"), media(4, "http://h/across.jpg"), media(5, "http://h/own.jpg")]
    archive = build_archive(tmp_path / "a.zip", occs, meds)
    rows, summary = run(archive, tmp_path / "o.parquet")
    urls = [r["identifier"] for r in rows]
    assert sorted(urls) == ["http://h/own.jpg", "http://h/same-class.jpg"]  # kept once; across classes dropped
    assert summary["dropped_media_rows"]["duplicate_url"] == 1
    assert summary["dropped_media_rows"]["ambiguous_url"] == 2 and summary["ambiguous_urls"] == 1
    assert_counts_add_up(summary)
    rows, summary = run(archive, tmp_path / "k.parquet", ambiguous_urls="keep-one")
    assert sorted(r["identifier"] for r in rows) == ["http://h/across.jpg", "http://h/own.jpg", "http://h/same-class.jpg"]
    assert summary["dropped_media_rows"]["ambiguous_url"] == 1


def _capped(tmp_path: Path, archive: Path, name: str, **settings: object) -> list[int]:
    rows, _ = run(archive, tmp_path / f"{name}.parquet", **settings)
    return sorted(r["gbifID"] for r in rows)


def test_per_class_cap_is_a_seeded_random_draw(tmp_path: Path) -> None:
    occs = [occurrence(i, 100) for i in range(1, 201)] + [occurrence(i, 200) for i in range(201, 206)]
    archive = build_archive(tmp_path / "a.zip", occs, [media(o["gbifID"], f"http://h/{o['gbifID']}.jpg") for o in occs])
    first = _capped(tmp_path, archive, "a", max_per_class=10)
    assert len(first) == 15 and [i for i in first if i > 200] == [201, 202, 203, 204, 205]
    drawn = [i for i in first if i <= 200]
    assert drawn != list(range(1, 11))  # not the first N in file order
    assert max(drawn) > 50  # spread over the class
    assert _capped(tmp_path, archive, "b", max_per_class=10) == first  # reproducible
    assert _capped(tmp_path, archive, "c", max_per_class=10, seed=1) != first  # another seed, another draw
    # the minimum drops the small class
    with_min = _capped(tmp_path, archive, "d", max_per_class=10, min_per_class=6)
    assert with_min == drawn
    _, summary = run(archive, tmp_path / "e.parquet", max_per_class=10, min_per_class=6)
    assert summary["dropped_media_rows"]["class_below_minimum"] == 5 and summary["classes_below_minimum"] == 1
    assert summary["dropped_media_rows"]["over_class_cap"] == 190
    assert_counts_add_up(summary)


def test_one_image_per_occurrence_or_all(tmp_path: Path) -> None:
    occs = [occurrence(i) for i in range(1, 41)]
    meds = [media(i, f"http://h/{i}-{k}.jpg") for i in range(1, 41) for k in range(3)]
    archive = build_archive(tmp_path / "a.zip", occs, meds)
    rows, _ = run(archive, tmp_path / "one.parquet")
    assert len(rows) == 40 and len({r["gbifID"] for r in rows}) == 40
    picks = [r["identifier"].rsplit("-", 1)[1] for r in rows]
    assert len(set(picks)) > 1  # a random image, not always the first
    again, _ = run(archive, tmp_path / "again.parquet")
    assert again == rows
    rows, _ = run(archive, tmp_path / "all.parquet", one_per_occurrence=False)
    assert len(rows) == 120


def test_licence_basis_and_strict_taxonomy_filters(tmp_path: Path) -> None:
    occs = [occurrence(1), occurrence(2, basisOfRecord="PRESERVED_SPECIMEN"), occurrence(3, species_key=None),
            occurrence(4), occurrence(5)]
    meds = [media(1, "http://h/1.jpg", license="https://creativecommons.org/publicdomain/zero/1.0/"),
            media(2, "http://h/2.jpg"), media(3, "http://h/3.jpg"),
            media(4, "http://h/4.jpg", license="http://creativecommons.org/licenses/by-nc/4.0/"),
            media(5, "http://h/5.jpg", license="CC_BY_4_0"), media(99, "http://h/orphan.jpg"), media(5, "")]
    archive = build_archive(tmp_path / "a.zip", occs, meds)
    rows, summary = run(archive, tmp_path / "o.parquet", licenses=("CC0", "CC-BY"),
                        basis_of_record=("HumanObservation",))
    assert sorted(r["gbifID"] for r in rows) == [1, 5]
    assert summary["dropped_occurrences"] == {"bad_row": 0, "bad_id": 0, "basis_of_record": 1, "missing_rank_keys": 1}
    dropped = summary["dropped_media_rows"]
    assert (dropped["license"], dropped["occurrence_filtered"], dropped["no_occurrence"], dropped["no_url"]) == (1, 2, 1, 1)
    assert_counts_add_up(summary)
    rows, _ = run(archive, tmp_path / "loose.parquet", required_ranks=())
    no_species = next(r for r in rows if r["gbifID"] == 3)
    assert no_species["speciesKey"] is None


def test_emulator_archive_is_deterministic(tmp_path: Path) -> None:
    from gbifxdl.testing.dwca import write_dwca

    stats = write_dwca(tmp_path / "e.zip", n_occurrences=3000, seed=3)
    out_a, out_b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    select(stats.path, out_a, SelectSettings(max_per_class=5), progress=False)
    select(stats.path, out_b, SelectSettings(max_per_class=5), progress=False)
    assert out_a.read_bytes() == out_b.read_bytes()
    summary = json.loads(summary_path(out_a).read_text())
    assert summary["occurrences_read"] == stats.n_occurrences and summary["media_rows_read"] == stats.n_media
    assert_counts_add_up(summary)
    table = pq.read_table(out_a)
    per_class = table.group_by("speciesKey").aggregate([("gbifID", "count")]).column("gbifID_count").to_pylist()
    assert 0 < max(per_class) <= 5 and table.column("speciesKey").null_count == 0
    assert len(set(table.column("identifier").to_pylist())) == table.num_rows
    assert json.loads(table.schema.metadata[b"gbifxdl.provenance"])["download_key"] == stats.download_key


def test_bad_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    from test_archive import MEDIA_COLUMNS, OCC_COLUMNS

    bad_id_occurrence = "\t".join(["x12"] + [""] * (len(OCC_COLUMNS) - 1))
    no_id_media = "\t".join(["", "StillImage", "image/jpeg", "http://h/noid.jpg"] + [""] * (len(MEDIA_COLUMNS) - 4))
    archive = build_archive(tmp_path / "a.zip", [occurrence(1), occurrence(2)],
                            [media(1, "http://h/1.jpg"), media(2, "http://h/2.jpg")],
                            extra_occurrence_lines=["3\tshort", bad_id_occurrence],
                            extra_media_lines=["2\tStillImage\ttoo\tmany\t" + "x\t" * 20, no_id_media])
    rows, summary = run(archive, tmp_path / "o.parquet")
    assert len(rows) == 2
    assert summary["dropped_occurrences"]["bad_row"] == 1 and summary["dropped_media_rows"]["bad_row"] == 1
    assert summary["dropped_occurrences"]["bad_id"] == 1 and summary["dropped_media_rows"]["bad_id"] == 1
    assert summary["occurrences_read"] == 4 and summary["media_rows_read"] == 4
    assert any("expected" in e for e in summary["bad_row_examples"])
    assert_counts_add_up(summary)


def _bad(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "in" / f"{case}.zip"
    path.parent.mkdir(exist_ok=True)
    if case == "not_a_zip":
        path.write_bytes(b"PK\x03\x04 nothing more")
    elif case == "zero_bytes":
        path.write_bytes(b"")
    elif case == "truncated":
        good = build_archive(tmp_path / "good.zip", [occurrence(i) for i in range(200)], [])
        path.write_bytes(good.read_bytes()[:-300])
    elif case == "no_meta":
        build_archive(tmp_path / "full.zip", [occurrence(1)], [media(1, "http://h/1.jpg")])
        with zipfile.ZipFile(tmp_path / "full.zip") as src, zipfile.ZipFile(path, "w") as dst:
            for name in src.namelist():
                if name != "meta.xml":
                    dst.writestr(name, src.read(name))
    elif case == "malformed_meta":
        build_archive(path, [occurrence(1)], [], meta_xml="<archive><core")
    elif case == "no_multimedia":
        build_archive(path, [occurrence(1)], [], with_multimedia=False)
    elif case == "empty":
        build_archive(path, [], [])
    return path


@pytest.mark.parametrize("case,error", [("not_a_zip", ArchiveError), ("zero_bytes", ArchiveError),
                                        ("truncated", ArchiveError),
                                        ("no_meta", ArchiveError), ("malformed_meta", ArchiveError),
                                        ("no_multimedia", NoMediaError), ("empty", SelectionError)])
def test_bad_input_gives_one_line_and_no_output(tmp_path: Path, case: str, error: type) -> None:
    archive = _bad(tmp_path, case)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(error) as info:
        select(archive, out_dir / "sel.parquet", progress=False)
    assert "\n" not in str(info.value)
    assert list(out_dir.iterdir()) == []  # no partial output, no temporary leftovers


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        SelectSettings(required_ranks=("subspecies",))
    with pytest.raises(ConfigError):
        SelectSettings(max_per_class=5, min_per_class=10)
    with pytest.raises(ConfigError):
        SelectSettings(ambiguous_urls="maybe")
    assert SelectSettings(required_ranks=["speciesKey"], licenses="CC0").required_ranks == ("species",)


@pytest.mark.slow
def test_cli_and_compat(shared_gbif: Path, tmp_path: Path) -> None:
    import shutil

    archive = tmp_path / "0076720-210914110416597.zip"
    shutil.copyfile(shared_gbif / REAL_DWCA, archive)
    cli = [sys.executable, "-c", "from gbifxdl.cli import main; main()", "select"]
    done = subprocess.run([*cli, str(archive), "-o", str(tmp_path / "c.parquet"), "--max-per-class", "1", "--quiet"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert pq.read_metadata(tmp_path / "c.parquet").num_rows == 2  # two species, one image each
    failed = subprocess.run([*cli, str(shared_gbif / REAL_CSV), "-o", str(tmp_path / "x.parquet")],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and failed.stderr.count("\n") == 1 and "DWCA" in failed.stderr
    assert "Traceback" not in failed.stderr

    from gbifxdl.compat import preprocess_occurrences_stream

    out = preprocess_occurrences_stream(archive, max_img_spc=1, strict=True)
    assert out == tmp_path / "0076720-210914110416597.parquet"
    assert pq.read_metadata(out).num_rows == 2


def test_class_column_can_be_any_rank_or_column(tmp_path: Path) -> None:
    occs = [occurrence(1, 100), occurrence(2, 200), occurrence(3, 300, genusKey=9)]
    meds = [media(1, "http://h/shared.jpg"), media(2, "http://h/shared.jpg"), media(3, "http://h/3.jpg")]
    archive = build_archive(tmp_path / "a.zip", occs, meds)
    by_species, _ = run(archive, tmp_path / "s.parquet")
    assert [r["identifier"] for r in by_species] == ["http://h/3.jpg"]  # shared across species: dropped
    by_genus, _ = run(archive, tmp_path / "g.parquet", class_column="genusKey", max_per_class=1)
    assert sorted(r["identifier"] for r in by_genus) == ["http://h/3.jpg", "http://h/shared.jpg"]
    by_publisher, _ = run(archive, tmp_path / "p.parquet", class_column="publisher", max_per_class=5)
    assert len(by_publisher) == 2  # one publisher: the shared URL is kept once
    with pytest.raises(SelectionError, match="class_column"):
        select(archive, tmp_path / "x.parquet", SelectSettings(class_column="noSuchColumn"), progress=False)


def test_everything_filtered_is_an_error_saying_why(shared_gbif: Path, tmp_path: Path) -> None:
    # nothing to fetch is never a silent empty table: the counts, the reason and what to change
    out = tmp_path / "none.parquet"
    with pytest.raises(NothingSelectedError) as info:
        select(shared_gbif / REAL_DWCA, out, SelectSettings(licenses=("CC-BY-ND",)), progress=False)
    message = str(info.value)
    assert "\n" not in message and not info.value.malformed
    assert "multimedia.txt: 6 rows read, 0 malformed" in message and "0 selected" in message
    assert "license 6" in message and "--license" in message
    assert list(tmp_path.iterdir()) == []  # nothing written
