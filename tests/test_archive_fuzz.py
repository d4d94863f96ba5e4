"""Property-based fuzzing of ``meta.xml`` and the text members (issue 11).

Every archive is read right or refused in one line: an :class:`ArchiveError` whose
message names the archive, never another exception, never a hang (each example runs
under an alarm). Bounded (``max_examples``) so the whole file runs in seconds in CI.
"""

from __future__ import annotations

import contextlib
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_archive import MEDIA_COLUMNS, OCC_COLUMNS, build_archive, media, occurrence
from test_archive_dialects import TERMS, core_meta, write_zip

from gbifxdl.archive import MULTIMEDIA, OCCURRENCE, open_archive
from gbifxdl.errors import ArchiveError, GbifxdlError
from gbifxdl.select import NothingSelectedError, select

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SECONDS = 20  # per example: far above what any takes; only a hang reaches it


@contextlib.contextmanager
def no_hang(seconds: int = SECONDS) -> Iterator[None]:
    """Fail the example (TimeoutError) if the body runs longer than ``seconds``."""
    def expire(*_: object) -> None:
        raise TimeoutError(f"reading took over {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_everything(path: Path, chunk_bytes: int = 4 << 20) -> list[pa.Table]:
    """Return every declared column of the core and multimedia members, or raise ArchiveError."""
    archive = open_archive(path)
    tables = []
    for layout in (archive.core, archive.multimedia):
        if layout is None:
            continue
        columns = ["id", *dict.fromkeys(f.name for f in layout.fields)]
        reader = archive.read(layout, columns, chunk_bytes=chunk_bytes)
        batches = list(reader)
        assert reader.rows == sum(b.num_rows for b in batches) and reader.bad_rows >= 0
        tables.append(pa.Table.from_batches(batches) if batches else pa.table({}))
    return tables


def read_or_refuse(path: Path, chunk_bytes: int = 4 << 20) -> list[pa.Table] | None:
    """Return the tables read, or None when refused in one line naming the archive; anything else fails."""
    with no_hang():
        try:
            return read_everything(path, chunk_bytes)
        except ArchiveError as exc:
            message = str(exc)
            assert "\n" not in message and str(path) in message, message
            return None


# --- meta.xml -------------------------------------------------------------------------------------

_ATTR = st.one_of(st.sampled_from(["", "\\t", ",", ";", "|", '"', "'", "\\n", "\\r", "\\t\\t", "&quot;", "é", "ab"]),
                  st.text(max_size=3))
_INDEX = st.one_of(st.integers(-2, 40).map(str), st.sampled_from(["", "x", "1.5", "99999999999", " 3 ", "٣"]))


@st.composite
def meta_xmls(draw: st.DrawFn) -> str:
    """Return a meta.xml for the members of ``build_archive``: plausible in shape, fuzzed in values."""
    parts = ['<archive xmlns="http://rs.tdwg.org/dwc/text/"' + (' metadata="metadata.xml"' if draw(st.booleans()) else "")
             + ">"]
    for tag, row_type, location, columns in (("core", OCCURRENCE, "occurrence.txt", OCC_COLUMNS),
                                             ("extension", MULTIMEDIA, "multimedia.txt", MEDIA_COLUMNS)):
        if tag == "extension" and not draw(st.booleans()):
            continue
        attrs = {name: draw(_ATTR) for name in ("fieldsTerminatedBy", "fieldsEnclosedBy", "linesTerminatedBy")
                 if draw(st.integers(0, 3))}  # each attribute is often there, sometimes absent
        attrs |= {"ignoreHeaderLines": draw(st.sampled_from(["1", "0", "2", "-1", "x", ""]))} if draw(st.booleans()) else {}
        attrs |= {"encoding": draw(st.sampled_from(["UTF-8", "utf8", "latin-1", "UTF-16", "bogus", ""]))} \
            if draw(st.booleans()) else {}
        attributes = " ".join(f'{k}="{_xml_attr(v)}"' for k, v in attrs.items())
        parts.append(f'<{tag} {attributes} rowType="{row_type}">')
        if draw(st.integers(0, 9)):
            parts.append(f"<files><location>{draw(st.sampled_from([location, location, 'missing.txt', '']))}"
                         "</location></files>")
        id_tag = "id" if tag == "core" else "coreid"
        if draw(st.integers(0, 9)):
            parts.append(f'<{id_tag} index="{draw(st.one_of(st.just("0"), _INDEX))}"/>')
        for index, (name, ns) in enumerate(columns):
            if draw(st.integers(0, 5)) == 0:
                continue  # an undeclared column
            value = str(index) if draw(st.integers(0, 4)) else draw(_INDEX)
            default = f' default="{draw(st.sampled_from(["x", "", "StillImage"]))}"' if draw(st.integers(0, 8)) == 0 else ""
            parts.append(f'<field index="{_xml_attr(value)}" term="{ns}{name}"{default}/>')
        parts.append(f"</{tag}>")
    parts.append("</archive>")
    return "".join(parts)


def _xml_attr(value: str) -> str:
    return value.replace("&quot;", "\0").replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;") \
        .replace("\0", "&quot;")


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A small archive built as GBIF lays it out, and its meta.xml."""
    root = tmp_path_factory.mktemp("fuzz")
    occs = [occurrence(i, 100 + i % 4, recordedBy=f'"p{i}", x') for i in range(1, 41)]
    path = build_archive(root / "good.zip", occs, [media(i, f"http://h/{i}.jpg") for i in range(1, 41)])
    with zipfile.ZipFile(path) as zf:
        return path, zf.read("meta.xml")


def _with_meta(good: Path, target: Path, meta: bytes) -> Path:
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, meta if name == "meta.xml" else src.read(name))
    return target


@pytest.mark.slow
@FUZZ
@given(meta=meta_xmls(), chunk_bytes=st.sampled_from([4 << 20, 512]))
def test_any_meta_xml_is_read_or_refused(good_archive: tuple[Path, bytes], tmp_path_factory: pytest.TempPathFactory,
                                         meta: str, chunk_bytes: int) -> None:
    path = _with_meta(good_archive[0], tmp_path_factory.mktemp("m") / "fuzzed.zip", meta.encode())
    read_or_refuse(path, chunk_bytes)


@FUZZ
@given(data=st.data())
def test_damaged_meta_xml_bytes_are_read_or_refused(good_archive: tuple[Path, bytes],
                                                    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    meta = bytearray(good_archive[1])
    for _ in range(data.draw(st.integers(1, 6))):  # flip, cut, splice
        at = data.draw(st.integers(0, len(meta) - 1))
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            meta[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del meta[at: at + data.draw(st.integers(1, 200))]
        else:
            meta[at:at] = data.draw(st.sampled_from([b"<", b'"', b"\x00", b"&", b"\xff\xfe", b"<!-- -->", b"\t"]))
        if not meta:
            meta = bytearray(b"<")
    read_or_refuse(_with_meta(good_archive[0], tmp_path_factory.mktemp("d") / "damaged.zip", bytes(meta)))


# --- the text members -------------------------------------------------------------------------------

_NOISE = st.sampled_from([b"\t", b"\n", b"\r", b"\r\n", b'"', b",", b"1", b"Apis", b"\xff", b"\xef\xbb\xbf", b"\x00",
                          b"\xc3", b"", b'""', b"12345678901234567890"])


@FUZZ
@given(chunks=st.lists(_NOISE, max_size=300), dialect=st.sampled_from([
    'fieldsTerminatedBy="\\t" fieldsEnclosedBy="" ignoreHeaderLines="1"', "", 'ignoreHeaderLines="1"',
    'fieldsTerminatedBy="\\t" linesTerminatedBy="\\r\\n" fieldsEnclosedBy="" encoding="ISO-8859-1"']),
    chunk_bytes=st.sampled_from([4 << 20, 64]))
def test_any_text_is_read_or_refused(tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes], dialect: str,
                                     chunk_bytes: int) -> None:
    body = b"".join(chunks)
    path = write_zip(tmp_path_factory.mktemp("t") / "text.zip", {"meta.xml": core_meta(dialect), "occurrence.txt": body})
    tables = read_or_refuse(path, chunk_bytes)
    if tables is not None:  # nothing invented: never more rows than non-empty lines
        lines = [line for line in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if line]
        assert tables[0].num_rows <= len(lines)


_VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff\x85\u2028\u2029"),
                 max_size=12)


@FUZZ
@given(rows=st.lists(st.tuples(st.integers(0, 10**12), _VALUE, _VALUE), max_size=40),
       quoted=st.booleans(), eol=st.sampled_from(["\n", "\r\n", "\r"]), header=st.booleans(),
       bom=st.booleans(), extra=st.integers(0, 2), chunk_bytes=st.sampled_from([4 << 20, 200, 37]))
def test_well_formed_tables_are_read_right(tmp_path_factory: pytest.TempPathFactory, rows: list, quoted: bool,
                                           eol: str, header: bool, bom: bool, extra: int, chunk_bytes: int) -> None:
    if quoted:  # the standard's defaults: commas, values quoted where needed, quotes doubled
        attrs, sep = f'ignoreHeaderLines="{int(header)}"', ","

        def cell(value: str) -> str:
            return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"') or not value else value
    else:  # GBIF's: tabs, no quotes (a value holding a tab would be two fields: none here)
        attrs, sep = f'fieldsTerminatedBy="\\t" fieldsEnclosedBy="" ignoreHeaderLines="{int(header)}"', "\t"
        rows = [(i, a.replace("\t", " "), b.replace("\t", " ")) for i, a, b in rows]

        def cell(value: str) -> str:
            return value

    lines = [sep.join(["id", *TERMS])] if header else []
    # without a header, rows may carry columns meta.xml does not declare
    lines += [sep.join([str(i), cell(a), cell(b)] + ([] if header else ["z"] * extra)) for i, a, b in rows]
    body = ("\ufeff" if bom else "") + "".join(line + eol for line in lines)
    path = write_zip(tmp_path_factory.mktemp("w") / "ok.zip", {"meta.xml": core_meta(attrs), "occurrence.txt": body})
    with no_hang():
        archive = open_archive(path)
        reader = archive.read(archive.core, ["id", *TERMS], chunk_bytes=chunk_bytes)
        got = [tuple(r.values()) for b in reader for r in b.to_pylist()]
    expected = [(str(i), a or None, b or None) for i, a, b in rows]
    # a row whose every value is empty but the id is still a row; whitespace is kept as is
    assert got == expected and reader.bad_rows == 0



# --- select, end to end ------------------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(1, 30), broken=st.sets(st.integers(0, 29), max_size=30), short=st.booleans())
def test_select_counts_every_row_or_says_why_not(tmp_path_factory: pytest.TempPathFactory, n: int, broken: set,
                                                  short: bool) -> None:
    occs, lines = [], []
    for i in range(1, n + 1):
        if i - 1 in broken:  # a row with a field too few or too many
            fields = [str(occurrence(i).get(name) or "") for name, _ in OCC_COLUMNS]
            lines.append("\t".join(fields[:-1] if short else fields + ["x"]))
        else:
            occs.append(occurrence(i, 100 + i % 3))
    root = tmp_path_factory.mktemp("s")
    archive = build_archive(root / "a.zip", occs, [media(i, f"http://h/{i}.jpg") for i in range(1, n + 1)],
                            extra_occurrence_lines=lines)
    with no_hang(60):
        try:
            summary = select(archive, root / "sel.parquet", progress=False)
        except NothingSelectedError as exc:
            assert not occs and exc.malformed and f"{n} rows read, {n} malformed" in str(exc)
            return
        except GbifxdlError as exc:  # pragma: no cover - would be a finding
            pytest.fail(f"unexpected refusal: {exc}")
    assert occs and summary.images_selected == len(occs)
    assert summary.occurrences_read == n and summary.dropped_occurrences["bad_row"] == n - len(occs)
