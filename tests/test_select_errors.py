"""Select never gives a silent empty or wrong result (issue 11).

Malformed rows, archives with nothing to select, GBIF's 2014 key-as-citation EML, and
every kind of unreadable input through the real command line: one line, non-zero exit.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_archive import MEDIA_COLUMNS, OCC_COLUMNS, REAL_CSV, REAL_DWCA, build_archive, media, occurrence

from gbifxdl.archive import normalise_doi, open_archive
from gbifxdl.errors import ArchiveError, NoMediaError
from gbifxdl.select import NothingSelectedError, SelectSettings, select, summary_path

CLI = [sys.executable, "-c", "from gbifxdl.cli import main; main()", "select"]


def _row(columns: list, values: dict, drop_last: int = 0) -> str:
    fields = ["" if values.get(name) is None else str(values.get(name)) for name, _ in columns]
    return "\t".join(fields[: len(fields) - drop_last])


def _short_rows_archive(path: Path, n: int = 12) -> Path:
    """An archive whose every core row has one field fewer than its header (235 vs 234 in the wild)."""
    occs = [occurrence(i) for i in range(1, n + 1)]
    return build_archive(path, [], [media(i, f"http://h/{i}.jpg") for i in range(1, n + 1)],
                         extra_occurrence_lines=[_row(OCC_COLUMNS, o, drop_last=1) for o in occs])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


# --- malformed rows -------------------------------------------------------------------------


def test_every_row_malformed_is_an_error_with_the_counts(tmp_path: Path) -> None:
    archive = _short_rows_archive(tmp_path / "a.zip")
    with pytest.raises(NothingSelectedError) as info:
        select(archive, tmp_path / "out" / "sel.parquet", progress=False)
    error = info.value
    assert error.malformed and error.counts["occurrences_read"] == 12
    assert error.counts["occurrences_malformed"] == 12 and error.counts["selected"] == 0
    message = str(error)
    assert "\n" not in message
    assert "occurrence.txt: 12 rows read, 12 malformed" in message and "0 selected" in message
    assert f"{len(OCC_COLUMNS) - 1} fields, expected {len(OCC_COLUMNS)}" in message
    assert not (tmp_path / "out" / "sel.parquet").exists()


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True])
def test_cli_every_row_malformed_exits_non_zero_even_quiet(tmp_path: Path, quiet: bool) -> None:
    archive = _short_rows_archive(tmp_path / "a.zip")
    done = _cli(archive, "-o", tmp_path / "sel.parquet", *(["--quiet"] if quiet else []))
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "12 rows read, 12 malformed" in last and "0 selected" in last
    assert "Traceback" not in done.stderr and not (tmp_path / "sel.parquet").exists()


def test_every_media_row_malformed_is_an_error(tmp_path: Path) -> None:
    occs = [occurrence(i) for i in range(1, 6)]
    bad_media = [_row(MEDIA_COLUMNS, media(i, f"http://h/{i}.jpg")) + "\textra" for i in range(1, 6)]
    archive = build_archive(tmp_path / "a.zip", occs, [], extra_media_lines=bad_media)
    with pytest.raises(NothingSelectedError, match="multimedia.txt: 5 rows read, 5 malformed"):
        select(archive, tmp_path / "sel.parquet", progress=False)


def test_a_few_malformed_rows_are_counted_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    occs = [occurrence(i) for i in range(1, 51)]
    archive = build_archive(tmp_path / "a.zip", occs, [media(i, f"http://h/{i}.jpg") for i in range(1, 51)],
                            extra_occurrence_lines=[_row(OCC_COLUMNS, occurrence(99), drop_last=1)])
    out = tmp_path / "sel.parquet"
    with caplog.at_level(logging.WARNING, logger="gbifxdl"):
        summary = select(archive, out, progress=False)
    assert summary.images_selected == 50 and summary.dropped_occurrences["bad_row"] == 1
    assert pq.read_metadata(out).num_rows == 50
    assert any("1 of 51 rows are malformed" in r.getMessage() for r in caplog.records)


# --- nothing to select, legitimately ------------------------------------------------------------


@pytest.mark.slow
def test_no_images_is_an_error_naming_the_reason(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "a.zip", [occurrence(1), occurrence(2)],
                            [media(1, "http://h/1.mp3", type="Sound", format="audio/mpeg"),
                             media(2, "http://h/2.mp3", type="Sound", format="audio/mpeg")])
    with pytest.raises(NothingSelectedError) as info:
        select(archive, tmp_path / "sel.parquet", progress=False)
    assert not info.value.malformed
    message = str(info.value)
    assert "no image selected" in message and "media_type 2" in message and "--media-type" in message
    assert "2 rows read, 0 malformed" in message
    done = _cli(archive, "-o", tmp_path / "sel.parquet", "--quiet")
    assert done.returncode != 0 and "media_type 2" in done.stderr and done.stderr.count("\n") == 1


def test_no_media_rows_at_all_says_so(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "a.zip", [occurrence(1)], [])
    with pytest.raises(NothingSelectedError, match="no media rows"):
        select(archive, tmp_path / "sel.parquet", progress=False)


# --- DOIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    ("10.15468/dl.x4cwjr", "10.15468/dl.x4cwjr"), ("doi:10.15468/dl.x4cwjr", "10.15468/dl.x4cwjr"),
    ("https://doi.org/10.15468/dl.x4cwjr", "10.15468/dl.x4cwjr"), ("http://dx.doi.org/10.15468/DL.A", "10.15468/DL.A"),
    (" DOI:10.15468/dl.x ", "10.15468/dl.x"), ("0000066-140730101524044", None), ("", None), (None, None),
    ("https://doi.org/0000066-140730101524044", None), ("10.x/y", None), ("11.15468/dl.x", None),
])  # fmt: skip
def test_only_real_dois_are_dois(value: str | None, expected: str | None) -> None:
    assert normalise_doi(value) == expected


def test_2014_download_key_as_citation_is_not_a_doi(tmp_path: Path) -> None:
    import datetime as dt

    from _dataset_factory import Row, jpeg, photo, write_dataset

    from gbifxdl.publish.card import write_card
    from gbifxdl.testing.dwca import write_dwca

    key = "0000066-140730101524044"
    stats = write_dwca(tmp_path / f"{key}.zip", n_occurrences=60, seed=2, download_key=key, doi=None,
                       created=dt.datetime(2014, 7, 30, 12, 0, tzinfo=dt.timezone.utc))
    with zipfile.ZipFile(stats.path) as zf:
        assert f'<citation identifier="{key}">' in zf.read("metadata.xml").decode()  # as GBIF wrote them
    prov = open_archive(stats.path).provenance
    assert prov.doi is None and prov.download_key == key
    assert prov.citation == f"GBIF.org (30 July 2014) GBIF Occurrence Download {key}"
    out = tmp_path / "sel.parquet"
    select(stats.path, out, progress=False)
    recorded = json.loads(pq.read_schema(out).metadata[b"gbifxdl.provenance"])
    assert recorded["doi"] is None and recorded["download_key"] == key
    assert json.loads(summary_path(out).read_text())["provenance"]["doi"] is None
    # the card links no DOI, from this provenance nor from one recorded before the fix
    for n, provenance in enumerate([recorded, {**recorded, "doi": key, "citation": None}]):
        root = write_dataset(tmp_path / f"ds{n}", [Row(1, 10, jpeg(photo(1)))], orphans=False, provenance=provenance)
        card = write_card(root).read_text()
        assert f"doi.org/{key}" not in card and key in card


# --- unreadable input, through the command line ---------------------------------------------------


def _bad_input(tmp_path: Path, case: str, shared: Path | None) -> Path:
    path = tmp_path / f"{case}.zip"
    if case == "empty_zip":
        zipfile.ZipFile(path, "w").close()
    elif case == "no_meta":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("occurrence.txt", "gbifID\n1\n")
            zf.writestr("multimedia.txt", "gbifID\tidentifier\n1\thttp://h/1.jpg\n")
    elif case == "not_a_zip":
        path.write_text("<html><body>502 Bad Gateway</body></html>\n")
    elif case == "truncated":
        good = build_archive(tmp_path / "good.zip", [occurrence(i) for i in range(300)],
                             [media(i, f"http://h/{i}.jpg") for i in range(300)])
        path.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    elif case == "simple_csv":
        assert shared is not None
        path = shared / REAL_CSV
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case,words", [
    ("empty_zip", "empty"), ("no_meta", "no meta.xml"), ("not_a_zip", "not a readable zip"),
    ("truncated", "truncated"), ("simple_csv", "no image URLs"),
])  # fmt: skip
def test_cli_bad_archives_give_one_line(tmp_path: Path, case: str, words: str, request: pytest.FixtureRequest) -> None:
    shared = request.getfixturevalue("shared_gbif") if case == "simple_csv" else None
    archive = _bad_input(tmp_path, case, shared)
    out = tmp_path / "out" / "sel.parquet"
    done = _cli(archive, "-o", out)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error:"), done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    if case == "simple_csv":
        assert "DWCA" in done.stderr
    assert not out.exists()


def test_simple_csv_error_is_a_no_media_error(shared_gbif: Path) -> None:
    with pytest.raises(NoMediaError, match="no image URLs"):
        open_archive(shared_gbif / REAL_CSV)


def test_real_archive_still_reads_right(shared_gbif: Path, tmp_path: Path) -> None:
    summary = select(shared_gbif / REAL_DWCA, tmp_path / "sel.parquet", SelectSettings(), progress=False)
    assert (summary.occurrences_read, summary.media_rows_read, summary.images_selected) == (12, 6, 5)
    assert summary.dropped_occurrences["bad_row"] == 0 and summary.dropped_media_rows["bad_row"] == 0
    with pytest.raises(ArchiveError):
        open_archive(tmp_path / "missing.zip")
