"""Near-duplicate search finds exactly the pairs an all-pairs comparison finds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _dataset_factory import jpeg, phash, photo
from gbifxdl.curate import _lsh
from gbifxdl.curate._dedupe import (CONFIRM_THRESHOLD, GREY_THRESHOLD, UnionFind, choose_bands, components,
                                    near_pairs, phash_edges, popcount64, resolve)


def _brute_force(h: np.ndarray, t: int) -> set[tuple[int, int]]:
    d = popcount64((h[:, None] ^ h[None, :]).ravel()).reshape(len(h), len(h))
    i, j = np.nonzero(np.triu(d <= t, k=1))
    return set(zip(i.tolist(), j.tolist()))


def _planted(n: int, seed: int) -> np.ndarray:
    """Random hashes, a third of them copies of others with 0..8 bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    for k in range(n // 3):
        src = int(rng.integers(0, n))
        bits = rng.choice(64, size=int(rng.integers(1, 9)), replace=False)
        h[k] = h[src] ^ np.uint64(sum(1 << int(b) for b in bits))
    return np.unique(h)


@pytest.mark.parametrize(
    ("threshold", "bands"),
    # None: the automatic choice (pigeonhole bands at this size); then fewer, wider bands
    # searched with neighbour lookups, as chosen for large tables
    [(0, None), (1, None), (4, None), (6, None), (10, None), (1, 1), (3, 2), (4, 2), (4, 3), (6, 3)],
)
def test_near_pairs_equal_all_pairs(threshold: int, bands: int | None) -> None:
    h = _planted(600, seed=threshold)
    got = {tuple(p) for p in near_pairs(h, threshold, bands).tolist()}
    assert got == _brute_force(h, threshold)
    assert threshold == 0 or got  # the planted copies make the test meaningful


def test_band_count_grows_with_table_size() -> None:
    # pigeonhole bands for small tables; fewer, wider bands (with neighbour lookups) for large
    assert choose_bands(1_000, 4) == 5
    assert choose_bands(1_000_000, 4) < 5


def test_perceptual_hash_links_resized_copies_not_other_photos() -> None:
    a, b = photo(1, (200, 150)), photo(2, (200, 150))
    resized = Image.open(io.BytesIO(jpeg(a.resize((90, 68)), quality=60)))
    ha, hb, hr = (np.array([phash(x)], dtype=np.uint64) for x in (a, b, resized))
    assert int(popcount64(ha ^ hr)[0]) <= 4
    assert int(popcount64(ha ^ hb)[0]) > 10


def test_resolve_keeps_the_best_copy_per_class() -> None:
    uf = UnionFind(5)
    uf.union(0, 1), uf.union(1, 2), uf.union(3, 4)
    classes = ["a", "a", "a", "a", "b"]
    rank = [2, 0, 1, 3, 4]  # row 1 is the largest original
    ids = ["r0", "r1", "r2", "r3", "r4"]
    drop = resolve(uf.groups(range(5)), classes, rank, ids, "drop-all", "duplicate")
    assert {i: (d.reason, d.duplicate_of) for i, d in drop.items()} == {
        0: ("duplicate", "r1"), 2: ("duplicate", "r1"),
        3: ("duplicate_across_classes", None), 4: ("duplicate_across_classes", "r3"),
    }  # fmt: skip


def _groups(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    return sorted(g.tolist() for g in components(a, b))


def test_a_64_bit_match_links_rows_only_when_their_colour_hashes_agree() -> None:
    rng = np.random.default_rng(7)
    photo_a, photo_b = rng.integers(0, 2**63, size=(2, 2), dtype=np.uint64)
    assert int(popcount64(photo_a ^ photo_b).sum()) > CONFIRM_THRESHOLD
    near = np.array([(1 << CONFIRM_THRESHOLD) - 1, 0], dtype=np.uint64)  # a copy: as many bits off as allowed
    # rows 0-2: photo A and two copies; rows 3-5: photo B and two copies; all six share
    # one 64-bit value or one a bit away (a chance collision of two different photos)
    values = np.array([8, 8, 9, 8, 9, 8], dtype=np.uint64) | np.uint64(1 << 63)
    confirm = np.stack([photo_a, photo_a ^ near, photo_a, photo_b, photo_b, photo_b ^ near])
    rows = np.arange(6)
    assert _groups(*phash_edges(values, rows, 10)) == [[0, 1, 2, 3, 4, 5]]  # the 64-bit hash alone
    assert _groups(*phash_edges(values, rows, 10, confirm=confirm)) == [[0, 1, 2], [3, 4, 5]]
    # rows without the colour hash (all zero: grey, or fetched before it) are linked on the 64-bit hash alone
    confirm[5] = 0
    assert _groups(*phash_edges(values, rows, 10, confirm=confirm)) == [[0, 1, 2, 3, 4, 5]]


def test_confirmation_with_no_candidates_and_with_an_explicit_validity_mask() -> None:
    values = np.array([0, 0xFFFF, 0xFFFF << 32], dtype=np.uint64) | np.uint64(1 << 63)  # 16+ bits apart
    confirm = np.zeros((3, 2), dtype=">u8")  # big-endian words, as curation reads them from Arrow
    a, b = phash_edges(values, np.arange(3), 4, confirm=confirm)
    assert not len(a) and not len(b)
    values[1] = values[0]
    confirm[1, :2] = (1 << 64) - 1  # 128 bits away from row 0: rejected, since row 0's zeros are a hash
    assert not len(phash_edges(values, np.arange(3), 4, confirm=confirm, has_confirm=np.ones(3, bool))[0])
    # row 0 without a hash: the 64-bit match alone links
    assert len(phash_edges(values, np.arange(3), 4, confirm=confirm, has_confirm=np.array([False, True, True]))[0]) == 1


@pytest.mark.parametrize("rows", [40, _lsh.EXACT_MAX + 2000])  # the exact search, and the sampled one
def test_a_row_without_colour_hash_is_proposed_within_the_grey_line_only(rows: int) -> None:
    # one grey row (no chroma_hash) and, among random rows, one partner per distance around the line: a grey
    # row is matched against every row, so its line is tighter than the colour pairs' (issue 24: at 10M rows a
    # 16-bit line would propose hundreds of chance partners per grey row)
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**63, size=rows, dtype=np.uint64)
    confirm = rng.integers(0, 2**63, size=(rows, 2), dtype=np.uint64)
    has = np.ones(rows, dtype=bool)
    has[0] = False
    partner = {}
    for k, bits in enumerate(range(GREY_THRESHOLD - 2, 17), start=1):
        values[k] = values[0] ^ np.uint64((1 << bits) - 1)  # ``bits`` bits away from the grey row
        partner[k] = bits
    a, b = phash_edges(values, np.arange(rows), 16, confirm=confirm, has_confirm=has, confirm_threshold=32)
    linked = {int(x) for x, y in zip(np.r_[a, b], np.r_[b, a]) if y == 0}
    assert linked == {k for k, bits in partner.items() if bits <= GREY_THRESHOLD}
