"""The review marks as a table, for the user's own tools: :func:`read_marks`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from gbifxdl._marks import CLEAR, iter_marks

SCHEMA = pa.schema([
    ("key", pa.string()),  # the image's url_hash (the key of metadata.parquet's and removed.parquet's rows)
    ("mark", pa.string()),  # good, bad, wrong_species, needs_crop, or clear (a mark taken back)
    ("time", pa.timestamp("us", tz="UTC")),
    ("current", pa.bool_()),  # the image's last mark (a clear is never current)
    ("via", pa.string()),  # null: marked one by one; "rank": confirmed in bulk from "find more like these"
    ("p", pa.float32()),  # with via "rank": the ranking's probability that the image is bad
])


def read_marks(dataset_dir: str | Path, *, current_only: bool = False) -> pa.Table:
    """Return every mark in the review journal of ``dataset_dir``, oldest first, as a table (SCHEMA).

    ``current``: whether the row is its image's mark now (the last one, unless taken back);
    ``current_only``: only those rows, one per marked image.
    """
    records = list(iter_marks(dataset_dir))
    last: dict[str, int] = {}
    for i, record in enumerate(records):
        last[record["key"]] = i
    current = [last[r["key"]] == i and r["mark"] != CLEAR for i, r in enumerate(records)]
    table = pa.table({
        "key": pa.array([r["key"] for r in records], pa.string()),
        "mark": pa.array([r["mark"] for r in records], pa.string()),
        "time": pa.array([int(round(float(r.get("time") or 0) * 1e6)) for r in records], pa.int64()).cast(SCHEMA.field("time").type),
        "current": pa.array(current, pa.bool_()),
        "via": pa.array([r.get("via") if isinstance(r.get("via"), str) else None for r in records], pa.string()),
        "p": pa.array([r.get("p") if isinstance(r.get("p"), (int, float)) else None for r in records], pa.float32()),
    }, schema=SCHEMA)
    return table.filter(table.column("current")) if current_only else table
