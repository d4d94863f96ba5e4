"""`gbifxdl infer --cluster`: the batches decoded and run on Dask workers (a local cluster on 127.0.0.1) give the
same results, part for part, as one machine (issue 21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("distributed")

from _dataset_factory import Row  # noqa: E402
from test_infer import ANCHORS, colour_dataset, detector_model, mean_colour_model, solid  # noqa: E402

from gbifxdl.infer import infer, read_results  # noqa: E402


def _rows(root: Path, name: str) -> list[dict]:
    return sorted(read_results(root, name).to_pylist(), key=lambda r: r["url_hash"])


@pytest.mark.slow
def test_a_local_cluster_gives_the_same_results_as_one_machine(tmp_path: Path) -> None:
    bad = [Row(gbif_id=5000, species_key=10, data=solid("red"), file_bytes=b"\xff\xd8\xff\xe0 not a jpeg"),
           Row(gbif_id=5001, species_key=11, data=solid("green"), write_file=False)]
    root, truth = colour_dataset(tmp_path / "ds", "webdataset", n=13, extra=bad)
    colour = mean_colour_model(tmp_path / "colour.onnx")
    here = infer(root, colour, name="here", batch_size=3, part_size=4, workers=0)
    there = infer(root, colour, name="there", batch_size=3, part_size=4, cluster="local:2")
    assert (there.images, there.inferred, there.errors, there.error_kinds) == (15, 15, 2, {"undecodable": 1,
                                                                                          "missing": 1})
    assert _rows(root, "there") == _rows(root, "here") and here.errors == 2
    parts = sorted((root / ".gbifxdl" / "models" / "there").glob("part-*.parquet"))
    same = sorted((root / ".gbifxdl" / "models" / "here").glob("part-*.parquet"))
    assert [pq.read_table(p).to_pylist() for p in parts] == [pq.read_table(p).to_pylist() for p in same]
    assert infer(root, colour, name="there", cluster="local:2").inferred == 0  # done: no cluster work
    labels = {r["url_hash"]: r["label"] for r in _rows(root, "there")}
    assert sorted(v for v in labels.values() if v) == sorted(truth.values())

    # a detector through the command: boxes unletterboxed on the workers as here
    detector = detector_model(tmp_path / "bug.onnx")
    infer(root, detector, name="bug_here", workers=0)
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "infer", str(root), "--model", str(detector), "--name",
                           "bug_there", "--cluster", "local:2", "--quiet"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert _rows(root, "bug_there") == _rows(root, "bug_here") and len(ANCHORS)


def test_a_bad_cluster_address_is_one_line_before_any_work(tmp_path: Path) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "infer", str(root), "--model",
                           str(mean_colour_model(tmp_path / "c.onnx")), "--cluster", "nowhere"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: cluster 'nowhere'") and done.stderr.count("\n") == 1
    assert not (root / ".gbifxdl" / "models").exists()
