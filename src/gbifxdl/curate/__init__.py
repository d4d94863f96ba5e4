"""Curation: a fetched folder -> a clean, deduplicated, split dataset.

``curate(DIR)`` drops failed rows, keeps files and table in exact agreement, removes
exact and near duplicates, and adds the ``split`` and ``set`` columns. It replaces
``DIR/metadata.parquet`` atomically, appends what it removed (with ``removed_reason``)
to ``DIR/removed.parquet`` and saves ``DIR/curate_summary.json``. Files are deleted only
after the new table is in place, and deletion is driven by that table, so a killed run
is completed by running it again; a second run on a curated folder changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from gbifxdl._io import write_text_atomic
from gbifxdl.curate import _dedupe, _files, _splits, _table
from gbifxdl.errors import ConfigError

__all__ = ["CROSS_CLASS_POLICIES", "CurateSettings", "CurateSummary", "curate"]

CROSS_CLASS_POLICIES = ("drop-all", "keep-one", "keep-per-class")
FAILED = "fetch_failed"


@dataclass(frozen=True)
class CurateSettings:
    """How to clean and split a fetched dataset."""

    class_column: str = "speciesKey"
    # a photo under two labels: drop every copy, keep the best one, or one per class
    cross_class_duplicates: str = "drop-all"
    near_duplicates: bool = True
    phash_threshold: int = 4  # Hamming distance between 64-bit perceptual hashes
    n_split: int = 5  # folds of the original `set` column
    ood_th: int = 5  # classes with at most this many images become `test_ood`
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
    group_by_occurrence: bool = True  # all images of one occurrence in one split
    split_by_time: bool = False  # oldest eventDate trains, newest tests
    seed: int = 0
    verify_hashes: bool = False  # read every image whole and compare its sha256 (slow)
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.cross_class_duplicates not in CROSS_CLASS_POLICIES:
            raise ConfigError(
                f"cross_class_duplicates={self.cross_class_duplicates!r}; use one of {', '.join(CROSS_CLASS_POLICIES)}"
            )
        if not 0 <= self.phash_threshold <= 32:
            raise ConfigError(f"phash_threshold={self.phash_threshold}; use 0..32 bits (4 catches resized copies)")
        if self.n_split < 1:
            raise ConfigError(f"n_split={self.n_split}; use at least 1 fold")
        if self.ood_th < 0:
            raise ConfigError(f"ood_th={self.ood_th}; use 0 or more images")
        fractions = tuple(float(f) for f in self.fractions)
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ConfigError(f"fractions={self.fractions!r}; give three non-negative numbers for train, val, test, e.g. 0.8,0.1,0.1")
        object.__setattr__(self, "fractions", fractions)
        if not self.class_column:
            raise ConfigError("class_column is empty; name a column of metadata.parquet, e.g. speciesKey")


@dataclass
class CurateSummary:
    """What curation kept and removed, and why."""

    dataset_dir: str
    layout: str
    rows_in: int
    kept: int
    classes: int
    removed: dict[str, int]  # this run, by reason
    removed_total: dict[str, int]  # all runs, by reason (from removed.parquet)
    failures: dict[str, int]  # all runs: failed fetches by outcome
    splits: dict[str, int]
    sets: dict[str, int]
    files_deleted: int = 0
    samples_dropped: int = 0
    shards_rewritten: int = 0
    folders_removed: int = 0
    dry_run: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def saved(self) -> dict[str, Any]:
        """Return the part saved as curate_summary.json: the dataset's state, not this run's work."""
        return {
            "layout": self.layout,
            "images": self.kept,
            "classes": self.classes,
            "splits": self.splits,
            "sets": self.sets,
            "removed": self.removed_total,
            "failures": self.failures,
            "settings": self.settings,
        }

    def format(self) -> str:
        """Return a human-readable report of this run."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{self.dataset_dir} ({self.layout}): {self.rows_in} rows in, {self.kept} images kept "
            f"in {self.classes} classes{' (dry run: nothing changed)' if self.dry_run else ''}",
        ]
        if self.removed:
            lines.append(f"{verb} {sum(self.removed.values())} rows:")
            lines += [f"  {reason:<30} {n}" for reason, n in sorted(self.removed.items())]
        else:
            lines.append(f"{verb} nothing")
        if self.files_deleted or self.samples_dropped or self.folders_removed:
            lines.append(
                f"files {'to delete' if self.dry_run else 'deleted'}: {self.files_deleted}, "
                f"shard samples dropped: {self.samples_dropped} ({self.shards_rewritten} shards), "
                f"empty folders: {self.folders_removed}"
            )
        lines.append("splits: " + (", ".join(f"{k} {v}" for k, v in sorted(self.splits.items())) or "none"))
        return "\n".join(lines)


def curate(dataset_dir: str | Path, settings: CurateSettings = CurateSettings(), *, progress: bool = True) -> CurateSummary:
    """Return the summary of curating ``dataset_dir`` in place (see the module docstring)."""
    root = Path(dataset_dir)
    meta_path = root / _table.METADATA
    original = _table.read_table(meta_path)
    _table.require_columns(original, ("outcome", "url_hash"), meta_path)
    table = _table.drop_columns(original, _table.ADDED_KEPT)
    classes = _table.class_labels(table, settings.class_column)
    col = lambda name: _table.column_or_nulls(table, name)  # noqa: E731
    reasons, dup_of = _removals(root, table, classes, settings, progress)

    keep = [i for i in range(table.num_rows) if i not in reasons]
    ids, gbif_ids, dates = col("url_hash"), col("gbifID"), col("eventDate")
    groups = [
        f"occ:{gbif_ids[i]}" if settings.group_by_occurrence and gbif_ids[i] is not None else f"img:{ids[i] or i}"
        for i in keep
    ]
    spec = _splits.SplitSpec(settings.n_split, settings.ood_th, settings.fractions, settings.split_by_time, settings.seed)
    split, fold = _splits.assign([classes[i] for i in keep], groups, [dates[i] for i in keep], spec)

    settings_dict = {k: v for k, v in asdict(settings).items() if k != "dry_run"}
    settings_dict["fractions"] = list(settings.fractions)
    prov = _table.provenance(original)
    prov["curate_settings"] = settings_dict
    kept = table.take(pa.array(keep, type=pa.int64()))
    kept = kept.append_column("split", pa.array(split, pa.string())).append_column("set", pa.array(fold, pa.string()))
    kept = _table.with_provenance(kept, prov, like=original)
    gone = sorted(reasons)
    removed = _table.drop_columns(table.take(pa.array(gone, type=pa.int64())), _table.ADDED_REMOVED)
    removed = removed.append_column("removed_reason", pa.array([reasons[i] for i in gone], pa.string()))
    removed = removed.append_column("duplicate_of", pa.array([dup_of.get(i) for i in gone], pa.string()))

    removed_path = root / _table.REMOVED
    previous = _table.read_table(removed_path) if removed_path.is_file() else None
    merged = _table.append_removed(previous, removed)
    if not settings.dry_run:
        # order matters for kill-safety: the record of removals, then the table, then files
        if merged is not None:
            _table.write_table(merged, removed_path)
        if not kept.equals(original, check_metadata=True):
            _table.write_table(kept, meta_path)
    shards, keys, paths = col("shard"), col("key"), col("path")
    kept_keys: dict[str, set[str]] = {}
    for i in keep:
        if shards[i]:
            kept_keys.setdefault(shards[i], set()).add(keys[i])
    kept_paths = {paths[i] for i in keep if paths[i] and not shards[i]}
    by_files = _sync_images(root, kept_paths, settings.dry_run, _table.provenance(original))
    by_shards = _files.sync_shards(root, kept_keys, settings.dry_run, progress)

    everything = merged if merged is not None else previous
    all_reasons = _table.column_or_nulls(everything, "removed_reason") if everything is not None else []
    all_outcomes = _table.column_or_nulls(everything, "outcome") if everything is not None else []
    summary = CurateSummary(
        dataset_dir=str(root),
        layout="webdataset" if any(shards) else "folders",
        rows_in=table.num_rows,
        kept=len(keep),
        classes=len({classes[i] for i in keep}),
        removed=dict(sorted(Counter(reasons.values()).items())),
        removed_total=dict(sorted(Counter(all_reasons).items())),
        failures=dict(sorted(Counter(str(o) for r, o in zip(all_reasons, all_outcomes) if r == FAILED).items())),
        splits=dict(sorted(Counter(split).items())),
        sets=dict(sorted(Counter(fold).items())),
        files_deleted=by_files.files_deleted + by_shards.files_deleted,
        samples_dropped=by_shards.samples_dropped,
        shards_rewritten=by_shards.shards_rewritten,
        folders_removed=by_files.folders_removed + by_shards.folders_removed,
        dry_run=settings.dry_run,
        settings=settings_dict,
    )
    if not settings.dry_run:
        write_text_atomic(root / _table.SUMMARY, json.dumps(summary.saved(), indent=2, sort_keys=True) + "\n")
    return summary


def _sync_images(root: Path, kept: set[str], dry_run: bool, prov: dict[str, Any]) -> _files.SyncResult:
    """Return what deleting unreferenced files from fetch's image folder did."""
    name = (prov.get("fetch_settings") or {}).get("images_dir") or _files.IMAGES
    base = (root / str(name)).resolve()
    if base == root.resolve():  # images beside the tables: touch image files only
        return _files.sync_folders(root, kept, dry_run, base=root, only_images=True)
    if not base.is_relative_to(root.resolve()):  # never delete outside the dataset folder
        return _files.SyncResult()
    return _files.sync_folders(root, kept, dry_run, base=root / str(name))


def _removals(
    root: Path, table: pa.Table, classes: list[str], settings: CurateSettings, progress: bool
) -> tuple[dict[int, str], dict[int, str | None]]:
    """Return ({row: removed_reason}, {row: url_hash of the copy it duplicates})."""
    n = table.num_rows
    col = lambda name: _table.column_or_nulls(table, name)  # noqa: E731
    reasons = {i: FAILED for i, outcome in enumerate(col("outcome")) if outcome != "ok"}
    alive = [i for i in range(n) if i not in reasons]

    # files: a row with a shard is a WebDataset sample, else a file under images/
    shards, sizes = col("shard"), col("bytes")
    in_shards = [i for i in alive if shards[i]]
    in_files = [i for i in alive if not shards[i]]
    digests = col("sha256") if settings.verify_hashes else None
    reasons.update(_files.check_samples(root, shards, col("key"), sizes, in_shards, progress, digests))
    reasons.update(_files.check_files(root, col("path"), sizes, in_files, progress, digests))
    alive = [i for i in alive if i not in reasons]

    # the best copy of a photo is the largest original, then the largest file, then the first
    pixels = [(w or 0) * (h or 0) for w, h in zip(col("orig_width"), col("orig_height"))]
    rank = [0] * n
    for r, i in enumerate(sorted(range(n), key=lambda i: (-pixels[i], -(sizes[i] or 0), i))):
        rank[i] = r
    ids, policy = col("url_hash"), settings.cross_class_duplicates

    uf = _dedupe.UnionFind(n)
    for a, b in _dedupe.equal_value_pairs(col("sha256"), alive) + _dedupe.equal_value_pairs(col("pixel_hash"), alive):
        uf.union(a, b)
    drops = _dedupe.resolve(uf.groups(alive), classes, rank, ids, policy, "duplicate")
    if settings.near_duplicates:
        alive = [i for i in alive if i not in drops]
        uf = _dedupe.UnionFind(n)
        for a, b in _dedupe.phash_pairs(col("phash"), alive, settings.phash_threshold):
            uf.union(a, b)
        drops.update(_dedupe.resolve(uf.groups(alive), classes, rank, ids, policy, "near_duplicate"))
    reasons.update({i: d.reason for i, d in drops.items()})
    return reasons, {i: d.duplicate_of for i, d in drops.items()}
