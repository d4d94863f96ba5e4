"""croissant.json: valid Croissant that mlcroissant reads, offline, record by record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _publish_demo import build_demo, offline, rows  # noqa: F401 - offline is a fixture

pytestmark = pytest.mark.slow  # whole file: see the README's Development section

mlc = pytest.importorskip("mlcroissant")


@pytest.fixture(scope="module", params=["folders", "webdataset"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("croissant") / "ds", request.param)


def test_croissant_validates_and_yields_every_record(demo: Path, offline: None) -> None:
    table = rows(demo)
    doc = json.loads((demo / "croissant.json").read_text())
    dataset = mlc.Dataset(jsonld=str(demo / "croissant.json"))  # raises on any validation error
    assert not dataset.metadata.ctx.issues.errors
    records = list(dataset.records("metadata"))
    assert len(records) == len(table)
    by_id = {r["gbifID"]: r for r in table}
    first = records[0]
    row = by_id[first["metadata/gbifID"]]
    assert first["metadata/label"].decode() == str(row["speciesKey"])
    assert first["metadata/scientificName"].decode() == row["scientificName"]
    assert first["metadata/rightsHolder"].decode() == row["rightsHolder"] and first["metadata/genusKey"] == row["genusKey"]
    # the files are checksummed
    parquet = next(f for f in doc["distribution"] if f["@id"] == "metadata.parquet")
    assert parquet["sha256"] == hashlib.sha256((demo / "metadata.parquet").read_bytes()).hexdigest()
    assert "10.15468/dl." in doc["citeAs"]
    licences = {r["license"] for r in table}
    if None in licences:  # an image of unknown licence: the licences present are listed
        assert set(doc["license"]) == licences - {None}
    else:
        assert doc["license"].startswith("https://creativecommons.org/")
    assert "Geographic skew" in doc["rai:dataBiases"] and "Taxonomic skew" in doc["rai:dataBiases"]


def test_croissant_images_come_with_their_labels(demo: Path, offline: None) -> None:
    table = rows(demo)
    join = "path" if table[0]["path"] else "key"
    by_join = {r[join]: r for r in table}
    images = list(mlc.Dataset(jsonld=str(demo / "croissant.json")).records("images"))
    assert len(images) == len(table)
    record = images[0]
    row = by_join[record[f"images/{join}"].decode()]
    assert record["images/label"].decode() == str(row["speciesKey"])
    assert record["images/image"].size == (row["width"], row["height"])
    if row["path"]:
        assert np.array_equal(np.asarray(record["images/image"].convert("RGB")),
                              np.asarray(Image.open(demo / row["path"]).convert("RGB")))  # fmt: skip
