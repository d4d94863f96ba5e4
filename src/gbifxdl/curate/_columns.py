"""Columnar access to every fetched row, without ever holding the whole table.

The fetched table is metadata.parquet followed by the rows of removed.parquet that
metadata.parquet lacks (``back`` rows; see ``_table.full_table``). At tens of millions of
rows the whole table does not fit in memory (a million rows of GBIF columns take about a
gigabyte in Arrow), so curation reads only the columns a decision needs, one batch at a
time, turning each into a compact numpy array (a boolean, integer codes, hash words), and
writes its output tables by streaming the input batches again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.curate import _table
from gbifxdl.errors import CurateError

BATCH_ROWS = 262_144  # rows a batch of a few columns
WIDE_ROWS = 65_536  # rows a batch of every column (a GBIF row is about a kilobyte in Arrow)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16)


@dataclass
class Source:
    """The fetched table as files: metadata.parquet, then the ``back`` rows of removed.parquet."""

    meta_path: Path
    removed_path: Path | None  # None when absent or empty
    n_meta: int
    back: np.ndarray  # row numbers in removed.parquet of the rows metadata.parquet lacks
    schema: pa.Schema  # the full table's (added columns dropped, back rows' columns promoted)
    meta_schema: pa.Schema
    removed_schema: pa.Schema | None

    @property
    def num_rows(self) -> int:
        return self.n_meta + len(self.back)

    def has(self, name: str) -> bool:
        return name in self.schema.names

    def batches(self, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        """Yield the full table's ``columns`` (those it has; absent ones as nulls) in row order."""
        yield from _batches(self.meta_path, self.meta_schema, columns, batch_rows, self.schema)
        if self.removed_path is not None and len(self.back):
            assert self.removed_schema is not None
            done = 0
            for part in _batches(self.removed_path, self.removed_schema, columns, batch_rows, self.schema):
                rows = self.back[(self.back >= done) & (self.back < done + part.num_rows)] - done
                done += part.num_rows
                if len(rows):
                    yield part.take(pa.array(rows, pa.int64()))

    def gather(self, columns: list[str], convert: Callable[[pa.Table], np.ndarray]) -> np.ndarray:
        """Return ``convert`` of every batch of ``columns``, concatenated (a numpy array per row)."""
        out: np.ndarray | None = None
        start = 0
        for part in self.batches(columns):
            values = convert(part)
            if out is None:  # one array of every row, filled in place: never a list of parts and their copy
                out = np.empty((self.num_rows, *values.shape[1:]), dtype=values.dtype)
            out[start:start + len(values)] = values
            start += len(values)
        if out is None:
            return convert(pa.table({c: pa.array([], self.schema.field(c).type if c in self.schema.names
                                                  else pa.string()) for c in columns}))
        return out

    def take(self, name: str, rows: np.ndarray, batch_rows: int = BATCH_ROWS) -> pa.Array:
        """Return column ``name`` at the sorted row numbers ``rows`` (a few rows: read whole batches, keep those)."""
        out, start = [], 0
        rows = np.asarray(rows, dtype=np.int64)
        for part in self.batches([name], batch_rows):
            lo, hi = np.searchsorted(rows, [start, start + part.num_rows])
            if hi > lo:
                out.append(part.column(0).take(pa.array(rows[lo:hi] - start)))
            start += part.num_rows
        field = self.schema.field(name) if name in self.schema.names else pa.field(name, pa.string())
        return pa.concat_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in out]) \
            if out else pa.array([], field.type)


def _batches(path: Path, schema: pa.Schema, columns: list[str], batch_rows: int, full: pa.Schema
             ) -> Iterator[pa.Table]:
    present = [c for c in columns if c in schema.names]
    # a buffered stream, not whole column chunks pre-read: reading every column of a batch stays small
    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    for batch in pf.iter_batches(batch_size=batch_rows, columns=present, use_threads=True):
        table = pa.Table.from_batches([batch])
        arrays = []
        for name in columns:
            want = full.field(name).type if name in full.names else pa.string()
            if name in present:
                column = table.column(name)
                arrays.append(column.cast(want) if column.type != want else column)
            else:
                arrays.append(pa.nulls(table.num_rows, want))
        yield pa.table(arrays, names=columns) if columns else pa.table({"_": pa.nulls(batch.num_rows)}).select([])


def open_source(root: Path) -> Source:
    """Return the fetched table of ``root`` as a Source (raises a CurateError saying what to do)."""
    meta_path, removed_path = root / _table.METADATA, root / _table.REMOVED
    if not meta_path.is_file():
        _table.read_table(meta_path)  # raises the helpful error
    try:
        meta_file = pq.ParquetFile(meta_path, pre_buffer=False, buffer_size=1 << 20)
    except (OSError, pa.ArrowInvalid) as exc:
        raise CurateError(f"{meta_path} is not a readable Parquet file ({exc}); "
                          "rerun `gbifxdl fetch` to rewrite it") from None
    meta_schema = meta_file.schema_arrow
    _table.require_columns(meta_schema.empty_table(), ("outcome", "url_hash"), meta_path)
    base = _drop(meta_schema, _table.ADDED_KEPT)
    back, removed_schema, used = np.empty(0, dtype=np.int64), None, None
    if removed_path.is_file():
        try:
            removed_file = pq.ParquetFile(removed_path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise CurateError(f"{removed_path} is not a readable Parquet file ({exc}); "
                              "rerun `gbifxdl fetch` to rewrite it") from None
        removed_schema = removed_file.schema_arrow
        if removed_file.metadata.num_rows:
            used = removed_path
            keys = _table.row_keys(pq.read_table(removed_path, columns=[
                c for c in ("url_hash", "gbifID") if c in removed_schema.names]))
            in_meta = np.zeros(len(keys), dtype=bool)
            meta_keys = [c for c in ("url_hash", "gbifID") if c in meta_schema.names]
            for batch in meta_file.iter_batches(batch_size=BATCH_ROWS, columns=meta_keys):
                found = pc.index_in(keys, value_set=_table.row_keys(pa.Table.from_batches([batch])))
                in_meta |= pc.is_valid(found).to_numpy(zero_copy_only=False)
            back = np.flatnonzero(~in_meta)
            if len(back):
                try:
                    base = pa.unify_schemas([base, _drop(removed_schema, _table.ADDED_REMOVED)],
                                            promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise CurateError(
                        f"removed.parquet has columns that do not match metadata.parquet ({exc}); "
                        "move it aside and run curate again"
                    ) from None
    return Source(meta_path, used, meta_file.metadata.num_rows, back, base, meta_schema, removed_schema)


def _drop(schema: pa.Schema, names: tuple[str, ...]) -> pa.Schema:
    gone = set(_table.added_present(schema.names, names))
    return pa.schema([f for f in schema if f.name not in gone], metadata=schema.metadata)


def mask(table: pa.Table, predicate: Callable[[pa.ChunkedArray], pa.ChunkedArray]) -> np.ndarray:
    """Return a boolean numpy array: ``predicate`` of the first column, null counted False."""
    return pc.fill_null(predicate(table.column(0)), False).to_numpy()


def present(table: pa.Table) -> np.ndarray:
    """Return whether each value of the first column is a non-null, non-empty string."""
    return mask(table, lambda c: pc.not_equal(c, ""))


def integers(table: pa.Table, null: int = 0) -> np.ndarray:
    """Return the first column as int64, ``null`` where null."""
    return pc.fill_null(pc.cast(table.column(0), pa.int64()), null).to_numpy()


def digest_words(table: pa.Table) -> np.ndarray:
    """Return each value of the first column (a text digest) as two uint64 words, (m, 2); zeros for null.

    A lowercase 64-hex SHA-256 is read as its first 128 bits (two equal prefixes of distinct
    digests among 10^8 rows: probability below 10^-22); any other text is first hashed
    with SHA-256, so equal words still mean equal values. Word 0 is never 0 for a value,
    so (0, 0) marks null.
    """
    import hashlib

    column = table.column(0).combine_chunks()
    m = len(column)
    out = np.zeros((m, 2), dtype=np.uint64)
    if not m:
        return out
    if column.type != pa.string():
        column = column.cast(pa.string())
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False)
    hexes = valid & (lengths == 64)
    if hexes.any():
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset:column.offset + m + 1]
        data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
        rows = np.flatnonzero(hexes)
        chars = data[offsets[rows][:, None] + np.arange(32)]
        nibbles = _NIBBLE[chars]
        good = (nibbles != 255).all(axis=1) & (_NIBBLE[data[offsets[rows][:, None] + np.arange(32, 64)]] != 255).all(axis=1)
        packed = (nibbles[:, 0::2].astype(np.uint64) << np.uint64(4)) | nibbles[:, 1::2]
        shifts = np.arange(7, -1, -1, dtype=np.uint64) * np.uint64(8)
        words = np.stack([(packed[:, :8] << shifts).sum(axis=1, dtype=np.uint64),
                          (packed[:, 8:] << shifts).sum(axis=1, dtype=np.uint64)], axis=1)
        out[rows[good]] = words[good]
        hexes[rows[~good]] = False
    other = np.flatnonzero(valid & ~hexes)
    for i in other:  # not a SHA-256 hex digest (rare): hash the text itself
        d = hashlib.sha256(("\x00" + column[int(i)].as_py()).encode()).digest()
        out[i] = (int.from_bytes(d[:8], "big"), int.from_bytes(d[8:16], "big"))
    out[valid & (out[:, 0] == 0), 0] = 1  # keep (0, 0) for null (one value in 2^64 shifts: harmless)
    return out


def codes_of_words(words: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return integer codes of ``words[rows]`` (equal words, equal codes; -1 for null (0, 0))."""
    codes = np.full(len(rows), -1, dtype=np.int64)
    live = np.flatnonzero(words[rows, 0] != 0)
    if not len(live):
        return codes
    first, second = words[rows[live], 0], words[rows[live], 1]
    order = np.lexsort((second, first))
    first, second = first[order], second[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    del first, second
    codes[live[order]] = np.cumsum(new) - 1
    return codes


def equal_word_edges(words: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return edges (first row, row) linking the ``rows`` whose non-null ``words`` are equal.

    What ``_dedupe.equal_edges`` gives for the values' codes, from one stable sort (no
    np.unique and its copies: this runs on every row of the table).
    """
    live = rows[words[rows, 0] != 0]
    first, second = words[live, 0], words[live, 1]
    order = np.lexsort((second, first))  # stable: within a value, rows keep their order
    first, second = first[order], second[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    del first, second
    head = np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))  # each position's run start
    rep = live[order[head]]
    linked = ~new
    return rep[linked], live[order[linked]]
