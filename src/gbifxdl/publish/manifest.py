"""A manifest: the dataset without its images, which anyone can rebuild from.

``export_manifest(DIR, OUT)`` writes one Parquet row per kept image: the URL fetched
(``identifier``) and the occurrence it belongs to (``gbifID``, ``datasetKey``, source
page ``references``), licence and attribution, the label and the whole taxonomy, the
split, where the file sat (``path`` or ``shard``/``key``) and the sha256 of the written
file. The schema metadata holds the provenance (``gbifxdl.provenance``: query, download
DOI, select/fetch/curate settings) and ``gbifxdl.manifest`` (version, counts, derived
DOI). Many image licences allow linking where they do not allow redistribution; a
manifest is how large image datasets are shared.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from gbifxdl import __version__
from gbifxdl.curate.toolkit import METADATA, column_or_nulls, provenance, read_table, with_provenance, write_table
from gbifxdl.errors import ConfigError
from gbifxdl.publish.credit import license_name
from gbifxdl.publish.facts import DERIVED_STATE, read_json

__all__ = ["MANIFEST_KEY", "export_manifest", "read_manifest"]

MANIFEST_KEY = b"gbifxdl.manifest"
MANIFEST_VERSION = 1
# what fetch measured on its way, not what a rebuild needs or checks
_FETCH_ONLY = ("outcome", "error", "attempts", "http_status", "host", "orig_width", "orig_height", "pixel_hash", "phash",
              "chroma_hash", "signature")
# columns a manifest adds to the selection's: a rebuild drops them to get the selection back
ADDED = ("label", "attribution", "split", "set", "path", "shard", "key", "width", "height", "bytes", "sha256")


def _attribution(rights: Any, creator: Any, licence: Any, publisher: Any) -> str:
    parts = [f"© {rights or creator or 'unknown'}", f"by {creator}" if creator and creator != rights else "",
             license_name(licence), f"via {publisher}" if publisher else ""]  # fmt: skip
    return ", ".join(p for p in parts if p)


def export_manifest(dataset_dir: str | Path, out: str | Path) -> int:
    """Return the number of images listed in the manifest written to ``out``."""
    root = Path(dataset_dir)
    table = read_table(root / METADATA)
    if "sha256" not in table.column_names or "identifier" not in table.column_names:
        raise ConfigError(f"{root}/metadata.parquet lacks sha256 or identifier: export a folder written by gbifxdl")
    prov = provenance(table)
    class_column = (prov.get("curate_settings") or {}).get("class_column") or (
        prov.get("fetch_settings") or {}).get("class_column") or "speciesKey"
    col = lambda name: column_or_nulls(table, name)  # noqa: E731
    out_table = table.drop_columns([c for c in _FETCH_ONLY if c in table.column_names])
    labels = pa.array(["unlabeled" if v is None else str(v) for v in col(class_column)], pa.string())
    credits = pa.array([_attribution(*v) for v in zip(col("rightsHolder"), col("creator"), col("license"),
                                                       col("publisher"))], pa.string())  # fmt: skip
    for name, values in (("label", labels), ("attribution", credits)):
        if name in out_table.column_names:
            out_table = out_table.drop_columns([name])
        out_table = out_table.append_column(name, values)
    derived = read_json(root / DERIVED_STATE) or {}
    info = {"version": MANIFEST_VERSION, "images": table.num_rows, "class_column": class_column,
            "exported": date.today().isoformat(), "gbifxdl": __version__, "dataset": root.resolve().name,
            "derived_doi": derived.get("doi")}  # fmt: skip
    out_table = with_provenance(out_table, prov, like=table)
    meta = dict(out_table.schema.metadata or {})
    meta[MANIFEST_KEY] = json.dumps(info, sort_keys=True).encode()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_table(out_table.replace_schema_metadata(meta), target)
    return table.num_rows


def read_manifest(path: str | Path) -> tuple[pa.Table, dict[str, Any], dict[str, Any]]:
    """Return a manifest's table, its provenance and its manifest information."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ConfigError(f"{path} is not a readable Parquet manifest ({exc}); write one with `gbifxdl export`") from None
    raw = (table.schema.metadata or {}).get(MANIFEST_KEY)
    if not raw:
        raise ConfigError(f"{path} is not a gbifxdl manifest (no {MANIFEST_KEY.decode()} metadata); "
                          "write one with `gbifxdl export DIR --manifest OUT.parquet`")
    info = json.loads(raw)
    if info.get("version") != MANIFEST_VERSION:
        raise ConfigError(f"{path} is a manifest of version {info.get('version')}; this gbifxdl reads version "
                          f"{MANIFEST_VERSION}: upgrade gbifxdl")
    return table, provenance(table), info
