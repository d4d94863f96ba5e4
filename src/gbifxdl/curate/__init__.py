"""Curation: a fetched folder -> a clean, deduplicated, split dataset.

``curate(DIR)`` starts from every fetched row (the last curated table plus what it
removed, or the table fetch reassembled), drops failed rows, keeps files and table in
exact agreement, removes exact and near duplicates, and adds the ``split`` and ``set``
columns. It replaces ``DIR/metadata.parquet`` atomically, writes the rows it removed
(with ``removed_reason``) to ``DIR/removed.parquet`` and ``DIR/curate_summary.json``,
and by default the dataset card (``README.md``, ``ATTRIBUTION.csv``).

Nothing is deleted: removed files are moved to ``DIR/.gbifxdl/removed/`` (WebDataset:
removed samples to side shards there), and files that the current settings keep are
moved back, so curating again with other settings restores what an earlier curation
removed. ``purge_removed`` (``gbifxdl clean``) deletes the set-aside files for good.
Tables are written before files move, and every table write keeps the union of the two
tables complete, so a killed run is completed by running it again; a second run with
the same settings changes nothing. Nothing is printed: pass ``progress`` to follow it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gbifxdl._io import write_text_atomic
from gbifxdl.curate import _dedupe, _files, _setaside, _splits, _table
from gbifxdl.curate._setaside import PurgeSummary
from gbifxdl.curate._summary import CurateSummary, split_warnings
from gbifxdl.errors import ConfigError

__all__ = ["CROSS_CLASS_POLICIES", "CurateSettings", "CurateSummary", "PurgeSummary", "curate", "purge_removed",
           "split_warnings"]

CROSS_CLASS_POLICIES = ("drop-all", "keep-one", "keep-per-class")
FAILED = "fetch_failed"
SET_ASIDE = _setaside.SET_ASIDE
log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class CurateSettings:
    """How to clean and split a fetched dataset."""

    class_column: str = "speciesKey"
    # a photo under two labels: drop every copy, keep the best one, or one per class
    cross_class_duplicates: str = "drop-all"
    near_duplicates: bool = True
    # Hamming distance between 64-bit perceptual hashes: 10 finds >= 95 % of copies at another
    # resolution, JPEG quality or with a few percent cropped (bench/dedupe.py)
    phash_threshold: int = 10
    # a pair within phash_threshold is a copy only if its 128-bit colour hashes (chroma_hash)
    # are within this too: 20 keeps >= 95 % of copies and drops ~70x the false matches
    chroma_threshold: int = 20
    n_split: int = 5  # folds of the original `set` column
    # classes with at most this many images, and at most half the median class size, become
    # `test_ood` (so a small --max-per-class still leaves classes to train on)
    ood_th: int = 5
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
            raise ConfigError(f"phash_threshold={self.phash_threshold}; use 0..32 bits "
                              "(10 catches resized, re-encoded and slightly cropped copies)")
        if not 0 <= self.chroma_threshold <= 128:
            raise ConfigError(f"chroma_threshold={self.chroma_threshold}; use 0..128 bits "
                              "(20 confirms copies; 128 accepts every pair phash_threshold finds)")
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

    def output_fingerprint(self) -> dict[str, Any]:
        """Return the settings that decide the curated dataset (a resumed run must keep them).

        Every setting does today (``verify_hashes`` may remove corrupt files); one that only
        changes speed must be left out.
        """
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}



def _progress_callback(progress: bool | Progress | None) -> Progress | None:
    if callable(progress):
        return progress
    if progress:  # True: progress goes to the log, never to the terminal
        return lambda what, done, total: log.debug("%s: %d/%d", what, done, total)
    return None


def curate(
    dataset_dir: str | Path,
    settings: CurateSettings = CurateSettings(),
    *,
    progress: bool | Progress | None = None,
    card: bool = True,
) -> CurateSummary:
    """Return the summary of curating ``dataset_dir`` in place (see the module docstring).

    ``progress``: a callable ``(what, done, total)`` called as files are checked and
    moved. ``card``: also write the dataset card and attributions (not in a dry run).
    Empty splits are logged as warnings and listed in ``summary.warnings``.
    """
    root = Path(dataset_dir)
    report = _progress_callback(progress)
    table, original, previous = _table.full_table(root)
    n = table.num_rows
    classes = _class_labels(table, settings.class_column)
    reason, dup_of, found_aside = _removals(root, table, classes, settings, report)
    keep = np.flatnonzero(reason == "")

    kept_rows = table.take(pa.array(keep, pa.int64()))
    groups = _groups(kept_rows, settings.group_by_occurrence)
    dates = _table.column_or_nulls(kept_rows, "eventDate")
    spec = _splits.SplitSpec(settings.n_split, settings.ood_th, settings.fractions, settings.split_by_time,
                             settings.seed, ood_relative=True)
    split, fold = _splits.assign(classes[keep].tolist(), groups, dates, spec)

    settings_dict = {k: v for k, v in asdict(settings).items() if k != "dry_run"}
    settings_dict["fractions"] = list(settings.fractions)
    prov = _table.provenance(original)
    prov["curate_settings"] = settings_dict
    kept = kept_rows.append_column("split", pa.array(split, pa.string()))
    kept = kept.append_column("set", pa.array(fold, pa.string()))
    kept = _table.with_provenance(kept, prov, like=original)
    gone = np.flatnonzero(reason != "")
    removed = table.take(pa.array(gone, pa.int64()))
    removed = removed.append_column("removed_reason", pa.array(reason[gone], pa.string()))
    removed = removed.append_column("duplicate_of", pa.array(dup_of[gone], pa.string()))
    removed = _table.with_provenance(removed, prov, like=original)

    # rows removed before: which are kept now (restored) and which are removed anew
    was_removed = (pc.is_in(_table.row_keys(table), value_set=_table.row_keys(previous)).to_numpy(zero_copy_only=False)
                   if previous is not None and previous.num_rows else np.zeros(n, dtype=bool))
    newly = Counter(reason[gone][~was_removed[gone]].tolist())
    if not settings.dry_run:
        _write_tables(root, kept, original, removed, previous)
    moved = _sync_files(root, table, keep, found_aside, settings.dry_run, prov, report)

    outcomes = _table.column_or_nulls(removed, "outcome")
    splits = dict(sorted(Counter(split).items()))
    summary = CurateSummary(
        dataset_dir=str(root),
        layout="webdataset" if pc.any(pc.is_valid(_column(table, "shard"))).as_py() else "folders",
        rows_in=n,
        kept=len(keep),
        classes=len(set(classes[keep].tolist())),
        removed=dict(sorted(newly.items())),
        removed_total=dict(sorted(Counter(reason[gone].tolist()).items())),
        failures=dict(sorted(Counter(str(o) for r, o in zip(reason[gone], outcomes) if r == FAILED).items())),
        splits=splits,
        sets=dict(sorted(Counter(fold).items())),
        restored=int(np.count_nonzero(was_removed[keep])),
        files_set_aside=moved.files_set_aside,
        files_restored=moved.files_restored,
        samples_set_aside=moved.samples_set_aside,
        samples_restored=moved.samples_restored,
        shards_rewritten=moved.shards_rewritten,
        folders_removed=moved.folders_removed,
        dry_run=settings.dry_run,
        settings=settings_dict,
        warnings=split_warnings(splits, settings.fractions, settings.ood_th),
    )
    for warning in summary.warnings:
        log.warning("%s: %s", root, warning)
    if not settings.dry_run:
        write_text_atomic(root / _table.SUMMARY, json.dumps(summary.saved(), indent=2, sort_keys=True) + "\n")
        if card:
            from gbifxdl.card import write_card

            summary.card = str(write_card(root))
    return summary


def purge_removed(dataset_dir: str | Path, *, dry_run: bool = False) -> PurgeSummary:
    """Return how many set-aside files (and bytes) were deleted for good from ``dataset_dir``.

    These are the files curation removed and kept in ``.gbifxdl/removed`` so that a later
    curation with other settings could restore them; after this, it cannot.
    """
    return _setaside.purge(Path(dataset_dir), dry_run=dry_run)


def _groups(table: pa.Table, by_occurrence: bool) -> list[str]:
    """Return each row's split group: its occurrence (``occ:<gbifID>``), or the image alone."""
    n = table.num_rows
    image = pc.binary_join_element_wise("img:", pc.fill_null(_column(table, "url_hash"), ""), "")
    image = pc.if_else(pc.equal(image, "img:"), pc.binary_join_element_wise(
        "img:", pc.cast(pa.array(np.arange(n)), pa.string()), ""), image)  # no url_hash: the row itself
    if not by_occurrence or "gbifID" not in table.column_names:
        return image.to_pylist()
    gbif = _column(table, "gbifID")
    occurrence = pc.binary_join_element_wise("occ:", pc.cast(gbif, pa.string()), "")
    return pc.if_else(pc.is_valid(gbif), occurrence, image).to_pylist()


def _present(values: pa.Array) -> np.ndarray:
    """Return a boolean numpy mask: non-null, non-empty strings."""
    return pc.fill_null(pc.not_equal(values, ""), False).to_numpy(zero_copy_only=False)


def _column(table: pa.Table, name: str) -> pa.Array:
    if name in table.column_names:
        return table.column(name).combine_chunks()
    return pa.nulls(table.num_rows, pa.string())


def _class_labels(table: pa.Table, column: str) -> np.ndarray:
    """Return each row's class as a string (``unlabeled`` where null), as a numpy object array."""
    _table.class_labels(table.slice(0, 0), column)  # raises the helpful error for a missing column
    values = pc.cast(table.column(column), pa.string()) if table.column(column).type != pa.string() \
        else table.column(column)
    return pc.fill_null(values, "unlabeled").to_numpy(zero_copy_only=False).astype(object)


def _codes(table: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    """Return integer codes of a column's values at ``rows`` (equal values, equal codes; -1 for null)."""
    encoded = pc.dictionary_encode(_column(table, name).take(pa.array(rows, pa.int64())))
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _write_tables(root: Path, kept: pa.Table, original: pa.Table, removed: pa.Table, previous: pa.Table | None) -> None:
    """Write removed.parquet, then metadata.parquet, so that their union is every row at any kill."""
    removed_path, meta_path = root / _table.REMOVED, root / _table.METADATA
    interim = removed
    if previous is not None and previous.num_rows:
        # rows removed before and kept now are not in the old metadata.parquet: until the
        # new one is in place, removed.parquet must still hold them
        back = previous.filter(pc.invert(pc.is_in(_table.row_keys(previous), value_set=_table.row_keys(removed))))
        if back.num_rows:
            interim = pa.concat_tables([removed, back.replace_schema_metadata(removed.schema.metadata)],
                                       promote_options="permissive")
    if previous is None or not interim.equals(previous, check_metadata=True):
        if interim.num_rows or previous is not None:
            _table.write_table(interim, removed_path)
    if not kept.equals(original, check_metadata=True):
        _table.write_table(kept, meta_path)
    if interim is not removed:
        _table.write_table(removed, removed_path)


def _sync_files(root: Path, table: pa.Table, keep: np.ndarray, found_aside: np.ndarray, dry_run: bool,
                prov: dict[str, Any], report: Progress | None) -> _setaside.MoveResult:
    """Return what moving removed files aside and kept set-aside files back did."""
    shards = _column(table, "shard").to_numpy(zero_copy_only=False)
    keys = _column(table, "key").to_numpy(zero_copy_only=False)
    paths = _column(table, "path").to_numpy(zero_copy_only=False)
    in_shard = _present(_column(table, "shard"))[keep]
    kept_keys: dict[str, set[str]] = {}
    for shard, key in zip(shards[keep][in_shard], keys[keep][in_shard]):
        kept_keys.setdefault(shard, set()).add(key)
    kept_paths = {p for p in paths[keep][~in_shard] if p}
    restore = sorted({p for p in paths[found_aside] if p in kept_paths}) if len(found_aside) else []
    result = _setaside.MoveResult()
    name = (prov.get("fetch_settings") or {}).get("images_dir") or _files.IMAGES
    base = (root / str(name)).resolve()
    if base.is_relative_to(root.resolve()):  # never touch anything outside the dataset folder
        beside = base == root.resolve()  # images beside the tables: touch image files only
        result = _setaside.sync_folder_files(root, root / str(name) if not beside else root, kept_paths, restore,
                                             dry_run, beside, _files.IMAGE_EXTS)
        result.folders_removed = _files.remove_empty_folders(base, dry_run)
    by_shards = _setaside.sync_shard_files(root, kept_keys, dry_run, report)
    by_shards.folders_removed += _files.remove_empty_folders(root / _files.SHARDS, dry_run)
    return result.add(by_shards)


def _removals(root: Path, table: pa.Table, classes: np.ndarray, settings: CurateSettings, report: Progress | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (removed_reason per row, "" when kept; url_hash of the copy it duplicates, or None;
    rows whose file was found set aside)."""
    n = table.num_rows
    reason = np.full(n, "", dtype=object)
    dup_of = np.full(n, None, dtype=object)
    ok = pc.fill_null(pc.equal(table.column("outcome"), "ok"), False).to_numpy(zero_copy_only=False)
    reason[~ok] = FAILED

    # files: a row with a shard is a WebDataset sample, else a file under images/ (or set aside)
    col = lambda name: _column(table, name).to_numpy(zero_copy_only=False)  # noqa: E731
    shards, paths, sizes = col("shard"), col("path"), _column(table, "bytes").to_pylist()
    alive = np.flatnonzero(ok)
    has_shard = _present(_column(table, "shard"))[alive]
    digests = col("sha256") if settings.verify_hashes else None
    aside = root / SET_ASIDE
    found: list[int] = []
    problems = _files.check_samples(root, shards, col("key"), sizes, alive[has_shard].tolist(), report, digests, aside)
    problems.update(_files.check_files(root, paths, sizes, alive[~has_shard].tolist(), report, digests, aside, found))
    if problems:
        rows = np.fromiter(problems.keys(), dtype=np.int64, count=len(problems))
        reason[rows] = np.array(list(problems.values()), dtype=object)
    alive = np.flatnonzero(reason == "")

    # the best copy of a photo: the largest original, then the largest file, then the first row
    # (kept rows come first in the full table, so a rerun keeps the same copy)
    pixels = pc.multiply(pc.fill_null(pc.cast(_column(table, "orig_width"), pa.int64()), 0),
                         pc.fill_null(pc.cast(_column(table, "orig_height"), pa.int64()), 0))
    order = pc.sort_indices(pa.table({"p": pixels, "b": pc.fill_null(pc.cast(_column(table, "bytes"), pa.int64()), 0),
                                      "i": pa.array(np.arange(n))}),
                            sort_keys=[("p", "descending"), ("b", "descending"), ("i", "ascending")]).to_numpy()
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    ids, policy = col("url_hash"), settings.cross_class_duplicates

    edges = [_dedupe.equal_edges(_codes(table, c, alive), alive) for c in ("sha256", "pixel_hash")]
    a, b = np.concatenate([e[0] for e in edges]), np.concatenate([e[1] for e in edges])
    drops = _dedupe.resolve([g.tolist() for g in _dedupe.components(a, b)], classes, rank, ids, policy, "duplicate")
    if settings.near_duplicates and "phash" in table.column_names:
        alive = alive[~np.isin(alive, np.fromiter(drops, dtype=np.int64, count=len(drops)))]
        hashes = table.column("phash").combine_chunks()
        alive = alive[pc.is_valid(hashes.take(pa.array(alive, pa.int64()))).to_numpy(zero_copy_only=False)]
        values = pc.fill_null(hashes, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        confirm = has_confirm = None
        if "chroma_hash" in table.column_names:  # absent or null for rows fetched before it: phash alone
            wide = table.column("chroma_hash").combine_chunks().cast(pa.binary(16))
            words = np.frombuffer(wide.buffers()[1], dtype=">u8")[wide.offset * 2:(wide.offset + n) * 2]
            confirm = words.reshape(n, 2)  # 16 bytes a row, null rows too: read in place, no copy
            has_confirm = pc.is_valid(wide).to_numpy(zero_copy_only=False)
        a, b = _dedupe.phash_edges(values, alive, settings.phash_threshold, confirm=confirm,
                                   has_confirm=has_confirm, confirm_threshold=settings.chroma_threshold)
        groups = [g.tolist() for g in _dedupe.components(a, b)]
        drops.update(_dedupe.resolve(groups, classes, rank, ids, policy, "near_duplicate"))
    for i, decision in drops.items():
        reason[i], dup_of[i] = decision.reason, decision.duplicate_of
    return reason, dup_of, np.array(sorted(found), dtype=np.int64)
