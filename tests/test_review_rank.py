"""gbifxdl review, issue 22's second part: "find more like these", bulk confirmation, the likely-wrong
order and the export of the marks, through the API, the command and the page in Chromium."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image, ImageDraw

from _dataset_factory import Row, jpeg, photo, write_dataset
from gbifxdl._marks import append_marks, latest_marks
from gbifxdl.curate import curate
from gbifxdl.review import read_marks
from gbifxdl.review._features import CHEAP_CACHE
from gbifxdl.review.rank import RankError, rank
from gbifxdl.review.server import make_app
from test_review import CHROMIUM, TOKEN, _Server, _wait_saved

LAYOUTS = ["folders", "webdataset"]


def label_picture(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A specimen label: pale paper, lines of dark 'text' (what a person marks bad in a species dataset)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(225, 250, 3)))
    draw = ImageDraw.Draw(img)
    for y in range(int(rng.integers(3, 7)), size[1] - 3, int(rng.integers(5, 8))):
        draw.line([int(rng.integers(2, 8)), y, int(rng.integers(size[0] // 2, size[0] - 2)), y], fill=(30, 30, 40))
    return img


def labels_dataset(root: Path, layout: str = "folders", photos: int = 40, labels: int = 10) -> tuple[Path, list[str]]:
    """A fetched dataset of ``photos`` photo-like images and ``labels`` label pictures, in 2 classes; returns
    the root and the keys of the label pictures (in the grid's order, as the page shows them)."""
    rows = [Row(5000 + i, 1001 + i % 2, jpeg(photo(100 + i))) for i in range(photos)]
    rows += [Row(8000 + i, 1001 + i % 2, jpeg(label_picture(i))) for i in range(labels)]
    write_dataset(root, rows, layout, orphans=False)
    table = pq.read_table(root / "metadata.parquet", columns=["url_hash", "gbifID", "speciesKey"]).to_pylist()
    bad = sorted((r for r in table if r["gbifID"] >= 8000), key=lambda r: (r["speciesKey"], r["url_hash"]))
    return root, [r["url_hash"] for r in bad]


def _keys(root: Path) -> list[str]:
    """Every key in the grid's order (class, then key)."""
    table = pq.read_table(root / "metadata.parquet", columns=["url_hash", "speciesKey"]).to_pylist()
    return [r["url_hash"] for r in sorted(table, key=lambda r: (r["speciesKey"], r["url_hash"]))]


# --- the ranking ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_few_marks_rank_the_unmarked_images_like_them_first(tmp_path: Path, layout: str) -> None:
    root, bad = labels_dataset(tmp_path / "ds", layout)
    good = [k for k in _keys(root) if k not in bad]
    append_marks(root, [(k, "bad") for k in bad[:3]] + [(k, "good") for k in good[:10]] + [(good[10], "needs_crop")])

    ranking = rank(root)
    assert set(ranking.keys[:7]) == set(bad[3:])  # the seven label pictures nobody marked, first
    assert len(ranking.keys) == 50 - 14 and not set(ranking.keys) & set(latest_marks(root))
    assert list(ranking.scores) == sorted(ranking.scores, reverse=True) and ranking.scores[6] > 0.5 > ranking.scores[7]
    assert (ranking.positives, ranking.negatives, ranking.folds) == (3, 11, 3)
    assert ranking.accuracy == 1.0 and ranking.recall == 1.0 and ranking.baseline == pytest.approx(11 / 14)
    assert ranking.source == "built-in colour and shape features"
    cache = root / CHEAP_CACHE
    stamp = cache.stat().st_mtime_ns
    rank(root)  # the features are computed once
    assert cache.stat().st_mtime_ns == stamp


def test_too_few_marks_and_an_unknown_target_are_one_clear_error(tmp_path: Path) -> None:
    root, bad = labels_dataset(tmp_path / "ds", photos=6, labels=2)
    with pytest.raises(RankError, match=r"mark at least one image bad and one otherwise .* 0 bad, 0 other"):
        rank(root)
    append_marks(root, [(bad[0], "bad")])
    with pytest.raises(RankError, match="1 bad, 0 other"):
        rank(root)
    with pytest.raises(RankError, match="not 'blurry'"):
        rank(root, target="blurry")
    append_marks(root, [(_keys(root)[0], "good")])
    ranking = rank(root)
    assert ranking.accuracy is None and ranking.folds == 0  # one of each: nothing held out to measure it on


def test_an_embedder_that_ran_is_used_instead_of_the_built_in_features(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from gbifxdl.infer import infer
    from test_infer import colour_dataset, mean_colour_model

    root, truth = colour_dataset(tmp_path / "ds", "folders", n=30)  # solid red, green, blue images
    infer(root, mean_colour_model(tmp_path / "colour.onnx", kind="embedder", gain=1.0), workers=0, progress=False)
    table = pq.read_table(root / "metadata.parquet", columns=["url_hash", "gbifID"]).to_pylist()
    colour = {r["url_hash"]: truth[r["gbifID"]] for r in table}
    red = [k for k in sorted(colour) if colour[k] == "red"]
    others = [k for k in sorted(colour) if colour[k] != "red"]
    append_marks(root, [(k, "bad") for k in red[:2]] + [(k, "good") for k in others[:6]])
    ranking = rank(root)
    assert ranking.source == "the embeddings of model colour"
    assert set(ranking.keys[:8]) == set(red[2:]) and ranking.scores[7] > 0.5 > ranking.scores[8]
    assert not (root / CHEAP_CACHE).exists()  # the built-in features were not computed


def test_the_server_and_the_command_import_scikit_learn_only_to_rank(tmp_path: Path) -> None:
    code = ("import sys, gbifxdl.cli, gbifxdl.review.server, gbifxdl.review.export; "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the server: ranking, bulk confirmation, likely wrong first --------------------------------------------


async def _client(root: Path) -> TestClient:
    client = TestClient(TestServer(make_app(root, TOKEN), host="127.0.0.1"))
    await client.start_server()
    return client


def test_a_threshold_rule_marks_only_after_confirmation_of_the_ranking_seen(tmp_path: Path) -> None:
    root, bad = labels_dataset(tmp_path / "ds")
    good = [k for k in _keys(root) if k not in bad]
    append_marks(root, [(k, "bad") for k in bad[:3]] + [(k, "good") for k in good[:10]])

    async def check() -> dict:
        client = await _client(root)
        try:
            post = client.post
            assert (await post(f"/api/rank?t={TOKEN}&target=eh")).status == 400
            answer = await post(f"/api/rank?t={TOKEN}")
            summary = await answer.json()
            assert answer.status == 200 and summary["ranked"] == 37 and summary["accuracy"] == 1.0
            progress = await (await client.get(f"/api/rank/progress?t={TOKEN}")).json()
            assert progress == {"busy": False, "done": 50, "total": 50}  # every image described, once
            above = await (await client.get(f"/api/images?t={TOKEN}&view=ranked&min_p=0.5&size=100")).json()
            assert {i["key"] for i in above["items"]} == set(bad[3:]) and above["rows"] == 7
            assert all(i["p"] >= 0.5 for i in above["items"])
            body = {"id": summary["id"], "threshold": 0.5, "count": 7}
            stale = await post(f"/api/rank/confirm?t={TOKEN}", json={**body, "id": summary["id"] - 1})
            assert stale.status == 409 and "ranking changed" in (await stale.json())["error"]
            wrong_count = await post(f"/api/rank/confirm?t={TOKEN}", json={**body, "count": 9})
            assert wrong_count.status == 409 and "not 9" in (await wrong_count.json())["error"]
            assert latest_marks(root) == {**dict.fromkeys(bad[:3], "bad"), **dict.fromkeys(good[:10], "good")}
            done = await post(f"/api/rank/confirm?t={TOKEN}", json=body)
            assert done.status == 200 and (await done.json())["saved"] == 7
            again = await post(f"/api/rank/confirm?t={TOKEN}", json=body)  # all marked now: 0 above, not 7
            assert again.status == 409
            return summary
        finally:
            await client.close()

    asyncio.run(check())
    table = read_marks(root, current_only=True).to_pylist()
    ranked = {r["key"]: r for r in table if r["via"] == "rank"}
    assert set(ranked) == set(bad[3:]) and all(r["mark"] == "bad" and r["p"] >= 0.5 for r in ranked.values())
    assert all(r["via"] is None and r["p"] is None for r in table if r["key"] not in ranked)
    curate(root, progress=False)
    removed = pq.read_table(root / "removed.parquet", columns=["url_hash", "removed_reason"]).to_pylist()
    assert {r["url_hash"] for r in removed if r["removed_reason"] == "review:bad"} == set(bad)


def test_likely_wrong_first_puts_small_and_near_duplicate_images_first(tmp_path: Path) -> None:
    root, _ = labels_dataset(tmp_path / "ds", photos=20, labels=0)
    table = pq.read_table(root / "metadata.parquet")
    keys = table["url_hash"].to_pylist()
    small, twin_a, twin_b = keys[5], keys[9], keys[14]
    width = [120 if k == small else 800 for k in keys]
    phash = np.random.default_rng(0).integers(0, 2**63, len(keys)).astype(np.uint64)
    phash[keys.index(twin_b)] = phash[keys.index(twin_a)] ^ np.uint64(0b1011)  # 3 bits apart
    table = table.set_column(table.schema.get_field_index("orig_width"), "orig_width", pa.array(width, pa.int32()))
    table = table.set_column(table.schema.get_field_index("orig_height"), "orig_height", pa.array([600] * 20, pa.int32()))
    table = table.set_column(table.schema.get_field_index("phash"), "phash", pa.array(phash, pa.uint64()))
    pq.write_table(table, root / "metadata.parquet")

    async def check() -> list[dict]:
        client = await _client(root)
        try:
            return (await (await client.get(f"/api/images?t={TOKEN}&sort=likely&size=5")).json())["items"]
        finally:
            await client.close()

    items = asyncio.run(check())
    assert {i["key"]: i.get("why") for i in items[:3]} == {
        twin_a: "near duplicate", twin_b: "near duplicate", small: "small, 120 px"}
    assert not any(i.get("why") for i in items[3:])


# --- the export: an ImageFolder of the marks ----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["folders", pytest.param("webdataset", marks=pytest.mark.slow)])
def test_export_writes_the_marked_images_as_an_image_folder(tmp_path: Path, layout: str) -> None:
    root, bad = labels_dataset(tmp_path / "ds", layout, photos=12, labels=4)
    good = [k for k in _keys(root) if k not in bad]
    append_marks(root, [(bad[0], "bad"), (bad[1], "bad"), (good[0], "good"), (good[1], "wrong_species"),
                        (good[2], "bad"), (good[2], "clear")])
    out = tmp_path / "marks"
    command = [sys.executable, "-m", "gbifxdl", "review", str(root), "--export", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "exported 4 marked images" in done.stdout and "bad 2, good 1, wrong_species 1" in done.stdout
    files = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert files == {f"bad/{bad[0]}.jpg", f"bad/{bad[1]}.jpg", f"good/{good[0]}.jpg", f"wrong_species/{good[1]}.jpg"}
    with Image.open(out / f"bad/{bad[0]}.jpg") as img:  # the dataset's own image, byte for byte
        assert img.size == (96, 72)
    originals = {r["url_hash"]: r for r in pq.read_table(root / "metadata.parquet").to_pylist()}
    assert (out / f"good/{good[0]}.jpg").stat().st_size == originals[good[0]]["bytes"]
    with open(out / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["file"], r["mark"], r["class"]) for r in rows} >= {(f"bad/{bad[0]}.jpg", "bad", "1001")}
    assert len(rows) == 4

    append_marks(root, [(bad[1], "good")])  # exported again: the folder is replaced whole
    assert subprocess.run(command, capture_output=True, text=True, timeout=120).returncode == 0
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")} == {
        f"bad/{bad[0]}.jpg", f"good/{bad[1]}.jpg", f"good/{good[0]}.jpg", f"wrong_species/{good[1]}.jpg"}

    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    refused = subprocess.run([*command[:-1], str(other)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert "not an earlier export" in refused.stderr and (other / "mine.txt").read_text() == "keep me"


def test_export_without_marks_is_one_clear_error(tmp_path: Path) -> None:
    root, _ = labels_dataset(tmp_path / "ds", photos=4, labels=0)
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "review", str(root), "--export", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no image is marked" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# --- the page in Chromium -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_find_more_like_these_with_the_keyboard_confirm_in_bulk_and_curate(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the review page tests: apt-get install -y chromium")
    root, bad = labels_dataset(tmp_path / "ds", photos=60, labels=12)
    order = _keys(root)
    server = _Server(root)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(server.link)
            page.wait_for_selector("body[data-loaded]")
            shown = page.eval_on_selector_all(".cell", "els => els.map(e => e.dataset.key)")
            assert shown == order[:60]
            page.keyboard.press("f")  # nothing marked yet: it says what it needs
            page.wait_for_function("() => document.getElementById('rankinfo').textContent.includes('mark at least')")
            assert len(errors) == 2 and errors[0].startswith("409 ")  # the answer that says so, and its console line
            errors.clear()
            # a person marks the first 20 images of the grid as they are: bad (a label) or good
            for key in shown[:20]:
                page.keyboard.press("b" if key in bad else "g")
            _wait_saved(page)
            marked_bad = [k for k in shown[:20] if k in bad]
            assert len(marked_bad) >= 2
            page.keyboard.press("f")
            page.wait_for_selector("#trust")
            trust = page.inner_text("#trust")
            assert trust.startswith("Held-out accuracy 100% (") and "always guessing" in trust
            page.wait_for_function("() => document.getElementById('pageinfo').textContent.startsWith('top-ranked')")
            items = page.eval_on_selector_all(".cell", "els => els.map(e => [e.dataset.key, "
                                              "e.querySelector('.p').textContent, e.classList.contains('proposed')])")
            remaining = set(bad) - set(marked_bad)
            assert {k for k, _, _ in items[:len(remaining)]} == remaining  # every other label first
            # proposed (p >= 0.5, dashed): the labels, and only them
            assert [proposed for _, _, proposed in items] == [True] * len(remaining) + [False] * (52 - len(remaining))
            assert all(float(p[2:]) >= 0.5 for _, p, _ in items[:len(remaining)])
            page.screenshot(path=str(Path("/tmp/review-rank-1280.png")))
            # Space switches a proposal: on the first photo after the labels, bad, then good (rejected)
            for _ in range(len(remaining)):
                page.keyboard.press("ArrowRight")
            rejected = items[len(remaining)][0]
            page.keyboard.press(" ")
            assert page.inner_text(f".cell[data-key='{rejected}'] .tag") == "→ bad?"
            page.keyboard.press(" ")
            assert "reject" in page.get_attribute(f".cell[data-key='{rejected}']", "class")
            page.screenshot(path=str(Path("/tmp/review-rank-reject-1280.png")))
            page.keyboard.press("Enter")
            # confirmed: written, learned from at once, and the next ranking shown
            page.wait_for_function("(n) => document.getElementById('rankinfo').textContent.includes('learned from ' + n"
                                   " + ' marked bad')", arg=len(bad))
            _wait_saved(page)
            page.keyboard.press("u")  # undo takes the whole confirmed page back
            page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('20 of ')")
            page.keyboard.press("f")
            page.wait_for_function("(n) => document.getElementById('rankinfo').textContent.includes('learned from ' + n"
                                   " + ' marked bad')", arg=len(marked_bad))
            # the threshold rule: the count shown, then a confirmation, then the marks
            page.fill("#threshold", "0.5")
            page.keyboard.press("Enter")
            page.wait_for_function("(n) => document.getElementById('abovecount').textContent === String(n)",
                                   arg=len(remaining))
            page.click("#above")
            assert page.is_visible("#confirm") and f"Mark {len(remaining)} images bad" in page.inner_text("#confirm")
            assert len(latest_marks(root)) == 20  # nothing written before the confirmation
            page.screenshot(path=str(Path("/tmp/review-rank-confirm-1280.png")))
            page.click("#confirmyes")
            page.wait_for_function("() => document.getElementById('rankinfo').textContent.includes('images marked bad')")
            page.select_option("#sort", "likely")  # the grid, likely wrong first: ranked images carry their p
            page.wait_for_function("() => document.querySelector('.cell .why, .cell .p')")
            page.screenshot(path=str(Path("/tmp/review-likely-1280.png")), full_page=False)
            assert not errors, errors
        finally:
            server.kill()
            browser.close()

    table = read_marks(root).to_pylist()
    assert [r["mark"] for r in table[:20]] == ["bad" if k in bad else "good" for k in shown[:20]]
    page_confirmed = [r for r in table[20:] if r["mark"] != "clear"][:len(remaining) + 1]
    assert {r["key"]: r["mark"] for r in page_confirmed} == {**dict.fromkeys(remaining, "bad"), rejected: "good"}
    assert all(r["via"] == "rank" and r["p"] is not None for r in page_confirmed)
    assert latest_marks(root) == {**{k: ("bad" if k in bad else "good") for k in shown[:20]},
                                  **dict.fromkeys(remaining, "bad")}
    assert [r["threshold"] for r in map(dict, _journal(root)[-len(remaining):])] == [0.5] * len(remaining)
    curate(root, progress=False)
    removed = pq.read_table(root / "removed.parquet", columns=["url_hash", "removed_reason"]).to_pylist()
    assert {r["url_hash"] for r in removed if r["removed_reason"] == "review:bad"} == set(bad)


def _journal(root: Path) -> list[dict]:
    from gbifxdl._marks import iter_marks

    return list(iter_marks(root))


def test_an_unknown_model_is_one_clear_error(tmp_path: Path) -> None:
    root, _ = labels_dataset(tmp_path / "ds", photos=4, labels=0)
    done = subprocess.run([sys.executable, "-m", "gbifxdl", "review", str(root), "--no-open", "--model", "bioclip"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--model bioclip: no embedder of that name ran" in done.stderr
    assert "(found: none)" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_likely_wrong_first_uses_the_scores_of_a_classifier_that_ran(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from gbifxdl.infer import infer
    from test_infer import colour_dataset, mean_colour_model, solid

    # solid red, green, blue images in classes 10, 11, 12; one green image filed under 10 (red's class)
    root, truth = colour_dataset(tmp_path / "ds", "folders", n=12, extra=[Row(2000, 10, solid("green", (50, 40)))])
    table = pq.read_table(root / "metadata.parquet", columns=["url_hash", "gbifID"]).to_pylist()
    key = {r["gbifID"]: r["url_hash"] for r in table}
    greens = {key[g] for g, c in truth.items() if c == "green"}

    async def likely() -> dict[str, str | None]:
        client = await _client(root)
        try:
            items = (await (await client.get(f"/api/images?t={TOKEN}&sort=likely&size=50")).json())["items"]
            return {i["key"]: i.get("why") for i in items}  # in the page's order
        finally:
            await client.close()

    before = asyncio.run(likely())
    assert not any(w and ":" in w for w in before.values())  # (solid colours: near duplicates of each other)
    infer(root, mean_colour_model(tmp_path / "species.onnx", labels=["10", "11", "12"]), workers=0, progress=False)
    why = asyncio.run(likely())
    assert next(iter(why.items())) == (key[2000], "species: another species")  # the misfiled one, first
    assert [k for k, w in why.items() if w == "species: another species"] == [key[2000]]
    # a cleaner that says green images are not clean
    infer(root, mean_colour_model(tmp_path / "cleaner.onnx", labels=["clean", "not_clean", "blurry"]), workers=0,
          progress=False)
    why = asyncio.run(likely())
    assert {k for k, w in why.items() if w and w.startswith("cleaner")} == greens | {key[2000]}
    assert set(list(why)[:5]) == greens | {key[2000]}
