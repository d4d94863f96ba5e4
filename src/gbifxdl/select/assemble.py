"""Last step: join the wide columns back to the kept rows by row position, and write
the selection Parquet file in a stream.

The kept rows come sorted by media row, and GBIF writes media in occurrence order,
so both IPC files are read nearly sequentially, a few record batches at a time;
any other order is still correct, only slower. Memory stays at a few batches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.select.settings import FLOAT_COLUMNS, KEY_COLUMNS, MEDIA_COLUMNS, OCCURRENCE_COLUMNS
from gbifxdl.select.stream import INT_PATTERN, PassCounts, PassFiles, url_hashes

_FLOAT_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"

OUTPUT_SCHEMA = pa.schema(
    [(c, pa.int64() if c in KEY_COLUMNS or c == "gbifID" else pa.float64() if c in FLOAT_COLUMNS else pa.string())
     for c in OCCURRENCE_COLUMNS]
    + [(c, pa.string()) for c in MEDIA_COLUMNS]
    + [("url_hash", pa.string())]
)

# dictionary-encode only columns with few distinct values: trying it on URLs costs time for nothing
_DICTIONARY = [name for name in OUTPUT_SCHEMA.names if name not in {
    "gbifID", "identifier", "references", "url_hash", "created", "eventDate", "decimalLatitude", "decimalLongitude"}]


class RowFile:
    """Random access by row position to an Arrow IPC file, caching a few decoded batches.

    The file is memory-mapped (no copy through a read buffer), and mapped afresh every
    ``REMAP`` batches loaded: pages of a dropped mapping leave this process's resident
    set once its last cached batch goes, so RSS stays at a few batches.
    """

    REMAP = 16

    def __init__(self, path: Path, batch_rows: list[int], cache_size: int = 4) -> None:
        self._path = str(path)
        self._file: pa.MemoryMappedFile | None = None
        self._reader: pa.ipc.RecordBatchFileReader | None = None
        self._loads = 0
        self._open()
        # batch lengths as the writer recorded them: reading them here would decode every batch
        self._starts = np.concatenate([[0], np.cumsum(batch_rows, dtype=np.int64)])
        self._cache: OrderedDict[int, pa.RecordBatch] = OrderedDict()
        self._cache_size = cache_size
        self.schema = self._reader.schema  # type: ignore[union-attr]

    def _open(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = pa.memory_map(self._path, "r")
        self._reader = pa.ipc.open_file(self._file)

    def _batch(self, index: int) -> pa.RecordBatch:
        batch = self._cache.get(index)
        if batch is None:
            self._loads += 1
            if self._loads % self.REMAP == 0:
                self._open()
            batch = self._reader.get_record_batch(index)  # type: ignore[union-attr]
            self._cache[index] = batch
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return batch

    def take(self, positions: np.ndarray) -> pa.Table:
        """Return the rows at ``positions``, in that order."""
        if len(positions) == 0:
            return self.schema.empty_table()
        ordered = bool(np.all(positions[1:] >= positions[:-1]))
        order = None if ordered else np.argsort(positions, kind="stable")
        wanted = positions if order is None else positions[order]
        batch_ids = np.searchsorted(self._starts, wanted, side="right") - 1
        cuts = np.flatnonzero(np.diff(batch_ids)) + 1
        pieces = []
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(wanted)]):
            index = int(batch_ids[start])
            local = wanted[start:stop] - self._starts[index]
            pieces.append(self._batch(index).take(pa.array(local)))
        table = pa.Table.from_batches(pieces, self.schema)
        if order is None:
            return table
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))

    def close(self) -> None:
        self._cache.clear()
        if self._file is not None:
            self._file.close()


def _typed(values: pa.ChunkedArray | pa.Array, to: pa.DataType) -> pa.ChunkedArray | pa.Array:
    """Return ``values`` cast to ``to``; values that are not numbers become null."""
    if values.type == to:
        return values
    try:
        return pc.cast(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.match_substring_regex(values, INT_PATTERN if pa.types.is_integer(to) else _FLOAT_PATTERN)
        cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(values), pa.scalar(None, pa.string()))
        return pc.cast(cleaned, to)


def assemble(kept: Iterable[pa.RecordBatch], files: PassFiles, counts: PassCounts, output: Path,
             metadata: dict[bytes, bytes]) -> int:
    """Return the number of rows written to ``output``: the kept rows with all their columns.

    ``kept`` gives ``_mid`` and ``_row`` (row positions in the wide files) in output order.
    """
    schema = OUTPUT_SCHEMA.with_metadata(metadata)
    occ, med = RowFile(files.occurrences, counts.occurrence_batches), RowFile(files.media, counts.media_batches)
    duck = duckdb.connect(config={"threads": 1})
    rows = 0
    writing: Future[None] | None = None
    try:
        # encoding Parquet releases the GIL: write one table while the next is gathered
        with pq.ParquetWriter(output, schema, compression="snappy", use_dictionary=_DICTIONARY,
                              write_statistics=["gbifID", "speciesKey"]) as writer, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="gbifxdl-write") as pool:
            for batch in kept:
                if batch.num_rows == 0:
                    continue
                occ_part = occ.take(batch.column("_row").to_numpy())
                med_part = med.take(batch.column("_mid").to_numpy())
                occ_columns = [_typed(column, field.type) for column, field in zip(occ_part.columns, schema)]
                url_hash = url_hashes(duck, med_part.column("identifier"), "sha1")
                table = pa.Table.from_arrays([*occ_columns, *med_part.columns, url_hash], schema=schema)
                if writing is not None:
                    writing.result()
                writing = pool.submit(writer.write_table, table)
                rows += batch.num_rows
            if writing is not None:
                writing.result()
    finally:
        duck.close()
        occ.close()
        med.close()
    return rows
