"""gbifxdl review: the marks journal, the server's safety, curation honouring marks, and the page in Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient, TestServer

from _dataset_factory import standard_dataset
from gbifxdl import _marks
from gbifxdl._marks import JOURNAL, append_marks, latest_marks
from gbifxdl.curate import curate
from gbifxdl.review import read_marks
from gbifxdl.review.server import make_app

LAYOUTS = ["folders", "webdataset"]
CHROMIUM = "/usr/bin/chromium"
TOKEN = "s3cret-token"


def _reasons(root: Path) -> dict[str, str]:
    removed = pq.read_table(root / "removed.parquet")
    return dict(zip(removed["url_hash"].to_pylist(), removed["removed_reason"].to_pylist()))


def _kept_rows(root: Path) -> list[dict]:
    return pq.read_table(root / "metadata.parquet", columns=["url_hash", "path", "shard", "key"]).to_pylist()


def _shard_keys(base: Path) -> set[str]:
    keys: set[str] = set()
    for shard in base.rglob("*.tar"):
        with tarfile.open(shard) as tar:
            keys |= {n.split(".")[0] for n in tar.getnames()}
    return keys


def _assert_set_aside(root: Path, layout: str, rows: dict[str, dict], gone: set[str], here: set[str]) -> None:
    """The images ``gone`` are in the set-aside folder only; the images ``here`` in the dataset only."""
    if layout == "folders":
        for key in gone:
            assert not (root / rows[key]["path"]).exists() and (root / ".gbifxdl/removed" / rows[key]["path"]).is_file()
        for key in here:
            assert (root / rows[key]["path"]).is_file()
    else:
        main, side = _shard_keys(root / "shards"), _shard_keys(root / ".gbifxdl/removed")
        assert gone <= side and not gone & main
        assert here <= main


# --- the journal -------------------------------------------------------------------------------------------


def test_journal_keeps_every_mark_last_wins_and_ignores_a_torn_line(tmp_path: Path) -> None:
    append_marks(tmp_path, [("a", "bad"), ("b", "good")], now=100.0)
    append_marks(tmp_path, [("a", "good")], now=101.0)
    with open(tmp_path / JOURNAL, "ab") as fh:  # a writer killed mid-line
        fh.write(b'{"key":"c","mark":"ba')
    append_marks(tmp_path, [("b", "clear"), ("d", "wrong_species")], now=102.0)  # starts on a line of its own
    lines = (tmp_path / JOURNAL).read_bytes().split(b"\n")
    assert lines[3] == b'{"key":"c","mark":"ba' and json.loads(lines[4])["key"] == "b"
    assert latest_marks(tmp_path) == {"a": "good", "d": "wrong_species"}
    table = read_marks(tmp_path)
    assert table.column_names == ["key", "mark", "time", "current", "via", "p"]
    assert table["key"].to_pylist() == ["a", "b", "a", "b", "d"]
    assert table["mark"].to_pylist() == ["bad", "good", "good", "clear", "wrong_species"]
    assert table["current"].to_pylist() == [False, False, True, False, True]
    assert table["time"].type == pa.timestamp("us", tz="UTC") and table["time"][0].as_py().timestamp() == 100.0
    assert read_marks(tmp_path, current_only=True)["key"].to_pylist() == ["a", "d"]
    assert read_marks(tmp_path / "nowhere").num_rows == 0
    with pytest.raises(ValueError, match="unknown mark"):
        append_marks(tmp_path, [("a", "maybe")])


# --- the server, in process -----------------------------------------------------------------------------


async def _client(root: Path) -> TestClient:
    client = TestClient(TestServer(make_app(root, TOKEN), host="127.0.0.1"))
    await client.start_server()
    return client


def test_every_request_needs_the_token_and_paths_never_leave_the_dataset(tmp_path: Path) -> None:
    root = standard_dataset(tmp_path / "ds").root
    secret = tmp_path / "secret.jpg"  # outside the dataset, reachable by ../ from a row's path
    secret.write_bytes((root / _kept_rows(root)[0]["path"]).read_bytes())
    (root / "images" / "1001" / "link.jpg").symlink_to(secret)
    table = pq.read_table(root / "metadata.parquet")
    rows = table.slice(0, 2).to_pylist()
    rows[0].update(url_hash="e" * 40, path="../secret.jpg")
    rows[1].update(url_hash="f" * 40, path="images/1001/link.jpg")
    pq.write_table(pa.concat_tables([table, pa.Table.from_pylist(rows, schema=table.schema)]), root / "metadata.parquet")

    async def check() -> None:
        client = await _client(root)
        try:
            for url in ("/", "/api/index", "/api/images", f"/thumb/{'e' * 40}"):
                for query in ("", "?t=wrong", f"?t={TOKEN}x"):
                    assert (await client.get(url + query)).status == 403, url + query
            assert (await client.post("/api/marks", json={"marks": [{"key": "e" * 40, "mark": "bad"}]})).status == 403
            page = await client.get(f"/?t={TOKEN}")
            assert page.status == 200 and "default-src 'none'" in page.headers["Content-Security-Policy"]
            html = await page.text()
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", html) and "@import" not in html
            good = _kept_rows(root)[0]["url_hash"]
            thumb = await client.get(f"/thumb/{good}?t={TOKEN}")
            assert thumb.status == 200 and thumb.content_type == "image/jpeg"
            for key in ("e" * 40, "f" * 40):  # rows whose image lies outside the dataset folder
                assert (await client.get(f"/thumb/{key}?t={TOKEN}")).status == 404
            for bad in ("..%2F..%2Fsecret.jpg", "..%2Fmetadata.parquet", "%2Fetc%2Fpasswd", "images%2F1001"):
                assert (await client.get(f"/thumb/{bad}?t={TOKEN}")).status == 404
            assert (await client.get(f"/thumb/../../secret.jpg?t={TOKEN}")).status in (403, 404)
            refused = await client.post(f"/api/marks?t={TOKEN}", json={"marks": [{"key": "../x", "mark": "bad"}]})
            assert refused.status == 404
        finally:
            await client.close()

    asyncio.run(check())
    assert not (root / JOURNAL).exists()
    assert list((root / ".gbifxdl/review/thumbs").rglob("*.jpg"))  # the one thumbnail made is cached


def test_a_mark_is_on_disk_before_the_answer_and_two_tabs_do_not_conflict(tmp_path: Path, monkeypatch) -> None:
    root = standard_dataset(tmp_path / "ds").root
    keys = [r["url_hash"] for r in _kept_rows(root)][:20]
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(_marks.os, "fsync", lambda fd: (real_fsync(fd), synced.append(fd)))

    async def check() -> None:
        client = await _client(root)
        try:
            response = await client.post(f"/api/marks?t={TOKEN}", json={"marks": [{"key": keys[0], "mark": "bad"}]})
            assert response.status == 200 and synced  # fsynced before the answer
            assert latest_marks(root) == {keys[0]: "bad"}
            body = await response.json()
            assert body["saved"][0]["mark"] == "bad" and body["marked_all"] == 1
            # two tabs marking at once: every mark a whole line, the last of each image wins
            tab1 = [client.post(f"/api/marks?t={TOKEN}", json={"marks": [{"key": k, "mark": "good"}]}) for k in keys]
            tab2 = [client.post(f"/api/marks?t={TOKEN}", json={"marks": [{"key": k, "mark": "needs_crop"}]})
                    for k in keys]
            answers = await asyncio.gather(*[x for pair in zip(tab1, tab2) for x in pair])
            assert all(a.status == 200 for a in answers)
            page = await (await client.get(f"/api/images?t={TOKEN}&size=500")).json()
            shown = {i["key"]: i["mark"] for i in page["items"] if i["mark"]}
            assert shown == latest_marks(root) and set(shown) == set(keys)
        finally:
            await client.close()

    asyncio.run(check())
    table = read_marks(root)
    assert table.num_rows == 41 and sorted(table.filter(table["current"])["key"].to_pylist()) == sorted(keys)


# --- curation honours the marks ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_curation_sets_aside_marked_images_and_a_later_good_brings_them_back(tmp_path: Path, layout: str) -> None:
    expected = standard_dataset(tmp_path / "ds", layout)
    root = expected.root
    curate(root, progress=False)
    before = _reasons(root)
    rows = {r["url_hash"]: r for r in _kept_rows(root)}
    bad, wrong, crop, good = sorted(rows)[:4]
    append_marks(root, [(bad, "bad"), (wrong, "wrong_species"), (crop, "needs_crop"), (good, "good")])

    curate(root, progress=False)
    reasons = _reasons(root)
    assert reasons == {**before, bad: "review:bad", wrong: "review:wrong_species"}
    kept = {r["url_hash"] for r in _kept_rows(root)}
    assert {crop, good} <= kept and not {bad, wrong} & kept
    _assert_set_aside(root, layout, rows, {bad, wrong}, {crop, good})
    card = (root / "README.md").read_text()
    assert "Reviewed by people: 4 images marked" in card and "2 removed for it" in card
    protocol = json.loads((root / "croissant.json").read_text())["rai:dataPreprocessingProtocol"]
    assert any("Reviewed by people: 4 images marked" in line and "2 removed for it" in line for line in protocol)

    append_marks(root, [(bad, "good"), (wrong, "clear")])  # changed minds: both come back
    curate(root, progress=False)
    assert _reasons(root) == before
    _assert_set_aside(root, layout, rows, set(), {bad, wrong, crop, good})


# --- the page in a real browser ------------------------------------------------------------------------------


class _Server:
    """``gbifxdl review DIR`` as a user runs it: a process, its printed link."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gbifxdl", "review", str(root), "--no-open"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"(http://127\.0\.0\.1:\d+/\?t=[\w-]+)", line)
        assert found, line + self.proc.stderr.read()  # type: ignore[union-attr]
        self.link = found.group(1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _wait_saved(page) -> None:
    page.wait_for_function("() => document.getElementById('save').className === 'saved' && "
                           "![...document.querySelectorAll('.cell[data-state=saving]')].length", timeout=10_000)


def _open(browser, link: str, unreadable):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    # every console error but a failed load, and every failed load but the thumbnail of an image that cannot
    # be read (curation set those aside as file_missing or file_unreadable: the page shows "no image")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and
            not m.text.startswith("Failed to load resource") else None)
    page.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and not (
        r.status == 404 and "/thumb/" in r.url and unreadable(r.url.split("/thumb/")[1].split("?")[0])) else None)
    page.goto(link)
    page.wait_for_selector("body[data-loaded]")
    page.wait_for_function("() => [...document.querySelectorAll('.cell img')].slice(0, 12).every(i => i.complete && i.naturalWidth)")
    return page, errors


def _marks_shown(page) -> dict[str, str | None]:
    return page.eval_on_selector_all(".cell", "els => Object.fromEntries(els.map(e => [e.dataset.key, e.dataset.mark || null]))")


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_page_marks_with_the_keyboard_survives_a_kill_and_curation_honours_it(tmp_path: Path, layout: str) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the review page tests: apt-get install -y chromium")
    root = standard_dataset(tmp_path / "ds", layout).root
    curate(root, progress=False)
    before = _reasons(root)
    rows = {r["url_hash"]: r for r in _kept_rows(root)}
    unreadable = {k for k, r in before.items() if r.startswith("file_")}.__contains__
    server = _Server(root)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page, errors = _open(browser, server.link, unreadable)
            keys = page.eval_on_selector_all(".cell", "els => els.map(e => e.dataset.key)")
            assert set(keys[:6]) <= set(rows)  # a class's kept images first
            assert page.inner_text("#progress").startswith("0 of ")
            for key in "bwgb":  # bad, wrong species, good, bad: the focus moves on after each
                page.keyboard.press(key)
            page.keyboard.press("u")  # takes the last bad back
            _wait_saved(page)
            page.keyboard.press("ArrowRight")
            page.keyboard.press("c")  # needs crop on the fifth image
            _wait_saved(page)
            assert _marks_shown(page) == {**dict.fromkeys(keys), keys[0]: "bad", keys[1]: "wrong_species",
                                               keys[2]: "good", keys[4]: "needs_crop"}
            assert page.inner_text("#progress").startswith("4 of ")
            assert page.get_attribute(f".cell[data-key='{keys[4]}']", "data-state") == "saved"
            if layout == "folders":
                page.screenshot(path="/tmp/review-1280.png")
            else:
                page.screenshot(path="/tmp/review-1280-webdataset.png")
            assert not errors, errors

            server.kill()  # mid-session: a mark made now is never shown as saved
            page.keyboard.press("b")
            page.wait_for_function("() => document.getElementById('save').className === 'failed'", timeout=10_000)
            assert "NOT saved" in page.inner_text("#save")
            page.close()
        finally:
            if server.proc.poll() is None:
                server.kill()

        table = read_marks(root)  # every mark the page said was saved, in order, undo included
        assert list(zip(table["key"].to_pylist(), table["mark"].to_pylist())) == [
            (keys[0], "bad"), (keys[1], "wrong_species"), (keys[2], "good"), (keys[3], "bad"), (keys[3], "clear"),
            (keys[4], "needs_crop")]

        server = _Server(root)  # reopened: the marks are back; two tabs mark at once
        try:
            page, errors = _open(browser, server.link, unreadable)
            other, _ = _open(browser, server.link + "&size=12", unreadable)
            assert _marks_shown(page) == {**dict.fromkeys(keys), keys[0]: "bad", keys[1]: "wrong_species",
                                          keys[2]: "good", keys[4]: "needs_crop"}
            for _ in range(5):
                page.keyboard.press("ArrowRight")
            page.keyboard.press("x")  # bad, on the sixth image
            other.keyboard.press("n")  # the other tab, 12 images a page: the next page's first image
            other.wait_for_function("() => document.getElementById('pageinfo').textContent === 'page 2 of 4'")
            assert other.get_attribute(".cell", "data-key") == keys[12] and keys[12] in rows
            other.keyboard.press("w")  # wrong species
            _wait_saved(page)
            _wait_saved(other)
            other.select_option("#cls", "1002")  # one class at a time
            other.wait_for_function("() => document.getElementById('progress').textContent.includes('in this class')")
            captions = other.eval_on_selector_all(".cell figcaption", "els => els.map(e => e.textContent)")
            assert captions and all(c.startswith("1002 ") for c in captions)
            assert other.inner_text("#progress") == "0 of 14 marked in this class (6 of 43 in all)"
            assert not errors, errors
        finally:
            server.kill()
            browser.close()

    assert latest_marks(root) == {keys[0]: "bad", keys[1]: "wrong_species", keys[2]: "good", keys[4]: "needs_crop",
                                  keys[5]: "bad", keys[12]: "wrong_species"}
    assert list((root / ".gbifxdl/review/thumbs").rglob("*.jpg"))
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "curate", str(root)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert _reasons(root) == {**before, keys[0]: "review:bad", keys[5]: "review:bad",
                              keys[1]: "review:wrong_species", keys[12]: "review:wrong_species"}
    _assert_set_aside(root, layout, rows, {keys[0], keys[5], keys[1], keys[12]}, {keys[2], keys[3], keys[4]})
    assert "4 removed for it" in (root / "README.md").read_text()


def test_the_image_index_is_saved_and_read_again_only_while_the_tables_are_unchanged(tmp_path: Path) -> None:
    from gbifxdl.review._index import INDEX_CACHE, load_images

    root = standard_dataset(tmp_path / "ds").root
    first = load_images(root)
    assert (root / INDEX_CACHE).is_file() and not any(first.removed)
    saved = (root / INDEX_CACHE).read_text()
    assert load_images(root).keys == first.keys and (root / INDEX_CACHE).read_text() == saved
    curate(root, progress=False)  # rewrites the tables: the index is made again, set-aside images labelled
    again = load_images(root)
    assert sorted(again.keys) == sorted(first.keys) and set(filter(None, again.removed)) >= {"duplicate"}
    (root / INDEX_CACHE).write_text('{"stamp": 1, "keys": ["../x"]}')  # damaged: ignored and made again
    assert load_images(root).keys == again.keys
