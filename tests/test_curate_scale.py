"""The columnar curation code gives what the row-by-row code gave, on random tables.

Curation at tens of millions of rows (bench/curate_scale.py) replaced Python lists and
sort keys by numpy: splits, exact-duplicate codes and near-duplicate candidates. Each
is checked here against a straightforward reference on small random inputs.
"""

from __future__ import annotations

import hashlib
import math
import statistics

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbifxdl.curate._columns import codes_of_words, digest_words
from gbifxdl.curate._dedupe import near_pairs, popcount64
from gbifxdl.curate._lsh import sampled_pairs
from gbifxdl.curate._splits import OOD, SplitSpec, assign


def _key(seed: int, label: str, group: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{label}\x1f{group}".encode(), digest_size=8).digest()


def _reference_assign(classes, groups, dates, spec):
    """The row-by-row assign that curate used before it went columnar (dicts, sorted() with keys)."""
    by_class: dict = {}
    for i, (label, group) in enumerate(zip(classes, groups)):
        by_class.setdefault(label, {}).setdefault(group, []).append(i)
    split, fold = [""] * len(classes), [""] * len(classes)
    sizes_of = {label: sum(len(r) for r in m.values()) for label, m in by_class.items()}
    values = list(sizes_of.values())
    limit = (min(spec.ood_th, int(statistics.median(values) // 2)) if values else spec.ood_th) \
        if spec.ood_relative else spec.ood_th
    for label, members in by_class.items():
        n = sizes_of[label]
        if n <= limit:
            for rows in members.values():
                for i in rows:
                    split[i] = fold[i] = OOD
            continue
        keyed = {g: _key(spec.seed, label, g) for g in members}
        order = sorted(members, key=lambda g: keyed[g])
        sizes = [0] * spec.n_split
        start = int.from_bytes(_key(spec.seed, label, ""), "big") % spec.n_split
        for g in order:
            k = min(range(spec.n_split), key=lambda f: (sizes[f], (f - start) % spec.n_split))
            sizes[k] += len(members[g])
            for i in members[g]:
                fold[i] = str(k)
        if spec.split_by_time:
            order = sorted(members, key=lambda g: (min((dates[i] or "").split("/")[0] for i in members[g]), keyed[g]))
        total = sum(spec.fractions)
        dither = lambda w: int.from_bytes(_key(spec.seed, label, "\x00" + w), "big") / 2.0**64  # noqa: E731
        n_val = math.floor(n * spec.fractions[1] / total + dither("val"))
        n_test = math.floor(n * spec.fractions[2] / total + dither("test"))
        if spec.fractions[0] > 0:
            n_val, n_test = max(0, min(n_val, n - 1 - n_test)), max(0, min(n_test, n - 1))
        test_to, val_to, seen = n_test, n_test + n_val, 0
        for g in reversed(order):
            name = "test" if seen < test_to else "val" if seen < val_to else "train"
            for i in members[g]:
                split[i] = name
            seen += len(members[g])
    return split, fold


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 25), st.sampled_from([None, "2020-01-02", "2019",
                                                                                     "2021-05-01/2021-06-01", ""])),
                  max_size=120),
    n_split=st.integers(1, 6), ood_th=st.integers(0, 6), by_time=st.booleans(), relative=st.booleans(),
    seed=st.integers(0, 3), fractions=st.sampled_from([(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.0, 0.5, 0.5), (1, 0, 0)]),
)
def test_columnar_splits_equal_the_row_by_row_reference(rows, n_split, ood_th, by_time, relative, seed, fractions):
    classes = [f"c{c}" for c, _, _ in rows]
    groups = [f"occ:{g}" for _, g, _ in rows]
    dates = [d for _, _, d in rows]
    spec = SplitSpec(n_split, ood_th, fractions, by_time, seed, ood_relative=relative)
    assert assign(classes, groups, dates, spec) == _reference_assign(classes, groups, dates, spec)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["", "x", "AB" * 32, "ab" * 32, "0" * 64]),
                          st.binary(min_size=32, max_size=32).map(bytes.hex), st.text(max_size=70)), max_size=40))
def test_digest_codes_are_equal_exactly_when_the_texts_are(values):
    codes = codes_of_words(digest_words(pa.table({"v": pa.array(values, pa.string())})), np.arange(len(values)))
    for i, a in enumerate(values):
        assert (codes[i] == -1) == (a is None)
        for j, b in enumerate(values):
            if a is not None and b is not None:
                assert (codes[i] == codes[j]) == (a == b)


def test_sampled_near_pairs_are_exact_pairs_and_find_close_copies() -> None:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2**63, 20_000, dtype=np.uint64)
    flips = np.zeros(4_000, dtype=np.uint64)
    for _ in range(3):  # copies within 3 bits of their original
        flips |= np.uint64(1) << rng.integers(0, 63, 4_000).astype(np.uint64)
    h = np.unique(np.concatenate([base, base[:4_000] ^ flips]))
    got = {tuple(p) for p in sampled_pairs(h, 10).tolist()}
    exact = {tuple(p) for p in near_pairs(h[:0].copy(), 10).tolist()}  # empty: the API on no input
    assert not exact
    a, b = np.array([p[0] for p in got]), np.array([p[1] for p in got])
    assert (popcount64(h[a] ^ h[b]) <= 10).all() and (a < b).all()  # never a pair beyond the threshold
    index = {v: i for i, v in enumerate(h.tolist())}
    planted = {tuple(sorted((index[int(x)], index[int(x ^ f)]))) for x, f in zip(base[:4_000], flips)}
    assert len(planted & got) >= 0.99 * len(planted)


@pytest.mark.slow
def test_no_check_files_trusts_the_table_and_checking_finds_what_is_gone(tmp_path) -> None:
    import shutil
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from _dataset_factory import standard_dataset

    root = standard_dataset(tmp_path / "ds", "folders").root
    table = pq.read_table(root / "metadata.parquet")
    ok = [p for p, o in zip(table["path"].to_pylist(), table["outcome"].to_pylist()) if o == "ok" and p]
    # the images were moved elsewhere (another disk, a bucket): only the table is here
    shutil.move(str(root / "images"), str(tmp_path / "elsewhere"))
    trusted = subprocess.run([sys.executable, "-m", "gbifxdl", "curate", str(root), "--no-check-files", "--no-card",
                              "--no-progress"], capture_output=True, text=True, timeout=120)
    assert trusted.returncode == 0, trusted.stderr
    reasons = pq.read_table(root / "removed.parquet")["removed_reason"].to_pylist()
    assert "file_missing" not in reasons and pq.read_table(root / "metadata.parquet").num_rows > 0
    checked = subprocess.run([sys.executable, "-m", "gbifxdl", "curate", str(root), "--no-card", "--no-progress"],
                             capture_output=True, text=True, timeout=120)
    # curating again with the checks: every image is missing, none is kept, the run says so
    assert pq.read_table(root / "metadata.parquet").num_rows == 0
    assert pq.read_table(root / "removed.parquet")["removed_reason"].to_pylist().count("file_missing") == len(ok)
    assert "no image was kept" in checked.stdout + checked.stderr
