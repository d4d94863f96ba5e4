"""`[[models]]` steps in `gbifxdl run` (issue 21): run between fetch and curate, resumable, one model redone
at a time; the configuration file and `gbifxdl init`; the demo's model, written without the onnx package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("onnxruntime")

from gbifxdl.cli import cli, run_command  # noqa: E402
from gbifxdl.curate import CurateSettings  # noqa: E402
from gbifxdl.errors import ConfigError, StateError  # noqa: E402
from gbifxdl.fetch import FetchSettings  # noqa: E402
from gbifxdl.infer import read_results  # noqa: E402
from gbifxdl.run import ModelStep, RunSettings, SourceSettings, run  # noqa: E402
from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif  # noqa: E402
from gbifxdl.cli.run import write_exposure_model as exposure_model  # noqa: E402
from gbifxdl.testing.tiny_models import exposure_model_bytes  # noqa: E402


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):
    """A small GBIF download's archive on disk, and the image hosts its URLs point to (kept running)."""
    from gbifxdl.credentials import Credentials
    from gbifxdl.gbif import download_archive, post_request, wait
    from gbifxdl.query import build_predicate

    settings = LocalGbifSettings(n_occurrences=90, prepare_seconds=0.1, run_seconds=0.1, fault_rate=0.0,
                                 throttled_host_rate=None)
    with local_gbif(settings) as local:
        key = post_request(build_predicate(taxon_keys=[797]), credentials=Credentials(DEMO_USER, DEMO_PASSWORD),
                           api_url=local.api_url)
        wait(key, api_url=local.api_url, min_interval=0.05, max_interval=0.1, progress=False)
        yield download_archive(key, tmp_path_factory.mktemp("archive"), api_url=local.api_url, progress=False)


def _settings(out: Path, archive: Path, models: tuple[ModelStep, ...], **curate: object) -> RunSettings:
    return RunSettings(output=str(out), source=SourceSettings(archive=str(archive)), report=False,
                       fetch=FetchSettings(resize=96), models=models,
                       curate=CurateSettings(near_duplicates=False, **curate))  # type: ignore[arg-type]


def _parts(out: Path, name: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / ".gbifxdl" / "models" / name).glob("part-*.parquet")}


def _too_dark(out: Path, name: str) -> set[str]:
    return {r["url_hash"] for r in read_results(out, name).to_pylist() if r["label"] == "too_dark"}


def _removed(out: Path, reason: str) -> set[str]:
    if not (out / "removed.parquet").is_file():  # a curation that removed nothing
        return set()
    table = pq.read_table(out / "removed.parquet", columns=["url_hash", "removed_reason"]).to_pylist()
    return {r["url_hash"] for r in table if r["removed_reason"] == reason}


def test_model_steps_run_between_fetch_and_curate_resumably_one_changed_model_at_a_time(
        tmp_path: Path, archive: Path) -> None:
    dark = exposure_model(tmp_path / "m" / "dark.onnx", threshold=0.45)
    bright = exposure_model(tmp_path / "m" / "bright.onnx", threshold=0.3)
    steps = (ModelStep(model=str(dark), workers=0), ModelStep(model=str(bright), name="glare", batch_size=5))
    out = tmp_path / "ds"
    said: list[str] = []
    run(_settings(out, archive, steps, drop=("dark.label in [too_dark]",)), progress=False, echo=said.append)
    assert "[infer] ..." in said and said.index("[infer] ...") < said.index("[curate] ...")
    ok = {r["url_hash"] for r in pq.read_table(out / "metadata.parquet").to_pylist()} | _removed(out, "model:dark")
    for name in ("dark", "glare"):  # every image measured, by each model
        assert {r["url_hash"] for r in read_results(out, name).to_pylist()} == ok
    assert _removed(out, "model:dark") == _too_dark(out, "dark") and _too_dark(out, "dark")
    before = {"dark": _parts(out, "dark"), "glare": _parts(out, "glare")}
    dark_before = _too_dark(out, "dark")

    said.clear()
    run(_settings(out, archive, steps, drop=("dark.label in [too_dark]",)), progress=False, echo=said.append)
    assert said == [f"Nothing to do: the dataset in {out} is complete."]

    exposure_model(dark, threshold=0.5)  # the user's model changed: the run says so, and redoes it when allowed
    with pytest.raises(StateError, match=r"other models settings \(dark.sha256 .* --allow-changed-settings"):
        run(_settings(out, archive, steps, drop=("dark.label in [too_dark]",)), progress=False, echo=said.append)
    said.clear()
    run(_settings(out, archive, steps, drop=("dark.label in [too_dark]",)), allow_changed_settings=True,
        progress=False, echo=said.append)
    assert _parts(out, "glare") == before["glare"]  # the other model ran nothing
    assert _parts(out, "dark").keys() == before["dark"].keys() and _parts(out, "dark") != before["dark"]
    assert any("glare" in line and "done before" in line and "0 images measured" in line for line in said)
    assert _removed(out, "model:dark") == _too_dark(out, "dark")
    assert _too_dark(out, "dark") > dark_before  # a higher threshold: more images too dark

    # a gentler rule runs no model: curation alone is redone
    glare = _parts(out, "glare"), _parts(out, "dark")
    run(_settings(out, archive, steps), allow_changed_settings=True, progress=False, echo=said.append)
    assert (_parts(out, "glare"), _parts(out, "dark")) == glare
    assert not _removed(out, "model:dark")


def test_the_configuration_file_holds_model_steps_and_init_writes_an_example(tmp_path: Path) -> None:
    from gbifxdl.run.config import default_config_text, model_steps, read_config

    text = default_config_text({})
    assert "# [[models]]" in text
    example = "\n".join(line[2:] for line in text[text.index("# [[models]]"):].splitlines())
    config = tmp_path / "c.toml"
    config.write_text('[curate]\ndrop = ["cleaner.label in [larva]"]\n' + example + "\n")
    read = read_config(config)
    (step,) = model_steps(read["models"])
    assert step == ModelStep(model="cleaner.onnx", name="cleaner", kind="classifier", labels="labels.npz",
                             batch_size=32, device="cpu", workers=3)
    assert read["curate"]["drop"] == ("cleaner.label in [larva]",)

    config.write_text('[[models]]\nmodel = "a.onnx"\nbatch = 3\n')
    with pytest.raises(ConfigError, match=r"\[\[models\]\] #1: unknown setting\(s\) batch"):
        read_config(config)
    config.write_text('[[models]]\nmodel = "a.onnx"\n[[models]]\nmodel = "b/a.onnx"\n')
    with pytest.raises(ConfigError, match="two steps are named 'a'"):
        model_steps(read_config(config)["models"])


@pytest.mark.parametrize(("toml", "message"), [
    ('[[models]]\nmodel = "missing.onnx"\n', "[[models]] missing: no model file missing.onnx"),
    ('[[models]]\nmodel = "m.onnx"\ndevice = "gpu"\n', "[[models]] m.onnx: device = 'gpu': cpu or cuda"),
    ('[[models]]\nname = "x"\n', '#1: no model = "FILE.onnx"'),
    ('[[models]]\nmodel = "m.onnx"\nsha256 = "ab"\n', "unknown setting(s) sha256"),
])
def test_a_bad_model_step_is_one_line_and_exit_code_2(tmp_path: Path, toml: str, message: str,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.zip").write_bytes(b"")
    (tmp_path / "c.toml").write_text(toml)
    exposure_model(tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_command(cli, ["run", "--config", "c.toml", "--archive", "a.zip", "-o", "out", "--no-progress"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # said before a folder is made


def test_the_demos_model_is_valid_onnx_and_says_too_dark_below_its_threshold(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    data = exposure_model_bytes(side=32, threshold=0.4)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    grey = np.stack([np.full((3, 32, 32), v, np.float32) for v in (0.1, 0.39, 0.41, 0.9)])
    logits = session.run(None, {"images": grey})[0]
    assert list(np.argmax(logits, axis=1)) == [1, 1, 0, 0]  # photo, too_dark
    red = np.zeros((1, 3, 32, 32), np.float32)
    red[0, 0] = 1.0  # luminance 0.299: too dark
    assert np.argmax(session.run(None, {"images": red})[0]) == 1


@pytest.mark.slow
def test_the_demo_shows_a_model_step_and_its_effect_in_the_report(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBIF_")}
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "demo", "-o", "demo", "--occurrences", "120",
                           "--no-progress"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    demo = tmp_path / "demo"
    assert "Model step: exposure.onnx" in done.stdout and "[infer] ..." in done.stdout
    removed = _removed(demo, "model:exposure")
    assert removed and removed == _too_dark(demo, "exposure")
    report = (demo / "report.html").read_text()
    assert "exposure.label in [too_dark]" in report and "model:exposure" in report
    assert "exposure" in (demo / "README.md").read_text()
