"""First pass: stream the core and the multimedia member, each in its own thread,
filter what each file alone decides, and write what is left to temporary files.

Both members are inflated and parsed at once, each in chunks on several threads (Arrow
parses and ISA-L or zlib inflates outside the GIL). Each member gives two files: its
output columns for every parsed row as uncompressed Arrow IPC (read back by row position
when the output is assembled), and a narrow Parquet file of keys for the rows the
filters kept (id, row position, class, random draws, a 64-bit hash of the URL; no
strings but the class) that DuckDB joins, de-duplicates and samples.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.archive import Archive, FileLayout
from gbifxdl.errors import ArchiveError, SelectionError
from gbifxdl.select.settings import (
    MEDIA_COLUMNS,
    OCCURRENCE_COLUMNS,
    SelectSettings,
    license_code,
)

INT_PATTERN = r"^\s*-?\d{1,18}\s*$"
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)  # lz4 here cost more than the parse


@dataclass
class PassCounts:
    """Rows read and dropped in the first pass, per member."""

    occurrences_read: int = 0
    media_read: int = 0
    dropped_occurrences: Counter[str] = field(default_factory=Counter)
    dropped_media: Counter[str] = field(default_factory=Counter)
    bad_row_examples: list[str] = field(default_factory=list)
    occurrence_batches: list[int] = field(default_factory=list)  # rows per batch of the IPC files
    media_batches: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PassFiles:
    """The temporary files the first pass wrote, in its work folder."""

    occurrences: Path  # IPC: the occurrence columns of the output (strings but gbifID), in file order
    occurrence_keys: Path  # Parquet: gbifID, _row (position in `occurrences`), cls
    dropped_ids: Path  # Parquet: gbifID of occurrences a filter dropped, to tell why media went
    media: Path  # IPC: the media columns of the output, in file order
    media_keys: Path  # Parquet: _mid (position in `media`), gbifID, h (64-bit hash of the URL), r_occ, r_cap [, cls]

    @classmethod
    def under(cls, workdir: Path) -> PassFiles:
        """Return the file names used under ``workdir``."""
        return cls(*(workdir / name for name in (
            "occurrences.arrow", "occurrence_keys.parquet", "dropped_ids.parquet", "media.arrow",
            "media_keys.parquet")))


def class_source(settings: SelectSettings, archive: Archive) -> str:
    """Return ``"media"`` or ``"occurrence"``: which member holds the class column."""
    column = settings.class_column
    if column in MEDIA_COLUMNS:
        return "media"
    if column in OCCURRENCE_COLUMNS or archive.core.field(column) is not None:
        return "occurrence"
    raise SelectionError(
        f"class_column {column!r} is neither a selection column nor declared in the archive's "
        "meta.xml; use speciesKey, genusKey, family, ... or another occurrence column"
    )


def stream_members(
    archive: Archive, multimedia: FileLayout, settings: SelectSettings, workdir: Path,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[PassFiles, PassCounts]:
    """Return the temporary files and counts of the first pass over both members."""
    files = PassFiles.under(workdir)
    counts = PassCounts()
    errors: list[BaseException] = []
    from_media = class_source(settings, archive) == "media"

    def guarded(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(exc)
        return run

    threads = [
        threading.Thread(target=guarded(lambda: _occurrences(archive, settings, files, counts, on_bytes,
                                                             with_class=not from_media))),
        threading.Thread(target=guarded(lambda: _media(archive, multimedia, settings, files, counts, on_bytes,
                                                       with_class=from_media))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return files, counts


class _Sink:
    """Writes the wide IPC file and the narrow Parquet file of one member.

    The wide file gets every parsed row, filtered or not: its row positions are then the
    reader's own, and filtering the wide columns (a copy of all of them) is never paid.
    Key rows are written in groups of :attr:`ROW_GROUP`, through ``finish`` if given
    (work done once per group rather than once per parsed batch).
    """

    ROW_GROUP = 128 * 1024  # key rows per Parquet row group: parsed batches are much smaller

    def __init__(self, wide_path: Path, keys_path: Path, batch_rows: list[int], keys_schema: pa.Schema,
                 finish: Callable[[pa.Table], pa.Table] | None = None, compression: str = "none") -> None:
        self.wide_path, self.keys_path = wide_path, keys_path
        self.batch_rows = batch_rows
        self.keys_schema = keys_schema  # as written, after ``finish``
        self.finish = finish
        self.compression = compression
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.wide: pa.ipc.RecordBatchFileWriter | None = None
        self.keys: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, wide: pa.RecordBatch | None, keys: pa.RecordBatch) -> None:
        if wide is not None:
            if self.wide is None:
                self.wide = pa.ipc.new_file(self.wide_path, wide.schema, options=_IPC_OPTIONS)
            self.wide.write_batch(wide)
            self.rows += wide.num_rows
            self.batch_rows.append(wide.num_rows)
        if keys.num_rows:
            self._pending.append(keys)
            self._pending_rows += keys.num_rows
        if self._pending_rows >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        table = pa.Table.from_batches(self._pending)
        self._pending, self._pending_rows = [], 0
        if self.finish is not None:
            table = self.finish(table)
        if self.keys is None:
            # plain and uncompressed: these files live a minute, writing speed is what counts
            self.keys = pq.ParquetWriter(self.keys_path, self.keys_schema, compression=self.compression,
                                         use_dictionary=["cls"] if "cls" in self.keys_schema.names else False)
        self.keys.write_table(table, row_group_size=table.num_rows)

    def close(self, wide_schema: pa.Schema | None) -> None:
        self._flush()
        for writer in (self.wide, self.keys):
            if writer is not None:
                writer.close()
        if self.wide is None and wide_schema is not None:  # nothing read: still leave readable, empty files
            pa.ipc.new_file(self.wide_path, wide_schema).close()
        if self.keys is None:
            pq.write_table(self.keys_schema.empty_table(), self.keys_path)


def _ids(column: pa.Array) -> pa.Array:
    """Return the ids as int64, null where a row has no numeric id."""
    try:
        return pc.cast(column, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.fill_null(pc.match_substring_regex(column, INT_PATTERN), False)
        return pc.cast(pc.if_else(ok, pc.utf8_trim_whitespace(column), pa.scalar(None, pa.string())), pa.int64())


class _Mask:
    """The rows of one batch still kept, narrowed filter by filter, counting each one's drops."""

    def __init__(self, ids: pa.Array, dropped: Counter[str]) -> None:
        self.dropped = dropped
        self.keep = pc.is_valid(ids)
        self.kept = len(ids) - ids.null_count
        dropped["bad_id"] += ids.null_count
        self.lost: pa.Array | None = None  # rows a filter dropped (not those without an id)

    def narrow(self, mask: pa.Array, reason: str) -> None:
        """Keep only the kept rows where ``mask`` holds (null counts as false)."""
        keep = pc.and_(self.keep, pc.fill_null(mask, False))
        kept = pc.sum(keep).as_py() or 0
        if kept == self.kept:
            return
        self.dropped[reason] += self.kept - kept
        lost = pc.and_not(self.keep, keep)
        self.lost = lost if self.lost is None else pc.or_(self.lost, lost)
        self.keep, self.kept = keep, kept

    def apply(self, arrays: list[pa.Array]) -> list[pa.Array]:
        """Return ``arrays`` restricted to the kept rows."""
        if self.kept == len(self.keep):
            return arrays
        return [pc.filter(array, self.keep) for array in arrays]


def _normal_basis(values: pa.Array) -> pa.Array:
    # HUMAN_OBSERVATION, HumanObservation and "human observation" name one thing
    return pc.replace_substring_regex(pc.utf8_upper(values), r"[^A-Z]", "")


def _occurrences(archive: Archive, settings: SelectSettings, files: PassFiles, counts: PassCounts,
                 on_bytes: Callable[[int], None] | None, with_class: bool) -> None:
    columns = ["id", *OCCURRENCE_COLUMNS[1:]]
    if with_class and settings.class_column not in columns:
        columns.append(settings.class_column)
    ranks = [f"{rank}Key" for rank in settings.required_ranks]
    for rank_key in ranks:
        if archive.core.field(rank_key) is None:
            raise ArchiveError(
                f"{archive.path}: the archive has no {rank_key} column, which the strict taxonomy "
                "filter needs; select with required_ranks=() (CLI: --no-strict) instead"
            )
    basis = None
    if settings.basis_of_record:
        basis = pc.unique(_normal_basis(pa.array(list(settings.basis_of_record), pa.string())))
    reader = archive.read(archive.core, columns, on_bytes=on_bytes)
    dropped = counts.dropped_occurrences
    # strings but the id: the numbers are parsed at the end, for the kept rows only
    wide_schema = pa.schema([(c, pa.int64() if c == "gbifID" else pa.string()) for c in OCCURRENCE_COLUMNS])
    keys_schema = pa.schema([("gbifID", pa.int64()), ("_row", pa.int64())]
                            + ([("cls", pa.string())] if with_class else []))
    sink = _Sink(files.occurrences, files.occurrence_keys, counts.occurrence_batches, keys_schema)
    lost_schema = pa.schema([("gbifID", pa.int64())])
    lost_sink = _Sink(files.dropped_ids, files.dropped_ids, [], lost_schema, compression="lz4")
    try:
        for batch in reader:
            ids = _ids(batch.column(0))
            mask = _Mask(ids, dropped)
            if basis is not None:
                mask.narrow(pc.is_in(_normal_basis(batch.column("basisOfRecord")), basis), "basis_of_record")
            if ranks:
                valid = pc.is_valid(batch.column(ranks[0]))
                for rank_key in ranks[1:]:
                    valid = pc.and_(valid, pc.is_valid(batch.column(rank_key)))
                mask.narrow(valid, "missing_rank_keys")
            rows = pa.array(np.arange(sink.rows, sink.rows + batch.num_rows, dtype=np.int64))
            keys = mask.apply([ids, rows] + ([batch.column(settings.class_column)] if with_class else []))
            wide = [ids, *(batch.column(name) for name in wide_schema.names[1:])]
            sink.write(pa.RecordBatch.from_arrays(wide, schema=wide_schema),
                       pa.RecordBatch.from_arrays(keys, schema=keys_schema))
            if mask.lost is not None:
                lost_sink.write(None, pa.RecordBatch.from_arrays([ids.filter(mask.lost)], schema=lost_schema))
    finally:
        sink.close(wide_schema)
        lost_sink.close(None)
        counts.occurrences_read = reader.rows + reader.bad_rows
        dropped["bad_row"] += reader.bad_rows
        counts.bad_row_examples.extend(f"{archive.core.location} {e}" for e in reader.bad_examples)


def _media(archive: Archive, layout: FileLayout, settings: SelectSettings, files: PassFiles,
           counts: PassCounts, on_bytes: Callable[[int], None] | None, with_class: bool) -> None:
    reader = archive.read(layout, ["id", *MEDIA_COLUMNS], on_bytes=on_bytes)
    dropped = counts.dropped_media
    wanted = settings.media_type.lower() if settings.media_type else None
    type_field = layout.field("type")
    delimiter = type_field.delimited_by if type_field else None
    allowed = settings.license_codes
    wide_schema = pa.schema([(c, pa.string()) for c in MEDIA_COLUMNS])
    keys_schema = pa.schema([("_mid", pa.int64()), ("gbifID", pa.int64()), ("h", pa.uint64()),
                             ("r_occ", pa.int64()), ("r_cap", pa.int64())]
                            + ([("cls", pa.string())] if with_class else []))
    salt_occ, salt_cap = (_mix(np.array([settings.seed * 2 + k], np.uint64))[0] for k in (0, 1))
    # the URLs stay in the wide file: the engine groups rows by this hash, and looks at
    # the URLs themselves only where hashes collide (exact de-duplication, narrow keys)
    duck = duckdb.connect(config={"threads": 1})

    def hashed(table: pa.Table) -> pa.Table:
        return table.set_column(2, "h", url_hashes(duck, table.column(2), "hash"))

    sink = _Sink(files.media, files.media_keys, counts.media_batches, keys_schema, finish=hashed)
    try:
        for batch in reader:
            ids = _ids(batch.column(0))
            mask = _Mask(ids, dropped)
            mask.narrow(pc.is_valid(batch.column("identifier")), "no_url")
            if wanted is not None:
                mask.narrow(_type_mask(batch, wanted, delimiter), "media_type")
            if allowed is not None:
                mask.narrow(_license_mask(batch.column("license"), allowed), "license")
            # the row's place in the file (before any filter) is its position in the wide
            # file, its order, and the seed of its random keys
            at = np.arange(sink.rows, sink.rows + batch.num_rows, dtype=np.int64)
            if mask.kept < batch.num_rows:
                at = at[mask.keep.to_numpy(zero_copy_only=False)]
            raw_at = at.view(np.uint64)
            keys = [pa.array(at), *mask.apply([ids, batch.column("identifier")]),
                    pa.array(_mix(raw_at ^ salt_occ).view(np.int64)), pa.array(_mix(raw_at ^ salt_cap).view(np.int64))]
            if with_class:
                keys.extend(mask.apply([batch.column(settings.class_column)]))
            sink.write(pa.RecordBatch.from_arrays(batch.columns[1:], schema=wide_schema),
                       pa.RecordBatch.from_arrays(keys, names=[f.name for f in keys_schema]))  # URLs until hashed
    finally:
        try:
            sink.close(wide_schema)
        finally:
            duck.close()
        counts.media_read = reader.rows + reader.bad_rows
        dropped["bad_row"] += reader.bad_rows
        counts.bad_row_examples.extend(f"{layout.location} {e}" for e in reader.bad_examples)


def url_hashes(duck: duckdb.DuckDBPyConnection, urls: pa.Array | pa.ChunkedArray, function: str) -> pa.Array:
    """Return DuckDB's ``function`` (``hash``: uint64, ``sha1``: hex string) of each URL, in C, in order."""
    table = pa.table({"u": urls})
    result = duck.from_arrow(table).project(f"{function}(u)").to_arrow_table().column(0)
    return result.combine_chunks() if result.num_chunks != 1 else result.chunk(0)


def _mix(values: np.ndarray) -> np.ndarray:
    """Return splitmix64 of each uint64: a fixed bijection that scatters neighbours at random."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _type_mask(batch: pa.RecordBatch, wanted: str, delimiter: str | None) -> pa.Array:
    """Return which rows have the wanted media type (case-insensitive).

    A row without a type counts as a still image when its format says ``image/...``:
    real archives hold such rows.
    """
    types = pc.utf8_lower(batch.column("type"))
    if delimiter:
        sep = "\\" + delimiter if delimiter in ".^$*+?()[]{}|\\" else delimiter
        match = pc.match_substring_regex(types, f"(^|{sep})\\s*{re.escape(wanted)}\\s*($|{sep})")
    else:
        match = pc.equal(pc.utf8_trim_whitespace(types), wanted)
    if wanted == "stillimage":
        untyped_image = pc.and_(pc.is_null(types), pc.starts_with(pc.utf8_lower(batch.column("format")), "image/"))
        match = pc.or_(pc.fill_null(match, False), pc.fill_null(untyped_image, False))
    return match


def _license_mask(licenses: pa.Array, allowed: frozenset[str]) -> pa.Array:
    """Return which rows carry an allowed licence; licences are normalised once per distinct value."""
    encoded = pc.dictionary_encode(licenses)
    ok = pa.array([license_code(v) in allowed for v in encoded.dictionary.to_pylist()], pa.bool_())
    return pc.fill_null(pc.take(ok, encoded.indices), False)
