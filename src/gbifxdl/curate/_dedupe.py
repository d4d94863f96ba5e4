"""Duplicate detection: which rows show the same photo, and which copy to keep.

Exact duplicates share written bytes (sha256) or decoded pixels (pixel_hash). Near
duplicates have 64-bit perceptual hashes within a Hamming distance. Near-duplicate
search is multi-index hashing: the hash is cut into ``m`` bands; by the pigeonhole
principle two hashes within distance ``t`` differ by at most ``t // m`` bits in some band,
so joining rows on each band value (or on it with one bit masked, or on its few
neighbours) finds every such pair without comparing all pairs. ``m`` is chosen for the
table size so the work stays near-linear: ``t + 1`` exact bands for small tables, fewer
wider bands for large ones, where exact bands would collide by chance too often.

A 64-bit match is only a candidate: where both rows have the 128-bit colour hash
(``chroma_hash``, see ``gbifxdl.fetch.hashing``), the pair is proposed only if those are
within the colour threshold too. Rows without it (grey images, and datasets fetched before it
existed) are proposed on the 64-bit hash alone, within the tighter ``GREY_THRESHOLD``: one
grey row is compared with every row of the table, so a line as wide as the colour pairs'
would propose its chance partners by the hundred at ten million rows (its candidates would
grow with the square of the table). Hashes only propose: curation confirms
each proposed pair on its pixels (``curate/_near.py``), because photos of one collection
taken the same way meet in their hashes far more often than chance; bench/dedupe.py
measures both the proposals and the confirmed rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Iterable, Iterator, Sequence

import numpy as np

from gbifxdl.curate import _lsh
from gbifxdl.fetch.hashing import popcount64

_BLOCK = 1 << 16  # queries expanded at once: bounds the memory of candidate pairs
# the largest chroma-hash distance (of 128 bits) that confirms a 64-bit candidate: chosen by
# bench/dedupe.py (its sweep shows recall and false matches around it)
CONFIRM_THRESHOLD = 20
_MEMBERS_PAIRED = 16  # rows sharing one 64-bit value: each is confirmed against at most this many
# the largest 64-bit distance that proposes a pair with a row without chroma_hash: 96 % of bench/dedupe.py's
# copy pairs are within it (99 % within the default 16); two random hashes meet within it once in
# 660,000 pairs (within 16: once in 17,000), 7.5 million chance candidates for 500,000 grey rows among 10M
GREY_THRESHOLD = 13


class UnionFind:
    """Disjoint sets over ``n`` integers."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        """Return the representative of ``i``'s set."""
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps trees shallow
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        """Merge the sets of ``a`` and ``b`` (the smaller index becomes the root)."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self, members: Iterable[int]) -> list[list[int]]:
        """Return the sets of more than one member among ``members``, each sorted."""
        by_root: dict[int, list[int]] = {}
        for i in members:
            by_root.setdefault(self.find(i), []).append(i)
        return [sorted(g) for g in by_root.values() if len(g) > 1]


def equal_value_pairs(values: Sequence[object | None], rows: Sequence[int]) -> list[tuple[int, int]]:
    """Return pairs (first row, row) linking the ``rows`` whose non-null values are equal."""
    first: dict[object, int] = {}
    pairs = []
    for i in rows:
        v = values[i]
        if v is None:
            continue
        j = first.setdefault(v, i)
        if j != i:
            pairs.append((j, i))
    return pairs


def _bands(m: int) -> list[tuple[int, int]]:
    """Return (shift, width) of ``m`` bands covering 64 bits as evenly as possible."""
    widths = [64 // m + (1 if b < 64 % m else 0) for b in range(m)]
    shifts = np.cumsum([0] + widths[:-1]).tolist()
    return list(zip(shifts, widths))


def _neighbours(width: int, radius: int) -> int:
    return sum(comb(width, k) for k in range(radius + 1))


def _passes(width: int, radius: int) -> int:
    """Return how many sorted passes over the table one band needs at ``radius``."""
    # radius 0: one join on the band; radius 1: one join per bit with that bit masked
    # out (two values within one bit agree once it is masked); beyond: one lookup per
    # neighbour value
    return 1 if radius == 0 else width if radius == 1 else _neighbours(width, radius)


def choose_bands(n: int, threshold: int) -> int:
    """Return the number of bands that minimises the expected work for ``n`` hashes."""
    best, best_cost = threshold + 1, float("inf")
    for m in range(1, min(threshold + 1, 64) + 1):
        radius = threshold // m
        cost = 0.0
        for _, width in _bands(m):
            passes = _passes(width, radius)
            if passes > 4096:  # enumerating that many neighbours per band is never worth it
                cost = float("inf")
                break
            # each pass sorts or searches the table, then checks its chance collisions
            cost += passes * (2 * n + n * n / 2.0 ** max(width - min(radius, 1), 0))
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _flip_masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    if radius:
        bits = [1 << b for b in range(width)]
        frontier = [(0, -1)]
        for _ in range(radius):
            nxt = []
            for mask, last in frontier:
                for b in range(last + 1, width):
                    nxt.append((mask | bits[b], b))
            masks += [mk for mk, _ in nxt]
            frontier = nxt
    return np.array(masks, dtype=np.uint64)


def _equal_key_pairs(keys: np.ndarray, max_gap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return index arrays (a, b) of every pair of positions holding equal ``keys``.

    With ``max_gap``, a position is paired only with the next ``max_gap`` holding its key
    (bounds the work on a huge run of equal keys; smaller runs still give every pair).
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    src, dst = [], []
    # equal keys are contiguous once sorted: compare each position with the one d
    # further on, keeping only positions still inside their run (work = pairs found)
    active = np.arange(len(ordered) - 1)
    d = 1
    while active.size:
        active = active[ordered[active] == ordered[active + d]]
        if not active.size:
            break
        src.append(order[active])
        dst.append(order[active + d])
        d += 1
        if max_gap is not None and d > max_gap:
            break
        active = active[active + d < len(ordered)]
    if not src:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(src), np.concatenate(dst)


def _lookup_pairs(band: np.ndarray, radius: int, width: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield index arrays (a, b) of positions whose band values differ by at most ``radius`` bits."""
    n = len(band)
    order = np.argsort(band, kind="stable")
    sorted_band = band[order]
    for mask in _flip_masks(width, radius):
        query = band ^ mask
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            lo = np.searchsorted(sorted_band, query[start:stop], "left")
            hi = np.searchsorted(sorted_band, query[start:stop], "right")
            counts = hi - lo
            total = int(counts.sum())
            if total:
                offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                yield np.repeat(np.arange(start, stop), counts), order[np.repeat(lo, counts) + offsets]


def near_pairs(hashes: np.ndarray, threshold: int, bands: int | None = None) -> np.ndarray:
    """Return index pairs (i < j), shape (k, 2), of distinct ``hashes`` within ``threshold`` bits.

    ``hashes`` must hold distinct uint64 values (callers collapse equal ones first, which
    are trivially duplicates and would otherwise make buckets quadratic).
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2 or threshold < 0:
        return np.empty((0, 2), dtype=np.int64)
    if bands is None and n > _lsh.EXACT_MAX:  # exact search is no longer near-linear: sample bits (see _lsh)
        return _lsh.sampled_pairs(h, threshold)
    m = bands or choose_bands(n, threshold)
    radius = threshold // m
    found = []
    for shift, width in _bands(m):
        band = (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        if radius <= 1:
            keys = [band] if radius == 0 else [band & ~np.uint64(1 << b) for b in range(width)]
            candidates: Iterable[tuple[np.ndarray, np.ndarray]] = (_equal_key_pairs(k) for k in keys)
        else:
            candidates = _lookup_pairs(band, radius, width)
        for a, b in candidates:
            src, dst = np.minimum(a, b), np.maximum(a, b)
            keep = src < dst
            src, dst = src[keep], dst[keep]
            close = popcount64(h[src] ^ h[dst]) <= threshold
            if close.any():
                found.append(np.stack([src[close], dst[close]], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


@dataclass(frozen=True)
class Decision:
    """Why a row goes: its reason and the url_hash of the copy kept (or the best copy)."""

    reason: str
    duplicate_of: str | None


def resolve(
    groups: list[list[int]],
    classes: Sequence[str],
    rank: Sequence[int],
    ids: Sequence[str | None],
    policy: str,
    kind: str,
) -> dict[int, Decision]:
    """Return the rows to drop from duplicate ``groups`` under a cross-class ``policy``.

    ``rank`` orders copies (lower is better: larger originals first); ``kind`` is
    ``duplicate`` or ``near_duplicate``. Within one class the best copy stays. When a
    group spans classes: ``drop-all`` drops every copy (the label is unreliable),
    ``keep-one`` keeps only the best copy overall, ``keep-per-class`` the best of each class.
    """
    drop: dict[int, Decision] = {}
    for group in groups:
        members = sorted(group, key=lambda i: rank[i])
        best = members[0]
        per_class: dict[str, int] = {}
        for i in members:
            per_class.setdefault(classes[i], i)
        if len(per_class) == 1:
            for i in members[1:]:
                drop[i] = Decision(kind, ids[best])
            continue
        across = f"{kind}_across_classes"
        if policy == "drop-all":
            for i in members:
                drop[i] = Decision(across, ids[best] if i != best else None)
        elif policy == "keep-one":
            for i in members[1:]:
                drop[i] = Decision(across if classes[i] != classes[best] else kind, ids[best])
        else:  # keep-per-class
            kept = set(per_class.values())
            for i in members:
                if i not in kept:
                    drop[i] = Decision(kind, ids[per_class[classes[i]]])
    return drop


def components(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Return the connected components of the graph with edges ``a[k]``-``b[k]``: each a sorted
    array of the node numbers it links (only components of two or more nodes exist)."""
    if not len(a):
        return []
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ea, eb = inverse[: len(a)], inverse[len(a):]
    label = np.arange(len(nodes))
    while True:  # label propagation with pointer jumping: a few passes, all vectorised
        low = np.minimum(label[ea], label[eb])
        new = label.copy()
        np.minimum.at(new, ea, low)
        np.minimum.at(new, eb, low)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    return [np.sort(nodes[g]) for g in np.split(order, cuts)]


def equal_edges(codes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return edges (first row, row) linking the ``rows`` whose ``codes`` (integers, -1 = null) are equal."""
    live = codes >= 0
    rows, codes = rows[live], codes[live]
    if not len(rows):
        return rows, rows
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    rep = rows[first][inverse]
    linked = rep != rows
    return rep[linked], rows[linked]


def phash_edges(values: np.ndarray, rows: np.ndarray, threshold: int, bands: int | None = None,
                confirm: np.ndarray | None = None, confirm_threshold: int = CONFIRM_THRESHOLD,
                has_confirm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return edges between ``rows`` whose perceptual hashes (uint64) are within ``threshold`` bits.

    Hashes of the two definitions (told apart by the top bit, see
    ``gbifxdl.fetch.hashing``) are never linked to each other. ``confirm``, when given, holds
    each row's chroma hash as uint64 words (shape (n, 2); absent where ``has_confirm`` is
    False, or else where all zero): an edge between two rows that both have one stays only if
    those are within ``confirm_threshold``; an edge with a row that has none, only if the 64-bit
    hashes are within ``GREY_THRESHOLD`` (or ``threshold``, if lower).
    """
    if len(rows) < 2:
        return rows[:0], rows[:0]
    # one stable sort of the values gives the distinct values, each row's value number and
    # the rows of each value (what np.unique would, without its copies: this runs on millions)
    order = np.argsort(values[rows], kind="stable")
    ordered = values[rows[order]]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    uniq = ordered[starts]
    del ordered
    counts = np.diff(np.append(starts, len(order)))
    rep = rows[order[starts]]  # each value's first row
    pairs = near_pairs(uniq, threshold, bands) if confirm is None or bands is not None or len(uniq) <= _lsh.EXACT_MAX \
        else np.empty((0, 2), dtype=np.int64)
    pairs = pairs[((uniq[pairs[:, 0]] ^ uniq[pairs[:, 1]]) >> np.uint64(63)) == 0]
    if confirm is None:
        run = np.repeat(np.arange(len(starts)), counts)  # sorted position -> value number
        member = np.ones(len(order), dtype=bool)
        member[starts] = False
        same, linked = rep[run[member]], rows[order[member]]
        return np.concatenate([same, rep[pairs[:, 0]]]), np.concatenate([linked, rep[pairs[:, 1]]])
    # a candidate that the chroma hashes reject may hide a pair they accept (two photos
    # sharing a 64-bit value, each with its copies): candidates are pairs of rows, not of values
    ea, eb = _run_pairs(order, starts, counts, _MEMBERS_PAIRED)
    if bands is None and len(uniq) > _lsh.EXACT_MAX:  # millions: sample bits of both hashes (see _lsh)
        every = len(rows) == len(values) and bool((rows == np.arange(len(rows))).all())  # no copy needed
        pick = (lambda x: x) if every else (lambda x: x[rows])  # noqa: E731
        has = pick(has_confirm) if has_confirm is not None else pick(confirm).any(axis=1)
        la, lb = _lsh.confirmed_pairs(pick(values), pick(confirm), has, threshold, confirm_threshold,
                                      grey_threshold=min(threshold, GREY_THRESHOLD))
        # the sampled pairs are checked on both hashes already: only the rows sharing a value are checked
        # here (tens of millions of pairs: no copy of their hashes)
        ea, eb = confirmed(rows[ea], rows[eb], confirm, confirm_threshold, has_confirm)
        if not every:
            la, lb = rows[la], rows[lb]
        return np.concatenate([ea, la]), np.concatenate([eb, lb])
    take = np.minimum(counts, _MEMBERS_PAIRED)
    pi, pj = pairs[:, 0], pairs[:, 1]
    per_pair = take[pi] * take[pj]
    k = np.repeat(np.arange(len(pi)), per_pair)
    offsets = np.arange(int(per_pair.sum())) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    na = order[starts[pi[k]] + offsets // take[pj[k]]]
    nb = order[starts[pj[k]] + offsets % take[pj[k]]]
    return confirmed(np.concatenate([rows[ea], rows[na]]), np.concatenate([rows[eb], rows[nb]]), confirm,
                     confirm_threshold, has_confirm, values, min(threshold, GREY_THRESHOLD))


def _run_pairs(order: np.ndarray, starts: np.ndarray, counts: np.ndarray, max_gap: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return index pairs (a, b) of positions sharing a value: sorted positions ``order``, runs at
    ``starts`` of ``counts``; each position paired with the next ``max_gap`` of its run."""
    src, dst = [], []
    multi = counts > 1
    run_start, run_end = starts[multi], starts[multi] + counts[multi]
    active = _positions(run_start, counts[multi] - 1)
    ends = np.repeat(run_end, counts[multi] - 1)
    for d in range(1, max_gap + 1):
        keep = active + d < ends
        active, ends = active[keep], ends[keep]
        if not len(active):
            break
        src.append(order[active])
        dst.append(order[active + d])
    if not src:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(src), np.concatenate(dst)


def _positions(begin: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Return the concatenated ranges begin[k] .. begin[k] + lengths[k] - 1."""
    total = int(lengths.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    return np.repeat(begin, lengths) + np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def confirmed(a: np.ndarray, b: np.ndarray, confirm: np.ndarray, threshold: int,
              has_confirm: np.ndarray | None = None, values: np.ndarray | None = None,
              grey_threshold: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Return the edges ``a[k]``-``b[k]`` that the confirming hashes ``confirm`` (n, words) do not contradict.

    An edge stays when the two hashes are within ``threshold`` bits, or when either row
    has none (``has_confirm`` False, or without it all-zero words: fetched before the hash existed)
    and, given the 64-bit hashes ``values``, those are within ``grey_threshold`` bits.
    """
    ha, hb = confirm[a].astype(np.uint64), confirm[b].astype(np.uint64)  # only the candidates' rows, native order
    distance = popcount64(ha ^ hb).reshape(len(a), confirm.shape[1]).sum(axis=1)
    if has_confirm is None:
        missing = ~ha.any(axis=1) | ~hb.any(axis=1)
    else:
        missing = ~has_confirm[a] | ~has_confirm[b]
    if values is not None and grey_threshold < 64:
        missing &= popcount64(values[a] ^ values[b]) <= grey_threshold
    keep = missing | (distance <= threshold)
    return a[keep], b[keep]
