"""The dataset card (README.md) and ATTRIBUTION.csv, read as a user would."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from hypothesis import given, settings, strategies as st
import webdataset as wds

from _dataset_factory import PROVENANCE, standard_dataset, write_dataset, Row, jpeg, photo
from gbifxdl.publish.card import citation_text, license_name, write_card
from gbifxdl.publish.facts import licence_conditions, most_restrictive
from gbifxdl.curate import CurateSettings, curate


def _curated(tmp_path: Path, layout: str = "folders") -> Path:
    root = standard_dataset(tmp_path / "ds", layout).root
    curate(root, progress=False)
    return root


def test_card_cites_the_download_and_describes_the_dataset(tmp_path: Path) -> None:
    root = _curated(tmp_path)
    text = write_card(root).read_text()

    assert PROVENANCE["citation"] in text
    assert "https://doi.org/10.15468/dl.29wbtx" in text and PROVENANCE["download_key"] in text
    assert '"TAXON_KEY"' in text  # the query, as JSON
    splits = json.loads((root / "curate_summary.json").read_text())["splits"]
    for name, n in splits.items():
        assert f"| split `{name}` | {n} |" in text
    assert "| CC BY 4.0 | 22 |" in text and "| CC BY-NC 4.0 | 10 |" in text and "| CC0 1.0 | 3 |" in text
    used = CurateSettings().phash_threshold
    assert f'"phash_threshold": {used}' in text and '"resize": 512' in text  # every setting used
    assert "ImageFolder" in text and "duckdb" in text
    assert "| duplicate_across_classes | 2 |" in text


def test_the_duckdb_recipe_of_the_card_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _curated(tmp_path)
    text = write_card(root).read_text()
    block = text.split("```python\nimport duckdb\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)  # the card's recipes run from inside the dataset folder
    exec("import duckdb\n" + block, {})
    shown = capsys.readouterr().out
    splits = json.loads((root / "curate_summary.json").read_text())["splits"]
    for name, n in splits.items():
        assert name in shown and str(n) in shown


def test_attribution_has_one_row_per_image_with_its_credits(tmp_path: Path) -> None:
    root = _curated(tmp_path, "webdataset")
    write_card(root)
    table = pq.read_table(root / "metadata.parquet").to_pylist()
    with open(root / "ATTRIBUTION.csv", newline="") as fp:
        rows = list(csv.DictReader(fp))
    assert len(rows) == len(table)
    by_id = {(r["gbifID"], r["file"].split("#")[1]): r for r in rows}
    for row in table:
        credit = by_id[(str(row["gbifID"]), row["key"])]
        assert credit["references"] == row["references"] and credit["creator"] == row["creator"]
        assert credit["rightsHolder"] == row["rightsHolder"] and credit["license_url"] == row["license"]
        assert credit["license"].startswith("CC") and credit["datasetKey"] == row["datasetKey"]
    # the file column points at real samples
    shard, key = rows[0]["file"].split("#")
    with tarfile.open(root / shard) as tar:
        assert f"{key}.jpg" in tar.getnames()


def test_the_webdataset_layout_loads_with_webdataset(tmp_path: Path) -> None:
    root = _curated(tmp_path, "webdataset")
    assert "wds.WebDataset" in write_card(root).read_text()
    keys = set(pq.read_table(root / "metadata.parquet")["key"].to_pylist())
    shards = sorted(str(p) for p in (root / "shards").glob("*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg"))
    assert {k for k, _ in samples} == keys
    assert all(img.width > 0 for _, img in samples)


def test_licence_names_and_a_citation_built_from_the_doi(tmp_path: Path) -> None:
    assert license_name("http://creativecommons.org/licenses/by-nc/4.0/") == "CC BY-NC 4.0"
    assert license_name("https://creativecommons.org/publicdomain/zero/1.0/legalcode") == "CC0 1.0"
    assert license_name("CC_BY_4_0") == "CC BY 4.0" and license_name(None) == "unknown"
    prov = {"doi": "https://doi.org/10.15468/dl.abc123", "created": "2024-03-05T10:00:00Z"}
    assert citation_text(prov) == "GBIF.org (5 March 2024) GBIF Occurrence Download https://doi.org/10.15468/dl.abc123"
    # a fetched folder without a DOI still gets a card
    root = write_dataset(tmp_path / "raw", [Row(1, 10, jpeg(photo(1)))], orphans=False, provenance={"download_key": "K"})
    text = write_card(root).read_text()
    assert "1 images of 1 classes" in text and "no DOI recorded" in text


def test_front_matter_states_the_licence_covering_every_image(tmp_path: Path) -> None:
    root = _curated(tmp_path)
    text = write_card(root).read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "cc-by-nc-4.0"  # CC0 + CC BY + CC BY-NC images: BY-NC terms cover them all
    assert "**CC BY-NC 4.0**" in text and meta["task_categories"] == ["image-classification"]
    assert meta["size_categories"] == ["n<1K"]
    # without a derived DOI the card says when one is expected
    assert "GBIF expects a derived-dataset DOI when" in text and "gbifxdl derive" in text
    # the per-split tables named in the front matter exist, and hold file_name
    tables = next(c for c in meta["configs"] if c["config_name"] == "default")["metadata_filenames"]
    assert tables and all("file_name" in pq.read_schema(root / t).names for t in tables)


_NAMES = ["CC0 1.0", "Public Domain Mark", "CC BY 4.0", "CC BY-SA 4.0", "CC BY-NC 4.0", "CC BY-ND 4.0",
          "CC BY-NC-SA 4.0", "CC BY-NC-ND 4.0", "CC BY 3.0", "CC BY-NC 2.0"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=6))
def test_the_stated_licence_is_at_least_as_restrictive_as_every_image(names: list[str]) -> None:
    hub, name = most_restrictive(names)
    stated = licence_conditions(name)
    assert stated is not None and hub.startswith("cc")
    for each in names:
        own = licence_conditions(each)
        # every condition of every image holds under the stated licence (ND makes SA moot)
        assert own - {"SA"} <= stated and ("SA" not in own or stated & {"SA", "ND"})
