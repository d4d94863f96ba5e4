"""Darwin Core Archives: the layout from ``meta.xml``, provenance from ``metadata.xml``,
and streaming readers of the core and extension members.

Column positions and column sets differ between GBIF archive years, so everything here
is read from ``meta.xml``; nothing is assumed but what the DwC-A standard says.
Members are inflated and parsed as a stream (``pyarrow.csv`` over ``zipfile``): memory
stays flat whatever the archive's size.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gbifxdl.archive._layout import ASK_FOR_DWCA, MULTIMEDIA, OCCURRENCE, Field, FileLayout, Provenance
from gbifxdl.archive._meta import _parse_eml, _parse_meta
from gbifxdl.archive._reader import MemberReader
from gbifxdl.errors import ArchiveError, NoMediaError

__all__ = [
    "OCCURRENCE",
    "MULTIMEDIA",
    "Field",
    "FileLayout",
    "Provenance",
    "Archive",
    "MemberReader",
    "open_archive",
]


@dataclass(frozen=True)
class Archive:
    """An opened Darwin Core Archive: its path, member layouts and provenance."""

    path: Path
    core: FileLayout
    extensions: tuple[FileLayout, ...]
    provenance: Provenance
    member_sizes: dict[str, int] = field(default_factory=dict)  # uncompressed bytes

    @property
    def multimedia(self) -> FileLayout | None:
        """Return the multimedia extension's layout, or None when the archive has none."""
        for ext in self.extensions:
            if ext.row_type == MULTIMEDIA:
                return ext
        return None

    def read(
        self, layout: FileLayout, columns: Sequence[str], *, chunk_bytes: int = 4 << 20,
        on_bytes: Callable[[int], None] | None = None,
    ) -> MemberReader:
        """Return a streaming reader of ``columns`` (term names, or ``"id"``) of one member.

        ``on_bytes`` is called with each count of uncompressed bytes read (for progress).
        """
        return MemberReader(self, layout, columns, chunk_bytes=chunk_bytes, on_bytes=on_bytes)


def open_archive(path: str | Path) -> Archive:
    """Return the :class:`Archive` at ``path``, its layout read from ``meta.xml``.

    Raises :class:`ArchiveError` for anything that is not a readable DwC-A zip, and
    :class:`NoMediaError` for a SIMPLE_CSV / SIMPLE_PARQUET / other table-only archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file; give the path of a GBIF download (KEY.zip)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            if "meta.xml" not in infos:
                _raise_not_dwca(path, list(infos))
            meta = zf.read("meta.xml")
            eml = zf.read("metadata.xml") if "metadata.xml" in infos else None
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            f"{path}: not a readable zip ({exc}); the download may be truncated: download it again"
        ) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{path}: cannot read the zip ({exc}); download it again") from exc
    core, extensions = _parse_meta(path, meta)
    # verbatim.txt and other extensions are never read, so only these must be present
    for layout in (core, *(e for e in extensions if e.row_type == MULTIMEDIA)):
        if layout.location not in infos:
            raise ArchiveError(
                f"{path}: meta.xml names {layout.location!r} but the zip has no such member; "
                "the archive is incomplete: download it again"
            )
    provenance = _parse_eml(eml, path.name)
    sizes = {name: info.file_size for name, info in infos.items()}
    return Archive(path, core, tuple(extensions), provenance, sizes)


def _raise_not_dwca(path: Path, names: list[str]) -> None:
    lowered = [n.lower() for n in names]
    if not names:
        raise ArchiveError(f"{path}: the zip is empty; download the archive again")
    if any(n.endswith((".csv", ".parquet", ".avro")) or "/" in n and n.startswith("occurrence.parquet") for n in lowered):
        raise NoMediaError(f"{path}: a SIMPLE_* archive carries no media URLs. {ASK_FOR_DWCA}")
    raise ArchiveError(
        f"{path}: no meta.xml, so not a Darwin Core Archive (members: {', '.join(names[:5])}). {ASK_FOR_DWCA}"
    )
