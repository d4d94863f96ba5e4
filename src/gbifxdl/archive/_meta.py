"""Parsing ``meta.xml`` (the layout) and ``metadata.xml`` (the provenance) of a DwC-A."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from xml.etree import ElementTree

from gbifxdl.archive._layout import Field, FileLayout, Provenance
from gbifxdl.errors import ArchiveError

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _unescape(value: str | None, default: str) -> str:
    # meta.xml writes separators as escapes: "\t", "\n"
    if value is None:
        return default
    return value.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")


def _parse_meta(path: Path, data: bytes) -> tuple[FileLayout, list[FileLayout]]:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ArchiveError(f"{path}: meta.xml is malformed ({exc}); download the archive again") from exc
    core: FileLayout | None = None
    extensions: list[FileLayout] = []
    for node in root:
        kind = _local(node.tag)
        if kind not in ("core", "extension"):
            continue
        layout = _parse_file(path, node, "id" if kind == "core" else "coreid")
        if kind == "core":
            core = layout
        else:
            extensions.append(layout)
    if core is None:
        raise ArchiveError(f"{path}: meta.xml declares no <core> file; this is not a usable Darwin Core Archive")
    return core, extensions


def _parse_file(path: Path, node: ElementTree.Element, id_tag: str) -> FileLayout:
    location = None
    id_index = None
    fields: list[Field] = []
    try:
        for child in node:
            tag = _local(child.tag)
            if tag == "files":
                locations = [c.text for c in child if _local(c.tag) == "location"]
                location = (locations[0] or "").strip() if locations else None
            elif tag == id_tag:
                id_index = int(child.attrib["index"])
            elif tag == "field":
                term = child.attrib["term"]
                index = child.attrib.get("index")
                fields.append(
                    Field(
                        name=term.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1],
                        term=term,
                        index=int(index) if index not in (None, "") else None,
                        default=child.attrib.get("default"),
                        delimited_by=child.attrib.get("delimitedBy") or None,
                    )
                )
        ignore = int(node.attrib.get("ignoreHeaderLines", "0") or 0)
    except (KeyError, ValueError) as exc:
        raise ArchiveError(
            f"{path}: meta.xml is malformed (a field lacks a valid term or index: {exc}); "
            "download the archive again"
        ) from exc
    row_type = node.attrib.get("rowType", "")
    if not location or id_index is None:
        raise ArchiveError(
            f"{path}: meta.xml is malformed: the {row_type or 'unnamed'} file has no "
            f"<location> or <{id_tag}>; download the archive again"
        )
    enclosed = node.attrib.get("fieldsEnclosedBy", "")
    return FileLayout(
        location=location,
        row_type=row_type,
        id_index=id_index,
        fields=tuple(fields),
        encoding=node.attrib.get("encoding", "UTF-8") or "UTF-8",
        fields_terminated_by=_unescape(node.attrib.get("fieldsTerminatedBy"), ","),
        lines_terminated_by=_unescape(node.attrib.get("linesTerminatedBy"), "\n"),
        fields_enclosed_by=enclosed,
        ignore_header_lines=ignore,
    )


# --- metadata.xml -------------------------------------------------------------------------


def _parse_eml(data: bytes | None, archive_name: str) -> Provenance:
    if data is None:
        return Provenance(archive=archive_name)
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        # provenance is informative only: a broken EML must not stop the selection
        return Provenance(archive=archive_name)

    def text(tag: str) -> str | None:
        for node in root.iter():
            if _local(node.tag) == tag:
                value = "".join(node.itertext()).strip()
                return value or None
        return None

    key = text("alternateIdentifier")
    doi = None
    for node in root.iter():
        if _local(node.tag) == "citation" and node.attrib.get("identifier"):
            doi = node.attrib["identifier"].strip()
    doi = doi or (root.attrib.get("packageId") or "").strip() or None
    created = text("dateStamp") or text("pubDate")
    query = None
    abstract = text("abstract")
    if abstract:
        # "... matching the query:\n{...}\nThe dataset includes ..." -> the query text
        body = abstract.split("query:", 1)[-1]
        query = body.split("The dataset includes", 1)[0].strip() or None
    citation = text("citation")
    if doi and created:
        citation = f"GBIF.org ({_long_date(created)}) GBIF Occurrence Download https://doi.org/{doi}"
    if key is None:
        stem = archive_name.split(".", 1)[0]
        key = stem if "-" in stem and stem.split("-", 1)[0].isdigit() else None
    return Provenance(key, doi, citation, query, created, archive_name)


def _long_date(stamp: str) -> str:
    try:
        day = date.fromisoformat(stamp[:10])
    except ValueError:
        return stamp
    return f"{day.day} {day.strftime('%B')} {day.year}"
