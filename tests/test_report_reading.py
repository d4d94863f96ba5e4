"""report.html as a person reads it (issue 20, item 18): class bars labelled in text (not only on
hover), readable chart text, plurals, the split names used everywhere else, the query and the
settings, and the failed images by host and outcome with example URLs."""

from __future__ import annotations

import json
import re
from collections import Counter
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from _dataset_factory import PROVENANCE, Row, jpeg, photo, standard_dataset, write_dataset
from gbifxdl.curate import curate
from gbifxdl.report import write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class _Page(HTMLParser):
    """The parts of a page the tests read: text outside ``<title>`` per section (by its h2),
    the SVG texts with their font sizes, the table rows (by table id) and the links."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.section = ""
        self.heading = False
        self.texts: dict[str, list[str]] = {}  # section -> visible text pieces (no <title>, no attributes)
        self.svg_texts: dict[str, list[tuple[str, float]]] = {}  # section -> (text, font-size) of SVG <text>
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[tuple[str, str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._href: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.stack.append((tag, a))
        if tag == "h2":
            self.heading, self.section = True, ""
        elif tag == "table":
            self._table = a.get("id") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "a":
            self._href = a.get("href") or ""

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break
        if tag == "h2":
            self.heading = False
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        if self.heading:
            self.section += data
            return
        tags = [t for t, _ in self.stack]
        if "title" in tags or "style" in tags:
            return  # hover text and CSS are not what a reader sees
        if data.strip():
            self.texts.setdefault(self.section, []).append(data.strip())
            if tags and tags[-1] == "text":
                self.svg_texts.setdefault(self.section, []).append(
                    (data.strip(), float(self.stack[-1][1].get("font-size") or 0)))
        if self._cell is not None:
            self._cell.append(data)
        if self._href is not None:
            self.links.append((self._href, data.strip()))


def _curated(tmp_path: Path) -> Path:
    root = standard_dataset(tmp_path / "ds", "folders").root
    curate(root, progress=False)
    return root


def _small(tmp_path: Path) -> Path:
    """A curated folder of two classes where one image failed, its URL full of HTML characters."""
    rows = [Row(100 + i, 1001 + i % 2, jpeg(photo(i)), url=f"https://ok.example.org/{i}.jpg") for i in range(12)]
    rows.append(Row(200, 1001, None, outcome="http_404", url='https://bad.example.org/a?x=1&y="<b>boom</b>"'))
    root = write_dataset(tmp_path / "small", rows, orphans=False)
    curate(root, progress=False)
    return root


def test_class_bars_are_labelled_in_text(tmp_path: Path) -> None:
    root = _curated(tmp_path)
    page = _Page(write_report(root).read_text())
    kept = pq.read_table(root / "metadata.parquet", columns=["speciesKey"])
    counts = Counter("unlabeled" if key is None else str(key) for key in kept["speciesKey"].to_pylist())
    shown = [t for t, _ in page.svg_texts["Images per class"]]
    for label, n in counts.items():  # each bar's class name and count, as text beside it
        assert any(t.startswith(label) for t in shown), (label, shown)
        assert str(n) in shown, (n, shown)
    assert "1001 Species 1001" in shown  # the class key and its species name
    # every chart's text is readable at its own size (it is drawn at its width on a 1280 px screen)
    sizes = [s for texts in page.svg_texts.values() for _, s in texts]
    assert sizes and min(sizes) >= 12


def test_plurals_and_split_names(tmp_path: Path) -> None:
    page = write_report(_small(tmp_path)).read_text()
    parsed = _Page(page)
    text = " ".join(t for texts in parsed.texts.values() for t in texts)
    assert re.search(r"\b1 row removed\b", " ".join(parsed.texts[""])) or ">1</b>row removed<" in page
    assert not re.search(r"\b1 (rows|images|classes|hosts)\b", text)
    assert ">1</b>rows" not in page and ">1</b>images" not in page

    big = _Page(write_report(_curated(tmp_path)).read_text())
    splits = big.svg_texts["Splits"]
    assert {t for t, _ in splits} >= {"train", "validation", "test"}
    assert all(t != "val" for texts in big.texts.values() for t in texts)


def test_query_and_settings_are_shown(tmp_path: Path) -> None:
    root = _curated(tmp_path)
    page = _Page(write_report(root).read_text())
    query = " ".join(page.texts["Query"])
    assert PROVENANCE["download_key"] in query and PROVENANCE["created"] in query
    assert ("https://doi.org/10.15468/dl.29wbtx", "https://doi.org/10.15468/dl.29wbtx") in page.links
    assert '"TAXON_KEY"' in query and '"7017"' in query  # the predicate itself
    assert ["DOI", "https://doi.org/10.15468/dl.29wbtx"] in page.tables["query"]
    rows = [r for r in page.tables.get("", []) if len(r) == 2]  # the settings tables (no id)
    assert ["max_per_class", "2000"] in rows and ["resize", "512"] in rows and ["layout", "folders"] in rows
    curated = json.loads(pq.read_schema(root / "metadata.parquet").metadata[b"gbifxdl.provenance"])["curate_settings"]
    assert ["class_column", curated["class_column"]] in rows and ["seed", str(curated["seed"])] in rows
    assert {"select", "fetch", "curate"} <= set(page.texts["Settings"])


def test_failed_images_by_host_and_outcome(tmp_path: Path) -> None:
    root = _curated(tmp_path)
    page = _Page(write_report(root).read_text())
    removed = pq.read_table(root / "removed.parquet", columns=["host", "outcome", "identifier"])
    failed = removed.filter(pa.compute.not_equal(removed["outcome"], "ok")).to_pylist()
    assert len(failed) == 2
    expected = sorted([r["host"], r["outcome"], "1"] for r in failed)
    assert page.tables["failed"][0] == ["host", "outcome", "images"]
    assert sorted(page.tables["failed"][1:]) == expected
    for r in failed:  # an example URL per outcome, as a link
        assert (r["identifier"], r["identifier"]) in page.links
        assert r["outcome"] in page.texts["Failed images"]

    small = write_report(_small(tmp_path)).read_text()
    url = 'https://bad.example.org/a?x=1&y="<b>boom</b>"'
    assert "<b>boom</b>" not in small  # escaped, never markup
    assert (url, url) in _Page(small).links
    assert _Page(small).tables["failed"][1:] == [["bad.example.org", "http_404", "1"]]


_MEASURE = """<script>
const out = [];
for (const svg of document.querySelectorAll('svg.chart')) {
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  for (const t of svg.querySelectorAll('text')) {
    const r = t.getBoundingClientRect();
    out.push({text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * scale, visible: r.width > 0 && r.height > 0});
  }
}
document.body.setAttribute('data-measured', JSON.stringify({width: window.innerWidth, texts: out}));
</script>"""


@pytest.mark.slow
def test_chart_text_readable_in_chromium_at_1280(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the report tests: apt-get install -y chromium")
    report = write_report(_curated(tmp_path))
    html = report.read_text()
    # a copy that measures itself: the report's own policy forbids scripts, so this copy allows its one
    measured = tmp_path / "measured.html"
    measured.write_text(html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
                        .replace("</body>", _MEASURE + "</body>"))
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400"]
    dom = subprocess.run([*base, "--dump-dom", measured.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)
    found = re.search(r'data-measured="([^"]*)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["width"] == 1280
    texts = result["texts"]
    assert texts and min(t["px"] for t in texts) >= 12, sorted(texts, key=lambda t: t["px"])[:3]
    shown = {t["text"] for t in texts if t["visible"]}
    assert "1001 Species 1001" in shown  # a class label drawn on the page, not only in a tooltip

    shot = tmp_path / "report-1280.png"
    run = subprocess.run([*base, f"--screenshot={shot}", report.resolve().as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert Image.open(shot).size == (1280, 2400)


def test_thumbnails_are_upright_in_the_report_as_in_the_review() -> None:
    # a camera's portrait photo: pixels stored landscape, with EXIF orientation 6 (turn 90 degrees to show)
    import base64
    import io

    from PIL import Image

    from gbifxdl.report._thumbs import thumbnail_uri

    stored = Image.new("RGB", (80, 40), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif.tobytes())
    uri = thumbnail_uri(buffer.getvalue(), 32)
    assert uri is not None
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as shown:
        assert shown.size == (16, 32)  # as displayed: taller than wide, at most 32 a side
