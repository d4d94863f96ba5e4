"""Curation rules over model results (issue 21, "curation decides, inference only measures"): tiny ONNX
models with known answers through the real ONNX Runtime, then `gbifxdl curate` deciding on their results,
in both layouts."""

from __future__ import annotations

import io
import json
import tarfile
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
from test_infer import COLOURS, _save, colour_dataset, mean_colour_model  # noqa: E402

from gbifxdl.cli import cli, run_command  # noqa: E402
from gbifxdl.curate import CurateSettings, curate  # noqa: E402
from gbifxdl.errors import ConfigError  # noqa: E402
from gbifxdl.infer import infer, read_results  # noqa: E402

LAYOUTS = ["folders", "webdataset"]
RED, GREEN, BLUE = COLOURS["red"], COLOURS["green"], COLOURS["blue"]


# --- a detector whose box is known and whose confidence is the image's redness -------------------


def red_detector(path: Path) -> Path:
    """YOLO-layout output (N, 6, 1): one box (input cx 32, cy 32, w 32, h 16: the image's [0.25, 0.25, 0.5, 0.5] on
    a 128 x 64 image), class 0 scored 2 x (mean red of the 64 x 64 letterboxed input) - 0.7."""
    base = helper.make_tensor("base", TensorProto.FLOAT, [1, 6, 1], [32, 32, 32, 16, -0.7, 0])
    slope = helper.make_tensor("slope", TensorProto.FLOAT, [1, 6, 1], [0, 0, 0, 0, 2, 0])
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[2, 3], keepdims=0),  # (N, 3)
             helper.make_node("Gather", ["m", "zero"], ["red"], axis=1),  # (N,)
             helper.make_node("Unsqueeze", ["red", "axes"], ["red3"]),  # (N, 1, 1)
             helper.make_node("Mul", ["red3", "slope"], ["scaled"]),
             helper.make_node("Add", ["scaled", "base"], ["output0"])]
    inits = [base, slope, helper.make_tensor("zero", TensorProto.INT64, [], [0]),
             helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])]
    graph = helper.make_graph(nodes, "red_yolo",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 6, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return _save(model, path, {"kind": "detector", "input_size": 64, "resize": "letterbox",
                               "labels": ["insect", "label"], "output": "yolo"})


def subject(n: int) -> bytes:
    """128 x 64 red with a green block exactly where the detector's box is (x 32..96, y 16..48); a dark dot
    at a place of its own (``n``) makes each image another photo."""
    img = Image.new("RGB", (128, 64), RED)
    img.paste(GREEN, (32, 16, 96, 48))
    img.paste((0, 0, 0), (4 + 8 * n, 56, 7 + 8 * n, 59))
    return jpeg(img, quality=98)


def empty(n: int) -> bytes:
    img = Image.new("RGB", (128, 64), BLUE)
    img.paste((0, 0, 0), (4 + 8 * n, 56, 7 + 8 * n, 59))
    return jpeg(img, quality=98)


def crop_dataset(root: Path, layout: str) -> Path:
    rows = [Row(gbif_id=100 + i, species_key=1 + i % 2, data=subject(i) if i < 4 else empty(i)) for i in range(6)]
    return write_dataset(root, rows, layout, shard_size=4, orphans=False)


def _image(root: Path, gbif_id: int) -> Image.Image:
    """Return the dataset's image of ``gbif_id`` as a loader reads it (a file, or a shard's member)."""
    table = pq.read_table(root / "metadata.parquet").to_pylist()
    (row,) = [r for r in table if r["gbifID"] == gbif_id]
    if row["path"]:
        return Image.open(root / row["path"]).convert("RGB")
    with tarfile.open(root / row["shard"]) as tar:
        (member,) = [m for m in tar if m.name.startswith(row["key"] + ".") and m.name.endswith(".jpg")]
        return Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")


def _settings(**rules: object) -> CurateSettings:
    """Curation settings with ``rules``; every class kept in the splits, near duplicates left to their own tests."""
    return CurateSettings(ood_th=0, near_duplicates=False, **rules)  # type: ignore[arg-type]


def _kept(root: Path) -> dict[int, dict]:
    return {r["gbifID"]: r for r in pq.read_table(root / "metadata.parquet").to_pylist()}


def _removed(root: Path) -> dict[int, str]:
    if not (root / "removed.parquet").is_file():
        return {}
    return {r["gbifID"]: r["removed_reason"] for r in pq.read_table(root / "removed.parquet").to_pylist()}


def _close(pixel: tuple[int, ...], colour: tuple[int, int, int], tol: int = 30) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour))


# --- label rules and minimum scores: set aside with their reason, brought back by a gentler rule ----


@pytest.mark.parametrize("layout", LAYOUTS)
def test_label_rules_set_aside_with_their_reason_and_a_gentler_rule_brings_them_back(tmp_path: Path,
                                                                                      layout: str) -> None:
    root, truth = colour_dataset(tmp_path / "ds", layout, n=9)
    infer(root, mean_colour_model(tmp_path / "colour.onnx", gain=3.0), workers=0)
    summary = curate(root, _settings(keep=("colour.label in [red, green]",)))
    blue = {g for g, c in truth.items() if c == "blue"}
    assert set(_kept(root)) == set(truth) - blue
    assert _removed(root) == {g: "model:colour" for g in blue}
    assert summary.removed == {"model:colour": 3}
    assert summary.models["rules"] == [{"rule": "keep colour.label in [red, green]", "reason": "model:colour",
                                        "removed": 3}]
    # the blue images' files are set aside, not deleted
    assert any((root / ".gbifxdl" / "removed").rglob("*.jpg" if layout == "folders" else "*.tar"))

    curate(root, _settings(drop=("colour.label == green",)))  # another rule: blue back, green out
    green = {g for g, c in truth.items() if c == "green"}
    assert set(_kept(root)) == set(truth) - green
    assert _removed(root) == {g: "model:colour" for g in green}
    for gbif_id in blue:  # the restored images are readable where the table says
        assert _close(_image(root, gbif_id).getpixel((5, 5)), BLUE)

    curate(root, _settings())  # no rule: everything back
    assert set(_kept(root)) == set(truth) and _removed(root) == {}


def test_min_score_removes_the_unsure_and_changing_it_runs_no_model(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "folders", n=9)
    infer(root, mean_colour_model(tmp_path / "colour.onnx", gain=3.0), workers=0)
    scores = {r["url_hash"]: r["score"] for r in read_results(root, "colour").to_pylist()}
    by_hash = {r["url_hash"]: r["gbifID"] for r in pq.read_table(root / "metadata.parquet").to_pylist()}
    models = root / ".gbifxdl" / "models"
    before = {p: p.stat().st_mtime_ns for p in models.rglob("*")}
    for low in sorted(set(scores.values()))[1::3]:
        curate(root, _settings(min_score=(f"colour={low}",)))
        unsure = {by_hash[u] for u, s in scores.items() if s < low}
        assert unsure and set(_removed(root)) == unsure and set(_kept(root)) == set(truth) - unsure
    assert {p: p.stat().st_mtime_ns for p in models.rglob("*")} == before  # no model ran again


def test_an_image_the_model_never_measured_is_kept_and_the_user_told(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "folders", n=6)
    infer(root, mean_colour_model(tmp_path / "colour.onnx"), workers=0)
    part = next((root / ".gbifxdl" / "models" / "colour").glob("part-*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)  # the first image measured by nobody
    summary = curate(root, _settings(keep=("colour.label in [green]",)))
    first = by = {r["url_hash"]: r["gbifID"] for r in pq.read_table(root / "metadata.parquet").to_pylist()}
    unmeasured = by[table.column("url_hash")[0].as_py()]
    assert unmeasured in _kept(root) and first
    assert any("no result of model 'colour'" in w for w in summary.warnings)


# --- outliers ------------------------------------------------------------------------------------


def test_outliers_of_a_class_are_scored_and_removed_as_outliers(tmp_path: Path) -> None:
    rows = [Row(gbif_id=1 + i, species_key=5, data=jpeg(Image.new("RGB", (40 + i, 40), RED))) for i in range(4)]
    rows.append(Row(gbif_id=9, species_key=5, data=jpeg(Image.new("RGB", (40, 40), BLUE))))
    rows += [Row(gbif_id=20 + i, species_key=6, data=jpeg(Image.new("RGB", (40 + i, 40), GREEN))) for i in range(3)]
    root = write_dataset(tmp_path / "ds", rows, "folders", orphans=False)
    infer(root, mean_colour_model(tmp_path / "pool.onnx", kind="embedder", gain=1.0), workers=0)
    summary = curate(root, _settings(max_outlier=("pool=0.3",)))
    assert _removed(root) == {9: "outlier:pool"}
    kept = _kept(root)
    assert all(kept[g]["outlier_pool"] < 0.1 for g in kept)  # every kept image has its score
    removed = {r["gbifID"]: r for r in pq.read_table(root / "removed.parquet").to_pylist()}
    assert removed[9]["outlier_pool"] > 0.3
    assert summary.models["rules"][0] == {"rule": "max_outlier pool=0.3", "reason": "outlier:pool", "removed": 1}
    from gbifxdl.report import write_report

    html = write_report(root).read_text()
    outliers = html[html.index("Outliers of each class"):]
    assert "outlier:pool" in outliers and outliers.count("<img") >= 5  # class 5: its outliers, the removed one first
    curate(root, _settings(max_outlier=("pool=2",)))  # gentler: back, still scored
    assert 9 in _kept(root) and _kept(root)[9]["outlier_pool"] > 0.3


# --- crops --------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_crops_are_the_datasets_images_at_the_right_pixels_and_reversible(tmp_path: Path, layout: str) -> None:
    root = crop_dataset(tmp_path / "ds", layout)
    infer(root, red_detector(tmp_path / "bug.onnx"), workers=0)
    summary = curate(root, _settings(crop="bug"))
    kept = _kept(root)
    assert set(kept) == set(range(100, 106))  # without detection: kept uncropped
    for g in range(100, 104):
        assert kept[g]["crop_model"] == "bug" and kept[g]["crop_box"] == [32, 16, 64, 32]
        img = _image(root, g)
        assert img.size == (64, 32)
        assert all(_close(img.getpixel(p), GREEN) for p in ((3, 3), (60, 28), (32, 16)))  # edges: JPEG blurs a pixel or two
    for g in (104, 105):
        assert kept[g]["crop_box"] is None and _image(root, g).size == (128, 64)
    assert summary.models["cropped"] == 4 and summary.models["crops"]["cropped"] == 4

    # padding: cut again from the original, not from the crop
    curate(root, _settings(crop="bug", crop_padding=0.25))
    img = _image(root, 100)
    assert _kept(root)[100]["crop_box"] == [16, 8, 96, 48] and img.size == (96, 48)
    assert _close(img.getpixel((2, 2)), RED) and _close(img.getpixel((48, 24)), GREEN)
    assert _close(img.getpixel((20, 12)), GREEN) and _close(img.getpixel((12, 4)), RED)

    # square, kept inside the image
    curate(root, _settings(crop="bug", crop_square=True))
    img = _image(root, 101)
    assert _kept(root)[101]["crop_box"] == [32, 0, 64, 64] and img.size == (64, 64)
    assert _close(img.getpixel((32, 4)), RED) and _close(img.getpixel((32, 32)), GREEN)

    # no crop: the originals, byte for byte, and nothing left aside
    curate(root, _settings())
    for g in range(100, 106):
        assert _image(root, g).size == (128, 64)
    assert "crop_box" not in pq.read_schema(root / "metadata.parquet").names
    assert not [p for p in (root / ".gbifxdl" / "originals").glob("*") if p.suffix != ".parquet"]
    originals = {r["gbifID"]: r["sha256"] for r in pq.read_table(root / "metadata.parquet").to_pylist()}
    summary = curate(root, _settings(verify_hashes=True))  # every file its fetched bytes again
    assert summary.removed == {} and set(_kept(root)) == set(originals)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_detection_drop_sets_images_aside_and_a_second_curation_keeps_the_crops(tmp_path: Path,
                                                                                   layout: str) -> None:
    root = crop_dataset(tmp_path / "ds", layout)
    infer(root, red_detector(tmp_path / "bug.onnx"), workers=0)
    settings = _settings(crop="bug", no_detection="drop")
    summary = curate(root, settings)
    assert _removed(root) == {104: "no_detection", 105: "no_detection"}
    assert summary.models["rules"][0]["removed"] == 2 and summary.models["rules"][0]["cropped"] == 4
    files = {p: p.stat().st_mtime_ns for p in (root / "metadata.parquet", *root.rglob("*.tar"), *root.rglob("*.jpg"))}
    again = curate(root, settings)  # the crops pass the file checks, and nothing is cut or written twice
    assert again.removed == {} and again.models["crops"] == {"cropped": 0, "restored": 0, "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert _image(root, 102).size == (64, 32)
    # a detection threshold above every score: nothing detected, everything set aside
    curate(root, _settings(crop="bug", no_detection="drop", min_score=("bug=0.9",)))
    assert set(_removed(root)) == set(range(100, 106)) and not _kept(root)
    curate(root, _settings(crop="bug"))  # gentler: back, cropped where detected
    assert set(_kept(root)) == set(range(100, 106)) and _image(root, 103).size == (64, 32)
    assert _image(root, 105).size == (128, 64)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_curation_killed_while_cutting_is_finished_by_the_next(tmp_path: Path, layout: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from gbifxdl.curate import _crops

    root = crop_dataset(tmp_path / "ds", layout)
    infer(root, red_detector(tmp_path / "bug.onnx"), workers=0)
    write_state, calls = _crops._write_state, []

    def killed(*args: object) -> None:  # the images are cut, the record saying so never written
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write_state(*args)

    monkeypatch.setattr(_crops, "_write_state", killed)
    with pytest.raises(KeyboardInterrupt):
        curate(root, _settings(crop="bug"))
    monkeypatch.undo()
    summary = curate(root, _settings(crop="bug"))  # the same command: cut again from the originals
    assert summary.removed == {} and summary.models["crops"]["cropped"] == 4
    assert [_image(root, g).size for g in range(100, 106)] == [(64, 32)] * 4 + [(128, 64)] * 2
    summary = curate(root, _settings(verify_hashes=True))  # and back: the fetched bytes, every one
    assert summary.removed == {} and [_image(root, g).size for g in range(100, 106)] == [(128, 64)] * 6


def test_the_configuration_files_curate_section_takes_the_rules(tmp_path: Path) -> None:
    from gbifxdl.run.config import read_config, settings_from

    root = crop_dataset(tmp_path / "ds", "folders")
    infer(root, red_detector(tmp_path / "bug.onnx"), workers=0)
    config = tmp_path / "gbifxdl.toml"
    config.write_text('[curate]\ncrop = "bug"\ncrop_square = true\nno_detection = "drop"\nmin_score = ["bug=0.3"]\n'
                      "ood_th = 0\nnear_duplicates = false\n")
    settings = settings_from(CurateSettings, read_config(config)["curate"], section="curate")
    curate(root, settings)
    assert _removed(root) == {104: "no_detection", 105: "no_detection"}
    assert _image(root, 100).size == (64, 64)
    config.write_text('[curate]\nkeep = "bug.label in [insect"\n')
    with pytest.raises(ConfigError, match="no closing"):
        settings_from(CurateSettings, read_config(config)["curate"], section="curate")


# --- card, Croissant, report ---------------------------------------------------------------------------


def test_card_and_croissant_name_each_model_rule_and_count(tmp_path: Path) -> None:
    root = crop_dataset(tmp_path / "ds", "folders")
    summary = infer(root, red_detector(tmp_path / "bug.onnx"), workers=0)
    infer(root, mean_colour_model(tmp_path / "colour.onnx", gain=3.0), workers=0)
    curate(root, _settings(crop="bug", drop=("colour.label in [blue]",)))
    card = (root / "README.md").read_text()
    assert "bug.onnx" in card and summary.sha256 in card and "colour.onnx" in card
    assert "`drop colour.label in [blue]`" in card and "| 2 |" in card
    croissant = json.loads((root / "croissant.json").read_text())
    protocol = croissant["rai:dataPreprocessingProtocol"]
    assert any("bug.onnx" in p and summary.sha256 in p for p in protocol)
    assert any("drop colour.label in [blue]" in p and "2 images" in p for p in protocol)
    from gbifxdl.report import write_report

    html = write_report(root).read_text()
    assert "What the models removed" in html and "model:colour" in html and "bug.onnx" in html


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--keep", "cleaner.labl in [adult]"], "is not a rule"),
    (["--keep", "cleaner.label in [adult"], "no closing ']'"),
    (["--min-score", "cleaner"], "write MODEL=NUMBER"),
    (["--min-score", "cleaner=1.5"], "outside 0..1"),
    (["--max-outlier", "pool=x"], "write MODEL=NUMBER"),
    (["--keep", "nothing.label in [adult]"], "no results of model 'nothing'"),
    (["--max-outlier", "colour=0.5"], "it is a classifier"),
    (["--keep", "pool.label in [red]"], "gave no label"),
])
def test_a_bad_rule_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                        message: str) -> None:
    root, _ = colour_dataset(tmp_path / "ds", "folders", n=3)
    infer(root, mean_colour_model(tmp_path / "colour.onnx"), workers=0)
    infer(root, mean_colour_model(tmp_path / "pool.onnx", kind="embedder", gain=1.0), workers=0)
    with pytest.raises(SystemExit) as exited:
        run_command(cli, ["curate", str(root), "--no-progress", *args])
    assert exited.value.code != 0
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "split" not in pq.read_schema(root / "metadata.parquet").names  # nothing ran


def test_the_cli_and_the_settings_take_the_same_rules(tmp_path: Path) -> None:
    root, truth = colour_dataset(tmp_path / "ds", "folders", n=6)
    infer(root, mean_colour_model(tmp_path / "colour.onnx"), workers=0)
    result = CliRunner().invoke(cli, ["curate", str(root), "--keep", "colour.label in [red]", "--ood-th", "0", "--no-near-duplicates"])
    assert result.exit_code == 0, result.output
    assert "rule keep colour.label in [red]: 4 removed as model:colour" in result.output
    assert {truth[g] for g in _kept(root)} == {"red"}
    with pytest.raises(ConfigError, match="no_detection='maybe'"):
        CurateSettings(crop="bug", no_detection="maybe")
