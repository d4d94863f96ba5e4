"""`--device cuda` on a machine whose ONNX Runtime has no CUDA provider (this one): a one-line error from the stage,
the command and the GPU bench, never a run on the CPU in the GPU's place (issue 21)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ort = pytest.importorskip("onnxruntime")
if "CUDAExecutionProvider" in ort.get_available_providers():
    pytest.skip("this ONNX Runtime has the CUDA provider", allow_module_level=True)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_bench_stops_in_one_line_before_building_anything(tmp_path: Path) -> None:
    data = ROOT / "bench" / ".cache" / "infer-data-3-v1"
    existed = data.exists()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "infer.py"), "--device", "cuda", "--images", "3"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --device cuda: this ONNX Runtime has no CUDA provider")
    assert done.stderr.count("\n") == 1 and "gbifxdl[gpu]" in done.stderr
    assert data.exists() == existed  # nothing measured, nothing built


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_the_gpu_script_says_in_one_line_that_there_is_no_gpu(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_infer.sh")], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "VENV": str(tmp_path / "venv")})
    assert done.returncode == 2 and done.stderr.strip().startswith("error: no nvidia-smi")
    assert not (tmp_path / "venv").exists()


def test_the_gpu_extra_is_onnxruntime_gpu_in_place_of_onnxruntime() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [e.split(">")[0] for e in extras["gpu"]] == ["onnxruntime-gpu"]
    assert not any(e.startswith("onnxruntime>") or e == "onnxruntime" for e in extras["gpu"])
