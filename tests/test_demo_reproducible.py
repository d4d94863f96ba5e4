"""Issue 20, item 7: the demo is reproducible, and its identifiers are marked as the emulator's.

Two `gbifxdl demo` runs of the same command make the same dataset (their emulators listen
on other ports each time); the card and croissant.json say the key and DOI are the
emulator's, and `gbifxdl derive` refuses to send a demo dataset to GBIF.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gbifxdl.testing.universe import Universe


def test_the_emulator_serves_the_same_occurrences_whatever_its_hosts_ports() -> None:
    universe = Universe(seed=0)
    first = [o.gbif_id for o in universe.occurrences(50, image_base_urls=("http://127.0.0.1:40001",
                                                                          "http://127.0.0.1:40002"))]
    again = [o.gbif_id for o in universe.occurrences(50, image_base_urls=("http://127.0.0.1:51234",
                                                                          "http://127.0.0.1:51235"))]
    assert first == again


def _gbifxdl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env or {k: v for k, v in os.environ.items() if not k.startswith("GBIF_")}
    return subprocess.run([sys.executable, "-m", "gbifxdl", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _dataset(root: Path) -> list[tuple]:
    table = pq.read_table(root / "metadata.parquet").to_pylist()
    return sorted((r["gbifID"], r["identifier"].split("/photos/", 1)[1], r["sha256"], r["split"]) for r in table)


@pytest.mark.slow
def test_the_same_demo_command_makes_the_same_dataset_marked_as_the_emulators(tmp_path: Path) -> None:
    for name in ("a", "b"):
        done = _gbifxdl("demo", "-o", name, "--occurrences", "80", "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    a, b = tmp_path / "a", tmp_path / "b"
    assert _dataset(a) and _dataset(a) == _dataset(b)

    card = (a / "README.md").read_text()
    assert "Demo data, not from GBIF" in card and "emulator" in card
    assert "(the emulator's, not a real DOI)" in card  # the DOI row of the Source table
    assert "emulator" in json.loads((a / "croissant.json").read_text())["description"]
    assert "Demo data, not from GBIF" in (a / "report.html").read_text()

    derive = ("derive", "a", "--title", "T", "--source-url", "https://zenodo.org/records/1", "--dry-run")
    refused = _gbifxdl(*derive, cwd=tmp_path)
    assert refused.returncode == 2 and "api.gbif.org" not in refused.stdout
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "offline GBIF emulator" in lines[0], refused.stderr
