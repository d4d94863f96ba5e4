"""Darwin Core text the way the standard allows it, not only the way GBIF writes it.

Where ``meta.xml`` is silent the text guide's defaults hold (``,``, ``"``, no header);
lines may end in LF, CRLF or CR; rows may carry more columns than declared when there is
no header; ``meta.xml`` may sit in the zip's single top folder. ``write_zip`` and
``core_meta`` are also used by the fuzz tests.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_archive import build_archive, media, occurrence

from gbifxdl.archive import OCCURRENCE, open_archive
from gbifxdl.errors import ArchiveError
from gbifxdl.select import select

DWC = "http://rs.tdwg.org/dwc/terms/"
TERMS = ("scientificName", "recordedBy")


def core_meta(attrs: str = "", terms: tuple[str, ...] = TERMS, location: str = "occurrence.txt",
              id_tag: str = '<id index="0"/>', archive_attrs: str = "") -> str:
    """Return a meta.xml whose core has the id in column 0 and ``terms`` in the next columns."""
    fields = "".join(f'<field index="{i + 1}" term="{DWC}{t}"/>' for i, t in enumerate(terms))
    return (f'<archive xmlns="http://rs.tdwg.org/dwc/text/" {archive_attrs}><core {attrs} rowType="{OCCURRENCE}">'
            f"<files><location>{location}</location></files>{id_tag}{fields}</core></archive>")


def write_zip(path: Path, members: dict[str, str | bytes]) -> Path:
    """Return ``path``, a zip of these members (text as UTF-8), deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body.encode("utf-8") if isinstance(body, str) else body)
    return path


def read_core(path: Path, columns: tuple[str, ...] = ("id", *TERMS), chunk_bytes: int = 4 << 20):
    """Return the core's rows as tuples, and its reader (for the counts)."""
    archive = open_archive(path)
    reader = archive.read(archive.core, columns, chunk_bytes=chunk_bytes)
    batches = list(reader)
    rows = [tuple(r[c] for c in columns) for r in pa.Table.from_batches(batches).to_pylist()] if batches else []
    return rows, reader


def test_silent_meta_xml_means_commas_and_double_quotes(tmp_path: Path) -> None:
    body = '1,"Apis mellifera","Smith, J."\n2,Bombus,"He said ""hi"""\n3,,x\n'
    path = write_zip(tmp_path / "a.zip", {"meta.xml": core_meta(), "occurrence.txt": body})
    layout = open_archive(path).core
    assert (layout.fields_terminated_by, layout.fields_enclosed_by, layout.ignore_header_lines) == (",", '"', 0)
    rows, reader = read_core(path)
    assert rows == [("1", "Apis mellifera", "Smith, J."), ("2", "Bombus", 'He said "hi"'), ("3", None, "x")]
    assert reader.bad_rows == 0


def test_explicitly_empty_enclosure_keeps_quotes(tmp_path: Path) -> None:
    meta = core_meta('fieldsTerminatedBy="\\t" fieldsEnclosedBy=""')
    path = write_zip(tmp_path / "a.zip", {"meta.xml": meta, "occurrence.txt": '1\t"Apis\t"quoted" x\n'})
    assert read_core(path)[0] == [("1", '"Apis', '"quoted" x')]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("header", [True, False])
def test_line_ends(tmp_path: Path, eol: str, header: bool) -> None:
    rows = [(str(i), f"Species {i % 7}", f"person {i}" * (1 + i % 3)) for i in range(1, 301)]
    lines = (["id\tscientificName\trecordedBy"] if header else []) + ["\t".join(r) for r in rows]
    attrs = f'fieldsTerminatedBy="\\t" fieldsEnclosedBy="" ignoreHeaderLines="{int(header)}"'
    path = write_zip(tmp_path / "a.zip", {"meta.xml": core_meta(attrs), "occurrence.txt": eol.join(lines) + eol})
    for chunk_bytes in (4 << 20, 256):  # one chunk, and cuts between lines everywhere
        got, reader = read_core(path, chunk_bytes=chunk_bytes)
        assert got == rows and reader.bad_rows == 0


def test_no_header_reads_declared_columns_of_wider_rows(tmp_path: Path) -> None:
    body = "1\tApis\tAnn\textra\tmore\n2\tBombus\tBob\t\t\n"
    path = write_zip(tmp_path / "a.zip", {"meta.xml": core_meta('fieldsTerminatedBy="\\t" fieldsEnclosedBy=""'),
                                          "occurrence.txt": body})
    rows, reader = read_core(path)
    assert rows == [("1", "Apis", "Ann"), ("2", "Bombus", "Bob")] and reader.bad_rows == 0


def test_meta_xml_in_a_single_top_folder(tmp_path: Path) -> None:
    occs = [occurrence(i, 100 + i % 3) for i in range(1, 21)]
    flat = build_archive(tmp_path / "flat.zip", occs, [media(i, f"http://h/{i}.jpg") for i in range(1, 21)])
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(flat) as src, zipfile.ZipFile(nested, "w", zipfile.ZIP_DEFLATED) as dst:
        dst.writestr("0000042-250101000000000/", b"")  # a folder entry, as zip tools write them
        dst.writestr("__MACOSX/0000042-250101000000000/._meta.xml", b"\0")  # as macOS's Archive Utility adds
        for name in src.namelist():
            dst.writestr(f"0000042-250101000000000/{name}", src.read(name))
    archive = open_archive(nested)
    assert archive.core.location == "0000042-250101000000000/occurrence.txt"
    assert archive.provenance.doi == "10.15468/dl.test01"  # metadata.xml found beside meta.xml
    a = select(flat, tmp_path / "a.parquet", progress=False)
    b = select(nested, tmp_path / "b.parquet", progress=False)
    assert a.images_selected == b.images_selected == 20 and b.occurrences_read == 20
    tables = [pq.read_table(tmp_path / f"{n}.parquet").replace_schema_metadata() for n in "ab"]
    assert tables[0].equals(tables[1])


def test_two_top_folders_are_not_searched(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {"x/meta.xml": core_meta(), "x/occurrence.txt": "1,a,b\n",
                                          "y/readme.txt": "hi"})
    with pytest.raises(ArchiveError, match="no meta.xml"):
        open_archive(path)


def test_invalid_utf8_costs_nothing_but_the_bad_bytes(tmp_path: Path) -> None:
    meta = core_meta('fieldsTerminatedBy="\\t" fieldsEnclosedBy=""')
    path = write_zip(tmp_path / "a.zip", {"meta.xml": meta, "occurrence.txt": b"1\tAp\xffis\tx\n2\tBombus\ty\n"})
    rows, reader = read_core(path)
    assert rows == [("1", "Ap\ufffdis", "x"), ("2", "Bombus", "y")] and reader.repaired_chunks == 1
    # in a malformed row too: that row is counted and skipped, the others are read
    path = write_zip(tmp_path / "b.zip", {"meta.xml": meta, "occurrence.txt": b"1\ta\tb\n\xc3\tx\n2\tc\td\n"})
    rows, reader = read_core(path)
    assert rows == [("1", "a", "b"), ("2", "c", "d")] and reader.bad_rows == 1


def test_an_open_quote_costs_only_its_row(tmp_path: Path) -> None:
    body = "".join(f"{i},sp {i},p {i}\n" for i in range(1, 50)).replace("7,sp 7", '7,"sp 7')
    path = write_zip(tmp_path / "a.zip", {"meta.xml": core_meta(), "occurrence.txt": body})
    rows, reader = read_core(path)
    assert [r[0] for r in rows] == [str(i) for i in range(1, 50) if i != 7] and reader.bad_rows == 1


def test_byte_order_mark_and_latin1(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {"meta.xml": core_meta(), "occurrence.txt": b"\xef\xbb\xbf1,a,b\n"})
    assert read_core(path)[0] == [("1", "a", "b")]
    meta = core_meta('encoding="ISO-8859-1" fieldsTerminatedBy="\\t" fieldsEnclosedBy=""')
    path = write_zip(tmp_path / "b.zip", {"meta.xml": meta, "occurrence.txt": b"1\tJos\xe9\tx\n"})
    assert read_core(path)[0] == [("1", "Jos\u00e9", "x")]


@pytest.mark.parametrize("encoding,words", [("UTF-16", "does not support"), ("no-such-codec", "does not know")])
def test_unusable_encodings_are_refused(tmp_path: Path, encoding: str, words: str) -> None:
    path = write_zip(tmp_path / "a.zip", {"meta.xml": core_meta(f'encoding="{encoding}"'), "occurrence.txt": "1,a,b\n"})
    with pytest.raises(ArchiveError, match=words) as info:
        open_archive(path)
    assert str(path) in str(info.value) and "occurrence.txt" in str(info.value)


def test_metadata_file_named_by_meta_xml_and_core_without_id(tmp_path: Path) -> None:
    eml = ('<eml packageId="doi:10.15468/dl.abc123"><dataset><alternateIdentifier>0000001-250101000000000'
           "</alternateIdentifier><pubDate>2025-01-01</pubDate></dataset></eml>")
    meta = core_meta(id_tag="", terms=("gbifID", "scientificName"), archive_attrs='metadata="eml.xml"')
    meta = meta.replace(f"{DWC}gbifID", "http://rs.gbif.org/terms/1.0/gbifID")
    path = write_zip(tmp_path / "a.zip", {"meta.xml": meta, "occurrence.txt": "x,7,Apis\n", "eml.xml": eml})
    archive = open_archive(path)
    assert archive.provenance.doi == "10.15468/dl.abc123"
    assert archive.provenance.download_key == "0000001-250101000000000"
    assert archive.core.id_index == 1  # no <id>: GBIF's gbifID column serves
    assert read_core(path, ("id", "scientificName"))[0] == [("7", "Apis")]
