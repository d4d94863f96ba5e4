"""Writing curation's two tables by streaming the fetched table, batch by batch.

metadata.parquet gets the kept rows with ``split`` and ``set``; removed.parquet the
removed ones with ``removed_reason`` and ``duplicate_of``. Neither is ever built whole in
memory. A table that would come out identical (same rows, values and provenance) is
not rewritten, so a second run with the same settings changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.curate import _table
from gbifxdl.curate._columns import WIDE_ROWS, Source


class Column:
    """An added column: a code per row of the full table, and the value of each code (-1 = null); the
    values are texts, or any Arrow array (a box, a score)."""

    def __init__(self, name: str, codes: np.ndarray, texts: pa.Array) -> None:
        self.name, self.codes, self.texts = name, codes, texts

    def values(self, rows: np.ndarray) -> pa.Array:
        codes = self.codes[rows]
        return self.texts.take(pa.array(codes, mask=codes < 0))


def _rows_of(src: Source, keep: np.ndarray, added: list[Column], schema: pa.Schema) -> Iterator[pa.Table]:
    names = [f.name for f in src.schema]
    start = 0
    for part in src.batches(names, WIDE_ROWS):
        rows = np.flatnonzero(keep[start:start + part.num_rows])
        if len(rows):
            picked = part.take(pa.array(rows, pa.int64()))
            arrays = list(picked.columns) + [c.values(rows + start) for c in added]
            yield pa.Table.from_arrays(arrays, schema=schema)
        start += part.num_rows


def stream(src: Source, keep: np.ndarray, added: list[Column], metadata: dict[bytes, bytes]) -> _table.Rows:
    """Return the rows where ``keep`` is True with the ``added`` columns, as streamed Rows."""
    schema = pa.schema(list(src.schema) + [pa.field(c.name, c.texts.type) for c in added], metadata=metadata)
    return _table.Rows(schema, lambda: _rows_of(src, keep, added, schema))


def _interim_rows(removed: _table.Rows, previous_path: Path, back_rows: np.ndarray) -> Iterator[pa.Table]:
    yield from removed.batches()
    if not len(back_rows):
        return
    start = 0
    for batch in pq.ParquetFile(previous_path, pre_buffer=False, buffer_size=1 << 20).iter_batches(batch_size=WIDE_ROWS):
        rows = back_rows[(back_rows >= start) & (back_rows < start + batch.num_rows)] - start
        start += batch.num_rows
        if len(rows):
            part = pa.Table.from_batches([batch]).take(pa.array(rows, pa.int64()))
            arrays = [part.column(f.name).cast(f.type) if f.name in part.column_names else pa.nulls(len(rows), f.type)
                      for f in removed.schema]
            yield pa.Table.from_arrays(arrays, schema=removed.schema)


def _same_added(src: Source, path: Path, added: list[Column], rows: np.ndarray) -> bool:
    """Return whether the table at ``path`` already holds the ``added`` columns' values for ``rows`` (its rows, in order)."""
    names = [c.name for c in added]
    if not all(n in pq.ParquetFile(path).schema_arrow.names for n in names):
        return False
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=262_144, columns=names):
        for c in added:
            new = c.values(rows[start:start + batch.num_rows])
            if batch.column(c.name).type != new.type or not batch.column(c.name).equals(new):
                return False
        start += batch.num_rows
    return start == len(rows)


def write_tables(root: Path, src: Source, keep: np.ndarray, kept_added: list[Column], removed_added: list[Column],
                 metadata: dict[bytes, bytes], restored_back: np.ndarray) -> None:
    """Write removed.parquet, then metadata.parquet, so that their union is every row at any kill.

    ``restored_back``: row numbers in the old removed.parquet of rows kept now (until the
    new metadata.parquet is in place, removed.parquet must still hold them).
    """
    # the streams read the input tables while the outputs replace them: read them through links
    # to the input files (a rename leaves a link's file intact), removed when done
    inputs = root / ".gbifxdl" / "curate-input"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    src = dataclasses.replace(src, meta_path=_link(src.meta_path, inputs / "metadata.parquet"),
                              removed_path=None if src.removed_path is None
                              else _link(src.removed_path, inputs / "removed.parquet"))
    try:
        _write(root, src, keep, kept_added, removed_added, metadata, restored_back)
    finally:
        shutil.rmtree(inputs, ignore_errors=True)


def _link(path: Path, link: Path) -> Path:
    try:
        os.link(path, link)
    except OSError:  # a file system without hard links: a copy
        shutil.copyfile(path, link)
    return link


def _write(root: Path, src: Source, keep: np.ndarray, kept_added: list[Column], removed_added: list[Column],
           metadata: dict[bytes, bytes], restored_back: np.ndarray) -> None:
    removed_path, meta_path = root / _table.REMOVED, root / _table.METADATA
    kept = stream(src, keep, kept_added, metadata)
    removed = stream(src, ~keep, removed_added, metadata)
    n_meta = src.n_meta
    gone = np.flatnonzero(~keep)
    previous = pq.ParquetFile(removed_path) if removed_path.is_file() else None
    removed_same = (previous is not None and not len(restored_back) and len(gone) == previous.metadata.num_rows
                    and len(src.back) == len(gone) and bool(np.all(gone >= n_meta))
                    and previous.schema_arrow.equals(removed.schema, check_metadata=True)
                    and _same_added(src, removed_path, removed_added, gone))
    interim = removed
    if len(restored_back) and src.removed_path is not None:
        prev_path = src.removed_path
        interim = _table.Rows(removed.schema, lambda: _interim_rows(removed, prev_path, restored_back))
    if not removed_same and (len(gone) or previous is not None):
        _table.write_table(interim, removed_path)
    kept_rows = np.flatnonzero(keep)
    original = pq.ParquetFile(meta_path)
    # unchanged: every row of metadata.parquet kept (and no other), same split/set, same provenance
    kept_same = (len(kept_rows) == n_meta == original.metadata.num_rows and bool(keep[:n_meta].all())
                 and original.schema_arrow.equals(kept.schema, check_metadata=True)
                 and _same_added(src, meta_path, kept_added, kept_rows))
    if not kept_same:
        _table.write_table(kept, meta_path)
    if interim is not removed:
        _table.write_table(removed, removed_path)


def values_column(name: str, n: int, rows: np.ndarray, values: pa.Array) -> Column:
    """Return the added column ``name`` holding ``values[k]`` at row ``rows[k]`` of ``n`` rows (null elsewhere)."""
    codes = np.full(n, -1, dtype=np.int64)
    codes[rows] = np.arange(len(rows))
    return Column(name, codes, values)


def texts(values: list[str]) -> pa.Array:
    """Return ``values`` as an Arrow string array (the texts of a Column's codes)."""
    return pa.array(values, pa.string())


def dup_texts(src: Source, dup_of: np.ndarray) -> Column:
    """Return the ``duplicate_of`` column: the url_hash of each removed row's kept copy."""
    wanted = np.unique(dup_of[dup_of >= 0])
    urls = src.take("url_hash", wanted) if len(wanted) else pa.array([], pa.string())
    codes = np.full(len(dup_of), -1, dtype=np.int32 if len(wanted) < 2**31 else np.int64)
    has = dup_of >= 0
    codes[has] = np.searchsorted(wanted, dup_of[has])
    return Column("duplicate_of", codes, pc.cast(urls, pa.string()))
