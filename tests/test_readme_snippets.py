"""Every Python snippet of the README and of the dataset card runs against a demo dataset.

The demo's datasets are built once (both layouts); each README block runs from the folder
holding ``ds`` (its paths are ``ds/...``), each card block from inside the dataset (its
paths are relative to it). The README's Python API block runs against the local GBIF.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from gbifxdl.testing.local import DEMO_PASSWORD, DEMO_USER, LocalGbifSettings, local_gbif

README = Path(__file__).resolve().parents[1] / "README.md"
STANDINS = Path(__file__).resolve().parent / "_standins"
LAYOUTS = ("folders", "webdataset")
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def python_blocks(markdown: str) -> list[str]:
    """Return the code of every ```python block of ``markdown``."""
    return _BLOCK.findall(markdown)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Return, per layout, a folder holding a demo dataset named ``ds``."""
    out = {}
    for layout in LAYOUTS:
        parent = tmp_path_factory.mktemp(layout)
        done = subprocess.run([sys.executable, "-m", "gbifxdl", "demo", "-o", str(parent / "ds"), "--occurrences", "120",
                               "--layout", layout, "--no-progress"], capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        out[layout] = parent
    return out


@pytest.fixture
def loaders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make torchvision importable: the real one where installed, else the stand-in (see its docstring)."""
    if importlib.util.find_spec("torchvision") is None:
        monkeypatch.syspath_prepend(str(STANDINS))
    yield
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        if str(STANDINS) in (getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]


def _layouts_for(code: str) -> tuple[str, ...]:
    if "ds/shards" in code:
        return ("webdataset",)
    if "ds/images" in code:
        return ("folders",)
    return LAYOUTS


def _run(code: str, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(where)
    namespace: dict = {"__name__": "__snippet__"}
    exec(compile(code, f"<snippet run in {where}>", "exec"), namespace)
    return namespace


def _output_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Output"):text.index("\n## ", text.index("## Output") + 1)]
    return python_blocks(section)


def test_the_readme_has_loaders_for_every_layout() -> None:
    blocks = _output_blocks()
    assert {layout for code in blocks for layout in _layouts_for(code)} == set(LAYOUTS)
    assert not any(re.search(r"\{\d+\.\.\d+\}", code) for code in blocks)  # no shard count written in


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_output_blocks())))
def test_readme_loading_snippets_run_on_the_demo(index: int, demos: dict[str, Path], loaders: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code = _output_blocks()[index]
    for layout in _layouts_for(code):
        namespace = _run(code, demos[layout], monkeypatch)
        if "image" in namespace:  # the snippet read an image, decoded
            assert namespace["image"].size[0] > 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_snippet_of_the_dataset_card_runs_in_the_dataset(layout: str, demos: dict[str, Path], loaders: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = demos[layout] / "ds"
    blocks = python_blocks((root / "README.md").read_text())
    assert blocks, "the dataset card shows no way to load the dataset"
    failures = []
    for code in blocks:
        try:
            _run(code, root, monkeypatch)
        except Exception as exc:  # noqa: BLE001  (report every failing block at once)
            failures.append(f"{type(exc).__name__}: {exc}\n--- in the card block:\n{code}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_the_readme_python_api_block_runs_against_the_local_gbif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = next(code for code in python_blocks(README.read_text()) if "gbifxdl.post(" in code)
    with local_gbif(LocalGbifSettings(n_occurrences=60, prepare_seconds=0.1, run_seconds=0.1, fault_rate=0.0)) as gbif:
        for name, value in {"GBIF_API_URL": gbif.api_url, "GBIF_USER": DEMO_USER, "GBIF_PWD": DEMO_PASSWORD,
                            "GBIF_EMAIL": "demo@example.org", "NETRC": str(tmp_path / "no-netrc")}.items():
            monkeypatch.setenv(name, value)
        import gbifxdl

        # GBIF answers an identical request with the existing key: ask first and let it finish,
        # so the snippet's wait() finds it ready instead of sleeping its first 30-second interval
        key = gbifxdl.post({"type": "equals", "key": "TAXON_KEY", "value": "7017"}, wait=False)
        while not gbif.emulator.download(key).phase == "SUCCEEDED":
            assert gbif.emulator.download(key).phase in ("PREPARING", "RUNNING")
            os.sched_yield() if hasattr(os, "sched_yield") else None
        namespace = _run(code, tmp_path, monkeypatch)
    assert namespace["key"] == key
    assert (tmp_path / "ds" / "metadata.parquet").is_file() and (tmp_path / "selection.parquet").is_file()
