"""Reading and writing the dataset's Parquet tables, with their provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path
from gbifxdl._locate import METADATA, REMOVED
from gbifxdl._meta import PROVENANCE_KEY
from gbifxdl.errors import CurateError

SUMMARY = "curate_summary.json"

# columns curate adds; dropped before recomputing so a rerun starts from the same input
ADDED_KEPT = ("split", "set", "crop_model", "crop_box")
ADDED_REMOVED = ("removed_reason", "duplicate_of")
OUTLIER_PREFIX = "outlier_"  # outlier_<model>: each image's outlier score (both tables), added too


def added_present(names: list[str], added: tuple[str, ...]) -> list[str]:
    """Return those of ``names`` that curation adds: ``added``, and the outlier scores."""
    return [n for n in names if n in added or n.startswith(OUTLIER_PREFIX)]


def read_table(path: Path) -> pa.Table:
    """Return the Parquet table at ``path``, or raise a CurateError saying what to do."""
    if not path.is_file():
        raise CurateError(
            f"{path} not found: {path.parent} is not a dataset folder (one written by `gbifxdl fetch` "
            "or `gbifxdl run` holds metadata.parquet); check the folder name"
        )
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise CurateError(f"{path} is not a readable Parquet file ({exc}); rerun `gbifxdl fetch` to rewrite it") from None


def provenance(table: pa.Table) -> dict[str, Any]:
    """Return the ``gbifxdl.provenance`` JSON object of a table's schema ({} when absent)."""
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def with_provenance(table: pa.Table, prov: dict[str, Any], like: pa.Table | None = None) -> pa.Table:
    """Return ``table`` carrying ``prov`` (and the other schema metadata of ``like``)."""
    meta = dict((like if like is not None else table).schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True, default=str).encode()
    return table.replace_schema_metadata(meta)


class Rows:
    """A table too large to hold: its schema and a function yielding its batches (each call starts over)."""

    def __init__(self, schema: pa.Schema, batches: Callable[[], Iterator[pa.Table]]) -> None:
        self.schema = schema
        self.batches = batches


def write_table(table: pa.Table | Rows, path: Path) -> None:
    """Write ``table`` (or the streamed ``Rows``) to ``path`` atomically (a temporary name, then a rename)."""
    with atomic_path(path) as tmp:
        if isinstance(table, pa.Table):
            pq.write_table(table, tmp)
            return
        with pq.ParquetWriter(tmp, table.schema) as writer:
            for part in table.batches():
                writer.write_table(part)


def require_columns(table: pa.Table, names: tuple[str, ...], where: Path) -> None:
    """Raise a CurateError naming the columns of ``names`` that ``table`` lacks."""
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise CurateError(
            f"{where} lacks column(s) {', '.join(missing)}: it was not written by `gbifxdl fetch` "
            "(for tables of the original gbifxdl use gbifxdl.compat.postprocess)"
        )


def drop_columns(table: pa.Table, names: tuple[str, ...]) -> pa.Table:
    """Return ``table`` without those of ``names`` it has."""
    present = [n for n in names if n in table.column_names]
    return table.drop_columns(present) if present else table


def class_labels(table: pa.Table, column: str) -> list[str]:
    """Return each row's class as a string, ``unlabeled`` where the value is null."""
    if column not in table.column_names:
        raise CurateError(
            f"class column {column!r} is not in metadata.parquet; choose one of: "
            + ", ".join(table.column_names)
        )
    return ["unlabeled" if v is None else str(v) for v in table.column(column).to_pylist()]


def column_or_nulls(table: pa.Table, name: str) -> list[Any]:
    """Return a column as a list, or Nones when the table lacks it."""
    if name in table.column_names:
        return table.column(name).to_pylist()
    return [None] * table.num_rows


def row_keys(table: pa.Table) -> pa.Array:
    """Return each row's identity, ``url_hash`` and ``gbifID`` joined (one image of one occurrence)."""
    url = pc.fill_null(table.column("url_hash"), "") if "url_hash" in table.column_names else None
    if url is None:
        url = pa.array([""] * table.num_rows, pa.string())
    gbif = (pc.fill_null(pc.cast(table.column("gbifID"), pa.string()), "")
            if "gbifID" in table.column_names else pa.array([""] * table.num_rows, pa.string()))
    return pc.binary_join_element_wise(url, gbif, "\x1f").combine_chunks()


def full_table(root: Path) -> tuple[pa.Table, pa.Table, pa.Table | None]:
    """Return (every fetched row, the table read from metadata.parquet, removed.parquet or None).

    metadata.parquet holds what the last curation kept (or, freshly reassembled by fetch,
    every row) and removed.parquet what it removed: their union, without the columns
    curation adds and without repeating a row, is the fetched table. So curation always
    starts from everything fetched, whatever earlier curations removed.
    """
    meta_path, removed_path = root / METADATA, root / REMOVED
    metadata = read_table(meta_path)
    require_columns(metadata, ("outcome", "url_hash"), meta_path)
    removed = read_table(removed_path) if removed_path.is_file() else None
    # what curation added (the outlier scores among it) goes: it is made again
    table = metadata.drop_columns(added_present(metadata.column_names, ADDED_KEPT))
    if removed is not None and removed.num_rows:
        back = removed.drop_columns(added_present(removed.column_names, ADDED_REMOVED))
        back = back.filter(pc.invert(pc.is_in(row_keys(back), value_set=row_keys(table))))
        if back.num_rows:
            try:
                back = back.replace_schema_metadata(table.schema.metadata)
                table = pa.concat_tables([table, back], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise CurateError(
                    f"removed.parquet has columns that do not match metadata.parquet ({exc}); "
                    "move it aside and run curate again"
                ) from None
    return table.combine_chunks(), metadata, removed
