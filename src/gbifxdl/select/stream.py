"""First pass: stream the core and the multimedia member, each in its own thread,
filter what each file alone decides, and write what is left to temporary files.

Both members are inflated and parsed at once, each in chunks on several threads (Arrow
parses and ISA-L or zlib inflates outside the GIL). Each member gives two files: its
output columns as uncompressed Arrow IPC (read back by row position when the output is
assembled), and a narrow Parquet file of keys (id, row position, URL, class, random
draws) that DuckDB joins, de-duplicates and samples.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    media_keys: Path  # Parquet: _mid (position in `media`), gbifID, identifier [, cls]

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
    """Writes the wide IPC file and the narrow Parquet file of one member, lazily opened."""

    ROW_GROUP = 128 * 1024  # key rows per Parquet row group: parsed batches are much smaller

    def __init__(self, wide_path: Path, keys_path: Path, batch_rows: list[int]) -> None:
        self.wide_path, self.keys_path = wide_path, keys_path
        self.batch_rows = batch_rows
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.wide: pa.ipc.RecordBatchFileWriter | None = None
        self.keys: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, wide: pa.RecordBatch, keys: pa.RecordBatch) -> None:
        if wide.num_rows == 0:  # everything in this batch was filtered out
            return
        if self.wide is None:
            self.wide = pa.ipc.new_file(self.wide_path, wide.schema, options=_IPC_OPTIONS)
            # plain and uncompressed: these files live a minute, writing speed is what counts
            self.keys = pq.ParquetWriter(self.keys_path, keys.schema, compression="none",
                                         use_dictionary=["cls"] if "cls" in keys.schema.names else False)
        self.wide.write_batch(wide)
        self.rows += wide.num_rows
        self.batch_rows.append(wide.num_rows)
        self._pending.append(keys)
        self._pending_rows += keys.num_rows
        if self._pending_rows >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._pending_rows and self.keys is not None:
            self.keys.write_table(pa.Table.from_batches(self._pending), row_group_size=self._pending_rows)
        self._pending, self._pending_rows = [], 0

    def close(self, wide_schema: pa.Schema, keys_schema: pa.Schema) -> None:
        self._flush()
        for writer in (self.wide, self.keys):
            if writer is not None:
                writer.close()
        if self.wide is None:  # nothing kept: still leave readable, empty files
            pa.ipc.new_file(self.wide_path, wide_schema).close()
            pq.write_table(keys_schema.empty_table(), self.keys_path)


def _ids(batch: pa.RecordBatch, dropped: Counter[str]) -> tuple[pa.RecordBatch, pa.Array]:
    """Return the batch without rows lacking a numeric id, and the ids as int64."""
    try:
        ids = pc.cast(batch.column(0), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.fill_null(pc.match_substring_regex(batch.column(0), INT_PATTERN), False)
        dropped["bad_id"] += len(ok) - (pc.sum(ok).as_py() or 0)
        batch = batch.filter(ok)
        ids = pc.cast(pc.utf8_trim_whitespace(batch.column(0)), pa.int64())
    if ids.null_count:  # an empty id field
        dropped["bad_id"] += ids.null_count
        valid = pc.is_valid(ids)
        batch, ids = batch.filter(valid), ids.filter(valid)
    return batch, ids


def _keep(batch: pa.RecordBatch, ids: pa.Array, mask: pa.Array, reason: str, dropped: Counter[str],
          lost_ids: list[pa.Array] | None = None) -> tuple[pa.RecordBatch, pa.Array]:
    """Return the batch and ids where ``mask`` holds, counting the others under ``reason``."""
    mask = pc.fill_null(mask, False)
    kept = pc.sum(mask).as_py() or 0
    if kept == len(mask):
        return batch, ids
    dropped[reason] += len(mask) - kept
    if lost_ids is not None:
        lost_ids.append(ids.filter(pc.invert(mask)))
    return batch.filter(mask), ids.filter(mask)


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
    sink = _Sink(files.occurrences, files.occurrence_keys, counts.occurrence_batches)
    lost_writer = None
    # strings but the id: the numbers are parsed at the end, for the kept rows only
    wide_schema = pa.schema([(c, pa.int64() if c == "gbifID" else pa.string()) for c in OCCURRENCE_COLUMNS])
    keys_schema = pa.schema([("gbifID", pa.int64()), ("_row", pa.int64())]
                            + ([("cls", pa.string())] if with_class else []))
    try:
        for batch in reader:
            batch, ids = _ids(batch, dropped)
            lost: list[pa.Array] = []
            if basis is not None:
                batch, ids = _keep(batch, ids, pc.is_in(_normal_basis(batch.column("basisOfRecord")), basis),
                                   "basis_of_record", dropped, lost)
            if ranks:
                mask = pc.is_valid(batch.column(ranks[0]))
                for rank_key in ranks[1:]:
                    mask = pc.and_(mask, pc.is_valid(batch.column(rank_key)))
                batch, ids = _keep(batch, ids, mask, "missing_rank_keys", dropped, lost)
            wide = [ids, *(batch.column(name) for name in wide_schema.names[1:])]
            rows = pa.array(np.arange(sink.rows, sink.rows + batch.num_rows, dtype=np.int64))
            keys = [ids, rows] + ([batch.column(settings.class_column)] if with_class else [])
            sink.write(pa.RecordBatch.from_arrays(wide, schema=wide_schema),
                       pa.RecordBatch.from_arrays(keys, schema=keys_schema))
            if lost:
                lost_batch = pa.RecordBatch.from_arrays([pa.concat_arrays(lost)], names=["gbifID"])
                if lost_writer is None:
                    lost_writer = pq.ParquetWriter(files.dropped_ids, lost_batch.schema, compression="lz4")
                lost_writer.write_batch(lost_batch)
    finally:
        sink.close(wide_schema, keys_schema)
        if lost_writer is not None:
            lost_writer.close()
        counts.occurrences_read = reader.rows + reader.bad_rows
        dropped["bad_row"] += reader.bad_rows
        counts.bad_row_examples.extend(f"{archive.core.location} {e}" for e in reader.bad_examples)
    if lost_writer is None:
        pq.write_table(pa.schema([("gbifID", pa.int64())]).empty_table(), files.dropped_ids)


def _media(archive: Archive, layout: FileLayout, settings: SelectSettings, files: PassFiles,
           counts: PassCounts, on_bytes: Callable[[int], None] | None, with_class: bool) -> None:
    reader = archive.read(layout, ["id", *MEDIA_COLUMNS], on_bytes=on_bytes)
    dropped = counts.dropped_media
    wanted = settings.media_type.lower() if settings.media_type else None
    type_field = layout.field("type")
    delimiter = type_field.delimited_by if type_field else None
    allowed = settings.license_codes
    sink = _Sink(files.media, files.media_keys, counts.media_batches)
    wide_schema = pa.schema([(c, pa.string()) for c in MEDIA_COLUMNS])
    keys_schema = pa.schema([("_mid", pa.int64()), ("gbifID", pa.int64()), ("identifier", pa.string()),
                             ("r_occ", pa.int64()), ("r_cap", pa.int64())]
                            + ([("cls", pa.string())] if with_class else []))
    salt_occ, salt_cap = (_mix(np.array([settings.seed * 2 + k], np.uint64))[0] for k in (0, 1))
    raw_rows = 0
    try:
        for batch in reader:
            # the row's place in the file, before any filter: the seed of its random keys
            raw = pa.array(np.arange(raw_rows, raw_rows + batch.num_rows, dtype=np.int64))
            raw_rows += batch.num_rows
            batch = batch.append_column("_raw", raw)
            batch, ids = _ids(batch, dropped)
            batch, ids = _keep(batch, ids, pc.is_valid(batch.column("identifier")), "no_url", dropped)
            if wanted is not None:
                batch, ids = _keep(batch, ids, _type_mask(batch, wanted, delimiter), "media_type", dropped)
            if allowed is not None:
                batch, ids = _keep(batch, ids, _license_mask(batch.column("license"), allowed), "license", dropped)
            mids = pa.array(np.arange(sink.rows, sink.rows + batch.num_rows, dtype=np.int64))
            raw_at = batch.column("_raw").to_numpy().astype(np.uint64)
            keys = [mids, ids, batch.column("identifier"),
                    pa.array(_mix(raw_at ^ salt_occ).view(np.int64)), pa.array(_mix(raw_at ^ salt_cap).view(np.int64))]
            if with_class:
                keys.append(batch.column(settings.class_column))
            sink.write(pa.RecordBatch.from_arrays(batch.columns[1:-1], schema=wide_schema),
                       pa.RecordBatch.from_arrays(keys, schema=keys_schema))
    finally:
        sink.close(wide_schema, keys_schema)
        counts.media_read = reader.rows + reader.bad_rows
        dropped["bad_row"] += reader.bad_rows
        counts.bad_row_examples.extend(f"{layout.location} {e}" for e in reader.bad_examples)


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
