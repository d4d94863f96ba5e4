"""infer(): tiny ONNX models with known answers, through the real ONNX Runtime, on both layouts (issue 21)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from _dataset_factory import Row, jpeg, write_dataset

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from gbifxdl.infer import ModelError, infer, load_spec, read_results  # noqa: E402
from gbifxdl.infer._pre import Prep, prepare  # noqa: E402

LAYOUTS = ["folders", "webdataset"]
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 30), "blue": (25, 30, 210)}
SIDE = 32


# --- tiny models ---------------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: Path, sidecar: dict) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def _image_input(side: int = SIDE, batch: str | int = "N") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, side, side])


def mean_colour_model(path: Path, kind: str = "classifier", gain: float = 10.0, **sidecar: object) -> Path:
    """Output = gain x each channel's mean (logits red, green, blue; or the embedding)."""
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
             helper.make_node("Mul", ["mean", "gain"], ["out"])]
    gain_t = helper.make_tensor("gain", TensorProto.FLOAT, [1], [gain])
    graph = helper.make_graph(nodes, "mean_colour", [_image_input()],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])], [gain_t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    side = {"kind": kind, "input_size": SIDE, "resize": "squash"}
    if kind == "classifier":
        side["labels"] = list(COLOURS)
    side.update(sidecar)
    return _save(model, path, side)


# anchors of the detector, in input pixels (64 x 64 letterbox): cx, cy, w, h, score class 0, score class 1
ANCHORS = np.array([
    [32, 32, 32, 16, 0.9, 0.0],   # the box: image [0.25, 0.25, 0.5, 0.5] on a 128 x 64 image
    [33, 32, 32, 16, 0.6, 0.0],   # almost the same box, same class, lower: suppressed
    [32, 32, 30, 14, 0.0, 0.7],   # the same place, other class: kept
    [10, 20, 4, 4, 0.1, 0.05],    # below the confidence threshold
], np.float32)


def detector_model(path: Path) -> Path:
    """A YOLO-layout output (batch, 4 + classes, anchors) that is ANCHORS whatever the image."""
    const = helper.make_tensor("anchors", TensorProto.FLOAT, [1, 6, len(ANCHORS)], ANCHORS.T.flatten().tolist())
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),  # (N, 1, 1, 1)
             helper.make_node("Squeeze", ["m", "ax"], ["m3"]),  # (N, 1, 1)
             helper.make_node("Mul", ["m3", "zero"], ["z"]),
             helper.make_node("Add", ["z", "anchors"], ["output0"])]
    ax = helper.make_tensor("ax", TensorProto.INT64, [1], [3])
    graph = helper.make_graph(nodes, "yolo", [_image_input(64)],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 6, len(ANCHORS)])],
                              [const, zero, ax])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return _save(model, path, {"kind": "detector", "input_size": 64, "resize": "letterbox",
                               "labels": ["insect", "label"], "output": "yolo"})


# --- datasets --------------------------------------------------------------------------------


def solid(colour: str, size: tuple[int, int] = (48, 40)) -> bytes:
    return jpeg(Image.new("RGB", size, COLOURS[colour]), quality=95)


def colour_dataset(root: Path, layout: str, n: int = 9, extra: list[Row] | None = None) -> tuple[Path, dict[int, str]]:
    """A dataset of ``n`` solid-colour JPEGs (cycling red, green, blue); returns it and gbifID -> colour."""
    names = list(COLOURS)
    rows, truth = [], {}
    for i in range(n):
        colour = names[i % 3]
        rows.append(Row(gbif_id=1000 + i, species_key=10 + i % 3, data=solid(colour, (48 + i % 5, 40))))
        truth[1000 + i] = colour
    rows += extra or []
    write_dataset(root, rows, layout, shard_size=4, orphans=False)
    return root, truth


def _by_gbif(root: Path) -> dict[str, int]:
    table = pq.read_table(root / "metadata.parquet", columns=["url_hash", "gbifID"])
    return dict(zip(table["url_hash"].to_pylist(), table["gbifID"].to_pylist()))


def _results(root: Path, name: str) -> dict[int, dict]:
    keys = _by_gbif(root)
    return {keys[r["url_hash"]]: r for r in read_results(root, name).to_pylist()}


# --- preprocessing against hand-computed tensors ----------------------------------------------------


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_letterbox_matches_hand_computed_tensor() -> None:
    img = Image.new("RGB", (100, 50), (255, 0, 0))
    img.paste((0, 0, 255), (0, 25, 100, 50))  # top half red, bottom half blue
    prep = Prep((40, 40), "letterbox", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "NCHW", 114)
    x, geometry = prepare(_png(img), prep)
    assert x.shape == (3, 40, 40) and x.dtype == np.float32
    # scale 0.4: the image is 40 x 20 in the middle, rows 10..29; 10 rows of padding above and below
    assert geometry == (100, 50, 0.4, 0.4, 0.0, 10.0)
    norm = lambda v: (v / 255 - 0.5) / 0.25  # noqa: E731
    expected = np.empty((3, 40, 40), np.float32)
    expected[:, :10] = expected[:, 30:] = norm(114)
    expected[:, 10:20] = np.array([norm(255), norm(0), norm(0)], np.float32)[:, None, None]
    expected[:, 20:30] = np.array([norm(0), norm(0), norm(255)], np.float32)[:, None, None]
    rows = [r for r in range(40) if r not in (19, 20)]  # the red/blue seam is blended by the filter
    np.testing.assert_allclose(x[:, rows], expected[:, rows], atol=1e-6)
    assert np.all(x[0, 19] > x[0, 20]) and np.all(x[2, 19] < x[2, 20])


def test_centre_crop_matches_hand_computed_tensor_in_both_layouts() -> None:
    img = Image.new("RGB", (300, 100), (255, 0, 0))
    img.paste((0, 255, 0), (100, 0, 200, 100))
    img.paste((0, 0, 255), (200, 0, 300, 100))  # red | green | blue, 100 px each
    # scale 0.3: 90 x 30; the middle 30 columns are exactly the green stripe
    nchw, geometry = prepare(_png(img), Prep((30, 30), "centre-crop", (0, 0, 0), (1, 1, 1), "NCHW", 114))
    assert geometry == (300, 100, 0.3, 0.3, -30.0, 0.0)
    inner = nchw[:, :, 2:28]
    np.testing.assert_allclose(inner, np.array([0, 1, 0], np.float32)[:, None, None] * np.ones((3, 30, 26)),
                               atol=1e-6)
    nhwc, _ = prepare(_png(img), Prep((30, 30), "centre-crop", (0, 0, 0), (1, 1, 1), "NHWC", 114))
    np.testing.assert_array_equal(nhwc, nchw.transpose(1, 2, 0))


def test_squash_keeps_every_pixel_and_drops_the_aspect() -> None:
    x, geometry = prepare(_png(Image.new("RGB", (90, 30), (0, 51, 255))),
                          Prep((10, 20), "squash", (0, 0, 0), (1, 1, 1), "NCHW", 114))
    assert x.shape == (3, 10, 20) and geometry == (90, 30, 20 / 90, 10 / 30, 0.0, 0.0)
    np.testing.assert_allclose(x[:, 0, 0], [0, 0.2, 1], atol=1e-6)


# --- classifier, embedder, detector -----------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_classifier_reads_the_mean_colour(tmp_path: Path, layout: str, batch_size: int) -> None:
    root, truth = colour_dataset(tmp_path / "ds", layout)
    model = mean_colour_model(tmp_path / "colour.onnx", top_k=2)
    summary = infer(root, model, batch_size=batch_size, workers=0)
    assert (summary.images, summary.inferred, summary.errors, summary.done_before) == (9, 9, 0, 0)
    results = _results(root, "colour")
    assert {g: r["label"] for g, r in results.items()} == truth
    sha = summary.sha256
    for gbif_id, r in results.items():
        assert r["model_sha256"] == sha and r["error"] is None
        assert len(r["top_labels"]) == 2 and r["top_labels"][0] == truth[gbif_id]
        assert r["score"] == r["top_scores"][0] > 0.8 and r["top_scores"][0] >= r["top_scores"][1]
    parts = sorted((root / ".gbifxdl" / "models" / "colour").glob("part-*.parquet"))
    assert len(parts) == 1


def test_batch_sizes_and_decode_processes_give_the_same_results(tmp_path: Path) -> None:
    results = []
    for batch_size, workers in ((1, 0), (5, 0), (64, 0), (3, 2)):
        root, _ = colour_dataset(tmp_path / f"ds-{batch_size}-{workers}", "webdataset", n=20)
        infer(root, mean_colour_model(tmp_path / "colour.onnx", top_k=3), batch_size=batch_size, workers=workers)
        rows = _results(root, "colour")
        results.append({g: (r["top_labels"], r["top_scores"]) for g, r in rows.items()})
    assert len(results[0]) == 20
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for g in other:
            assert other[g][0] == results[0][g][0]
            np.testing.assert_allclose(other[g][1], results[0][g][1], rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_embedder_writes_normalised_float16_vectors_and_zero_shot_labels(tmp_path: Path, layout: str) -> None:
    root, truth = colour_dataset(tmp_path / "ds", layout, n=6)
    model = mean_colour_model(tmp_path / "pool.onnx", kind="embedder", gain=1.0, output="embedding")
    labels = tmp_path / "labels.npz"
    np.savez(labels, names=np.array(list(COLOURS)), embeddings=np.eye(3, dtype=np.float32) * 3)
    summary = infer(root, model, labels=labels, batch_size=4, workers=0)
    assert summary.errors == 0
    part = next((root / ".gbifxdl" / "models" / "pool").glob("part-*.parquet"))
    assert str(pq.read_schema(part).field("embedding").type) == "list<element: halffloat>"
    for gbif_id, r in _results(root, "pool").items():
        vec = np.array(r["embedding"], np.float32)
        assert vec.shape == (3,) and abs(np.linalg.norm(vec) - 1) < 2e-3
        rgb = np.array(COLOURS[truth[gbif_id]], np.float32) / 255
        np.testing.assert_allclose(vec, rgb / np.linalg.norm(rgb), atol=0.03)  # JPEG moves colours a little
        assert r["label"] == truth[gbif_id] and r["score"] > 0.99


def test_embedder_without_labels_has_no_zero_shot(tmp_path: Path) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    infer(root, mean_colour_model(tmp_path / "pool.onnx", kind="embedder", gain=1.0), workers=0)
    assert {r["label"] for r in _results(root, "pool").values()} == {None}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_detector_boxes_are_unletterboxed_suppressed_and_normalised(tmp_path: Path, layout: str) -> None:
    rows = [Row(gbif_id=1, species_key=1, data=jpeg(Image.new("RGB", (128, 64), (90, 90, 90))))]
    write_dataset(tmp_path / "ds", rows, layout, orphans=False)
    infer(tmp_path / "ds", detector_model(tmp_path / "yolo.onnx"), workers=0)
    (r,) = _results(tmp_path / "ds", "yolo").values()
    assert r["labels"] == ["insect", "label"]
    np.testing.assert_allclose(r["scores"], [0.9, 0.7], rtol=1e-6)
    # input box (cx 32, cy 32, w 32, h 16) - padding 16 rows, / scale 0.5 -> x 32..96, y 16..48 of 128 x 64
    np.testing.assert_allclose(r["boxes"][0], [0.25, 0.25, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(r["boxes"][1], [34 / 128, 18 / 64, 60 / 128, 28 / 64], atol=1e-6)


def test_a_bad_label_matrix_is_one_clear_error(tmp_path: Path) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    pool = mean_colour_model(tmp_path / "pool.onnx", kind="embedder")
    np.savez(tmp_path / "nonames.npz", embeddings=np.eye(3))
    with pytest.raises(ModelError, match="holds 'names' and 'embeddings'"):
        infer(root, pool, labels=tmp_path / "nonames.npz", workers=0)
    np.savez(tmp_path / "wide.npz", names=np.array(["a", "b"]), embeddings=np.ones((2, 5)))
    with pytest.raises(ModelError, match="embeddings have 3 dimensions, the label matrix's 5"):
        infer(root, pool, labels=tmp_path / "wide.npz", workers=0)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a readable .npz"):
        infer(root, pool, labels=tmp_path / "junk.npz", workers=0)
    with pytest.raises(ModelError, match="gives zero-shot labels to an embedder"):
        infer(root, mean_colour_model(tmp_path / "colour.onnx"), labels=tmp_path / "wide.npz", workers=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_images_a_curation_set_aside_are_measured_too(tmp_path: Path, layout: str) -> None:
    from gbifxdl.curate import curate

    twin = Row(gbif_id=7000, species_key=10, data=solid("red", (48, 40)))  # the bytes of image 1000: a duplicate
    root, truth = colour_dataset(tmp_path / "ds", layout, n=6, extra=[twin])
    curate(root, progress=False, card=False)
    assert pq.read_table(root / "removed.parquet").num_rows == 1 and (root / ".gbifxdl" / "removed").is_dir()
    summary = infer(root, mean_colour_model(tmp_path / "colour.onnx"), workers=0)
    assert (summary.images, summary.errors) == (7, 0)
    removed = pq.read_table(root / "removed.parquet", columns=["url_hash"])["url_hash"].to_pylist()
    results = {r["url_hash"]: r for r in read_results(root, "colour").to_pylist()}
    assert results[removed[0]]["label"] == "red"


# --- errors, resume, changed models ---------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_corrupt_or_missing_image_gets_an_error_row_and_the_run_goes_on(tmp_path: Path, layout: str) -> None:
    bad = [Row(gbif_id=5000, species_key=10, data=solid("red"), file_bytes=b"\xff\xd8\xff\xe0 not really a jpeg"),
           Row(gbif_id=5001, species_key=11, data=solid("green"), write_file=False),
           Row(gbif_id=5002, species_key=11, data=None, outcome="http_404")]
    root, truth = colour_dataset(tmp_path / "ds", layout, n=6, extra=bad)
    summary = infer(root, mean_colour_model(tmp_path / "colour.onnx"), batch_size=4, workers=0)
    assert summary.images == 8 and summary.errors == 2  # the failed fetch is no image
    assert summary.error_kinds == {"undecodable": 1, "missing": 1}
    results = _results(root, "colour")
    assert results[5000]["error"].startswith("undecodable") and results[5000]["label"] is None
    assert results[5001]["error"].startswith("missing")
    assert {g: r["label"] for g, r in results.items() if g in truth} == truth
    assert "2 could not be read" in summary.format()


def test_a_second_run_does_nothing_and_a_lost_part_is_redone(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "folders", n=10)
    model = mean_colour_model(tmp_path / "colour.onnx")
    infer(root, model, batch_size=2, part_size=3, workers=0)
    folder = root / ".gbifxdl" / "models" / "colour"
    parts = sorted(folder.glob("part-*.parquet"))
    assert len(parts) == 4
    stamps = {p.name: p.stat().st_mtime_ns for p in parts}
    again = infer(root, model, batch_size=2, part_size=3, workers=0)
    assert (again.inferred, again.done_before) == (0, 10)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("part-*.parquet")} == stamps  # never rewritten
    parts[1].unlink()
    (folder / ".part-000009.parquet.tmp-4242").write_bytes(b"killed mid-write")
    redo = infer(root, model, batch_size=2, part_size=3, workers=0)
    assert redo.inferred == 3
    assert not list(folder.glob(".part-*"))
    assert {g: r["label"] for g, r in _results(root, "colour").items()} == truth


def test_a_changed_model_recomputes_only_that_model(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "webdataset", n=6)
    colour = mean_colour_model(tmp_path / "colour.onnx")
    pool = mean_colour_model(tmp_path / "pool.onnx", kind="embedder")
    first = infer(root, colour, workers=0)
    infer(root, pool, workers=0)
    pool_parts = {p: p.stat().st_mtime_ns for p in (root / ".gbifxdl/models/pool").glob("part-*")}

    mean_colour_model(colour, gain=3.0)  # same name, other weights: another sha256
    changed = infer(root, colour, workers=0)
    assert changed.sha256 != first.sha256 and (changed.inferred, changed.done_before) == (6, 0)
    assert {r["model_sha256"] for r in _results(root, "colour").values()} == {changed.sha256}
    assert {g: r["label"] for g, r in _results(root, "colour").items()} == truth
    assert infer(root, pool, workers=0).inferred == 0
    assert {p: p.stat().st_mtime_ns for p in (root / ".gbifxdl/models/pool").glob("part-*")} == pool_parts

    # the sidecar is part of the model too: another top_k measures again
    assert infer(root, mean_colour_model(colour, gain=3.0, top_k=2), workers=0).inferred == 6


_RUN = """
import sys
from gbifxdl.infer import infer
infer(sys.argv[1], sys.argv[2], batch_size=2, part_size=2, workers=0)
"""


@pytest.mark.slow
def test_killed_at_any_moment_the_same_command_continues_to_the_same_results(tmp_path: Path) -> None:
    names = list(COLOURS)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(150):  # big enough images that the run lasts while the test watches it
        pixels = np.clip(rng.normal(COLOURS[names[i % 3]], 40, (400, 500, 3)), 0, 255).astype(np.uint8)
        rows.append(Row(gbif_id=i + 1, species_key=i % 3, data=jpeg(Image.fromarray(pixels))))
    write_dataset(tmp_path / "ds", rows, "webdataset", shard_size=16, orphans=False)
    shutil.copytree(tmp_path / "ds", tmp_path / "clean")
    model = mean_colour_model(tmp_path / "colour.onnx", top_k=3)
    folder = tmp_path / "ds" / ".gbifxdl" / "models" / "colour"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}

    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(tmp_path / "ds"), str(model)], env=env)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("part-*.parquet"))) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(folder.glob("part-*.parquet")))
    assert 5 <= written < 75, "the run was not killed midway"

    resumed = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "ds"), str(model)], env=env, timeout=240)
    assert resumed.returncode == 0
    subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "clean"), str(model)], env=env, timeout=240,
                   check=True)
    got, want = _results(tmp_path / "ds", "colour"), _results(tmp_path / "clean", "colour")
    assert len(got) == 150 and read_results(tmp_path / "ds", "colour").num_rows == 150  # no image twice
    assert got == want


@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_once_with_decode_processes(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "webdataset", n=12)
    model = mean_colour_model(tmp_path / "colour.onnx")
    script = tmp_path / "script.py"
    script.write_text(f"""
from pathlib import Path
from gbifxdl.infer import infer
with open({str(tmp_path / 'runs.txt')!r}, "a") as fh:
    fh.write("ran\\n")
infer({str(root)!r}, {str(model)!r}, batch_size=2, workers=2)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs.txt").read_text() == "ran\n"  # the decode processes did not run it again
    assert {g: r["label"] for g, r in _results(root, "colour").items()} == truth


def test_results_hold_one_row_per_image_even_after_two_runs_at_once(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "folders", n=5)
    infer(root, mean_colour_model(tmp_path / "colour.onnx"), workers=0)
    folder = root / ".gbifxdl" / "models" / "colour"
    shutil.copy(folder / "part-000000.parquet", folder / "part-000001.parquet")  # what a second run would add
    assert read_results(root, "colour").num_rows == 5


# --- sidecars, devices, the command ---------------------------------------------------------------------------


@pytest.mark.parametrize("sidecar, message", [
    ({"input_size": 32}, "'kind' must be one of"),
    ({"kind": "classifier", "input_size": 32}, "needs 'labels'"),
    ({"kind": "embedder", "input_size": [32]}, "'input_size' must be"),
    ({"kind": "embedder", "input_size": 32, "resize": "stretch"}, "'resize' must be one of"),
    ({"kind": "embedder", "input_size": 32, "mean": [1, 2]}, "'mean' must be three numbers"),
    ({"kind": "embedder", "input_size": 32, "std": 0}, "'std' must not hold a zero"),
    ({"kind": "embedder", "input_size": 32, "colour": 1}, "unknown field 'colour'"),
    ({"kind": "embedder", "input_size": 32, "output": "logits"}, "'output' of a embedder"),
])
def test_a_bad_sidecar_is_one_clear_error(tmp_path: Path, sidecar: dict, message: str) -> None:
    model = mean_colour_model(tmp_path / "m.onnx", kind="embedder")
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match=message):
        load_spec(model)


def test_a_model_that_does_not_fit_its_sidecar_is_one_clear_error(tmp_path: Path) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    model = mean_colour_model(tmp_path / "m.onnx", input_size=64)
    with pytest.raises(ModelError, match=r"the sidecar makes \[batch, 3, 64, 64\]"):
        infer(root, model, workers=0)
    model = mean_colour_model(tmp_path / "m.onnx", labels=["a", "b"])
    with pytest.raises(ModelError, match="gives 3 scores per image, its sidecar names 2 labels"):
        infer(root, model, workers=0)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "junk.json").write_text(json.dumps({"kind": "embedder", "input_size": 32}))
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        infer(root, tmp_path / "junk.onnx", workers=0)
    (tmp_path / "nosidecar.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="sidecar nosidecar.json is missing"):
        load_spec(tmp_path / "nosidecar.onnx")


def test_cuda_without_the_cuda_provider_is_an_error_never_a_cpu_run(tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    with pytest.raises(ModelError, match="no CUDA provider"):
        infer(root, mean_colour_model(tmp_path / "m.onnx"), device="cuda", workers=0)
    assert not (root / ".gbifxdl" / "models").exists()


def test_without_onnxruntime_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    model = mean_colour_model(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModelError, match=r"pip install 'gbifxdl\[infer\]'"):
        infer(root, model, workers=0)


def test_the_command(tmp_path: Path) -> None:
    from gbifxdl.cli import cli

    root, truth = colour_dataset(tmp_path / "ds", "folders", n=6)
    model = mean_colour_model(tmp_path / "colour.onnx")
    runner = CliRunner()
    done = runner.invoke(cli, ["infer", str(root), "--model", str(model), "--batch-size", "4", "--workers", "0"])
    assert done.exit_code == 0, done.output
    assert "colour (classifier, sha256 " in done.output and "6 images measured" in done.output
    assert {g: r["label"] for g, r in _results(root, "colour").items()} == truth
    quiet = runner.invoke(cli, ["infer", str(root), "--model", str(model), "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""


@pytest.mark.slow
def test_the_command_says_errors_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    model = mean_colour_model(tmp_path / "m.onnx")
    model.with_suffix(".json").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "infer", str(root), "--model", str(model)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and "not readable JSON" in done.stderr
    model.with_suffix(".json").write_text(json.dumps({"kind": "classifier", "input_size": 32, "labels": ["a"] * 3}))
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "infer", str(root), "--model", str(model),
                           "--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cuda" in done.stderr.lower() and done.stderr.count("\n") == 1
