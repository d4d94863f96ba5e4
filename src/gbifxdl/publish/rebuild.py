"""Rebuilding a dataset from its manifest, checking every image against its sha256.

``rebuild(MANIFEST, DIR)`` turns the manifest back into a selection, fetches it with the
recorded fetch settings (through :func:`gbifxdl.fetch.fetch`, so resumable and polite),
and compares each written file with the sha256 the manifest recorded. Identical images
are kept with their original split; an image that changed at its source, or could not be
fetched any more, is removed (never silently replaced) and reported, one line per image,
in ``rebuild.json``, ``removed.parquet``, the card and the report. An image whose host
cannot be reached at all (connection refused, no such name) is ``unreachable_host``, not
vanished: the host may come back. A rebuild that delivers no image, or fewer than
``min_delivered`` of them, raises :class:`RebuildIncomplete` and writes no card, report or
``croissant.json`` (only ``rebuild.json``, saying what failed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from gbifxdl._io import write_text_atomic
from gbifxdl._locate import ImageLocator
from gbifxdl.curate.toolkit import (
    METADATA,
    REMOVED,
    column_or_nulls,
    provenance,
    read_table,
    split_shards,
    with_provenance,
    write_table,
)
from gbifxdl.errors import ConfigError, GbifxdlError
from gbifxdl.fetch.process import without_origin
from gbifxdl.publish.facts import REBUILD_STATE
from gbifxdl.publish.manifest import ADDED, read_manifest

__all__ = ["DEFAULT_MIN_DELIVERED", "RebuildIncomplete", "RebuildSummary", "rebuild"]

# the share of the manifest's images a rebuild must deliver identical to call the result the dataset
DEFAULT_MIN_DELIVERED = 0.5


class RebuildIncomplete(GbifxdlError):
    """A rebuild delivered no image, or fewer than the share asked for: no dataset is claimed."""


@dataclass
class RebuildSummary:
    """What a rebuild found: images identical, changed at the source, or gone."""

    output: Path
    total: int = 0
    identical: int = 0
    changed: int = 0
    vanished: int = 0
    unreachable: int = 0  # on hosts that could not be reached at all (refused, no such name)
    differences: list[dict[str, Any]] = field(default_factory=list)

    def format(self) -> str:
        """Return a human summary, one line per image that differs."""
        lines = [f"{self.output}: {self.identical} of {self.total} images identical to the manifest, "
                 f"{self.changed} changed at the source, {self.vanished} could not be fetched, "
                 f"{self.unreachable} on hosts that could not be reached"]  # fmt: skip
        lines += [f"  {d['reason']:<18} gbifID {d['gbifID']} {d['identifier']}" for d in self.differences[:50]]
        if len(self.differences) > 50:
            lines.append(f"  ... {len(self.differences) - 50} more in {self.output / REBUILD_STATE}")
        return "\n".join(lines)


def _fetch_settings(prov: dict[str, Any]) -> Any:
    from gbifxdl.fetch import FetchSettings

    recorded = dict(prov.get("fetch_settings") or {})
    if not recorded:
        raise ConfigError("the manifest records no fetch settings; it was not written by `gbifxdl export`")
    known = {f.name for f in dataclasses.fields(FetchSettings)}
    values = {k: v for k, v in recorded.items() if k in known}
    values["per_host_overrides"] = tuple(tuple(p) for p in values.get("per_host_overrides") or ())
    values["retry_failed"] = False
    return FetchSettings(**values)


def _drop_samples(root: Path, shard: str, keys: set[str]) -> None:
    """Rewrite a shard without the samples ``keys`` (to a temporary name, then renamed)."""
    path = root / shard
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tarfile.open(path) as src, tarfile.open(tmp, "w") as dst:
        for member in src:
            if member.name.split(".", 1)[0] not in keys:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    os.replace(tmp, path)


def _same_before_origin(locate: ImageLocator, where: tuple[str | None, str | None, str | None],
                        expected: str | None) -> bool:
    """Return whether the image at ``where`` (path, shard, key), without the ``gbifxdl orig=`` comment fetch
    now writes into re-encoded JPEGs, has the sha256 ``expected`` (a manifest made before the comment existed)."""
    if not expected:
        return False
    data = locate.data(*where)
    if data is None:
        return False
    stripped = without_origin(data)
    return stripped is not data and hashlib.sha256(stripped).hexdigest() == expected


def rebuild(manifest: str | Path, output_dir: str | Path, *, progress: bool = True,
            min_delivered: float = DEFAULT_MIN_DELIVERED) -> RebuildSummary:
    """Return what rebuilding the dataset of ``manifest`` into ``output_dir`` found.

    Raises :class:`RebuildIncomplete` when no image, or fewer than ``min_delivered``
    (a share, 0 to 1) of the manifest's, came back identical; nothing then claims a dataset.
    """
    from gbifxdl.publish.card import write_card
    from gbifxdl.fetch import fetch

    if not 0 <= min_delivered <= 1:
        raise ConfigError(f"--min-delivered {min_delivered:g}: give a share between 0 and 1 (0.9: 90% of the images)")
    table, prov, info = read_manifest(manifest)
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = _fetch_settings(prov)
    selection_prov = {k: v for k, v in prov.items() if k not in ("fetch_settings", "curate_settings", "rebuild")}
    selection = table.drop_columns([c for c in ADDED if c in table.column_names])
    write_table(with_provenance(selection, selection_prov), root / "selection.parquet")
    fetch(root / "selection.parquet", root, settings, progress=progress)

    fetched = read_table(root / METADATA)
    index = {h: i for i, h in enumerate(column_or_nulls(fetched, "url_hash"))}
    col = lambda t, name: column_or_nulls(t, name)  # noqa: E731
    got_outcome, got_sha = col(fetched, "outcome"), col(fetched, "sha256")
    got_where = list(zip(col(fetched, "path"), col(fetched, "shard"), col(fetched, "key")))
    locate = ImageLocator(root)
    summary = RebuildSummary(output=root, total=table.num_rows)
    keep: list[int] = []
    gone: list[tuple[int, str]] = []
    drop_from_shards: dict[str, set[str]] = {}
    for row, (url_hash, expected) in enumerate(zip(col(table, "url_hash"), col(table, "sha256"))):
        i = index.get(url_hash)
        outcome = got_outcome[i] if i is not None else "missing"
        if outcome == "ok" and (got_sha[i] == expected or _same_before_origin(locate, got_where[i], expected)):
            keep.append(row)
            continue
        reason = ("changed_at_source" if outcome == "ok" else
                  "unreachable_host" if outcome == "unreachable_host" else f"vanished_{outcome}")
        summary.changed += outcome == "ok"
        summary.unreachable += outcome == "unreachable_host"
        summary.vanished += outcome not in ("ok", "unreachable_host")
        if outcome == "ok":  # never keep a different image under the old one's name
            path, shard, key = got_where[i]
            if path:
                (root / path).unlink(missing_ok=True)
            elif shard:
                drop_from_shards.setdefault(shard, set()).add(key)
        gone.append((row, reason))
        summary.differences.append({
            "gbifID": col(table, "gbifID")[row], "url_hash": url_hash, "identifier": col(table, "identifier")[row],
            "reason": reason, "expected_sha256": expected, "got_sha256": got_sha[i] if i is not None else None,
        })  # fmt: skip
    summary.identical = len(keep)
    record = {"manifest": Path(manifest).name, "derived_doi": info.get("derived_doi"), "identical": summary.identical,
              "changed": summary.changed, "vanished": summary.vanished, "unreachable": summary.unreachable}  # fmt: skip
    state = {**record, "total": summary.total, "differences": summary.differences}
    if summary.total and (summary.identical == 0 or summary.identical < min_delivered * summary.total):
        write_text_atomic(root / REBUILD_STATE, json.dumps({**state, "incomplete": True}, indent=2, default=str) + "\n")
        raise RebuildIncomplete(_incomplete(summary, manifest, min_delivered))
    for shard, keys in drop_from_shards.items():
        _drop_samples(root, shard, keys)

    rows_of = lambda rows: fetched.take(pa.array([index[table.column("url_hash")[r].as_py()] for r in rows],  # noqa: E731
                                                 pa.int64()))  # fmt: skip
    kept = rows_of(keep)
    for name in ("split", "set"):
        if name in table.column_names:
            kept = kept.append_column(name, table.column(name).take(pa.array(keep, pa.int64())))
    kept_prov = {**prov, "fetch_settings": provenance(fetched).get("fetch_settings"), "rebuild": record}
    found = [(r, why) for r, why in gone if table.column("url_hash")[r].as_py() in index]
    removed = rows_of([r for r, _ in found]).append_column("removed_reason", pa.array([w for _, w in found], pa.string()))
    write_table(with_provenance(removed, kept_prov), root / REMOVED)
    write_table(with_provenance(kept, kept_prov), root / METADATA)
    if "split" in kept.column_names:  # shards as curation left them: one split each, with labels
        split_shards(root, (prov.get("curate_settings") or {}).get("class_column") or "speciesKey")
    write_text_atomic(root / REBUILD_STATE, json.dumps(state, indent=2, default=str) + "\n")
    write_card(root)
    from gbifxdl.report import write_report

    write_report(root)
    return summary


def _incomplete(summary: RebuildSummary, manifest: str | Path, min_delivered: float) -> str:
    """Return the one line a rebuild that delivered too little says."""
    reasons: dict[str, int] = {}
    for d in summary.differences:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    written = f"no card, report or croissant.json written (what failed: {summary.output / REBUILD_STATE})"
    if summary.identical == 0:
        return (f"rebuild of {manifest} delivered none of its {summary.total} images ({why}); {written}; "
                "run it again when the hosts answer")
    return (f"rebuild of {manifest} delivered {summary.identical} of {summary.total} images "
            f"({summary.identical / summary.total:.0%}), fewer than --min-delivered {min_delivered:g} ({why}); "
            f"{written}; run it again when the hosts answer, or pass a lower --min-delivered")
