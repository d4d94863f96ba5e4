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
from typing import Sequence

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
    by_class: dict[str, dict[str, list[int]]] = {}
    for i, (label, group) in enumerate(zip(classes, groups)):
        by_class.setdefault(label, {}).setdefault(group, []).append(i)
    split = [""] * len(classes)
    fold = [""] * len(classes)
    class_sizes = {label: sum(len(rows) for rows in members.values()) for label, members in by_class.items()}
    limit = ood_limit(list(class_sizes.values()), spec.ood_th) if spec.ood_relative else spec.ood_th
    for label, members in by_class.items():
        n = class_sizes[label]
        if n <= limit:
            for rows in members.values():
                for i in rows:
                    split[i] = fold[i] = OOD
            continue
        keyed = {g: _order_key(spec.seed, label, g) for g in members}
        order = sorted(members, key=lambda g: keyed[g])
        # folds: each group to the currently smallest fold, so folds differ by at most a group;
        # ties start at a fold that depends on the class, so remainders spread over folds
        sizes = [0] * spec.n_split
        start = int.from_bytes(_order_key(spec.seed, label, ""), "big") % spec.n_split
        for g in order:
            k = min(range(spec.n_split), key=lambda f: (sizes[f], (f - start) % spec.n_split))
            sizes[k] += len(members[g])
            for i in members[g]:
                fold[i] = str(k)
        if spec.split_by_time:
            def when(g: str) -> tuple[str, bytes]:
                stamps = [(dates[i] or "").split("/")[0] for i in members[g]]
                return (min(stamps), keyed[g])

            order = sorted(members, key=when)
        # fill test, then val, from the end of the order (the newest, by time); train takes
        # the rest, so the small splits get at least their share when groups overshoot
        test_to, val_to = _targets(n, spec.fractions, spec.seed, label)
        seen = 0
        for g in reversed(order):
            name = "test" if seen < test_to else "val" if seen < val_to else "train"
            for i in members[g]:
                split[i] = name
            seen += len(members[g])
    return split, fold
