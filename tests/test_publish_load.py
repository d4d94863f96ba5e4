"""The demo dataset loads, as it is, with the libraries people train with."""

from __future__ import annotations

import glob
import io
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
import webdataset as wds
import yaml
from PIL import Image

from _publish_demo import build_demo, offline, rows  # noqa: F401 - offline is a fixture
from gbifxdl.publish.credit import license_name
from gbifxdl.publish.facts import most_restrictive, size_category

pytestmark = pytest.mark.slow  # whole file: see the README's Development section

datasets = pytest.importorskip("datasets")
HUB = {"train": "train", "val": "validation", "test": "test", "test_ood": "test_ood"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("pub") / "ds", "folders")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("pub") / "ds", "webdataset")


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def test_hugging_face_loads_the_folders_layout_with_its_splits_and_labels(folders: Path, tmp_path: Path,
                                                                         offline: None) -> None:
    table = rows(folders)
    ds = datasets.load_dataset(str(folders), cache_dir=str(tmp_path / "hf"))
    assert {HUB[s]: n for s, n in Counter(r["split"] for r in table).items()} == {k: v.num_rows for k, v in ds.items()}
    names = ds["train"].features["label"].names
    assert names == sorted({str(r["speciesKey"]) for r in table})  # the class folders, as ImageFolder sorts them
    by_path = {r["path"]: r for r in table}
    train = ds["train"]
    for i in (0, train.num_rows - 1):
        sample = train[i]
        row = by_path[sample["path"]]
        assert names[sample["label"]] == str(row["speciesKey"]) == sample["path"].split("/")[1]
        assert sample["genus"] == row["genus"] and sample["familyKey"] == row["familyKey"]  # the whole taxonomy
        assert np.array_equal(_pixels(sample["image"]), _pixels(Image.open(folders / row["path"])))


def test_hugging_face_loads_each_split_of_the_shards_with_its_label(shards: Path, tmp_path: Path,
                                                                    offline: None) -> None:
    # issue 20, item 4: load_dataset(DIR) gave one train split of every shard, no split, no label
    table = {r["key"]: r for r in rows(shards)}
    assert any((r["phash"] or 0) >= 2**63 for r in table.values())  # as a JSON number, datasets would overflow
    ds = datasets.load_dataset(str(shards), cache_dir=str(tmp_path / "hf"))
    assert {HUB[s]: n for s, n in Counter(r["split"] for r in table.values()).items()} == {
        k: v.num_rows for k, v in ds.items()}
    names = sorted({str(r["speciesKey"]) for r in table.values()})
    for split, part in ds.items():
        assert part.features["cls"].names == names and {HUB[table[k]["split"]] for k in part["__key__"]} == {split}
        sample = part[0]
        row = table[sample["__key__"]]
        assert names[sample["cls"]] == str(row["speciesKey"]) and sample["json"]["split"] == row["split"]
        assert sample["json"]["speciesKey"] == row["speciesKey"] and sample["json"]["species"] == row["species"]
        with tarfile.open(shards / row["shard"]) as tar:
            original = Image.open(io.BytesIO(tar.extractfile(f"{row['key']}.jpg").read()))
            assert np.array_equal(_pixels(sample["jpg"]), _pixels(original))


def _recipe(root: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> dict:
    """Run the card's Hugging Face recipe from inside ``root``, with its own cache; return its variables."""
    text = (root / "README.md").read_text()
    block = text.split("```python\nimport os\nfrom datasets import load_dataset\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)  # read at import: set it for the test
    scope: dict = {}
    exec("import os\nfrom datasets import load_dataset\n" + block, scope)
    return scope


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_the_card_recipe_loads_every_split_with_its_label(layout: str, request: pytest.FixtureRequest,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          offline: None) -> None:
    root = request.getfixturevalue("folders" if layout == "folders" else "shards")
    table = rows(root)
    ds = _recipe(root, monkeypatch, tmp_path / "hf")["ds"]
    assert {HUB[s]: n for s, n in Counter(r["split"] for r in table).items()} == {k: v.num_rows for k, v in ds.items()}
    names = sorted({str(r["speciesKey"]) for r in table})
    by_id = {r["path" if layout == "folders" else "key"]: r for r in table}
    label = "label" if layout == "folders" else "cls"
    for split, part in ds.items():
        sample = part[part.num_rows - 1]
        row = by_id[sample["path"] if layout == "folders" else sample["__key__"]]
        assert part.features[label].names == names and names[sample[label]] == str(row["speciesKey"])
        assert HUB[row["split"]] == split


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_a_moved_or_copied_folder_loads_its_own_files_with_the_card_recipe(
        layout: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        offline: None) -> None:
    # issue 20, item 5: datasets keys a local folder's cache by its card, not by where it is
    first, moved, cache = tmp_path / "a" / "ds", tmp_path / "b" / "ds", tmp_path / "hf"
    shutil.copytree(request.getfixturevalue("folders" if layout == "folders" else "shards"), first)
    datasets.load_dataset(str(first), cache_dir=str(cache))  # the plain load the issue began with
    _recipe(first, monkeypatch, cache)
    shutil.move(first, moved)
    image = "image" if layout == "folders" else "jpg"

    def check(root: Path) -> Path:
        ds = _recipe(root, monkeypatch, cache)["ds"]
        for part in ds.values():
            sample = part[0]
            sample[image].load()  # the pixels can be read
            if layout == "folders":
                assert Path(sample[image].filename).is_relative_to(root), sample[image].filename
            else:  # the cache holds the shards' images themselves
                row = next(r for r in rows(root) if r["key"] == sample["__key__"])
                with tarfile.open(root / row["shard"]) as tar:
                    original = Image.open(io.BytesIO(tar.extractfile(f"{row['key']}.jpg").read()))
                    assert np.array_equal(_pixels(sample[image]), _pixels(original))
        return Path(ds["train"].cache_files[0]["filename"])

    arrow = check(moved)
    stamp = arrow.stat().st_ino, arrow.stat().st_mtime_ns
    again = check(moved)  # where the folder stays, the recipe reuses its cache rather than building it anew
    assert again == arrow and (again.stat().st_ino, again.stat().st_mtime_ns) == stamp
    shutil.copytree(moved, first)  # a copy back at the first place, the moved one still there: each its own
    assert (check(first) != arrow) == (layout == "folders") and check(moved) == arrow


def test_webdataset_reads_the_shards_with_labels(shards: Path) -> None:
    table = {r["key"]: r for r in rows(shards)}
    samples = list(wds.WebDataset(sorted(glob.glob(str(shards / "shards/*.tar"))), shardshuffle=False)
                   .decode("pil").to_tuple("__key__", "jpg", "json"))  # fmt: skip
    assert len(samples) == len(table)
    for key, img, meta in samples[:3]:
        assert meta["speciesKey"] == table[key]["speciesKey"] and img.size == (table[key]["width"], table[key]["height"])


def test_pandas_duckdb_and_polars_read_the_table(folders: Path) -> None:
    table = rows(folders)
    path = str(folders / "metadata.parquet")
    df = pd.read_parquet(path)
    assert len(df) == len(table) and set(df.columns) >= {"kingdom", "species", "kingdomKey", "speciesKey", "split"}
    counts = dict(duckdb.sql(f"SELECT split, count(*) FROM '{path}' GROUP BY split").fetchall())
    assert counts == dict(Counter(r["split"] for r in table))
    assert pl.read_parquet(path).get_column("speciesKey").n_unique() == len({r["speciesKey"] for r in table})
    # the folders layout is what torchvision's ImageFolder reads: one folder per class, every row's file in it
    for row in table:
        assert (folders / row["path"]).is_file() and Path(row["path"]).parent.name == str(row["speciesKey"])


def test_the_card_front_matter_is_what_hubs_read(folders: Path, shards: Path) -> None:
    for root in (folders, shards):
        text = (root / "README.md").read_text()
        assert text.startswith("---\n")
        meta = yaml.safe_load(text.split("---\n")[1])
        table = rows(root)
        licences = sorted({license_name(r["license"]) for r in table})
        assert meta["license"] == most_restrictive(licences)[0]
        assert meta["task_categories"] == ["image-classification"] and meta["size_categories"] == [size_category(len(table))]
        default = next(c for c in meta["configs"] if c["config_name"] == "default")
        for entry in default["data_files"]:
            for pattern in ([entry["path"]] if isinstance(entry["path"], str) else entry["path"]):
                assert glob.glob(str(root / pattern)), pattern  # every pattern names files that exist
        for name in licences:  # the card lists the mix
            assert f"| {name} |" in text
        assert "`genus`" in text and "speciesKey" in text  # how to switch rank


def test_the_hugging_face_recipe_of_the_card_runs(folders: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (folders / "README.md").read_text()
    block = text.split("```python\nimport os\nfrom datasets import load_dataset\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(folders)
    # datasets read HF_DATASETS_CACHE at import: its own cache, not the user's (which keeps absolute image paths)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    scope: dict = {}
    exec("import os\nfrom datasets import load_dataset\n" + block, scope)
    assert isinstance(scope["image"], Image.Image) and 0 <= scope["label"] < len(rows(folders))


@pytest.mark.parametrize(("licences", "expected"), [
    (["CC0 1.0", "CC BY 4.0"], "cc-by-4.0"),
    (["CC BY-SA 4.0", "CC BY-NC 4.0"], "cc-by-nc-sa-4.0"),
    (["CC BY-SA 4.0", "CC BY-ND 4.0"], "cc-by-nd-4.0"),
    (["CC0 1.0", "Public Domain Mark"], "cc0-1.0"),
    (["CC BY 4.0", "All rights reserved"], "other"),
    (["CC BY-NC 3.0"], "cc-by-nc-3.0"),
])  # fmt: skip
def test_the_most_restrictive_licence_covers_every_image(licences: list[str], expected: str) -> None:
    assert most_restrictive(licences)[0] == expected
