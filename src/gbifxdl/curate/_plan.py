"""What curation decides per row, as numpy arrays: removals and their reasons, groups, classes.

Every function reads only the columns it needs from the :class:`~._columns.Source`, a
batch at a time, and returns arrays of one small number per row (a boolean, a code, a
row number): ten million rows cost tens of megabytes each, never a Python object per row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gbifxdl._marks import REMOVING, latest_marks
from gbifxdl.curate import _columns, _crops, _dedupe, _files, _models, _near
from gbifxdl.curate._columns import Source
from gbifxdl.errors import CurateError

FAILED = "fetch_failed"
Progress = Callable[[str, int, int], None]


@dataclass
class Removals:
    """Per row: why it goes (an index of ``names``, 0 = kept) and the row of the copy kept (-1 = none)."""

    reason: np.ndarray
    dup_of: np.ndarray
    names: list[str] = field(default_factory=lambda: [""])
    found_aside: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    failures: Counter[str] = field(default_factory=Counter)
    near: _near.Evidence | None = None  # how near-duplicate candidates were decided (None: not searched)
    near_pairs: np.ndarray = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))  # confirmed (row, row)
    near_scores: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))  # their scores (signature, pixels, 256 px)
    near_held: int = 0  # near-duplicate removals held back: an unusual share of the dataset (see curate)
    models: _models.Outcome = field(default_factory=_models.Outcome)  # what the model rules decided

    def code(self, name: str) -> int:
        """Return the code of reason ``name`` (added on first use)."""
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)


def class_codes(src: Source, column: str) -> tuple[np.ndarray, list[str]]:
    """Return (each row's class code, the label of each code): the class as text, ``unlabeled`` where null."""
    if not src.has(column):
        raise CurateError(f"class column {column!r} is not in metadata.parquet; choose one of: "
                          + ", ".join(src.schema.names))
    # two passes over the (narrow) column: the labels, then each row's code, filled in place
    found: set[str] = set()
    unlabeled = False
    for part in src.batches([column]):
        text = pc.cast(part.column(0), pa.string())
        found.update(v for v in pc.unique(text).to_pylist() if v is not None)
        unlabeled = unlabeled or text.null_count > 0
    labels = sorted(found | ({"unlabeled"} if unlabeled else set()))
    value_set = pa.array(labels, pa.string())
    dtype = np.int32 if len(labels) < 2**31 else np.int64
    codes = src.gather([column], lambda t: pc.index_in(
        pc.fill_null(pc.cast(t.column(0), pa.string()), "unlabeled"), value_set=value_set).to_numpy().astype(dtype))
    return codes, labels


def best_copy_rank(src: Source) -> np.ndarray:
    """Return each row's rank as a copy (0 best): largest original, then largest file, then first row."""
    pixels = src.gather(["orig_width", "orig_height"], lambda t: pc.negate(pc.multiply(
        pc.fill_null(pc.cast(t.column(0), pa.int64()), 0), pc.fill_null(pc.cast(t.column(1), pa.int64()), 0))).to_numpy())
    nbytes = src.gather(["bytes"], lambda t: -_columns.integers(t))
    order = np.lexsort((nbytes, pixels))  # stable: equal keys keep row order
    del pixels, nbytes
    rank = np.empty(len(order), dtype=np.int32 if len(order) < 2**31 else np.int64)
    rank[order] = np.arange(len(order), dtype=rank.dtype)
    return rank


def removals(root: Path, src: Source, classes: np.ndarray, settings: Any, report: Progress | None) -> Removals:
    """Return why each row goes (failed fetch, file problem, duplicate) and the copy it duplicates."""
    n = src.num_rows
    out = Removals(np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int64))
    ok_parts = []
    for part in src.batches(["outcome"]):
        ok = _columns.mask(part, lambda c: pc.equal(c, "ok"))
        ok_parts.append(ok)
        failed = part.column(0).filter(pa.array(~ok))
        out.failures.update({str(v): int(k) for v, k in zip(*_value_counts(failed))})
    ok = np.concatenate(ok_parts) if ok_parts else np.zeros(0, dtype=bool)
    out.reason[~ok] = out.code(FAILED)
    if settings.check_files:
        _check_files(root, src, ok, out, settings.verify_hashes, report)
    _review_marks(root, src, out)
    out.models = _models.apply(root, src, classes, out.reason, out.code, settings.model_rules())
    alive = np.flatnonzero(out.reason == 0)
    rank = best_copy_rank(src)
    ids = range(n)  # a row's id is its number (a range: no array of ten million)
    edges_a, edges_b = [], []
    for name in ("sha256", "pixel_hash"):
        a, b = _columns.equal_word_edges(src.gather([name], _columns.digest_words), alive)
        edges_a.append(a)
        edges_b.append(b)
    policy = settings.cross_class_duplicates
    drops = _dedupe.resolve([g.tolist() for g in _dedupe.components(np.concatenate(edges_a), np.concatenate(edges_b))],
                            classes, rank, ids, policy, "duplicate")
    if settings.near_duplicates and src.has("phash"):
        dropped = np.fromiter(drops, dtype=np.int64, count=len(drops))
        alive = alive[~np.isin(alive, dropped)]
        valid = src.gather(["phash"], lambda t: pc.is_valid(t.column(0)).to_numpy(zero_copy_only=False))
        alive = alive[valid[alive]]
        del valid
        # only the live rows' hashes, compacted: the search works on positions 0..m-1
        values = src.gather(["phash"], lambda t: pc.fill_null(pc.cast(t.column(0), pa.uint64()), 0).to_numpy())[alive]
        confirm = has_confirm = None
        if src.has("chroma_hash"):  # absent or null for rows fetched before it: phash alone
            confirm = src.gather(["chroma_hash"], _chroma_words)[alive]
            has_confirm = src.gather(["chroma_hash"], lambda t: pc.is_valid(t.column(0)).to_numpy(
                zero_copy_only=False))[alive]
        a, b = _dedupe.phash_edges(values, np.arange(len(alive)), settings.phash_threshold, confirm=confirm,
                                   has_confirm=has_confirm, confirm_threshold=settings.chroma_threshold)
        del values, confirm, has_confirm
        a, b = alive[a], alive[b]
        a, b, out.near, scores = _near.confirm(root, src, a, b, settings.check_files, settings.pixel_tolerance,
                                               report)
        out.near_pairs, out.near_scores = np.stack([a, b], axis=1), scores
        groups = [g.tolist() for g in _dedupe.components(a, b)]
        near = _dedupe.resolve(groups, classes, rank, ids, policy, "near_duplicate")
        live = int(np.count_nonzero(out.reason == 0)) - len(drops)
        if len(near) > settings.max_near_duplicate_share * max(live, 1):
            out.near_held = len(near)  # an unusual share: the user decides (see curate's warning)
        else:
            drops.update(near)
    for i, decision in drops.items():
        out.reason[i] = out.code(decision.reason)
        out.dup_of[i] = -1 if decision.duplicate_of is None else int(decision.duplicate_of)
    return out


def _review_marks(root: Path, src: Source, out: Removals) -> None:
    """Set the reason of rows still kept that a person marked bad or wrong species on the review page
    (``review:bad``, ``review:wrong_species``): before duplicates, so a marked image is never the copy kept.
    Decided anew each curation from the marks now, so a later "good" brings an image back."""
    marks = {key: REMOVING[mark] for key, mark in latest_marks(root).items() if mark in REMOVING}
    if not marks or not src.has("url_hash"):
        return
    keys = pa.array(sorted(marks), pa.string())
    hit = src.gather(["url_hash"], lambda t: pc.fill_null(pc.is_in(t.column(0), value_set=keys), False).to_numpy(
        zero_copy_only=False))
    rows = np.flatnonzero(hit & (out.reason == 0))
    if not len(rows):
        return
    hashes = src.take("url_hash", rows).to_pylist()
    for row, url_hash in zip(rows.tolist(), hashes):
        out.reason[row] = out.code(marks[url_hash])


def _chroma_words(table: pa.Table) -> np.ndarray:
    """Return the 16-byte colour hashes as (m, 2) native uint64 words (zeros where null)."""
    wide = table.column(0).combine_chunks().cast(pa.binary(16))
    m = len(wide)
    if not m:
        return np.zeros((0, 2), dtype=np.uint64)
    words = np.frombuffer(wide.buffers()[1], dtype=">u8")[wide.offset * 2:(wide.offset + m) * 2]
    return words.reshape(m, 2).astype(np.uint64)


def _value_counts(values: pa.Array) -> tuple[list[Any], list[int]]:
    counts = pc.value_counts(values)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()


def _objects(src: Source, name: str) -> np.ndarray:
    return src.gather([name], lambda t: t.column(0).to_numpy(zero_copy_only=False).astype(object))


def _check_files(root: Path, src: Source, ok: np.ndarray, out: Removals, verify: bool, report: Progress | None) -> None:
    """Set the reason of ok rows whose file or WebDataset sample is missing, unreadable or changed."""
    shards, keys, paths = _objects(src, "shard"), _objects(src, "key"), _objects(src, "path")
    sizes = src.gather(["bytes"], lambda t: t.column(0).to_numpy(zero_copy_only=False).astype(object))
    digests = _objects(src, "sha256") if verify else None
    cut = _crops.cropped(root)  # images a crop may stand in for: their size and sha256 are the original's
    if cut:
        hit = np.flatnonzero(src.gather(["url_hash"], lambda t: pc.fill_null(pc.is_in(
            t.column(0), value_set=pa.array(sorted(cut), pa.string())), False).to_numpy(zero_copy_only=False)))
        sizes[hit] = None
        if digests is not None:
            digests[hit] = None
    alive = np.flatnonzero(ok)
    has_shard = src.gather(["shard"], _columns.present)[alive]
    aside = root / _files_set_aside()
    found: list[int] = []
    problems = _files.check_samples(root, shards, keys, sizes, alive[has_shard].tolist(), report, digests, aside)
    problems.update(_files.check_files(root, paths, sizes, alive[~has_shard].tolist(), report, digests, aside, found))
    for i, problem in problems.items():
        out.reason[i] = out.code(problem)
    out.found_aside = np.array(sorted(found), dtype=np.int64)


def _files_set_aside() -> Path:
    from gbifxdl.curate._setaside import SET_ASIDE

    return SET_ASIDE


def group_codes(src: Source, rows: np.ndarray, by_occurrence: bool) -> tuple[np.ndarray, Callable[[np.ndarray], list[str]]]:
    """Return each of ``rows``' split group as a code, and a function naming codes (``occ:<gbifID>``,
    ``img:<url_hash>``, or ``img:<position>`` for a row without url_hash)."""
    m = len(rows)
    gbif = src.gather(["gbifID"], lambda t: pc.fill_null(pc.cast(t.column(0), pa.int64()), 0).to_numpy())[rows] \
        if by_occurrence and src.has("gbifID") else np.zeros(m, dtype=np.int64)
    has_gbif = (src.gather(["gbifID"], lambda t: pc.is_valid(t.column(0)).to_numpy(zero_copy_only=False))[rows]
                if by_occurrence and src.has("gbifID") else np.zeros(m, dtype=bool))
    occ_values, occ_codes = np.unique(gbif[has_gbif], return_inverse=True)
    codes = np.empty(m, dtype=np.int64)
    codes[has_gbif] = occ_codes
    image_rows = np.flatnonzero(~has_gbif)
    image_names: list[str] = []
    if len(image_rows):
        urls = src.take("url_hash", rows[image_rows]).to_pylist()
        texts = [f"img:{u}" if u else f"img:{p}" for u, p in zip(urls, image_rows.tolist())]
        image_names, image_codes = np.unique(np.array(texts, dtype=object), return_inverse=True)
        codes[image_rows] = len(occ_values) + image_codes
        image_names = image_names.tolist()

    def names(wanted: np.ndarray) -> list[str]:
        occ = len(occ_values)
        return [f"occ:{occ_values[c]}" if c < occ else image_names[c - occ] for c in wanted.tolist()]

    return codes, names


def date_ranks(src: Source, rows: np.ndarray) -> np.ndarray:
    """Return integer ranks of ``rows``' eventDate start (text before '/'; '' when null): equal dates, equal ranks."""
    def starts(t: pa.Table) -> np.ndarray:
        text = pc.fill_null(pc.cast(t.column(0), pa.string()), "")
        return pc.replace_substring_regex(text, "(?s)/.*", "").to_numpy(zero_copy_only=False).astype(object)

    if not src.has("eventDate"):
        return np.zeros(len(rows), dtype=np.int64)
    stamps = src.gather(["eventDate"], starts)[rows]
    return np.unique(stamps, return_inverse=True)[1]
