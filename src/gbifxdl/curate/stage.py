"""The curation stage itself: :func:`curate` and :func:`purge_removed`.

:func:`curate` ends, unless told otherwise, by writing the dataset card
(:mod:`gbifxdl.publish.card`): this module therefore sits above publishing, while the
curation it runs (the other modules of :mod:`gbifxdl.curate`) sits below it, where the
card and the report read the curated tables with :mod:`gbifxdl.curate.toolkit`.
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
import pyarrow.parquet as pq

from gbifxdl.curate import (_columns, _crops, _files, _near, _plan, _rules, _setaside, _shard_splits, _splits, _table,
                            _write)
from gbifxdl.curate._setaside import PurgeSummary
from gbifxdl.curate._summary import CurateSummary, split_warnings
from gbifxdl.errors import ConfigError, CurateError
from gbifxdl.publish.card import write_card

__all__ = ["CROSS_CLASS_POLICIES", "CurateSettings", "CurateSummary", "PurgeSummary", "curate", "purge_removed",
           "split_warnings"]

CROSS_CLASS_POLICIES = ("drop-all", "keep-one", "keep-per-class")
FAILED = _plan.FAILED
SET_ASIDE = _setaside.SET_ASIDE
log = logging.getLogger("gbifxdl.curate")  # the stage's name, which the CLI quiets
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class CurateSettings:
    """How to clean and split a fetched dataset."""

    class_column: str = "speciesKey"
    # a photo under two labels: drop every copy, keep the best one, or one per class
    cross_class_duplicates: str = "drop-all"
    near_duplicates: bool = True
    # Hamming distance between 64-bit perceptual hashes of a candidate pair: 16 proposes ~99 % of
    # copies at another resolution, JPEG quality or with 1-5 % cropped off (bench/dedupe.py)
    phash_threshold: int = 16
    # ...and between its 128-bit colour hashes (chroma_hash); every candidate is then confirmed on
    # its pixels (see _pixels), so these are wide: they decide what is compared, not what is removed
    chroma_threshold: int = 32
    # how different a candidate pair's pixels may be and still be a copy: a multiple of the lines
    # bench/dedupe.py measured (1.0); larger tolerates more, and a very large value lets the hashes decide
    pixel_tolerance: float = 1.0
    # near duplicates to set aside above this share of the dataset are held back, with a warning
    # and example pairs in the report: the user decides (1.0 accepts any share)
    max_near_duplicate_share: float = 0.10
    # curating a dataset last curated before pixel-confirmed near duplicates changes what was
    # removed: refused (saying what would change) until this is set
    accept_near_duplicate_changes: bool = False
    n_split: int = 5  # folds of the original `set` column
    # classes with at most this many images, and at most half the median class size, become
    # `test_ood` (so a small --max-per-class still leaves classes to train on)
    ood_th: int = 5
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test
    group_by_occurrence: bool = True  # all images of one occurrence in one split
    split_by_time: bool = False  # oldest eventDate trains, newest tests
    seed: int = 0
    verify_hashes: bool = False  # read every image whole and compare its sha256 (slow)
    # False: trust the table's outcome, open no file (a table curated away from its files,
    # e.g. bench/curate_scale.py); files are still moved where there are any
    check_files: bool = True
    # rules over `gbifxdl infer`'s results (see _rules): keep or drop on a model's label
    # ("cleaner.label in [adult]"), a minimum score per model ("cleaner=0.8"; for the crop's
    # detector, the score a detection needs), a maximum outlier score per embedder ("bioclip=0.5":
    # cosine distance to the class's mean embedding), and a crop from a detector's best box
    keep: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    min_score: tuple[str, ...] = ()
    max_outlier: tuple[str, ...] = ()
    crop: str | None = None
    crop_padding: float = 0.0  # a share of the box's width and height added on every side
    crop_square: bool = False
    no_detection: str = "keep"  # an image the crop's detector found nothing in: keep (uncropped) or drop
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.cross_class_duplicates not in CROSS_CLASS_POLICIES:
            raise ConfigError(
                f"cross_class_duplicates={self.cross_class_duplicates!r}; use one of {', '.join(CROSS_CLASS_POLICIES)}"
            )
        if not 0 <= self.phash_threshold <= 32:
            raise ConfigError(f"phash_threshold={self.phash_threshold}; use 0..32 bits "
                              "(16 proposes resized, re-encoded and slightly cropped copies; pixels confirm them)")
        if not 0 <= self.chroma_threshold <= 128:
            raise ConfigError(f"chroma_threshold={self.chroma_threshold}; use 0..128 bits "
                              "(32 with phash 16 proposes ~99 % of copies; 128 proposes every pair phash_threshold finds)")
        if not self.pixel_tolerance > 0:
            raise ConfigError(f"pixel_tolerance={self.pixel_tolerance}; use a number above 0 (1.0: the measured "
                              "lines between copies and look-alikes; larger tolerates more difference)")
        if not 0 <= self.max_near_duplicate_share <= 1:
            raise ConfigError(f"max_near_duplicate_share={self.max_near_duplicate_share}; use a share from 0 to 1 "
                              "(0.1: hold back near-duplicate removals above a tenth of the dataset; 1: never)")
        if self.verify_hashes and not self.check_files:
            raise ConfigError("verify_hashes needs check_files: drop one of the two settings")
        if self.n_split < 1:
            raise ConfigError(f"n_split={self.n_split}; use at least 1 fold")
        if self.ood_th < 0:
            raise ConfigError(f"ood_th={self.ood_th}; use 0 or more images")
        fractions = tuple(float(f) for f in self.fractions)
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ConfigError(f"fractions={self.fractions!r}; give three non-negative numbers for train, val, test, e.g. 0.8,0.1,0.1")
        if abs(sum(fractions) - 1) > 1e-6:  # never rescaled behind the user's back
            raise ConfigError(f"fractions={','.join(f'{f:g}' for f in fractions)} add up to {sum(fractions):g}; give "
                              "three shares of train, val, test that add up to 1, e.g. 0.8,0.1,0.1")
        object.__setattr__(self, "fractions", fractions)
        if not self.class_column:
            raise ConfigError("class_column is empty; name a column of metadata.parquet, e.g. speciesKey")
        for name in ("keep", "drop", "min_score", "max_outlier"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        self.model_rules()  # a bad rule is a one-line error now, before anything runs

    def model_rules(self) -> _rules.Rules:
        """Return the model rules parsed (raises a one-line ConfigError for a bad one)."""
        return _rules.parse(self.keep, self.drop, self.min_score, self.max_outlier, self.crop, self.crop_padding,
                            self.crop_square, self.no_detection)

    def output_fingerprint(self) -> dict[str, Any]:
        """Return the settings that decide the curated dataset (a resumed run must keep them).

        Every setting does today (``verify_hashes`` may remove corrupt files); one that only
        changes speed must be left out.
        """
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k not in _NOT_OUTPUT and _DEFAULTS.get(k, object()) != v}



# settings that say how, not what: never part of the fingerprint
_NOT_OUTPUT = ("dry_run", "accept_near_duplicate_changes")
# settings added after datasets were curated: left out of the fingerprint at their default, so that
# fingerprints from before them still match
_DEFAULTS: dict[str, Any] = {"check_files": True, "max_near_duplicate_share": 0.10, "pixel_tolerance": 1.0,
                             "keep": (), "drop": (), "min_score": (), "max_outlier": (), "crop": None,
                             "crop_padding": 0.0, "crop_square": False, "no_detection": "keep"}
# how near-duplicate candidates are confirmed (recorded with the settings; absent: hashes alone)
NEAR_DUPLICATE_EVIDENCE = "pixels-2"  # pixels-1: before the third stage (the 256-pixel files)


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
    Memory stays bounded at any table size: the table is read a few columns and a batch
    at a time, and rewritten by streaming (see ``_columns``).
    """
    root = Path(dataset_dir)
    report = _progress_callback(progress)
    if not settings.dry_run:  # a table fetch reassembled names the shards before an earlier curation split them
        _shard_splits.relocate(root)
    src = _columns.open_source(root)
    n = src.num_rows
    classes, labels = _plan.class_codes(src, settings.class_column)
    plan = _plan.removals(root, src, classes, settings, report)
    pa.default_memory_pool().release_unused()  # what reading the hashes and signatures left in Arrow's pool
    keep_mask = plan.reason == 0
    keep = np.flatnonzero(keep_mask)

    groups, group_names = _plan.group_codes(src, keep, settings.group_by_occurrence)
    stamps = _plan.date_ranks(src, keep) if settings.split_by_time else None
    spec = _splits.SplitSpec(settings.n_split, settings.ood_th, settings.fractions, settings.split_by_time,
                             settings.seed, ood_relative=True)
    split_codes, fold_codes = _splits.assign_codes(classes[keep], labels, groups, group_names, stamps, spec)
    del groups

    settings_dict = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()
                     if k not in _NOT_OUTPUT and not (k == "check_files" and v)  # recorded only when files were not checked
                     and not (k in _MODEL_KEYS and v == _DEFAULTS[k])}  # model rules: recorded when set
    settings_dict["fractions"] = list(settings.fractions)
    original_meta = src.meta_schema.metadata or {}
    prov = _table.provenance(src.meta_schema.empty_table())
    previous = prov.get("curate_settings")  # the last curation's, if any
    if settings.near_duplicates:
        settings_dict["near_duplicate_evidence"] = NEAR_DUPLICATE_EVIDENCE
    prov["curate_settings"] = settings_dict
    metadata = _table.with_provenance(src.meta_schema.empty_table(), prov).schema.metadata or {}
    metadata = {**original_meta, **metadata}
    fold_names = [str(k) for k in range(settings.n_split)] + [_splits.OOD]
    # the added columns' codes, a few per row: int8, the smallest that holds them (ten million rows)
    split_full = np.full(n, -1, dtype=np.int8)
    split_full[keep] = split_codes
    fold_full = np.full(n, -1, dtype=np.int8 if len(fold_names) < 128 else np.int32)
    fold_full[keep] = fold_codes
    kept_added = [_write.Column("split", split_full, _write.texts(list(_splits.SPLIT_NAMES))),
                  _write.Column("set", fold_full, _write.texts(fold_names))]
    reason_codes = np.where(keep_mask, np.int8(-1), plan.reason)
    removed_added = [_write.Column("removed_reason", reason_codes, _write.texts(plan.names)),
                     _write.dup_texts(src, np.where(keep_mask, -1, plan.dup_of))]
    kept_added += _model_columns(plan.models, n, keep_mask)
    removed_added += _model_columns(plan.models, n, None)

    # rows removed before: which are kept now (restored) and which are removed anew
    was_removed = _was_removed(src)
    gone = np.flatnonzero(~keep_mask)
    names = np.array(plan.names, dtype=object)
    newly = Counter(dict(zip(*_counts(names, plan.reason[gone][~was_removed[gone]]))))
    if not settings.dry_run and not settings.accept_near_duplicate_changes:
        _refuse_unseen_near_duplicate_change(root, previous, plan, was_removed)
    near_summary = _near_summary(src, plan, names, gone, len(keep), settings)  # reads the table: before it is rewritten
    files = _file_plan(root, src, keep, plan.found_aside, prov)
    layout = "webdataset" if src.gather(["shard"], lambda t: pc.is_valid(t.column(0)).to_numpy(
        zero_copy_only=False)).any() else "folders"
    if not settings.dry_run:
        restored_back = src.back[keep_mask[src.n_meta:]] if len(src.back) else np.empty(0, dtype=np.int64)
        _write.write_tables(root, src, keep_mask, kept_added, removed_added, metadata, restored_back)
    moved = files(settings.dry_run, report)
    if not settings.dry_run and layout == "webdataset":  # one split a shard, each sample with its label
        moved.shards_rewritten += _shard_splits.split_shards(root, settings.class_column)
    crops = _crops.CropResult() if settings.dry_run else _crops.apply(root)  # the table written says what to cut
    models = plan.models.summary()
    if models:
        models["cropped"] = int(np.count_nonzero(keep_mask[plan.models.crop_rows]))
        models["crops"] = asdict(crops)
        for rule in models["rules"]:
            if "cropped" in rule:
                rule["cropped"] = models["cropped"]

    splits = dict(sorted(zip(*_counts(np.array(_splits.SPLIT_NAMES, dtype=object), split_codes))))
    sets = dict(sorted(zip(*_counts(np.array(fold_names, dtype=object), fold_codes))))
    summary = CurateSummary(
        dataset_dir=str(root),
        layout=layout,
        rows_in=n,
        kept=len(keep),
        classes=len(np.unique(classes[keep])),
        removed=dict(sorted(newly.items())),
        removed_total=dict(sorted(zip(*_counts(names, plan.reason[gone])))),
        failures=dict(sorted(plan.failures.items())),
        splits=splits,
        sets=sets,
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
        near_duplicates=near_summary,
        models=models,
    )
    summary.warnings[:0] = plan.models.warnings
    if crops.failed:
        summary.warnings.insert(0, f"{crops.failed} images could not be cut to their crop and were left as they were")
    if plan.near_held:
        summary.warnings.insert(0, _held_warning(plan.near_held, summary.near_duplicates["images"], root))
    for warning in summary.warnings:
        log.warning("%s: %s", root, warning)
    if not settings.dry_run:
        write_text_atomic(root / _table.SUMMARY, json.dumps(summary.saved(), indent=2, sort_keys=True) + "\n")
        if card:
            summary.card = str(write_card(root))
    return summary


_MODEL_KEYS = ("keep", "drop", "min_score", "max_outlier", "crop", "crop_padding", "crop_square", "no_detection")


def _model_columns(models: "_plan._models.Outcome", n: int, keep_mask: np.ndarray | None) -> list[_write.Column]:
    """Return the columns the model rules add: each outlier score (both tables); with ``keep_mask`` (the
    kept table), the crop's detector and box (``crop_model``, ``crop_box``: pixels x, y, w, h of the original)."""
    import pyarrow as pa

    out = []
    for name, scores in models.outliers.items():
        rows = np.flatnonzero(~np.isnan(scores))
        out.append(_write.values_column(f"{_table.OUTLIER_PREFIX}{name}", n, rows,
                                        pa.array(scores[rows].round(4), pa.float32())))
    if keep_mask is not None and models.crop_model is not None:
        rows = models.crop_rows
        # "element": the list's field as Parquet names it, so the table read back is the same, not rewritten
        boxes = pa.array(models.crop_boxes.tolist(), pa.list_(pa.field("element", pa.int32())))
        out.append(_write.Column("crop_model", np.where(np.isin(np.arange(n), rows), 0, -1),
                                 _write.texts([models.crop_model])))
        out.append(_write.values_column("crop_box", n, rows, boxes))
    return out


NEAR_REASONS = ("near_duplicate", "near_duplicate_across_classes")
_EXAMPLES = 12  # confirmed pairs kept in the summary for the report to show side by side


def _near_summary(src: _columns.Source, plan: _plan.Removals, names: np.ndarray, gone: np.ndarray, images: int,
                  settings: CurateSettings) -> dict[str, Any]:
    """Return what the near-duplicate search did: its evidence, what it removed (or held back), the
    false matches expected at this size, and a few confirmed pairs (url_hash, url_hash, scores)."""
    if plan.near is None:
        return {}
    removed = int(np.count_nonzero(np.isin(names[plan.reason[gone]], list(NEAR_REASONS))))
    images += removed  # the images the search looked at: those kept, and those it removed
    pairs = plan.near_pairs
    examples: list[list[Any]] = []
    if len(pairs):
        pick = np.random.default_rng(settings.seed).permutation(len(pairs))[:_EXAMPLES]
        pick = pick[np.argsort(pairs[pick, 0])]
        rows = np.unique(pairs[pick].ravel())
        urls = dict(zip(rows.tolist(), src.take("url_hash", rows).to_pylist()))
        for k in pick.tolist():
            examples.append([urls[int(pairs[k, 0])], urls[int(pairs[k, 1])],
                             *(None if np.isnan(v) else round(float(v), 3) for v in plan.near_scores[k])])
    return {
        "evidence": NEAR_DUPLICATE_EVIDENCE,
        "images": images,
        "removed": removed,
        "held_back": plan.near_held,
        "pairs": plan.near.as_dict(),
        "expected_false_matches": _near.expected_false_matches(images),
        "measured": {"pairs": _near.MEASURED_PAIRS, "false_matches": _near.MEASURED_FALSE},
        "examples": examples,
    }


def _held_warning(held: int, images: int, root: Path) -> str:
    share = held / max(images, 1)
    return (f"NEAR DUPLICATES HELD BACK: {held} of {images} images ({share:.0%}) would be set aside as near duplicates, "
            f"far more than copies usually are; nothing was removed for it. Look at the example pairs in "
            f"{root / 'report.html'} (`gbifxdl report {root}`), then either accept them "
            f"(`gbifxdl curate {root} --max-near-duplicate-share 1`) or keep every image (`--no-near-duplicates`)")


def _refuse_unseen_near_duplicate_change(root: Path, before: Any, plan: _plan.Removals, was_removed: np.ndarray
                                         ) -> None:
    """Raise the one-line error saying what would change, when ``root`` was last curated (settings
    ``before``) before near duplicates were confirmed on pixels and this curation would remove or
    restore other images for it."""
    if not isinstance(before, dict) or before.get("near_duplicate_evidence") or not before.get("near_duplicates", True):
        return
    near_codes = [plan.names.index(r) for r in NEAR_REASONS if r in plan.names]
    now_near = np.isin(plan.reason, near_codes)
    restored = int(np.count_nonzero(was_removed & (plan.reason == 0)))
    newly = int(np.count_nonzero(now_near & ~was_removed))
    if restored or newly:
        raise CurateError(
            f"{root} was curated by an older gbifxdl, whose near duplicates were matched on hashes alone; "
            f"confirmed on pixels, this curation would restore {restored} images and set aside {newly} more "
            f"(see `gbifxdl curate {root} --dry-run`); run again with --accept-near-duplicate-changes to apply it")


def _counts(names: np.ndarray, codes: np.ndarray) -> tuple[list[str], list[int]]:
    """Return (names, counts) of the codes present (as two lists, for zip)."""
    found, counts = np.unique(codes, return_counts=True)
    return names[found].tolist(), counts.tolist()


def _was_removed(src: _columns.Source) -> np.ndarray:
    """Return whether each row was in removed.parquet (rows only there, and rows in both tables)."""
    out = np.zeros(src.num_rows, dtype=bool)
    out[src.n_meta:] = True
    if src.removed_path is not None:
        keys = _table.row_keys(pq.read_table(src.removed_path, columns=[
            c for c in ("url_hash", "gbifID") if src.removed_schema is not None and c in src.removed_schema.names]))
        start = 0
        for part in src.batches(["url_hash", "gbifID"]):
            if start >= src.n_meta:
                break
            hit = pc.is_in(_table.row_keys(part), value_set=keys).to_numpy(zero_copy_only=False)
            out[start:start + part.num_rows] |= hit
            start += part.num_rows
    return out


def purge_removed(dataset_dir: str | Path, *, dry_run: bool = False) -> PurgeSummary:
    """Return how many set-aside files (and bytes) were deleted for good from ``dataset_dir``.

    These are the files curation removed and kept in ``.gbifxdl/removed`` so that a later
    curation with other settings could restore them; after this, it cannot. ``dataset_dir``
    may be a store URL (s3://, gs://, ...): its set-aside objects are listed and deleted there,
    none downloaded.
    """
    from gbifxdl.store import is_url

    if not is_url(dataset_dir):
        return _setaside.purge(Path(dataset_dir), dry_run=dry_run)
    from gbifxdl.store import open_store

    with open_store(str(dataset_dir)) as store:
        store.check_found()
        prefix = SET_ASIDE.as_posix() + "/"
        found = store.list_sizes(prefix)
        if found and not dry_run:
            store.remove_prefix(prefix)
    return _setaside.PurgeSummary(files=len(found), bytes=sum(found.values()), dry_run=dry_run)


def _file_plan(root: Path, src: _columns.Source, keep: np.ndarray, found_aside: np.ndarray, prov: dict[str, Any]
               ) -> Callable[[bool, Progress | None], _setaside.MoveResult]:
    """Return a function doing (or, dry, counting) the file moves that make the files match the kept rows.

    What to keep is read from the table now, before it is rewritten; the moves come after.
    """
    name = (prov.get("fetch_settings") or {}).get("images_dir") or _files.IMAGES
    base = (root / str(name)).resolve()
    inside = base.is_relative_to(root.resolve())  # never touch anything outside the dataset folder
    beside = base == root.resolve()  # images beside the tables: touch image files only
    folders = inside and (base.is_dir() or (root / SET_ASIDE).is_dir() or len(found_aside) > 0)
    shards_here = (root / _files.SHARDS).is_dir() or (root / SET_ASIDE / _files.SHARDS).is_dir()
    kept_paths: set[str] = set()
    restore: list[str] = []
    kept_keys: dict[str, set[str]] = {}
    if folders or shards_here:  # else no file to move (e.g. a table curated without its files)
        objects = lambda n: src.gather([n], lambda t: t.column(0).to_numpy(zero_copy_only=False).astype(object))  # noqa: E731
        in_shard = src.gather(["shard"], _columns.present)[keep]
        if folders:
            paths = objects("path")
            kept_paths = {p for p in paths[keep][~in_shard] if p}
            restore = sorted({p for p in paths[found_aside] if p in kept_paths}) if len(found_aside) else []
            del paths
        if shards_here:
            shards, keys = objects("shard"), objects("key")
            for shard, key in zip(shards[keep][in_shard], keys[keep][in_shard]):
                kept_keys.setdefault(shard, set()).add(key)

    def move(dry_run: bool, report: Progress | None) -> _setaside.MoveResult:
        result = _setaside.MoveResult()
        if folders:
            result = _setaside.sync_folder_files(root, root / str(name) if not beside else root, kept_paths, restore,
                                                 dry_run, beside, _files.IMAGE_EXTS)
            result.folders_removed = _files.remove_empty_folders(base, dry_run)
        if shards_here:
            by_shards = _setaside.sync_shard_files(root, kept_keys, dry_run, report)
            by_shards.folders_removed += _files.remove_empty_folders(root / _files.SHARDS, dry_run)
            result = result.add(by_shards)
        return result

    return move
