"""A model run after a curation cut the images to their crops measures the originals (issue 21): a model added
later, or changed, sees the photos the first models saw, in both layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_infer import mean_colour_model  # noqa: E402
from test_model_rules import LAYOUTS, _image, _settings, crop_dataset, red_detector  # noqa: E402

from gbifxdl.curate import curate  # noqa: E402
from gbifxdl.infer import infer, read_results  # noqa: E402


def _by_key(root: Path, name: str) -> dict[str, list]:
    return {r["url_hash"]: r["embedding"] for r in read_results(root, name).to_pylist()}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_model_run_after_the_crops_measures_the_originals(tmp_path: Path, layout: str) -> None:
    root = crop_dataset(tmp_path / "ds", layout)
    pooled = mean_colour_model(tmp_path / "pool.onnx", kind="embedder")
    infer(root, pooled, name="before", workers=0)
    infer(root, red_detector(tmp_path / "bug.onnx"), workers=0)
    curate(root, _settings(crop="bug"))
    assert _image(root, 100).size == (64, 32)  # the crop is in place
    infer(root, pooled, name="after", workers=0)
    assert _by_key(root, "after") == _by_key(root, "before")
