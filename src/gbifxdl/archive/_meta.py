"""Parsing ``meta.xml`` (the layout) and ``metadata.xml`` (the provenance) of a DwC-A.

Where ``meta.xml`` is silent, the Darwin Core text guide's defaults apply (its XSD,
``tdwg_dwc_text.xsd``): fields terminated by ``,``, enclosed by ``"``, lines by ``\\n``,
no header line, UTF-8. GBIF's archives say every one of them explicitly (tabs, no quotes,
one header line).
"""

from __future__ import annotations

import codecs
import re
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

from gbifxdl.archive._layout import Field, FileLayout, Provenance
from gbifxdl.errors import ArchiveError

MAX_COLUMNS = 1 << 16  # no real table has more; a larger index is a broken meta.xml
_DOI = re.compile(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)
_DOWNLOAD_KEY = re.compile(r"^\d{7}-\d{15}$")  # GBIF's occurrence download keys


def normalise_doi(value: object) -> str | None:
    """Return ``value`` as a bare DOI (``10.15468/dl.x4cwjr``), or None when it is not a DOI.

    Accepts ``10.x/y``, ``doi:10.x/y`` and ``https://doi.org/10.x/y`` (or ``dx.doi.org``);
    a download key or anything else without the ``10.`` prefix is not a DOI.
    """
    if value is None:
        return None
    match = _DOI.match(str(value).strip())
    return match.group(1) if match else None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""  # comments and PIs have callable tags


def _unescape(value: str | None, default: str) -> str:
    # meta.xml writes separators as escapes: "\t", "\n"
    if value is None:
        return default
    return value.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")


def _parse_meta(path: Path, data: bytes, base: str = "") -> tuple[FileLayout, list[FileLayout], str | None]:
    """Return the core's layout, the extensions' layouts and the metadata file named by ``meta.xml``.

    Locations are member names of the zip: ``base`` (the folder holding ``meta.xml``, with
    its slash) is put before them.
    """
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError) as exc:  # ValueError: e.g. an unknown XML encoding
        raise ArchiveError(f"{path}: meta.xml is malformed ({exc}); download the archive again") from exc
    if _local(root.tag) != "archive":
        raise ArchiveError(f"{path}: meta.xml's root is <{_local(root.tag)}>, not <archive>; "
                           "this is not a Darwin Core Archive descriptor")
    cores: list[FileLayout] = []
    extensions: list[FileLayout] = []
    for node in root:
        kind = _local(node.tag)
        if kind not in ("core", "extension"):
            continue
        layout = _parse_file(path, node, "id" if kind == "core" else "coreid", base)
        (cores if kind == "core" else extensions).append(layout)
    if not cores:
        raise ArchiveError(f"{path}: meta.xml declares no <core> file; this is not a usable Darwin Core Archive")
    if len(cores) > 1:
        raise ArchiveError(f"{path}: meta.xml declares {len(cores)} <core> files, the standard allows one; "
                           "download the archive again")
    metadata = (root.attrib.get("metadata") or "").strip() or None
    return cores[0], extensions, metadata


def _index(path: Path, what: str, value: str) -> int:
    index = int(value)
    if not 0 <= index < MAX_COLUMNS:
        raise ArchiveError(f"{path}: meta.xml puts {what} in column {value}, which no table has; "
                           "download the archive again")
    return index


def _parse_file(path: Path, node: ElementTree.Element, id_tag: str, base: str) -> FileLayout:
    locations: list[str] = []
    id_index = None
    fields: list[Field] = []
    row_type = (node.attrib.get("rowType") or "").strip()
    try:
        for child in node:
            tag = _local(child.tag)
            if tag == "files":
                locations = [(c.text or "").strip() for c in child if _local(c.tag) == "location"]
            elif tag == id_tag and child.attrib.get("index") not in (None, ""):
                id_index = _index(path, f"the <{id_tag}> of {row_type or 'a file'}", child.attrib["index"])
            elif tag == "field":
                term = child.attrib["term"].strip()
                index = child.attrib.get("index")
                name = term.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]
                fields.append(
                    Field(
                        name=name,
                        term=term,
                        index=_index(path, repr(name), index) if index not in (None, "") else None,
                        default=child.attrib.get("default"),
                        delimited_by=child.attrib.get("delimitedBy") or None,
                    )
                )
    except (KeyError, ValueError) as exc:
        raise ArchiveError(
            f"{path}: meta.xml is malformed (a field lacks a valid term or index: {exc}); "
            "download the archive again"
        ) from exc
    header = node.attrib.get("ignoreHeaderLines", "0") or "0"
    try:
        ignore = int(header)
    except ValueError:
        ignore = -1
    if ignore < 0:
        raise ArchiveError(f"{path}: meta.xml says ignoreHeaderLines={header!r}, not a number of lines; "
                           "download the archive again")
    if id_index is None and id_tag == "id":
        # the core's <id> is optional in the standard; GBIF's own id column then serves
        gbif_id = next((f for f in fields if f.name == "gbifID" and f.index is not None), None)
        id_index = gbif_id.index if gbif_id else None
    location = locations[0] if locations else ""
    if not location or id_index is None:
        raise ArchiveError(
            f"{path}: meta.xml is malformed: the {row_type or 'unnamed'} file has no "
            f"<location> or <{id_tag} index=...>; download the archive again"
        )
    if len(locations) > 1:
        raise ArchiveError(f"{path}: meta.xml splits the {row_type or 'unnamed'} table over {len(locations)} "
                           "files; gbifxdl reads one file per table (GBIF's archives have one)")
    encoding = (node.attrib.get("encoding") or "UTF-8").strip() or "UTF-8"
    _check_encoding(path, location, encoding)
    return FileLayout(
        location=base + location.removeprefix("./"),
        row_type=row_type,
        id_index=id_index,
        fields=tuple(fields),
        encoding=encoding,
        fields_terminated_by=_unescape(node.attrib.get("fieldsTerminatedBy"), ","),
        lines_terminated_by=_unescape(node.attrib.get("linesTerminatedBy"), "\n"),
        # absent: the standard's '"'; GBIF writes fieldsEnclosedBy="" for "no quoting"
        fields_enclosed_by=_unescape(node.attrib.get("fieldsEnclosedBy"), '"'),
        ignore_header_lines=ignore,
    )


def _check_encoding(path: Path, location: str, encoding: str) -> None:
    """Refuse encodings Python does not know, or that write line ends and separators otherwise than ASCII."""
    try:
        codecs.lookup(encoding)
        ascii_compatible = "\n\r\t,;|\"'".encode(encoding) == b"\n\r\t,;|\"'"
    except (LookupError, UnicodeError, ValueError):
        raise ArchiveError(f"{path}: meta.xml says {location} is encoded as {encoding!r}, an encoding "
                           "Python does not know; re-save the file as UTF-8 and fix meta.xml") from None
    if not ascii_compatible:
        raise ArchiveError(f"{path}: {location} is encoded as {encoding!r}, which this reader does not "
                           "support; re-save the file as UTF-8 and fix meta.xml")


# --- metadata.xml -------------------------------------------------------------------------


def _parse_eml(data: bytes | None, archive_name: str) -> Provenance:
    stem = archive_name.split(".", 1)[0]
    file_key = stem if _DOWNLOAD_KEY.match(stem) else None
    if data is None:
        return Provenance(download_key=file_key, archive=archive_name)
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError):
        # provenance is informative only: a broken EML must not stop the selection
        return Provenance(download_key=file_key, archive=archive_name)

    def texts(tag: str) -> list[str]:
        found = ("".join(node.itertext()).strip() for node in root.iter() if _local(node.tag) == tag)
        return [value for value in found if value]

    def text(tag: str) -> str | None:
        values = texts(tag)
        return values[0] if values else None

    # GBIF's identifiers: the DOI (packageId, the citation's identifier, since 2015 or so),
    # the download key (alternateIdentifier; in 2014 archives also the citation's identifier)
    identifiers = [node.attrib["identifier"].strip() for node in root.iter()
                   if _local(node.tag) == "citation" and node.attrib.get("identifier")]
    identifiers += [(root.attrib.get("packageId") or "").strip(), *texts("alternateIdentifier")]
    doi = next((d for d in map(normalise_doi, identifiers) if d), None)
    alternate = [v for v in texts("alternateIdentifier") if normalise_doi(v) is None]
    key = (next((v for v in identifiers if _DOWNLOAD_KEY.match(v)), None)
           or (alternate[0] if alternate else None) or file_key)
    created = text("dateStamp") or text("pubDate")
    query = None
    abstract = text("abstract")
    if abstract:
        # "... matching the query:\n{...}\nThe dataset includes ..." -> the query text
        body = abstract.split("query:", 1)[-1]
        query = body.split("The dataset includes", 1)[0].strip() or None
    citation = text("citation")
    if created and (doi or key):
        # GBIF's wording; without a DOI (downloads before 2015) the key stands in for the link
        where = f"https://doi.org/{doi}" if doi else key
        citation = f"GBIF.org ({_long_date(created)}) GBIF Occurrence Download {where}"
    return Provenance(key, doi, citation, query, created, archive_name)


def _long_date(stamp: str) -> str:
    try:
        day = date.fromisoformat(stamp[:10])
    except ValueError:
        return stamp
    return f"{day.day} {day.strftime('%B')} {day.year}"
