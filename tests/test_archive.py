"""Reading Darwin Core Archives: layout from meta.xml, provenance, streaming members, bad input.

``build_archive`` writes small hand-made archives (also used by test_select.py).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from gbifxdl.archive import MULTIMEDIA, OCCURRENCE, _reader, open_archive
from gbifxdl.errors import ArchiveError, NoMediaError

REAL_DWCA = "archives/0076720-210914110416597.dwca-trimmed.zip"
REAL_CSV = "archives/0009886-250127130748423.simple_csv.zip"

DWC, DC, GBIF = "http://rs.tdwg.org/dwc/terms/", "http://purl.org/dc/terms/", "http://rs.gbif.org/terms/1.0/"
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
# a core in an order of our own (noise columns included), so nothing can rely on positions
OCC_COLUMNS: list[tuple[str, str]] = [
    ("gbifID", GBIF), ("abstract", DC), ("license", DC), ("identifier", DC), ("basisOfRecord", DWC),
    ("recordedBy", DWC), ("sex", DWC), ("lifeStage", DWC), ("eventDate", DWC), ("countryCode", DWC),
    ("decimalLatitude", DWC), ("decimalLongitude", DWC), ("scientificName", DWC),
    *[(r, DWC) for r in RANKS[:-1]], ("taxonRank", DWC), ("datasetKey", GBIF), ("mediaType", GBIF),
    ("taxonKey", GBIF), ("acceptedTaxonKey", GBIF), *[(f"{r}Key", GBIF) for r in RANKS], ("species", GBIF),
]  # fmt: skip
MEDIA_COLUMNS: list[tuple[str, str]] = [
    ("gbifID", GBIF), ("type", DC), ("format", DC), ("identifier", DC), ("references", DC), ("title", DC),
    ("description", DC), ("source", DC), ("audience", DC), ("created", DC), ("creator", DC),
    ("contributor", DC), ("publisher", DC), ("license", DC), ("rightsHolder", DC),
]  # fmt: skip

EML = """<?xml version="1.0" encoding="utf-8"?>
<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" packageId="10.15468/dl.test01" system="http://gbif.org">
<dataset><alternateIdentifier>0000042-250101000000000</alternateIdentifier>
<title>GBIF Occurrence Download 10.15468/dl.test01</title><pubDate>2025-01-01</pubDate>
<abstract><para>A dataset containing all occurrences available in GBIF matching the query:
{ "TaxonKey" : "is Apis" }
The dataset includes records from the following constituent datasets.</para></abstract></dataset>
<additionalMetadata><metadata><gbif><dateStamp>2025-01-01T00:00:00Z</dateStamp>
<citation identifier="10.15468/dl.test01">GBIF Occurrence Download 10.15468/dl.test01</citation></gbif></metadata>
</additionalMetadata></eml:eml>
"""


def occurrence(gbif_id: int, species_key: int | None = 100, **values: object) -> dict[str, object]:
    """Return a core row: an occurrence of species ``species_key`` (None: no species key)."""
    row: dict[str, object] = {"gbifID": gbif_id, "basisOfRecord": "HUMAN_OBSERVATION", "countryCode": "BE",
                              "decimalLatitude": "50.5", "decimalLongitude": "4.25", "eventDate": "2020-05-01",
                              "scientificName": f"Species {species_key}", "kingdom": "Animalia", "taxonRank": "SPECIES",
                              "kingdomKey": 1, "phylumKey": 54, "classKey": 216, "orderKey": 1470, "familyKey": 4239,
                              "genusKey": 1176427, "taxonKey": species_key or 1176427,
                              "acceptedTaxonKey": species_key or 1176427, "datasetKey": "50c9509d-22c7"}
    if species_key is not None:
        row |= {"speciesKey": species_key, "species": f"Species {species_key}"}
    return row | values


def media(gbif_id: int, url: str, **values: object) -> dict[str, object]:
    """Return a multimedia row of occurrence ``gbif_id`` pointing at ``url``."""
    row: dict[str, object] = {"gbifID": gbif_id, "type": "StillImage", "format": "image/jpeg", "identifier": url,
                              "references": url + ".html", "created": "2020-05-01T10:00:00Z", "creator": "Ann",
                              "publisher": "iNaturalist", "license": "http://creativecommons.org/licenses/by/4.0/",
                              "rightsHolder": "Ann"}
    return row | values


def _file_meta(tag: str, row_type: str, location: str, columns: list[tuple[str, str]],
               defaults: dict[str, str]) -> str:
    id_tag = "id" if tag == "core" else "coreid"
    fields = [f'    <field index="{i}" term="{ns}{name}"/>' for i, (name, ns) in enumerate(columns)]
    fields += [f'    <field default="{value}" term="{DC if tag != "core" else DWC}{name}"/>'
               for name, value in defaults.items()]
    return (f'  <{tag} encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" '
            f'ignoreHeaderLines="1" rowType="{row_type}">\n    <files><location>{location}</location></files>\n'
            f'    <{id_tag} index="0" />\n' + "\n".join(fields) + f"\n  </{tag}>\n")


def _rows(columns: list[tuple[str, str]], rows: list[dict[str, object]], extra_lines: list[str]) -> str:
    lines = ["\t".join(name for name, _ in columns)]
    lines += ["\t".join("" if row.get(name) is None else str(row.get(name)) for name, _ in columns) for row in rows]
    return "\n".join(lines + extra_lines) + "\n"


def build_archive(path: Path, occurrences: list[dict[str, object]], media_rows: list[dict[str, object]], *,
                  media_defaults: dict[str, str] | None = None, with_multimedia: bool = True,
                  extra_occurrence_lines: list[str] = (), extra_media_lines: list[str] = (),
                  meta_xml: str | None = None, eml: str | None = EML) -> Path:
    """Return ``path``, a DwC-A zip holding these rows, as GBIF lays them out.

    ``media_defaults`` makes those multimedia fields default-only (no column);
    ``extra_*_lines`` are appended verbatim (for malformed rows).
    """
    media_defaults = media_defaults or {}
    media_columns = [(n, ns) for n, ns in MEDIA_COLUMNS if n not in media_defaults]
    meta = '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="metadata.xml">\n'
    meta += _file_meta("core", OCCURRENCE, "occurrence.txt", OCC_COLUMNS, {"geodeticDatum": "WGS84"})
    if with_multimedia:
        meta += _file_meta("extension", MULTIMEDIA, "multimedia.txt", media_columns, media_defaults)
    meta += "</archive>\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("occurrence.txt", _rows(OCC_COLUMNS, occurrences, list(extra_occurrence_lines)))
        zf.writestr("verbatim.txt", "gbifID\n")  # never read
        if with_multimedia:
            zf.writestr("multimedia.txt", _rows(media_columns, media_rows, list(extra_media_lines)))
        zf.writestr("meta.xml", meta if meta_xml is None else meta_xml)
        if eml is not None:
            zf.writestr("metadata.xml", eml)
    return path


# --- the real 2021 archive -----------------------------------------------------------------


def test_real_archive_layout_comes_from_meta_xml(shared_gbif: Path) -> None:
    archive = open_archive(shared_gbif / REAL_DWCA)
    assert archive.core.location == "occurrence.txt" and archive.core.row_type == OCCURRENCE
    assert archive.core.field("speciesKey").index == 228
    assert archive.core.field("basisOfRecord").index == 63
    datum = archive.core.field("geodeticDatum")
    assert datum.index is None and datum.default == "WGS84"  # a default-only field
    assert archive.core.field("mediaType").delimited_by == ";"
    # verbatim.txt is an extension with the Occurrence row type too: the multimedia one is chosen by row type
    assert archive.multimedia is not None and archive.multimedia.location == "multimedia.txt"
    assert archive.multimedia.field("identifier").index == 3


def test_real_archive_provenance(shared_gbif: Path) -> None:
    prov = open_archive(shared_gbif / REAL_DWCA).provenance
    assert prov.download_key == "0076720-210914110416597"
    assert prov.doi == "10.15468/dl.x4cwjr"
    assert prov.citation == "GBIF.org (10 December 2021) GBIF Occurrence Download https://doi.org/10.15468/dl.x4cwjr"
    assert "Country is Belgium" in prov.query and "constituent" not in prov.query
    assert prov.created == "2021-12-10T09:32:03Z"


def test_real_archive_members_stream(shared_gbif: Path) -> None:
    archive = open_archive(shared_gbif / REAL_DWCA)
    reader = archive.read(archive.multimedia, ["id", "identifier", "license"])
    table = pa.Table.from_batches(list(reader))
    assert table.num_rows == 6 and reader.bad_rows == 0
    assert table.column("id").to_pylist()[:2] == ["3044795455", "2609350465"]
    assert table.column("identifier")[0].as_py().startswith("https://inaturalist-open-data.s3.amazonaws.com/")
    core = archive.read(archive.core, ["id", "speciesKey", "geodeticDatum", "notATerm"])
    table = pa.Table.from_batches(list(core))
    assert table.num_rows == 12
    assert set(table.column("geodeticDatum").to_pylist()) == {"WGS84"}
    assert table.column("notATerm").null_count == 12


def test_simple_csv_says_to_request_a_dwca(shared_gbif: Path) -> None:
    with pytest.raises(NoMediaError, match='"format": "DWCA"') as info:
        open_archive(shared_gbif / REAL_CSV)
    assert "\n" not in str(info.value)


# --- hand-made archives ----------------------------------------------------------------------


def test_raw_quotes_and_bad_field_counts(tmp_path: Path) -> None:
    path = build_archive(
        tmp_path / "a.zip", [occurrence(1, recordedBy='"Bob" Smith'), occurrence(2, recordedBy='"unclosed')], [],
        extra_occurrence_lines=["3\ttoo\tfew", "\t".join(["4"] * (len(OCC_COLUMNS) + 2))],
    )
    archive = open_archive(path)
    reader = archive.read(archive.core, ["id", "recordedBy"])
    table = pa.Table.from_batches(list(reader))
    assert table.column("recordedBy").to_pylist() == ['"Bob" Smith', '"unclosed']
    assert reader.bad_rows == 2 and "expected" in reader.bad_examples[0]


def test_default_only_extension_field(tmp_path: Path) -> None:
    path = build_archive(tmp_path / "a.zip", [occurrence(1)], [media(1, "http://h/1.jpg")],
                         media_defaults={"type": "StillImage"})
    archive = open_archive(path)
    assert archive.multimedia.field("type").index is None
    table = pa.Table.from_batches(list(archive.read(archive.multimedia, ["id", "type", "identifier"])))
    assert table.to_pylist() == [{"id": "1", "type": "StillImage", "identifier": "http://h/1.jpg"}]


@pytest.mark.parametrize("case", ["not_a_zip", "truncated", "empty_zip", "no_meta", "malformed_meta",
                                  "meta_without_core", "missing_member"])
def test_unreadable_archives_raise_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.zip"
    if case == "not_a_zip":
        path.write_text("<html>502 Bad Gateway</html>")
    elif case == "truncated":
        good = build_archive(tmp_path / "good.zip", [occurrence(i) for i in range(50)], [])
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "empty_zip":
        zipfile.ZipFile(path, "w").close()
    elif case == "no_meta":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("occurrence.txt", "gbifID\n1\n")
    elif case == "malformed_meta":
        build_archive(path, [occurrence(1)], [], meta_xml="<archive><core rowType='x'>")
    elif case == "meta_without_core":
        build_archive(path, [occurrence(1)], [], meta_xml='<archive xmlns="http://rs.tdwg.org/dwc/text/"></archive>')
    elif case == "missing_member":
        build_archive(path, [occurrence(1)], [])
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "m.zip", "w") as dst:
            for name in src.namelist():
                if name != "occurrence.txt":
                    dst.writestr(name, src.read(name))
        path = tmp_path / "m.zip"
    with pytest.raises(ArchiveError) as info:
        open_archive(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_truncated_member_data_is_an_archive_error(tmp_path: Path) -> None:
    good = build_archive(tmp_path / "good.zip", [occurrence(i, recordedBy=f"person {i}" * 20) for i in range(3000)], [])
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("occurrence.txt")
    # corrupt the compressed bytes in the middle of the member, keeping the directory intact
    middle = info.header_offset + 100 + info.compress_size // 2
    data[middle:middle + 64] = bytes(64)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    archive = open_archive(bad)
    with pytest.raises(ArchiveError, match="damaged|cannot parse"):
        for _ in archive.read(archive.core, ["id"]):
            pass


def test_small_chunks_read_the_same_rows(tmp_path: Path) -> None:
    occs = [occurrence(i, 100 + i % 7, recordedBy=f"person {i}") for i in range(1, 400)]
    path = build_archive(tmp_path / "a.zip", occs, [])
    archive = open_archive(path)
    columns = ["id", "recordedBy", "speciesKey"]
    whole = pa.Table.from_batches(list(archive.read(archive.core, columns)))
    tiny = pa.Table.from_batches(list(archive.read(archive.core, columns, chunk_bytes=300)))
    assert whole.num_rows == 399 and tiny.equals(whole)
    assert whole.column("id").to_pylist() == [str(i) for i in range(1, 400)]  # file order kept


def test_chunks_do_not_depend_on_how_the_zip_stores_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same text, deflated (inflated in small uneven pieces) or stored (read 1 MB at a
    # time): batches must end at the same rows, so a selection is byte-identical whatever the zip
    monkeypatch.setattr(_reader._Inflating, "CHUNK", 997)
    occs = [occurrence(i, 100 + i % 7, recordedBy=f"person {i}" * (1 + i % 5)) for i in range(1, 3000)]
    deflated = build_archive(tmp_path / "deflated.zip", occs, [])
    stored = tmp_path / "stored.zip"
    with zipfile.ZipFile(deflated) as src, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    columns = ["id", "recordedBy", "speciesKey"]
    tables = []
    for path in (deflated, stored):
        archive = open_archive(path)
        batches = list(archive.read(archive.core, columns, chunk_bytes=4096))
        tables.append(([b.num_rows for b in batches], pa.Table.from_batches(batches)))
    (lengths_a, table_a), (lengths_b, table_b) = tables
    assert len(lengths_a) > 10 and lengths_a == lengths_b
    assert table_a.equals(table_b) and table_a.num_rows == 2999
