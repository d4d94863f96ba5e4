"""Splits: reproducible, stratified, grouped by occurrence, by time, and the original folds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from _dataset_factory import standard_dataset
from gbifxdl.curate import CurateSettings, curate
from gbifxdl.curate._splits import SplitSpec, assign


def _rows(n_per_class: dict[str, int]) -> tuple[list[str], list[str], list[str]]:
    classes, groups, dates = [], [], []
    for label, n in n_per_class.items():
        for i in range(n):
            classes.append(label)
            groups.append(f"{label}-{i}")
            dates.append(f"{2000 + i % 25}-{1 + i % 12:02d}-01")
    return classes, groups, dates


def test_fractions_are_met_within_each_class_and_rare_classes_are_ood() -> None:
    classes, groups, dates = _rows({"a": 100, "b": 40, "c": 5})
    split, fold = assign(classes, groups, dates, SplitSpec(ood_th=5, ood_relative=True))
    per = Counter(zip(classes, split))
    assert (per["a", "train"], per["a", "val"], per["a", "test"]) == (80, 10, 10)
    assert (per["b", "train"], per["b", "val"], per["b", "test"]) == (32, 4, 4)
    assert per["c", "test_ood"] == 5
    folds = Counter(f for c, f in zip(classes, fold) if c == "a")
    assert folds == {str(k): 20 for k in range(5)}
    assert {f for c, f in zip(classes, fold) if c == "c"} == {"test_ood"}


def test_same_seed_same_splits_in_any_row_order_and_another_seed_differs() -> None:
    classes, groups, dates = _rows({"a": 60, "b": 30})
    first = dict(zip(groups, zip(*assign(classes, groups, dates, SplitSpec(seed=7)))))
    rev = assign(classes[::-1], groups[::-1], dates[::-1], SplitSpec(seed=7))
    assert dict(zip(groups[::-1], zip(*rev))) == first
    other = dict(zip(groups, zip(*assign(classes, groups, dates, SplitSpec(seed=8)))))
    assert other != first


def test_split_by_time_trains_on_the_past() -> None:
    classes, groups, dates = _rows({"a": 50})
    split, _ = assign(classes, groups, dates, SplitSpec(split_by_time=True))
    latest = {s: max(d for d, x in zip(dates, split) if x == s) for s in ("train", "val")}
    earliest = {s: min(d for d, x in zip(dates, split) if x == s) for s in ("val", "test")}
    assert latest["train"] <= earliest["val"] and latest["val"] <= earliest["test"]


def test_images_of_one_occurrence_share_their_split(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds").root
    curate(root, progress=False)
    table = pq.read_table(root / "metadata.parquet").to_pylist()
    by_occurrence: dict[int, set[tuple[str, str]]] = {}
    for row in table:
        by_occurrence.setdefault(row["gbifID"], set()).add((row["split"], row["set"]))
    assert any(Counter(r["gbifID"] for r in table)[g] > 1 for g in by_occurrence)
    assert all(len(v) == 1 for v in by_occurrence.values())
    splits = Counter(r["split"] for r in table)
    assert splits["test_ood"] == 5 and splits["val"] >= 2 and splits["test"] >= 2

    curate(root, CurateSettings(seed=1), progress=False)  # a new seed reshuffles, rows stay
    again = pq.read_table(root / "metadata.parquet").to_pylist()
    assert len(again) == len(table)
    assert [r["split"] for r in again] != [r["split"] for r in table]
