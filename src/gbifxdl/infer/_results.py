"""Where a model's results live: ``DIR/.gbifxdl/models/<name>/part-NNNNNN.parquet``.

Each part is written under a temporary name and renamed, and never rewritten. Every part
carries the fingerprint of what made it (the model's sha256, its spec, the label matrix)
in its schema metadata: a part with another fingerprint is stale and is deleted, part by
part, so a changed model recomputes only that model's results, and a run killed while
deleting finishes the deletion the next time.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gbifxdl._io import atomic_path

MODELS = Path(".gbifxdl") / "models"
META_KEY = b"gbifxdl.infer"
_PART = re.compile(r"^part-(\d{6,})\.parquet$")

_COMMON = [("url_hash", pa.string()), ("model_sha256", pa.string()), ("error", pa.string())]
SCHEMAS = {
    "classifier": pa.schema(_COMMON + [("label", pa.string()), ("score", pa.float32()),
                                       ("top_labels", pa.list_(pa.string())), ("top_scores", pa.list_(pa.float32()))]),
    "embedder": pa.schema(_COMMON + [("embedding", pa.list_(pa.float16())), ("label", pa.string()),
                                     ("score", pa.float32())]),
    "detector": pa.schema(_COMMON + [("boxes", pa.list_(pa.list_(pa.float32(), 4))),
                                     ("scores", pa.list_(pa.float32())), ("labels", pa.list_(pa.string()))]),
}


def model_dir(root: Path, name: str) -> Path:
    return root / MODELS / name


def parts(folder: Path) -> list[Path]:
    """Return the finished parts of a model's folder, in order."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _PART.match(p.name)), key=lambda p: int(_PART.match(p.name)[1]))


def part_meta(path: Path) -> dict[str, Any] | None:
    """Return what made a part (its schema metadata), or None when it is unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def prune(folder: Path, fingerprint: str) -> tuple[set[str], int]:
    """Delete the parts not made with ``fingerprint`` (and stray temporaries); return the keys done and the next part number."""
    done: set[str] = set()
    last = -1
    if folder.is_dir():
        for tmp in folder.glob(".part-*.tmp-*"):  # a write killed before its rename
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    for path in parts(folder):
        meta = part_meta(path)
        if meta is None or meta.get("fingerprint") != fingerprint:
            path.unlink()
            continue
        done.update(k for k in pq.read_table(path, columns=["url_hash"]).column(0).to_pylist() if k is not None)
        last = int(_PART.match(path.name)[1])
    return done, last + 1


def write_part(folder: Path, number: int, kind: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write ``rows`` as part ``number`` of a model's folder: a temporary name, then a rename."""
    folder.mkdir(parents=True, exist_ok=True)
    schema = SCHEMAS[kind].with_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})
    table = pa.Table.from_pylist(rows, schema=schema)
    final = folder / f"part-{number:06d}.parquet"
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp)
    return final


def read_results(dataset_dir: str | Path, name: str) -> pa.Table:
    """Return every result of model ``name`` in a dataset folder (one row per image key), as one table.

    Only parts made by the model's current fingerprint are read (the one of the last run).
    """
    folder = model_dir(Path(dataset_dir), name)
    found = parts(folder)
    if not found:
        raise FileNotFoundError(f"{folder}: no results of model {name!r}; run `gbifxdl infer` first")
    metas = [(p, part_meta(p)) for p in found]
    latest = max(metas, key=lambda pm: pm[0].stat().st_mtime_ns)[1] or {}
    tables = [pq.read_table(p) for p, m in metas if m and m.get("fingerprint") == latest.get("fingerprint")]
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    keys = table.column("url_hash").to_numpy(zero_copy_only=False)
    _, first = np.unique(keys.astype(str), return_index=True)
    if len(first) < table.num_rows:  # two runs at once measured an image twice: its first row
        table = table.take(pa.array(np.sort(first)))
    return table.replace_schema_metadata({META_KEY: json.dumps(latest, sort_keys=True).encode()})
