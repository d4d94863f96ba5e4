"""Work units and resume state: what is done survives a SIGKILL at any moment.

The selection is cut into units of ``shard_size`` consecutive rows: the unit of work,
of resume, and of WebDataset shards. State lives in ``DIR/.gbifxdl/fetch/``:

- ``state.json``: the input's fingerprint and the output-deciding settings;
- ``unit-NNNNNN.jsonl``: the journal of an unfinished unit, one line per finished row,
  appended *before* the row's file is renamed into place (so a file at its final path
  has its line; a line whose file is still at its temporary name is renamed into place on
  resume, one whose file is gone is redone; a file found at its final path without its
  line, written by a killed run, is adopted: see :mod:`~gbifxdl.fetch.adopt`);
- ``unit-NNNNNN.parquet``: a finished unit's result rows, written atomically;
- ``spool/unit-NNNNNN/``: a WebDataset unit's finished samples until its tar exists.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path
from gbifxdl.errors import FetchError, StateError
from gbifxdl.fetch.settings import FetchSettings

RESULT_SCHEMA = pa.schema([
    ("outcome", pa.string()), ("error", pa.string()), ("attempts", pa.int32()),
    ("http_status", pa.int32()), ("host", pa.string()), ("path", pa.string()),
    ("shard", pa.string()), ("key", pa.string()), ("orig_width", pa.int32()),
    ("orig_height", pa.int32()), ("width", pa.int32()), ("height", pa.int32()),
    ("bytes", pa.int64()), ("sha256", pa.string()), ("pixel_hash", pa.string()),
    ("phash", pa.uint64()),
    # the URL whose answer the row holds: a smaller rendition of `identifier`, or it
    # (absent from state written before it existed: read as null)
    ("fetched_url", pa.string()),
    # the 128-bit colour hash confirming a `phash` match (fetch.hashing.chroma_hash), 16 bytes
    # big-endian; null for grey images and in state written before it existed (read as null)
    ("chroma_hash", pa.binary(16)),
    # the 32x32 greyscale grid a near-duplicate candidate is confirmed on (fetch.hashing.signature),
    # 1,024 bytes; hex text in journal lines and fetch's rows; null in state written before it
    ("signature", pa.binary()),
])
RESULT_COLUMNS = tuple(RESULT_SCHEMA.names)


def iter_units(selection: Path, shard_size: int, columns: list[str] | None = None) -> Iterator[tuple[int, pa.Table]]:
    """Yield (unit number, rows) in input order, ``shard_size`` rows per unit (the last may be short)."""
    pf = pq.ParquetFile(selection)
    pending: list[pa.RecordBatch] = []
    buffered = 0
    unit = 0
    for batch in pf.iter_batches(batch_size=shard_size, columns=columns, use_threads=False):
        pending.append(batch)
        buffered += batch.num_rows
        while buffered >= shard_size:
            table = pa.Table.from_batches(pending)
            yield unit, table.slice(0, shard_size)
            unit += 1
            rest = table.slice(shard_size)
            pending = rest.to_batches()
            buffered = rest.num_rows
    if buffered:
        yield unit, pa.Table.from_batches(pending)


class FetchState:
    """The resume state of one output folder."""

    def __init__(self, out_dir: Path, settings: FetchSettings) -> None:
        self.out_dir = out_dir
        self.settings = settings
        self.dir = out_dir / ".gbifxdl" / "fetch"
        self.dir.mkdir(parents=True, exist_ok=True)

    def check(self, fingerprint: dict[str, Any]) -> bool:
        """Record or compare the run's fingerprint; returns True when resuming earlier work."""
        path = self.dir / "state.json"
        wanted = wanted_state(fingerprint, self.settings)
        if path.exists():
            compare_state(json.loads(path.read_text()), wanted, str(self.out_dir), "output folder")
            return True
        atomic_write_bytes(path, json.dumps(wanted, indent=1, default=str).encode())
        return False

    def unit_path(self, unit: int) -> Path:
        return self.dir / f"unit-{unit:06d}.parquet"

    def journal_path(self, unit: int) -> Path:
        return self.dir / f"unit-{unit:06d}.jsonl"

    def spool_dir(self, unit: int) -> Path:
        return self.dir / "spool" / f"unit-{unit:06d}"

    def unit_done(self, unit: int) -> bool:
        """Return whether ``unit`` has its final result rows."""
        return self.unit_path(unit).exists()

    def read_journal(self, unit: int) -> dict[int, dict[str, Any]]:
        """Return the journal entries of an unfinished unit by row (a torn last line is ignored)."""
        path = self.journal_path(unit)
        entries: dict[int, dict[str, Any]] = {}
        if not path.exists():
            return entries
        with open(path, "rb") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # the line being written when the process died
                entries[int(entry.pop("i"))] = entry
        return entries

    def open_journal(self, unit: int) -> TextIO:
        """Return the unit's journal opened for appending (line-buffered)."""
        path = self.journal_path(unit)
        if path.exists():
            # drop a torn last line, so the next entry starts on its own line
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                # one system call: a kill meanwhile leaves the journal whole (rewriting it would
                # empty it first, losing the lines of files already at their final paths)
                os.truncate(path, data.rfind(b"\n") + 1)
        return open(path, "a", buffering=1, encoding="utf-8")

    def write_unit(self, unit: int, rows: list[dict[str, Any]]) -> None:
        """Write a finished unit's result rows atomically, then drop its journal and spool."""
        records = [stored_row({k: r.get(k) for k in RESULT_COLUMNS}) for r in rows]
        table = pa.Table.from_pylist(records, schema=RESULT_SCHEMA)
        path = self.unit_path(unit)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        self.journal_path(unit).unlink(missing_ok=True)
        shutil.rmtree(self.spool_dir(unit), ignore_errors=True)

    def read_unit(self, unit: int) -> pa.Table:
        """Return a finished unit's result rows."""
        table = pq.read_table(self.unit_path(unit))
        if table.schema.names != RESULT_SCHEMA.names:
            # a unit finished by an older version lacks the newer columns: null there
            table = pa.table({f.name: table.column(f.name) if f.name in table.schema.names
                              else pa.nulls(table.num_rows, f.type) for f in RESULT_SCHEMA})
        return table.cast(RESULT_SCHEMA)

    def ok_rows(self, unit: int) -> list[dict[str, Any]]:
        """Return a finished unit's ok rows, each with its row number ``i`` in the unit."""
        rows = self.read_unit(unit).to_pylist()
        # back to the JSON values journal lines and fetch's rows hold
        return [dict(journal_row(r), i=i) for i, r in enumerate(rows) if r["outcome"] == "ok"]

    def reopen(self, unit: int, ok_rows: list[dict[str, Any]]) -> None:
        """Turn a finished unit back into an unfinished one that keeps ``ok_rows``."""
        data = "".join(json.dumps(r) + "\n" for r in ok_rows).encode()
        atomic_write_bytes(self.journal_path(unit), data)
        self.unit_path(unit).unlink(missing_ok=True)

    def remove_temporaries(self) -> None:
        """Delete partial files a killed run left in the state folder, and a ``metadata.parquet`` it was writing."""
        for path in [*self.dir.rglob("*.tmp-*"), *self.out_dir.glob(".metadata.parquet.tmp-*")]:
            path.unlink(missing_ok=True)


def wanted_state(fingerprint: dict[str, Any], settings: FetchSettings) -> dict[str, Any]:
    """Return the state a fetch of ``fingerprint``'s input with ``settings`` records."""
    return {"input": fingerprint, "settings": settings.output_fingerprint()}


def compare_state(saved: dict[str, Any], wanted: dict[str, Any], where: str, other: str) -> None:
    """Raise the one-line error saying how ``where`` was fetched otherwise; ``other``: what to use instead."""
    if saved["input"] != wanted["input"]:
        raise StateError(
            f"{where} holds a fetch of another selection ({saved['input']}); "
            f"use another {other}, or delete this one to start over")
    diff = {k: (v, wanted["settings"].get(k)) for k, v in saved["settings"].items()
            if wanted["settings"].get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise StateError(
            f"{where} was fetched with other settings ({detail}); run again with the "
            f"same settings, or use another {other}")


def stored_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return a fetch row (JSON values: ``chroma_hash`` an int, ``signature`` hex) as ``RESULT_SCHEMA`` stores it."""
    wide, sig = row.get("chroma_hash"), row.get("signature")
    return dict(row, chroma_hash=None if wide is None else wide.to_bytes(16, "big"),
                signature=None if sig is None else bytes.fromhex(sig))


def journal_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return a stored row as the JSON values journal lines and fetch's rows hold (``stored_row`` undone)."""
    wide, sig = row.get("chroma_hash"), row.get("signature")
    return dict(row, chroma_hash=None if wide is None else int.from_bytes(wide, "big"),
                signature=None if sig is None else sig.hex())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def input_fingerprint(selection: Path, settings: FetchSettings) -> tuple[dict[str, Any], pa.Schema]:
    """Return a fingerprint of the selection (rows and size) and its schema; checks columns."""
    try:
        pf = pq.ParquetFile(selection)
    except (OSError, pa.ArrowInvalid) as exc:
        raise FetchError(f"cannot read the selection {selection}: {exc}; give a Parquet made by `gbifxdl select`") from None
    schema = pf.schema_arrow
    missing = [c for c in (settings.url_column,) if c not in schema.names]
    if missing:
        raise FetchError(f"the selection {selection} has no column {missing[0]!r} (URLs); "
                         f"columns are: {', '.join(schema.names)}")
    return {"rows": pf.metadata.num_rows, "bytes": selection.stat().st_size}, schema
