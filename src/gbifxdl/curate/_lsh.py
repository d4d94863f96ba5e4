"""Near-duplicate candidates at millions of hashes: bit-sampling locality-sensitive hashing.

Exact search within ``t`` bits (multi-index hashing, ``_dedupe.near_pairs``) must enumerate
every neighbour of some band; at threshold 10 of 64 bits and millions of hashes that is
either hundreds of passes or billions of chance collisions, so it stops being
near-linear. Above ``EXACT_MAX`` distinct hashes, candidates come instead from ``tables``
keys of ``bits`` bit positions each (fixed positions, drawn once from a seeded
generator, so a run is reproducible): two hashes ``d`` bits apart share one key with
probability C(64-d, bits) / C(64, bits), and every candidate is then checked exactly
(Hamming distance <= t), so there is no false pair, only a chance of a missed one. Key
length and table count come from ``plan``: the most recall for pairs at the thresholds
that a fixed budget of chance collisions and sorts allows at this many hashes (many short
keys for thousands of hashes, a few dozen long ones for tens of millions).
bench/curate_scale.py measures it on planted copies.

Work per table: one key (8 byte-table lookups), one sort, one pass over equal-key
runs, each candidate checked as it is found: time and memory linear in the rows.
"""

from __future__ import annotations

import numpy as np

from gbifxdl.fetch.hashing import popcount64

EXACT_MAX = 1 << 15  # distinct hashes: exact multi-index search up to here, sampling above
TABLES = 48  # the fewest tables sampling uses
# the work sampling may spend: chance collisions checked over all tables, and rows keyed and sorted
_COLLISION_BUDGET, _SORT_BUDGET = 3e8, 1.2e8
_MAX_TABLES = 512


class _Pairs:
    """Pairs found table after table (as i * n + j), compacted as they come: a close pair is found by many
    tables, and hundreds of tables' duplicates must never sit in memory together. The pairs kept are one
    sorted array; a compaction adds the new ones found since the last (at most a quarter as many), so that
    tens of millions of pairs need little more than their own memory."""

    least = 1 << 22  # pairs held before a compaction, however few are kept

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.done = np.empty(0, dtype=np.int64)

    def append(self, pairs: np.ndarray) -> None:
        self.parts.append(pairs)
        self.size += len(pairs)
        if self.size > max(len(self.done) // 4, self.least):
            self._compact()

    def _compact(self) -> None:
        new = np.unique(np.concatenate(self.parts)) if self.parts else np.empty(0, dtype=np.int64)
        self.parts, self.size = [], 0
        if len(self.done) and len(new):
            at = np.minimum(np.searchsorted(self.done, new), len(self.done) - 1)
            new = new[self.done[at] != new]
        if len(new):
            merged = np.concatenate([self.done, new])
            del new
            merged.sort(kind="stable")  # two sorted runs: merged, not sorted again
            self.done = merged

    def __bool__(self) -> bool:
        return self.size > 0 or len(self.done) > 0

    def unique(self) -> np.ndarray:
        self._compact()
        return self.done


def plan(n: int, width: int, apart: int, bits_range: range = range(14, 25)) -> tuple[int, int]:
    """Return (bits per key, tables) that best find pairs ``apart`` bits apart (of ``width``) among ``n``
    hashes within the budget: chance collisions (n^2 / 2 / 2^bits a table) and sorts (n a table).

    A few thousand hashes can afford many short keys (near-exact recall even for copies far apart);
    tens of millions, a few dozen long ones.
    """
    from math import comb

    best = (max(bits_range), TABLES, -1.0)
    for bits in bits_range:
        chance = n * (n - 1) / 2 / 2.0 ** bits
        tables = int(min(_MAX_TABLES, _COLLISION_BUDGET / max(chance, 1), _SORT_BUDGET / max(n, 1)))
        tables = max(tables, TABLES)
        if chance * tables > 1.5 * _COLLISION_BUDGET:
            continue  # even the fewest tables would drown in chance collisions
        p = comb(width - apart, bits) / comb(width, bits)
        recall = 1 - (1 - p) ** tables
        if recall > best[2] + 1e-9:
            best = (bits, tables, recall)
    return best[0], best[1]
_QUERY_BLOCK = 1 << 20  # rows looked up at once among the rows without chroma_hash
_MAX_RUN = 64  # a key shared by more hashes: each is paired with the next 64 only (bounds the work)


def _byte_tables(positions: np.ndarray) -> np.ndarray:
    """Return (8, 256) uint64 lookups: byte b of a hash -> its sampled bits, packed."""
    out = np.zeros((8, 256), dtype=np.uint64)
    values = np.arange(256, dtype=np.uint64)
    for j, p in enumerate(positions.tolist()):
        byte, bit = divmod(p, 8)
        out[byte] |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(j)
    return out


def sampled_pairs(h: np.ndarray, threshold: int, bits: int | None = None, tables: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """Return index pairs (i < j), shape (k, 2), of distinct ``hashes`` within ``threshold`` bits that share a key
    (``bits`` and ``tables``: by default as ``plan`` chooses for this many hashes)."""
    n = len(h)
    if bits is None or tables is None:
        bits, tables = plan(n, 64, threshold)
    rng = np.random.default_rng(seed)
    as_bytes = h.view(np.uint8).reshape(n, 8)  # little-endian: byte b holds bits 8b..8b+7
    if as_bytes.dtype.byteorder == ">":  # pragma: no cover - big-endian machines
        as_bytes = as_bytes[:, ::-1]
    found = _Pairs()
    for _ in range(tables):
        lookup = _byte_tables(np.sort(rng.choice(64, size=bits, replace=False)))
        key = lookup[0][as_bytes[:, 0]]
        for b in range(1, 8):
            key |= lookup[b][as_bytes[:, b]]
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        del key
        active = np.flatnonzero(ordered[:-1] == ordered[1:])
        d = 1
        while active.size and d <= _MAX_RUN:
            a, b = order[active], order[active + d]
            close = popcount64(h[a] ^ h[b]) <= threshold
            if close.any():
                lo, hi = np.minimum(a[close], b[close]), np.maximum(a[close], b[close])
                found.append(lo.astype(np.int64) * n + hi)
            d += 1
            active = active[active + d < n]
            active = active[ordered[active] == ordered[active + d]]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = found.unique()
    return np.stack([pairs // n, pairs % n], axis=1)


def _keys(words: list[np.ndarray], positions: np.ndarray) -> np.ndarray:
    """Return, per row, the bits at ``positions`` of the concatenated words (bit 64w+b = bit b of word w), packed.

    ``words``: uint8 views (n, 8k) of k native uint64 words a row (no copy).
    """
    key = np.zeros(len(words[0]), dtype=np.uint64)
    done = 0
    for as_bytes in words:  # (keys of at most 32 bits: sorted as uint32, faster)
        span = as_bytes.shape[1] * 8
        mine = positions[(positions >= done) & (positions < done + span)] - done
        offset = int(np.count_nonzero(positions < done))
        done += span
        if not len(mine):
            continue
        tables = _byte_tables_wide(mine, as_bytes.shape[1])
        for b in np.unique(mine // 8).tolist():
            key |= tables[b][as_bytes[:, b]] << np.uint64(offset)
    return key.astype(np.uint32) if len(positions) <= 32 else key


def _byte_tables_wide(positions: np.ndarray, n_bytes: int) -> np.ndarray:
    out = np.zeros((n_bytes, 256), dtype=np.uint64)
    values = np.arange(256, dtype=np.uint64)
    for j, p in enumerate(positions.tolist()):
        byte, bit = divmod(p, 8)
        out[byte] |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(j)
    return out


def _scan(key: np.ndarray, check, found: _Pairs, n: int) -> None:
    """Add to ``found`` (as i * n + j) the pairs of rows sharing a key that ``check(a, b)`` accepts."""
    order = np.argsort(key)  # any order within a key: every pair of a run is checked
    ordered = key[order]
    active = np.flatnonzero(ordered[:-1] == ordered[1:])
    d = 1
    while active.size and d <= _MAX_RUN:
        a, b = order[active], order[active + d]
        ok = check(a, b)
        if ok.any():
            found.append(np.minimum(a[ok], b[ok]).astype(np.int64) * n + np.maximum(a[ok], b[ok]))
        d += 1
        active = active[active + d < len(ordered)]
        active = active[ordered[active] == ordered[active + d]]


def confirmed_pairs(h: np.ndarray, chroma: np.ndarray, has_chroma: np.ndarray, threshold: int,
                    chroma_threshold: int, bits: int | None = None, tables: int | None = None, seed: int = 0,
                    grey_threshold: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return row pairs (a, b), a < b, within ``threshold`` bits of phash and (where both have one)
    ``chroma_threshold`` bits of chroma_hash, found by sampling bits of both hashes.

    A copy differs from its original in both hashes, but in a smaller share of the 192 bits
    than of the 64 alone, so keys drawn from all 192 find it more often for the same number
    of chance collisions (with 24 bits and 48 tables, a pair 8 + 16 bits apart is found with
    probability 86 %, 6 + 12 bits 98 %; ``plan`` chooses both). Rows without chroma_hash are
    matched on phash alone, within ``grey_threshold`` bits (default ``threshold``; looked up among
    those rows only).
    """
    n = len(h)
    if bits is None or tables is None:
        bits, tables = plan(n, 192, threshold + chroma_threshold)
    grey_threshold = threshold if grey_threshold is None else min(grey_threshold, threshold)
    grey_bits, grey_tables = plan(n, 64, grey_threshold)
    rng = np.random.default_rng(seed)
    h = np.ascontiguousarray(h, dtype=np.uint64)
    chroma = np.ascontiguousarray(chroma, dtype=np.uint64)
    words = [h.view(np.uint8).reshape(n, 8), chroma.view(np.uint8).reshape(n, 16)]  # views: no copy
    found = _Pairs()

    def both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # most pairs sharing a key do so by chance, and fail on phash: the colour is checked on the rest only
        x = h[a] ^ h[b]
        close = np.flatnonzero((popcount64(x) <= threshold) & ((x >> np.uint64(63)) == 0))  # never across definitions
        a, b = a[close], b[close]
        colour = (popcount64(chroma[a, 0] ^ chroma[b, 0]).astype(np.int64) + popcount64(chroma[a, 1] ^ chroma[b, 1])
                  <= chroma_threshold)
        ok = np.zeros(len(x), dtype=bool)
        ok[close] = has_chroma[a] & has_chroma[b] & colour
        return ok

    if np.count_nonzero(has_chroma) > 1:
        for _ in range(tables):  # (rows without chroma_hash take part, but ``both`` rejects their pairs)
            key = _keys(words, np.sort(rng.choice(192, size=bits, replace=False)))
            _scan(key, both, found, n)
            del key
    grey = np.flatnonzero(~has_chroma)
    if len(grey):
        for _ in range(grey_tables):  # rows without chroma_hash: phash alone, against every row
            positions = np.sort(rng.choice(64, size=grey_bits, replace=False))
            key = _keys(words[:1], positions)  # phash bits only
            grey_keys = key[grey]
            order = np.argsort(grey_keys)
            sorted_keys = grey_keys[order]
            # the rows whose key a grey row shares, found through a table of every key's presence (2^bits
            # booleans: the keys are at most 24 bits): only they are looked up, not all ten million
            present = np.zeros(1 << grey_bits, dtype=bool)
            present[grey_keys] = True
            hits = np.flatnonzero(present[key])
            del present
            for start in range(0, len(hits), _QUERY_BLOCK):  # a block of queries at a time: bounded temporaries
                block = hits[start:start + _QUERY_BLOCK]
                query = key[block]
                lo, hi = np.searchsorted(sorted_keys, query, "left"), np.searchsorted(sorted_keys, query, "right")
                counts = np.minimum(hi - lo, _MAX_RUN)
                total = int(counts.sum())
                if not total:
                    continue
                rows = np.repeat(block, counts)
                offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                other = grey[order[np.repeat(lo, counts) + offsets]]
                x = h[rows] ^ h[other]
                keep = (rows != other) & (popcount64(x) <= grey_threshold) & ((x >> np.uint64(63)) == 0)
                a, b = rows[keep], other[keep]
                found.append(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
            del key, hits
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    pairs = found.unique()
    return pairs // n, pairs % n
