"""Curation leaves WebDataset shards of one split each, every sample with its split and label."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from _dataset_factory import standard_dataset
from gbifxdl.curate import CurateSettings, curate
from gbifxdl.curate._shard_splits import shard_for


def _samples(root: Path) -> dict[str, tuple[str, str, int]]:
    """Return {key: (its shard, its JSON's split, its .cls label)} of every shard."""
    out: dict[str, list] = {}
    for shard in sorted((root / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for info in tar:
                key, _, ext = info.name.partition(".")
                slot = out.setdefault(key, [shard.relative_to(root).as_posix(), None, None])
                if ext == "json":
                    slot[1] = json.loads(tar.extractfile(info).read())["split"]
                elif ext == "cls":
                    slot[2] = int(tar.extractfile(info).read())
    return {k: tuple(v) for k, v in out.items()}


def _check(root: Path) -> Counter:
    table = pq.read_table(root / "metadata.parquet").to_pylist()
    names = sorted({"unlabeled" if r["speciesKey"] is None else str(r["speciesKey"]) for r in table})
    samples = _samples(root)
    assert set(samples) == {r["key"] for r in table}  # what a loader sees is exactly the kept rows
    for row in table:
        shard, split, label = samples[row["key"]]
        assert shard == row["shard"] and Path(shard).name.startswith(row["split"] + "-") and split == row["split"]
        assert names[label] == ("unlabeled" if row["speciesKey"] is None else str(row["speciesKey"]))
    return Counter(r["split"] for r in table)


def test_each_shard_holds_one_split_with_labels_and_follows_a_new_split(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds", "webdataset").root
    curate(root)
    first = _check(root)
    assert {"train", "test_ood"} <= set(first)

    curate(root, CurateSettings(seed=7, fractions=(0.5, 0.25, 0.25)))  # other splits: samples move shard

    assert _check(root) != first
    assert not [p for p in (root / "shards").glob("*.tar") if not p.name.startswith(("train-", "val-", "test-",
                                                                                     "test_ood-"))]


def test_a_shard_name_takes_the_split_once() -> None:
    assert shard_for("shards/shard-000001.tar", "val") == "shards/val-shard-000001.tar"
    assert shard_for("shards/test_ood-shard-000001.tar", "test") == "shards/test-shard-000001.tar"
    assert shard_for("shards/test-shard-000001.tar", "test_ood") == "shards/test_ood-shard-000001.tar"
