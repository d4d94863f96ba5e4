"""The images a review shows: every fetched image of a dataset, kept or set aside, by key (url_hash)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageOps

from gbifxdl._locate import ImageLocator
from gbifxdl._marks import REVIEW
from gbifxdl.curate.toolkit import METADATA, REMOVED, provenance, read_table

THUMBS = REVIEW / "thumbs"
THUMB_SIZE = 224
_SAFE = re.compile(r"[0-9A-Za-z_-]{1,128}")


@dataclass
class Images:
    """Every reviewable image: parallel lists, in class then key order, and a key -> position map."""

    keys: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)
    shards: list[str | None] = field(default_factory=list)
    members: list[str | None] = field(default_factory=list)
    removed: list[str | None] = field(default_factory=list)  # removed_reason of a set-aside image
    names: dict[str, str] = field(default_factory=dict)  # class label -> species name
    position: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)


def _columns(path: Path, wanted: tuple[str, ...]) -> pa.Table | None:
    if not path.is_file():
        return None
    names = pq.read_schema(path).names
    table = pq.read_table(path, columns=[c for c in wanted if c in names])
    for name in wanted:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table.select(list(wanted))


def load_images(root: Path) -> Images:
    """Return the images of the dataset at ``root``: metadata.parquet's rows, then removed.parquet's
    rows not in it, each once, only those fetched (an image to look at)."""
    if not (root / METADATA).is_file():
        read_table(root / METADATA)  # raises the helpful error
    prov = provenance(pq.read_schema(root / METADATA).empty_table())
    class_column = (prov.get("curate_settings") or {}).get("class_column", "speciesKey")
    wanted = ("url_hash", class_column, "species", "path", "shard", "key", "outcome", "removed_reason")
    out = Images()
    rows: list[tuple[str, str, str | None, str | None, str | None, str | None]] = []
    seen: set[str] = set()
    for table in (_columns(root / METADATA, wanted), _columns(root / REMOVED, wanted)):
        if table is None:
            continue
        labels = pc.fill_null(pc.cast(table.column(class_column), pa.string()), "unlabeled").to_pylist()
        columns = [table.column(c).to_pylist() for c in ("url_hash", "species", "path", "shard", "key", "outcome",
                                                        "removed_reason")]
        for label, (key, species, path, shard, member, outcome, reason) in zip(labels, zip(*columns)):
            if not key or key in seen or (outcome not in (None, "ok")) or not (path or (shard and member)):
                continue
            seen.add(key)
            rows.append((label, key, path, shard, member, reason))
            if species and label not in out.names:
                out.names[label] = species
    rows.sort(key=lambda r: (_label_order(r[0]), r[5] is not None, r[1]))  # a class's kept images, then set aside
    for label, key, path, shard, member, reason in rows:
        out.position[key] = len(out.keys)
        out.keys.append(key)
        out.labels.append(label)
        out.paths.append(path)
        out.shards.append(shard)
        out.members.append(member)
        out.removed.append(reason)
    return out


def _label_order(label: str) -> tuple[int, int, str]:
    return (1, 0, label) if not label.isdigit() else (0, int(label), label)


def thumb_path(root: Path, key: str) -> Path:
    """Return where the thumbnail of image ``key`` is cached (a name made safe when the key is odd)."""
    name = key if _SAFE.fullmatch(key) else hashlib.sha1(key.encode()).hexdigest()
    return root / THUMBS / name[:2] / f"{name}.jpg"


def make_thumb(root: Path, images: Images, locator: ImageLocator, key: str, size: int = THUMB_SIZE) -> bytes | None:
    """Return the JPEG thumbnail of image ``key``, from the cache or made now and cached (None: no image)."""
    cached = thumb_path(root, key)
    try:
        return cached.read_bytes()
    except OSError:
        pass
    i = images.position[key]
    data = locator.data(images.paths[i], images.shards[i], images.members[i])
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size * 2, size * 2))
            small = ImageOps.exif_transpose(img).convert("RGB")
            small.thumbnail((size, size))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    thumb = buffer.getvalue()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.write_bytes(thumb)
        os.replace(tmp, cached)
    except OSError:
        pass  # a cache that cannot be written is only slower
    return thumb
