"""A fetch's results: metadata.parquet assembled from the finished units, and its summary."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path
from gbifxdl._meta import PROVENANCE_KEY
from gbifxdl.fetch.settings import FetchSettings, FetchSummary
from gbifxdl.fetch.journal import RESULT_COLUMNS, RESULT_SCHEMA, iter_units


def assemble(selection: Path, read_unit: Callable[[int], pa.Table], schema: pa.Schema, settings: FetchSettings,
             out: Path) -> None:
    """Write metadata.parquet: every input row in order, with its result columns (atomic).

    ``read_unit(n)`` gives unit ``n``'s result rows (from the local state, or from a store).
    """
    keep = [n for n in schema.names if n not in RESULT_COLUMNS]
    fields = [schema.field(n) for n in keep] + list(RESULT_SCHEMA)
    meta = dict(schema.metadata or {})
    provenance: dict[str, Any] = {}
    if PROVENANCE_KEY in meta:
        try:
            provenance = json.loads(meta[PROVENANCE_KEY])
        except ValueError:
            provenance = {}
    provenance["fetch_settings"] = settings.to_json()
    meta = {k: v for k, v in meta.items() if k != b"ARROW:schema"}
    meta[PROVENANCE_KEY] = json.dumps(provenance, default=str).encode()
    out_schema = pa.schema(fields, metadata=meta)
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, out_schema) as pw:
        for number, table in iter_units(selection, settings.shard_size, keep):
            results = read_unit(number)
            arrays = [table.column(n) for n in keep] + [results.column(n) for n in RESULT_COLUMNS]
            pw.write_table(pa.Table.from_arrays(arrays, schema=out_schema))


def summarise(metadata: Path, fetched_now: int, seconds: float, shown_as: str | None = None) -> FetchSummary:
    """Return the summary of a fetch from its metadata.parquet (``shown_as``: where it was put)."""
    table = pq.read_table(metadata, columns=["outcome", "host", "bytes"])
    summary = FetchSummary(metadata_path=shown_as or str(metadata), total=table.num_rows, fetched_now=fetched_now,
                           seconds=seconds)
    summary.outcomes = Counter(dict(zip(*_value_counts(table.column("outcome")))))
    summary.bytes_written = int(pc.sum(table.column("bytes")).as_py() or 0)
    failed = table.filter(pc.not_equal(table.column("outcome"), "ok"))
    by_host: dict[str, Counter[str]] = {}
    for host, outcome in zip(failed.column("host").to_pylist(), failed.column("outcome").to_pylist()):
        by_host.setdefault(host or "(no host)", Counter())[outcome] += 1
    summary.failures_by_host = by_host
    return summary


def _value_counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
