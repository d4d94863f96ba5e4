"""Reproducible splits: the original k-fold ``set`` column and train/val/test ``split``.

Order within a class comes from a keyed hash of (seed, class, group), not from row
order or a global random stream: the same seed gives the same splits whatever order
the rows come in, and adding images to one class never reshuffles another.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

OOD = "test_ood"


@dataclass(frozen=True)
class SplitSpec:
    """The split settings this module needs (a subset of CurateSettings)."""

    n_split: int = 5
    ood_th: int = 5
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_by_time: bool = False
    seed: int = 0
    # OOD only below half the median class size too (curate); off: the original's plain ood_th
    ood_relative: bool = False


def _order_key(seed: int, label: str, group: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{label}\x1f{group}".encode(), digest_size=8).digest()


def _dither(seed: int, label: str, which: str) -> float:
    """Return a number in [0, 1) fixed by (seed, class, split): the rounding offset."""
    return int.from_bytes(_order_key(seed, label, "\x00" + which), "big") / 2.0**64


def _targets(n: int, fractions: tuple[float, float, float], seed: int, label: str) -> tuple[int, int]:
    """Return the image counts of (test, test+val) in a class of ``n`` images.

    Shares are rounded with a per-class random offset (``floor(share + u)``), not to the
    nearest: a class of 5 with 10 % test gets one test image half of the time, so a
    dataset of small classes still gets about 10 % test instead of none. Train keeps
    at least one image.
    """
    total = sum(fractions)
    n_val = math.floor(n * fractions[1] / total + _dither(seed, label, "val"))
    n_test = math.floor(n * fractions[2] / total + _dither(seed, label, "test"))
    n_val = max(0, min(n_val, n - 1 - n_test)) if fractions[0] > 0 else n_val
    n_test = max(0, min(n_test, n - 1)) if fractions[0] > 0 else n_test
    return n_test, n_test + n_val


def ood_limit(sizes: Sequence[int], ood_th: int) -> int:
    """Return the largest class size that goes to ``test_ood``.

    ``ood_th``, but never more than half the median class size: rare classes are rare
    relative to the others, so a dataset capped at 5 images per class keeps its classes
    of 3 to 5 in train/val/test instead of sending every image to ``test_ood``.
    """
    if not sizes:
        return ood_th
    return min(ood_th, int(statistics.median(sizes) // 2))


SPLIT_NAMES = ("train", "val", "test", OOD)  # split codes of assign_codes
_KEY_CHUNK = 1 << 16


def assign(
    classes: Sequence[str],
    groups: Sequence[str],
    dates: Sequence[str | None],
    spec: SplitSpec,
) -> tuple[list[str], list[str]]:
    """Return (split, set) for each row.

    Rows of one group (an occurrence, when grouping by occurrence) always share both.
    Classes with at most ``ood_limit(class sizes, ood_th)`` images get ``test_ood`` in
    both columns. Otherwise
    ``set`` is a fold ``'0'``..``'n_split-1'`` balanced within the class, and ``split`` is
    train/val/test in the given fractions; by time, the oldest images train and the
    newest test (undated ones train, as they cannot leak the future).
    """
    labels, class_codes = np.unique(np.array([str(c) for c in classes], dtype=object), return_inverse=True)
    names, group_codes = np.unique(np.array([str(g) for g in groups], dtype=object), return_inverse=True)
    stamps = None
    if spec.split_by_time:
        text = np.array([(d or "").split("/")[0] for d in dates], dtype=object)
        _, stamps = np.unique(text, return_inverse=True)
    split, fold = assign_codes(class_codes, labels.tolist(), group_codes, names.tolist(), stamps, spec)
    fold_names = np.array([str(k) for k in range(spec.n_split)] + [OOD], dtype=object)
    return np.array(SPLIT_NAMES, dtype=object)[split].tolist(), fold_names[fold].tolist()


def assign_codes(
    class_codes: np.ndarray,
    labels: Sequence[str],
    group_codes: np.ndarray,
    group_names: Sequence[str] | Callable[[np.ndarray], list[str]],
    stamps: np.ndarray | None,
    spec: SplitSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (split code per row: an index of ``SPLIT_NAMES``; fold per row, ``n_split`` for OOD).

    The columnar form of :func:`assign`, with the same result: ``class_codes`` index
    ``labels``, ``group_codes`` index the group names (a sequence, or a function giving the
    names of given codes), ``stamps`` are integer ranks of the rows' dates (equal dates,
    equal ranks; by time only). Work is numpy over rows; Python runs once per
    (class, group) pair to compute its keyed hash, and once per class.
    """
    n = len(class_codes)
    split = np.zeros(n, dtype=np.int8)
    fold = np.zeros(n, dtype=np.int64)
    if not n:
        return split, fold
    class_codes = np.asarray(class_codes, dtype=np.int64)
    group_codes = np.asarray(group_codes, dtype=np.int64)
    n_groups_total = int(group_codes.max()) + 1
    pair = class_codes * n_groups_total + group_codes
    pairs, first, row_pair = np.unique(pair, return_index=True, return_inverse=True)
    p_class, p_group = pairs // n_groups_total, pairs % n_groups_total
    p_size = np.bincount(row_pair, minlength=len(pairs))
    class_sizes = np.bincount(class_codes, minlength=len(labels))
    present = np.flatnonzero(class_sizes)
    limit = ood_limit(class_sizes[present].tolist(), spec.ood_th) if spec.ood_relative else spec.ood_th
    ood_class = class_sizes <= limit
    ood_rows = ood_class[class_codes]
    split[ood_rows] = SPLIT_NAMES.index(OOD)
    fold[ood_rows] = spec.n_split
    live = np.flatnonzero(~ood_class[p_class])
    if not len(live):
        return split, fold
    p_class, p_group, p_size, first = p_class[live], p_group[live], p_size[live], first[live]
    seed = spec.seed
    keys = np.empty(len(live), dtype=np.uint64)
    for start in range(0, len(live), _KEY_CHUNK):  # Python objects for one chunk of groups at a time
        chunk = slice(start, start + _KEY_CHUNK)
        names = group_names(p_group[chunk]) if callable(group_names) else [group_names[g] for g in p_group[chunk].tolist()]
        keys[chunk] = np.fromiter((int.from_bytes(_order_key(seed, labels[c], g), "big")
                                   for c, g in zip(p_class[chunk].tolist(), names)), dtype=np.uint64, count=len(names))
    order = np.lexsort((first, keys, p_class))  # by class, then key (first appearance breaks ties, as sorted() did)
    g_class, g_size = p_class[order], p_size[order]
    classes, seg_start, seg_len = np.unique(g_class, return_index=True, return_counts=True)
    starts = np.array([int.from_bytes(_order_key(seed, labels[c], ""), "big") % spec.n_split
                       for c in classes.tolist()], dtype=np.int64)
    g_fold = _greedy_folds(seg_start, seg_len, g_size, starts, spec.n_split)
    if spec.split_by_time:
        assert stamps is not None
        group_min = np.full(len(pairs), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(group_min, row_pair, np.asarray(stamps, dtype=np.int64))
        when = group_min[live][order]
        order2 = np.lexsort((np.arange(len(order)), keys[order], when, g_class))
        g_size_t = g_size[order2]
    else:
        order2, g_size_t = np.arange(len(order)), g_size
    # rows after each group in its class's order: test fills from the end, then val
    inclusive = np.cumsum(g_size_t) - np.repeat(np.cumsum(g_size_t)[seg_start] - g_size_t[seg_start], seg_len)
    after = np.repeat(class_sizes[classes], seg_len) - inclusive
    targets = np.array([_targets(int(class_sizes[c]), spec.fractions, seed, labels[c]) for c in classes.tolist()],
                       dtype=np.int64).reshape(-1, 2)
    test_to, val_to = np.repeat(targets[:, 0], seg_len), np.repeat(targets[:, 1], seg_len)
    g_split_t = np.where(after < test_to, 2, np.where(after < val_to, 1, 0)).astype(np.int8)
    g_split = np.empty(len(order), dtype=np.int8)
    g_split[order2] = g_split_t
    # back to (class, group) pairs, then to rows
    pair_split = np.zeros(len(pairs), dtype=np.int8)
    pair_fold = np.zeros(len(pairs), dtype=np.int64)
    pair_split[live[order]] = g_split
    pair_fold[live[order]] = g_fold
    rows = ~ood_rows
    split[rows] = pair_split[row_pair[rows]]
    fold[rows] = pair_fold[row_pair[rows]]
    return split, fold


def _greedy_folds(seg_start: np.ndarray, seg_len: np.ndarray, size: np.ndarray, starts: np.ndarray,
                  n_split: int) -> np.ndarray:
    """Return each group's fold: in order, each to its class's smallest fold (ties from a per-class start).

    Every class advances one group per step, all classes at once (classes sorted by
    their number of groups, so the classes still going are a prefix): the steps are
    as many as the largest class has groups, each a few numpy operations.
    """
    by_len = np.argsort(-seg_len, kind="stable")
    lens, begin = seg_len[by_len], seg_start[by_len]
    rot = (np.arange(n_split)[None, :] - starts[by_len][:, None]) % n_split
    sizes = np.zeros((len(by_len), n_split), dtype=np.int64)
    out = np.empty(len(size), dtype=np.int64)
    active = len(by_len)
    for step in range(int(lens[0]) if len(lens) else 0):
        while active and lens[active - 1] <= step:
            active -= 1
        g = begin[:active] + step
        choice = np.argmin(sizes[:active] * n_split + rot[:active], axis=1)
        out[g] = choice
        sizes[np.arange(active), choice] += size[g]
    return out
