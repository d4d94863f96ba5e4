"""Where a dataset's images are: a row's file, or its member of a tar shard, in the dataset folder
or in the folder where a curation set it aside (and the names of the two tables whose rows name
them: ``metadata.parquet``, ``removed.parquet``).

A row names its image by ``path`` (folders layout, relative to the dataset folder) or by ``shard``
and ``key`` (WebDataset layout: ``key.<ext>`` inside the tar). A curation moves what it removes to
``SET_ASIDE`` under the same relative path, and a later one may bring it back, so a reader looks in
both places. Stages below curation that read images (model inference) and curation itself locate
them here, one way.
"""

from __future__ import annotations

import collections
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

METADATA = "metadata.parquet"  # the dataset's rows: fetch writes it, curation rewrites it with the kept ones
REMOVED = "removed.parquet"  # the rows a curation removed, with their reasons
SET_ASIDE = Path(".gbifxdl") / "removed"  # what curation removed, kept so that a later curation can restore it
# an image a curation cut to a detector's crop keeps its original whole here, as <url_hash>.<ext>, the
# images whose crop is in place listed in CROPS (url_hash, ext, box): a model reads the original
ORIGINALS = Path(".gbifxdl") / "originals"
CROPS = ORIGINALS / "crops.parquet"
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp")

# an image's bytes: (file, offset, size) of a tar member, or (file, None, None) for a whole file
Source = tuple[str, "int | None", "int | None"]
Box = tuple[int, int, int, int]  # a crop in the original's pixels: left, top, right, bottom


_LOCATING = ("url_hash", "path", "shard", "key")  # what names an image: fetched_images' first columns


def fetched_images(root: Path, columns: tuple[str, ...] = ()) -> "pa.Table":
    """Return the images the dataset at ``root`` has: the rows of ``METADATA``, then of ``REMOVED``,
    with an image fetched (outcome ok, or none: a table before outcomes) and located (a ``path``, or a
    ``shard`` and ``key``), each ``url_hash`` once (its first row), in that order.

    Columns: ``url_hash``, ``path``, ``shard``, ``key``, then ``columns`` (strings; nulls where a
    table lacks one). Empty when neither table exists. Read column by column: millions of rows.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = (*_LOCATING, *[c for c in columns if c not in _LOCATING], "outcome")
    parts = []
    for path in (root / METADATA, root / REMOVED):
        if not path.is_file():
            continue
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in wanted if c in names])
        table = pa.table({c: pc.cast(table[c], pa.string()) if c in names else pa.nulls(table.num_rows, pa.string())
                          for c in wanted})
        fetched = pc.and_(pc.not_equal(pc.utf8_length(table["url_hash"]), 0),
                          pc.or_kleene(pc.is_null(table["outcome"]), pc.equal(table["outcome"], "ok")))
        located = pc.or_(pc.is_valid(table["path"]), pc.and_(pc.is_valid(table["shard"]), pc.is_valid(table["key"])))
        parts.append(table.filter(pc.and_(pc.fill_null(fetched, False), pc.fill_null(located, False))))
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in wanted[:-1]})
    rows = pa.concat_tables(parts).drop_columns(["outcome"])
    rows = rows.append_column("_n", pa.array(np.arange(rows.num_rows)))
    first = rows.group_by("url_hash", use_threads=False).aggregate([("_n", "min")])["_n_min"]
    return rows.take(pc.sort_indices(first)).drop_columns(["_n"])



def crops_in_place(root: Path) -> dict[str, tuple[str, Box | None]]:
    """Return {url_hash: (ext, the box in place, or None while it changes)} of the images a curation cut
    to a crop, whose original is kept at :func:`original_path` (``CROPS``; empty when none is)."""
    path = root / CROPS
    if not path.is_file():
        return {}
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["url_hash", "ext", "box"])
    return {u: (e, tuple(b) if b is not None else None) for u, e, b in zip(  # type: ignore[misc]
        table.column("url_hash").to_pylist(), table.column("ext").to_pylist(), table.column("box").to_pylist())}


def original_path(root: Path, url_hash: str, ext: str) -> Path:
    """Return where the original of image ``url_hash`` is kept while a crop is in place."""
    return root / ORIGINALS / f"{url_hash}.{ext}"


def key_ext(name: str) -> tuple[str, str]:
    """Return a tar member's sample key (its path up to the first dot of its base name) and extension."""
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")  # WebDataset: the key ends at the first dot
    return (name[: len(name) - len(base)] + key, ext.lower())


class ImageLocator:
    """Finds the images of one dataset folder's rows. Shard indexes (key -> member) are built once per
    shard and kept for the last ``shards_held`` shards (None: all)."""

    def __init__(self, root: Path, shards_held: int | None = None) -> None:
        self.root = root.resolve()
        self.shards_held = shards_held
        self._shards: collections.OrderedDict[Path, dict[str, tuple[int, int]] | None] = collections.OrderedDict()

    def _within(self, rel: str) -> Path | None:
        """Return the file at ``rel`` in the dataset, else set aside (never outside the dataset folder)."""
        for base in (self.root, self.root / SET_ASIDE):
            path = (base / rel).resolve()
            if path.is_relative_to(self.root) and path.is_file():
                return path
        return None

    def _index(self, path: Path) -> dict[str, tuple[int, int]] | None:
        if path in self._shards:
            self._shards.move_to_end(path)
            return self._shards[path]
        index: dict[str, tuple[int, int]] | None = {}
        try:
            with tarfile.open(path, "r:") as tar:
                for info in tar:
                    key, ext = key_ext(info.name)
                    if info.isfile() and ext in IMAGE_EXTS and key not in index:
                        index[key] = (info.offset_data, info.size)
        except (OSError, tarfile.TarError, EOFError):
            index = None
        self._shards[path] = index
        if self.shards_held is not None and len(self._shards) > self.shards_held:
            self._shards.popitem(last=False)
        return index

    def source(self, path: str | None, shard: str | None, key: str | None) -> Source | None:
        """Return where a row's image is, or None when it is in neither place."""
        if shard and key:
            for base in (self.root, self.root / SET_ASIDE):
                tar = (base / shard).resolve()
                if not tar.is_relative_to(self.root) or not tar.is_file():
                    continue
                index = self._index(tar)
                member = index.get(key) if index else None
                if member is not None:
                    return (str(tar), member[0], member[1])
            return None
        found = self._within(path) if path else None
        return (str(found), None, None) if found is not None else None

    def data(self, path: str | None, shard: str | None, key: str | None) -> bytes | None:
        """Return the bytes of a row's image, or None when it cannot be found or read."""
        where = self.source(path, shard, key)
        if where is None:
            return None
        try:
            return read_source(where)
        except OSError:
            return None


def read_source(where: Source) -> bytes:
    """Return the bytes at ``where`` (see :class:`ImageLocator`); OSError when they cannot be read whole."""
    file, offset, size = where
    with open(file, "rb") as fh:
        if offset is None:
            return fh.read()
        fh.seek(offset)
        data = fh.read(size)
    if len(data) != size:
        raise OSError("the image's bytes are cut short")
    return data
