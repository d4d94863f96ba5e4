"""The files behind the table: checking them (and, for the original API, deleting strays).

Both layouts are handled: one file per image under ``images/`` (folders), or tar
shards under ``shards/`` holding ``<key>.<ext>`` members (WebDataset). Checks are cheap
by design (size against the table, then the image header), so a million images are
checked at the speed of the disk, not of a JPEG decoder.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from PIL import Image

from gbifxdl._io import sha256_file
from gbifxdl._locate import IMAGE_EXTS, key_ext  # noqa: F401 (curation's modules import them from here)
from gbifxdl.errors import CurateError

IMAGES = "images"
SHARDS = "shards"
MISSING = "file_missing"
UNREADABLE = "file_unreadable"
CHANGED = "file_changed"  # readable, but not the bytes fetch wrote (sha256 differs)
Progress = Callable[[str, int, int], None]  # (what, done, total)


def _header_ok(fp: io.BufferedIOBase | io.BytesIO) -> bool:
    """Return True when Pillow recognises an image with a sane size in ``fp``."""
    try:
        with Image.open(fp) as img:
            width, height = img.size
        return width > 0 and height > 0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


def _inside(root: Path, rel: str) -> Path:
    """Return ``root/rel``, refusing paths that leave ``root`` (a tampered table)."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise CurateError(f"metadata.parquet names a file outside the dataset folder: {rel!r}; fix or remove that row")
    return path


def check_files(
    root: Path,
    paths: Sequence[str | None],
    sizes: Sequence[int | None],
    rows: Iterable[int],
    progress: Progress | None = None,
    digests: Sequence[str | None] | None = None,
    aside: Path | None = None,
    found_aside: list[int] | None = None,
) -> dict[int, str]:
    """Return {row: problem} for ``rows`` whose file (folders layout) is missing or unreadable.

    With ``digests`` (the sha256 column), every file is also read whole and compared.
    With ``aside`` (the set-aside folder), a file missing at its path is looked for at
    ``aside/path``; the rows found there are appended to ``found_aside``.
    """
    problems: dict[int, str] = {}
    rows = list(rows)
    for done, i in enumerate(rows):
        if progress is not None and done % 1024 == 0:
            progress("checking images", done, len(rows))
        rel = paths[i]
        if not rel:
            problems[i] = MISSING
            continue
        path = _inside(root, rel)
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size < 0 and aside is not None:
            path = aside / rel
            try:
                size = path.stat().st_size
                if found_aside is not None:
                    found_aside.append(i)
            except OSError:
                pass
        if size < 0:
            problems[i] = MISSING
            continue
        if (sizes[i] is not None and size != sizes[i]) or size == 0:
            problems[i] = UNREADABLE
            continue
        try:
            with open(path, "rb") as fp:
                if not _header_ok(fp):
                    problems[i] = UNREADABLE
                elif digests is not None and digests[i] and sha256_file(path) != digests[i]:
                    problems[i] = CHANGED
        except OSError:
            problems[i] = UNREADABLE
    return problems


@dataclass
class ShardIndex:
    """What one shard holds: per sample key, its member names and image check."""

    members: dict[str, list[str]] = field(default_factory=dict)
    image_ok: dict[str, tuple[int, bool, str | None]] = field(default_factory=dict)  # key -> (size, ok, sha256)


_HEADER_BYTES = 1 << 17  # enough for any image header, even after a large EXIF block


def index_shard(path: Path, check: bool = True, digest: bool = False) -> ShardIndex | None:
    """Return the samples of a tar shard, or None if it is unreadable.

    With ``check``, each image's header is parsed; with ``digest``, each image is read
    whole and its sha256 recorded.
    """
    index = ShardIndex()
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = key_ext(info.name)
                index.members.setdefault(key, []).append(info.name)
                if check and ext in IMAGE_EXTS:
                    # without digest only the head is read: tarfile seeks over the rest
                    data = tar.extractfile(info)
                    head = (data.read() if digest else data.read(_HEADER_BYTES)) if data is not None else b""
                    ok = info.size > 0 and _header_ok(io.BytesIO(head))
                    index.image_ok[key] = (info.size, ok, hashlib.sha256(head).hexdigest() if digest else None)
    except (OSError, tarfile.TarError, EOFError):
        return None
    return index


def check_samples(
    root: Path,
    shards: Sequence[str | None],
    keys: Sequence[str | None],
    sizes: Sequence[int | None],
    rows: Iterable[int],
    progress: Progress | None = None,
    digests: Sequence[str | None] | None = None,
    aside: Path | None = None,
) -> dict[int, str]:
    """Return {row: problem} for ``rows`` whose WebDataset sample is missing or unreadable.

    With ``digests`` (the sha256 column), every image is also read whole and compared.
    With ``aside`` (the set-aside folder), samples in the side shard ``aside/<shard>``
    count too (the shard's own copy wins).
    """
    rows = list(rows)
    wanted = sorted({shards[i] for i in rows if shards[i]})
    indexes: dict[str, ShardIndex | None] = {}
    for done, rel in enumerate(wanted):
        if progress is not None:
            progress("checking shards", done, len(wanted))
        path = _inside(root, rel)
        index = index_shard(path, digest=digests is not None) if path.is_file() else None
        side = aside / rel if aside is not None else None
        if side is not None and side.is_file():
            extra = index_shard(side, digest=digests is not None)
            if extra is not None:
                index = index or ShardIndex()
                index.image_ok = {**extra.image_ok, **index.image_ok}
        indexes[rel] = index
    problems: dict[int, str] = {}
    for i in rows:
        index = indexes.get(shards[i] or "")
        if index is None or not keys[i] or keys[i] not in index.image_ok:
            problems[i] = MISSING
            continue
        size, ok, sha = index.image_ok[keys[i]]
        if not ok or (sizes[i] is not None and size != sizes[i]):
            problems[i] = UNREADABLE
        elif digests is not None and digests[i] and sha != digests[i]:
            problems[i] = CHANGED
    return problems


@dataclass
class SyncResult:
    """What syncing the files to the table did (or would do, in a dry run)."""

    files_deleted: int = 0
    samples_dropped: int = 0
    shards_rewritten: int = 0
    folders_removed: int = 0


def sync_folders(
    root: Path, kept: set[str], dry_run: bool, base: Path | None = None, only_images: bool = False
) -> SyncResult:
    """Return what deleting the files under ``base`` (default ``root/images``) that no kept
    row names (paths relative to ``root``), then the folders left empty, did.

    With ``only_images``, files without an image extension are left alone (a folder the
    user chose may hold their own tables and notes).
    """
    result = SyncResult()
    base = root / IMAGES if base is None else base
    if not base.is_dir():
        return result
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # e.g. fetch's .gbifxdl state
        for name in filenames:
            path = Path(dirpath) / name
            if only_images and path.suffix.lower().lstrip(".") not in IMAGE_EXTS:
                continue
            if path.relative_to(root).as_posix() not in kept:
                result.files_deleted += 1
                if not dry_run:
                    path.unlink(missing_ok=True)
    result.folders_removed = remove_empty_folders(base, dry_run)
    return result


def remove_empty_folders(base: Path, dry_run: bool) -> int:
    """Return how many empty folders below ``base`` were removed (bottom-up)."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        if Path(dirpath) == base or any(p.startswith(".") for p in Path(dirpath).relative_to(base).parts):
            continue
        if filenames or any((Path(dirpath) / d).exists() for d in dirnames):
            continue
        removed += 1
        if not dry_run:
            try:
                os.rmdir(dirpath)
            except OSError:
                removed -= 1
    return removed
