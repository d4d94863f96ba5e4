"""What ``meta.xml`` and ``metadata.xml`` say about an archive, as plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OCCURRENCE = "http://rs.tdwg.org/dwc/terms/Occurrence"
MULTIMEDIA = "http://rs.gbif.org/terms/1.0/Multimedia"

ASK_FOR_DWCA = (
    'Request the download again with "format": "DWCA" (gbifxdl post does by default): '
    "only Darwin Core Archives carry media URLs."
)


@dataclass(frozen=True)
class Field:
    """One column of a member, as ``meta.xml`` declares it."""

    name: str  # the term's local name: "speciesKey" for http://rs.gbif.org/terms/1.0/speciesKey
    term: str
    index: int | None  # None: the field has only a default and no column
    default: str | None = None
    delimited_by: str | None = None  # array fields: values joined by this


@dataclass(frozen=True)
class FileLayout:
    """How one member (core or extension) of the archive is laid out."""

    location: str
    row_type: str
    id_index: int
    fields: tuple[Field, ...]
    encoding: str = "UTF-8"
    fields_terminated_by: str = "\t"
    lines_terminated_by: str = "\n"
    fields_enclosed_by: str = ""
    ignore_header_lines: int = 0

    def field(self, name: str) -> Field | None:
        """Return the field called ``name`` (term local name), or None when undeclared."""
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        return None

    @property
    def n_declared_columns(self) -> int:
        """Return the number of columns ``meta.xml`` implies (highest index + 1)."""
        indices = [f.index for f in self.fields if f.index is not None] + [self.id_index]
        return max(indices) + 1


@dataclass(frozen=True)
class Provenance:
    """Where an archive comes from, read from its ``metadata.xml`` (absent parts are None)."""

    download_key: str | None = None
    doi: str | None = None
    citation: str | None = None
    query: str | None = None
    created: str | None = None
    archive: str | None = None
    # set only for an archive of gbifxdl's GBIF emulator (the demo's, the tests'): its key,
    # DOI and records are synthetic, made up on loopback, never GBIF's
    emulator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the provenance as a JSON-ready dict (``emulator`` only when set)."""
        out = asdict(self)
        if out["emulator"] is None:
            del out["emulator"]
        return out
