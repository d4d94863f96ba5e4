"""Thumbnails as data URIs, read from image files or from WebDataset shards."""

from __future__ import annotations

import base64
import tarfile
from pathlib import Path
from typing import Sequence

from gbifxdl.curate.toolkit import IMAGE_EXTS, thumbnail_jpeg


def thumbnail_uri(data: bytes, size: int) -> str | None:
    """Return a JPEG data URI of the image in ``data``, at most ``size`` pixels a side (None: unreadable)."""
    small = thumbnail_jpeg(data, size, quality=70)
    return None if small is None else "data:image/jpeg;base64," + base64.b64encode(small).decode()


def thumbnails(
    root: Path,
    wanted: Sequence[int],
    paths: Sequence[str | None],
    shards: Sequence[str | None],
    keys: Sequence[str | None],
    size: int = 112,
) -> dict[int, str]:
    """Return {row: data URI} for the ``wanted`` rows whose image can be read."""
    found: dict[int, str] = {}
    by_shard: dict[str, dict[str, int]] = {}
    for i in wanted:
        if shards[i] and keys[i]:
            by_shard.setdefault(shards[i], {})[keys[i]] = i
        elif paths[i]:
            try:
                uri = thumbnail_uri((root / paths[i]).read_bytes(), size)
            except OSError:
                continue
            if uri:
                found[i] = uri
    for rel, members in by_shard.items():
        try:
            with tarfile.open(root / rel, "r:") as tar:
                for info in tar:
                    key, _, ext = info.name.partition(".")
                    if info.isfile() and key in members and ext.lower() in IMAGE_EXTS:
                        data = tar.extractfile(info)
                        uri = thumbnail_uri(data.read(), size) if data else None
                        if uri:
                            found[members[key]] = uri
        except (OSError, tarfile.TarError):
            continue
    return found
