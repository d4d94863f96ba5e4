"""report.html: self-contained, rendered by headless Chromium without console errors."""

from __future__ import annotations

import json
import re
from collections import Counter
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from _dataset_factory import standard_dataset
from gbifxdl.curate import curate
from gbifxdl.report import write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BLUE, GREEN = (0x4C, 0x78, 0xA8), (0x54, 0xA2, 0x4B)  # the bar colours of the plots


def _chromium(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page``; its stderr carries the page's console messages."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the report tests: apt-get install -y chromium")
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
        *extra, page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _report(tmp_path: Path, layout: str = "folders") -> Path:
    root = standard_dataset(tmp_path / "ds", layout).root
    curate(root, progress=False)
    return write_report(root)


def test_report_is_self_contained(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text()
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "<link" not in page and "url(" not in page and "@import" not in page
    assert "default-src 'none'" in page  # the browser itself refuses any network access
    kept = pq.read_table(tmp_path / "ds" / "metadata.parquet")
    per_class = Counter(kept["speciesKey"].to_pylist())
    near = json.loads((tmp_path / "ds" / "curate_summary.json").read_text())["near_duplicates"]
    # up to 8 per class, and each near-duplicate pair found beside its copy
    assert len(sources) == sum(min(n, 8) for n in per_class.values()) + 2 * len(near["examples"])
    assert len(near["examples"]) == near["removed"] == 1 and page.count('class="pair"') == 1
    first = kept.slice(0, 1).to_pylist()[0]
    assert f'title="© {first["rightsHolder"]}' in page and first["references"] in page  # attribution on hover
    for heading in ("Images per class", "Fetch outcomes", "Near duplicates", "Hosts", "Licences", "Splits"):
        assert f"<h2>{heading}</h2>" in page
    assert ">http_404: 1<" in page and ">timeout: 1<" in page  # failure kinds


@pytest.mark.slow
def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    page = _report(tmp_path, "webdataset")
    shot = tmp_path / "report.png"
    run = _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1100,1400", "--hide-scrollbars")
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console(run.stderr) == []
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert pixels.std() > 10  # not a blank page
    colours = {tuple(p) for p in np.unique(pixels, axis=0).tolist()}
    assert BLUE in colours and GREEN in colours  # the class histogram and the outcome bars are drawn

    dom = _chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0 and _console(dom.stderr) == []
    assert dom.stdout.count('class="bar"') >= 4 + 3 and dom.stdout.count('class="thumb"') == 8 + 8 + 3 + 2


@pytest.mark.slow
def test_console_errors_are_caught(tmp_path: Path) -> None:
    # the check above must be able to fail: a page that throws and reaches for the network
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'\"><img src=\"http://127.0.0.1:9/x.png\"><script>throw new Error('boom')</script>"
    )
    run = _chromium(bad, tmp_path, "--dump-dom")
    messages = "\n".join(_console(run.stderr))
    assert "boom" in messages and "Content Security Policy" in messages


def test_report_command(tmp_path: Path) -> None:
    from gbifxdl.cli import cli

    root = standard_dataset(tmp_path / "ds").root
    result = CliRunner().invoke(cli, ["report", str(root), "--thumbnails", "2"])
    assert result.exit_code == 0, result.output
    page = (root / "report.html").read_text()
    assert page.count('class="thumb"') == 2 * 4  # works on a folder not curated yet, too
    assert "not curated yet" in page
