"""Darwin Core Archives: the layout from ``meta.xml``, provenance from ``metadata.xml``,
and streaming readers of the core and extension members.

Column positions and column sets differ between GBIF archive years, so everything here
is read from ``meta.xml``; nothing is assumed but what the DwC-A standard says.
Members are inflated and parsed as a stream (``pyarrow.csv`` over ``zipfile``): memory
stays flat whatever the archive's size.
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gbifxdl.archive._layout import ASK_FOR_DWCA, MULTIMEDIA, OCCURRENCE, Field, FileLayout, Provenance
from gbifxdl.archive._meta import _parse_eml, _parse_meta, normalise_doi
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
    "normalise_doi",
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

    ``meta.xml`` is looked for at the top of the zip, or inside its single top folder
    when every member sits in one (an archive unzipped and zipped again). Raises
    :class:`ArchiveError` for anything that is not a readable DwC-A zip, and
    :class:`NoMediaError` for a SIMPLE_CSV / SIMPLE_PARQUET / other table-only archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file; give the path of a GBIF download (KEY.zip)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            # gbifxdl's GBIF emulator marks its archives in the zip's comment (GBIF's have none)
            emulator = zf.comment.decode("utf-8", "replace").strip() or None
            base = _base_folder(list(infos))
            if base + "meta.xml" not in infos:
                _raise_not_dwca(path, list(infos))
            meta = _read_small(path, zf, infos[base + "meta.xml"])
            core, extensions, metadata_name = _parse_meta(path, meta, base)
            eml_info = infos.get(base + (metadata_name or "metadata.xml")) or infos.get(base + "metadata.xml")
            try:
                eml = _read_small(path, zf, eml_info) if eml_info is not None else None
            except ArchiveError:
                eml = None  # provenance is informative only: a damaged EML must not stop the selection
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            f"{path}: not a readable zip ({exc}); the download may be truncated: download it again"
        ) from exc
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ArchiveError(f"{path}: cannot read the zip ({exc}); download it again") from exc
    except (NotImplementedError, RuntimeError) as exc:  # exotic compression, encryption
        raise ArchiveError(f"{path}: cannot read the zip ({exc}); unzip and re-zip it with plain deflate") from exc
    # verbatim.txt and other extensions are never read, so only these must be present
    for layout in (core, *(e for e in extensions if e.row_type == MULTIMEDIA)):
        if layout.location not in infos:
            raise ArchiveError(
                f"{path}: meta.xml names {layout.location!r} but the zip has no such member; "
                "the archive is incomplete: download it again"
            )
    provenance = dataclasses.replace(_parse_eml(eml, path.name), emulator=emulator)
    sizes = {name: info.file_size for name, info in infos.items()}
    return Archive(path, core, tuple(extensions), provenance, sizes)


_SMALL_MEMBER = 64 << 20  # meta.xml and metadata.xml are kilobytes; more is not a descriptor


def _read_small(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Return a descriptor member's bytes, refusing one too large to be what it claims."""
    if info.file_size > _SMALL_MEMBER:
        raise ArchiveError(f"{path}: {info.filename} holds {info.file_size:,} bytes, far too many for an "
                           "archive descriptor; download the archive again")
    with zf.open(info) as member:
        data = member.read(_SMALL_MEMBER + 1)
    if len(data) > _SMALL_MEMBER:
        raise ArchiveError(f"{path}: {info.filename} inflates past {_SMALL_MEMBER >> 20} MB; download the archive again")
    return data


def _base_folder(names: list[str]) -> str:
    """Return the single top folder (with its slash) every member sits in, or "" when there is none."""
    names = [name for name in names if not name.startswith("__MACOSX/")]  # macOS's resource forks
    if not names or "meta.xml" in names:
        return ""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1 or not all("/" in name for name in names):
        return ""
    return tops.pop() + "/"


def _raise_not_dwca(path: Path, names: list[str]) -> None:
    lowered = [n.lower() for n in names]
    if not names:
        raise ArchiveError(f"{path}: the zip is empty; download the archive again")
    if any(n.endswith((".csv", ".parquet", ".avro")) or "/" in n and n.startswith("occurrence.parquet") for n in lowered):
        raise NoMediaError(f"{path}: a SIMPLE_* archive (a plain table) has no image URLs. {ASK_FOR_DWCA}")
    raise ArchiveError(
        f"{path}: no meta.xml, so not a Darwin Core Archive (members: {', '.join(names[:5])}). {ASK_FOR_DWCA}"
    )
