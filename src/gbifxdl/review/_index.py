"""The images a review shows: every fetched image of a dataset, kept or set aside, by key (url_hash)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

from gbifxdl._io import write_text_atomic
from gbifxdl._locate import METADATA, REMOVED, ImageLocator, fetched_images
from gbifxdl._marks import REVIEW


# pyarrow, numpy and Pillow are imported where used: a dataset opened again reads its index from
# INDEX_CACHE (JSON) without them, and the server answers sooner
THUMBS = REVIEW / "thumbs"
INDEX_CACHE = REVIEW / "index-v1.json"
_FIELDS = ("keys", "labels", "paths", "shards", "members", "removed")
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


def check_dataset(root: Path) -> None:
    """Raise the helpful error when ``root`` is not a fetched dataset folder."""
    if not (root / METADATA).is_file():
        from gbifxdl.curate.toolkit import read_table

        read_table(root / METADATA)  # raises it


def _stamp(root: Path) -> list[Any]:
    """Return what the index is made from: each table's size and time (None: absent)."""
    out: list[Any] = []
    for name in (METADATA, REMOVED):
        try:
            st = (root / name).stat()
            out.append([name, st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            out.append([name, None, None])
    return out


def _cached(root: Path, stamp: list[Any]) -> Images | None:
    """Return the index saved for these very tables, or None (absent, stale or not well formed)."""
    try:
        saved = json.loads((root / INDEX_CACHE).read_text())
        if saved.get("stamp") != stamp:
            return None
        out = Images(**{f: saved[f] for f in _FIELDS}, names=saved["names"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    n = len(out.keys)
    if not all(isinstance(getattr(out, f), list) and len(getattr(out, f)) == n for f in _FIELDS):
        return None
    if not all(isinstance(k, str) for k in out.keys) or not isinstance(out.names, dict):
        return None
    out.position = dict(zip(out.keys, range(n)))
    return out if len(out.position) == n else None


def load_images(root: Path) -> Images:
    """Return the images of the dataset at ``root``: metadata.parquet's rows, then removed.parquet's
    rows not in it, each once, only those fetched (an image to look at); in class order (numeric
    labels by number), a class's kept images first, then by key.

    Read from the tables (columnar) and saved in ``.gbifxdl/review/index-v1.json``, which later
    calls read while the tables are unchanged (same sizes and times).
    """
    check_dataset(root)
    stamp = _stamp(root)
    found = _cached(root, stamp)
    if found is not None:
        return found
    out = _read_tables(root)
    try:
        (root / REVIEW).mkdir(parents=True, exist_ok=True)
        saved = {f: getattr(out, f) for f in _FIELDS}
        write_text_atomic(root / INDEX_CACHE, json.dumps({"stamp": stamp, **saved, "names": out.names}))
    except OSError:
        pass  # a cache that cannot be written is only slower
    return out


def _read_tables(root: Path) -> Images:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from gbifxdl.curate.toolkit import provenance

    prov = provenance(pa.Table.from_batches([], schema=pq.read_schema(root / METADATA)))  # (empty_table imports pandas)
    class_column = (prov.get("curate_settings") or {}).get("class_column", "speciesKey")
    found = fetched_images(root, (class_column, "species", "removed_reason"))
    out = Images()
    if not found.num_rows:
        return out
    rows = pa.table({"key": found["url_hash"], "label": pc.fill_null(found[class_column], "unlabeled"),
                     "species": found["species"], "path": found["path"], "shard": found["shard"],
                     "member": found["key"], "reason": found["removed_reason"]})
    digits = pc.utf8_is_digit(rows["label"])
    number = pc.if_else(digits, rows["label"], None)
    rows = rows.append_column("not_numeric", pc.invert(digits)).append_column(
        "number", pc.cast(pc.cast(number, pa.string()), pa.float64())).append_column(
        "aside", pc.is_valid(rows["reason"]))
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("not_numeric", "ascending"), ("number", "ascending"),
                                                      ("label", "ascending"), ("aside", "ascending"),
                                                      ("key", "ascending")]))
    out.keys = rows["key"].to_pylist()
    out.labels = rows["label"].to_pylist()
    out.paths = rows["path"].to_pylist()
    out.shards = rows["shard"].to_pylist()
    out.members = rows["member"].to_pylist()
    out.removed = rows["reason"].to_pylist()
    out.position = dict(zip(out.keys, range(len(out.keys))))
    named = rows.filter(pc.is_valid(rows["species"])).group_by("label", use_threads=False).aggregate(
        [("species", "first")])
    out.names = dict(zip(named["label"].to_pylist(), named["species_first"].to_pylist()))
    return out


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
    from gbifxdl.curate.toolkit import thumbnail_jpeg

    i = images.position[key]
    data = locator.data(images.paths[i], images.shards[i], images.members[i])
    thumb = None if data is None else thumbnail_jpeg(data, size, quality=80)
    if thumb is None:
        return None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.write_bytes(thumb)
        os.replace(tmp, cached)
    except OSError:
        pass  # a cache that cannot be written is only slower
    return thumb
