"""The fetch stage end to end, against loopback image hosts that inject faults."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from gbifxdl.errors import FetchError, StateError
from gbifxdl.curate._dedupe import CONFIRM_THRESHOLD
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

FAST = FetchSettings(resize=96, retry_backoff=0.05, workers=0, shard_size=16)

METADATA_COLUMNS = ["outcome", "error", "attempts", "http_status", "host", "path", "shard", "key",
                    "orig_width", "orig_height", "width", "height", "bytes", "sha256", "pixel_hash", "phash", "fetched_url",
                    "chroma_hash", "signature"]

# fault kind -> (outcome, attempts) expected with FAST settings (max_attempts 3); a 429/503
# uses up no attempt while its host serves other requests
FAULTS = {
    "404": ("http_404", 1), "410": ("http_410", 1), "403": ("http_403", 1), "400": ("http_4xx", 1),
    "500x2": ("ok", 3), "503x5": ("ok", 6), "429-after-1x1": ("ok", 2), "429-date-1x1": ("ok", 2),
    "429x1": ("ok", 2), "truncatedx1": ("ok", 2), "truncated": ("connection", 3),
    "slow-200": ("ok", 1), "trickle-200": ("ok", 1), "slow-3000": ("timeout", 3),
    "corrupt": ("corrupt", 1), "html": ("not_image", 1), "wrongtype": ("ok", 1),
    "redirect-3": ("ok", 1), "redirect-9": ("redirect_loop", 1), "redirect-loop": ("redirect_loop", 1),
    "redirect-ftp": ("bad_redirect", 1), "bomb": ("decompression_bomb", 1), "huge-3": ("too_large", 1),
    "hugechunked-3": ("too_large", 1), "empty": ("empty", 1),
}


@pytest.fixture(scope="module")
def hosts() -> ImageHosts:
    with ImageHosts(3, max_side=400) as h:
        yield h


@pytest.mark.slow
def test_every_fault_ends_with_its_outcome_and_permanent_ones_are_not_retried(hosts: ImageHosts, tmp_path: Path) -> None:
    urls = [hosts.fault_url(kind, 1000 + i, host=i % 3) for i, kind in enumerate(FAULTS)]
    urls += [hosts.photo_url(i, i % 3) for i in range(20)] + ["not a url"]
    sel = write_selection(tmp_path / "sel.parquet", urls)
    settings = FetchSettings(resize=96, retry_backoff=0.05, workers=0, shard_size=16, total_timeout=1.0,
                             max_bytes=2 * 2**20)
    summary = fetch(sel, tmp_path / "out", settings, progress=False)

    table = pq.read_table(tmp_path / "out" / "metadata.parquet")
    rows = table.to_pylist()
    assert table.column_names == ["gbifID", "identifier", "url_hash", "speciesKey"] + METADATA_COLUMNS
    assert [r["identifier"] for r in rows] == urls
    for kind, row in zip(FAULTS, rows):
        assert (row["outcome"], row["attempts"]) == FAULTS[kind], kind
        assert (row["error"] is None) == (row["outcome"] == "ok"), kind
        assert hosts.requests_for(row["identifier"]) == row["attempts"], kind
    assert rows[-1]["outcome"] == "bad_url"
    assert rows[0]["http_status"] == 404 and rows[0]["host"] == hosts.base_urls[0].split("//")[1]
    assert hosts.early_retries() == 0
    assert summary.total == len(urls) and summary.ok == sum(1 for r in rows if r["outcome"] == "ok")
    assert (tmp_path / "out" / "fetch.log").read_text().count("http_404") >= 1

    for row in rows:
        if row["outcome"] != "ok":
            assert row["path"] is None
            continue
        assert row["path"] == f"images/{row['speciesKey']}/{row['url_hash']}.jpg"
        data = (tmp_path / "out" / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.size == (row["width"], row["height"])
        assert max(img.size) == min(96, max(row["orig_width"], row["orig_height"]))
    assert not list((tmp_path / "out").rglob("*.tmp-*"))


def test_same_image_under_two_urls_gets_the_same_hashes(hosts: ImageHosts, tmp_path: Path) -> None:
    urls = [hosts.photo_url(21), f"{hosts.base_urls[1]}/alias/7/21.jpg", f"{hosts.base_urls[0]}/near/resized/21.jpg"]
    sel = write_selection(tmp_path / "sel.parquet", urls, species=[None, None, 3])
    fetch(sel, tmp_path / "out", FAST, progress=False)
    a, b, c = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
    assert a["sha256"] == b["sha256"] and a["pixel_hash"] == b["pixel_hash"]
    assert a["path"].startswith("images/unlabeled/") and c["path"].startswith("images/3/")
    assert bin(a["phash"] ^ c["phash"]).count("1") <= 8
    wide_a, wide_c = (int.from_bytes(r["chroma_hash"], "big") for r in (a, c))  # the confirming hash agrees too
    assert wide_a == int.from_bytes(b["chroma_hash"], "big") and bin(wide_a ^ wide_c).count("1") <= CONFIRM_THRESHOLD


def test_webdataset_shards_are_readable_and_match_the_metadata(hosts: ImageHosts, tmp_path: Path) -> None:
    import webdataset as wds

    urls = [hosts.photo_url(i, i % 3) for i in range(40)] + [hosts.fault_url("404", 1)]
    sel = write_selection(tmp_path / "sel.parquet", urls)
    fetch(sel, tmp_path / "out", FetchSettings(resize=64, workers=0, shard_size=16, layout="webdataset"),
          progress=False)
    shards = sorted(p.name for p in (tmp_path / "out" / "shards").iterdir())
    assert shards == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
    ok = {r["key"]: r for r in rows if r["outcome"] == "ok"}
    assert len(ok) == 40 and rows[-1]["outcome"] == "http_404" and rows[-1]["shard"] is None
    pattern = str(tmp_path / "out" / "shards" / "shard-{000000..000002}.tar")
    seen = 0
    for sample in wds.WebDataset(pattern, shardshuffle=False).decode("rgb"):
        row = ok[sample["__key__"]]
        assert sample["jpg"].shape[:2] == (row["height"], row["width"])
        assert sample["json"]["identifier"] == row["identifier"]
        assert row["path"] is None and row["shard"].startswith("shards/shard-")
        seen += 1
    assert seen == 40


def test_provenance_is_kept_and_a_rerun_does_nothing(hosts: ImageHosts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    urls = [hosts.photo_url(i) for i in range(5)]
    sel = write_selection(tmp_path / "sel.parquet", urls, provenance={"download_key": "0001-2", "doi": None})
    fetch(sel, tmp_path / "out", FAST, progress=False)
    meta = pq.read_schema(tmp_path / "out" / "metadata.parquet").metadata
    provenance = json.loads(meta[b"gbifxdl.provenance"])
    assert provenance["download_key"] == "0001-2" and provenance["fetch_settings"]["resize"] == 96
    before = hosts.total_requests()
    summary = fetch(sel, tmp_path / "out", FAST, progress=True)
    assert summary.fetched_now == 0 and hosts.total_requests() == before
    assert "Nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("layout", ["folders", "webdataset"])
def test_failed_images_are_retried_only_when_asked(hosts: ImageHosts, tmp_path: Path, layout: str) -> None:
    flaky = hosts.fault_url("500x1", 77 if layout == "folders" else 78)
    urls = [hosts.photo_url((100 if layout == "folders" else 200) + i) for i in range(6)] + [flaky]
    sel = write_selection(tmp_path / "sel.parquet", urls)
    once = FetchSettings(resize=96, workers=0, shard_size=4, max_attempts=1, layout=layout)
    first = fetch(sel, tmp_path / "out", once, progress=False)
    assert first.outcomes["http_5xx"] == 1
    fetch(sel, tmp_path / "out", once, progress=False)
    assert hosts.requests_for(flaky) == 1
    again = fetch(sel, tmp_path / "out", FetchSettings(**{**once.__dict__, "retry_failed": True}), progress=False)
    assert again.ok == 7 and again.fetched_now == 1
    assert hosts.requests_for(flaky) == 2
    assert all(hosts.requests_for(u) == 1 for u in urls[:6])
    rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
    assert all(r["outcome"] == "ok" for r in rows)
    if layout == "webdataset":
        assert sorted(p.name for p in (tmp_path / "out" / "shards").iterdir()) == ["shard-000000.tar", "shard-000001.tar"]


def test_a_fixed_per_host_limit_holds_under_load(tmp_path: Path) -> None:
    with ImageHosts(2, latency=0.03, max_side=64) as h:
        urls = [h.photo_url(i, i % 2) for i in range(120)]
        netloc = h.base_urls[0].split("//")[1]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        fetch(sel, tmp_path / "out", FetchSettings(workers=0, per_host_overrides=((netloc, 3),), per_host=6),
              progress=False)
        assert h.max_concurrent(h.base_urls[0]) == 3
        assert 6 <= h.max_concurrent(h.base_urls[1]) <= 24


@pytest.mark.slow
def test_a_host_that_throttles_slows_down_alone(tmp_path: Path) -> None:
    with ImageHosts(1, latency=0.05, max_connections_per_host=2, max_side=64) as slow, \
            ImageHosts(1, latency=0.05, max_side=64) as fast:
        urls = [u for i in range(60) for u in (slow.photo_url(i), fast.photo_url(i))]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        summary = fetch(sel, tmp_path / "out", FetchSettings(workers=0, max_attempts=5, retry_backoff=0.05),
                        progress=False)
        assert summary.ok == 120
        assert slow.early_retries() == 0
        assert slow.total_requests() > 60  # it did answer 429 ...
        assert slow.total_requests() < 60 + 30  # ... and was not hammered
        assert fast.total_requests() == 60 and fast.max_concurrent(fast.base_urls[0]) >= 8


def test_other_settings_on_the_same_folder_are_refused(hosts: ImageHosts, tmp_path: Path) -> None:
    sel = write_selection(tmp_path / "sel.parquet", [hosts.photo_url(1)])
    fetch(sel, tmp_path / "out", FAST, progress=False)
    with pytest.raises(StateError, match="resize"):
        fetch(sel, tmp_path / "out", FetchSettings(resize=50, workers=0), progress=False)


def test_a_selection_without_urls_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa

    pq.write_table(pa.table({"x": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(FetchError, match="identifier"):
        fetch(tmp_path / "bad.parquet", tmp_path / "out", FAST, progress=False)
    with pytest.raises(FetchError, match="not found"):
        fetch(tmp_path / "missing.parquet", tmp_path / "out", FAST, progress=False)


def test_the_original_async_image_pipeline_still_works(hosts: ImageHosts, tmp_path: Path) -> None:
    from gbifxdl import AsyncImagePipeline

    urls = [hosts.photo_url(i) for i in range(4)] + [hosts.fault_url("404", 9), hosts.fault_url("html", 9)]
    sel = write_selection(tmp_path / "occ.parquet", urls, species=[5, 5, None, 6, 6, 6])
    pipe = AsyncImagePipeline(sel, tmp_path / "imgs", resize=64, save2jpg=True, max_concurrent_processing=1)
    pipe.run()
    assert pipe.metadata_file == tmp_path / "occ_processing_metadata.parquet"
    rows = pq.read_table(pipe.metadata_file).to_pylist()
    assert [r["status"] for r in rows] == ["processing_success"] * 4 + ["downloading_failed", "processing_failed"]
    assert (tmp_path / "imgs" / "5" / rows[0]["filename"]).is_file()
    assert (tmp_path / "imgs" / "unlabeled_species" / rows[2]["filename"]).is_file()
    assert all(len(r["img_hash"]) == 64 and max(r["width"], r["height"]) <= 64 for r in rows[:4])


def test_an_empty_selection_gives_an_empty_metadata_table(tmp_path: Path) -> None:
    sel = write_selection(tmp_path / "sel.parquet", [])
    summary = fetch(sel, tmp_path / "out", FAST, progress=False)
    table = pq.read_table(tmp_path / "out" / "metadata.parquet")
    assert summary.total == 0 and table.num_rows == 0 and "outcome" in table.column_names


def test_cli_options_reach_the_settings(hosts: ImageHosts, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gbifxdl.cli.fetch import fetch as fetch_command

    sel = write_selection(tmp_path / "sel.parquet", [hosts.photo_url(3), hosts.photo_url(4)])
    result = CliRunner().invoke(fetch_command, [str(sel), "-o", str(tmp_path / "out"), "--layout", "webdataset",
                                                "--resize", "40", "--jpeg-quality", "80", "--per-host", "3",
                                                "--per-host", "example.org=2", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    provenance = json.loads(pq.read_schema(tmp_path / "out" / "metadata.parquet").metadata[b"gbifxdl.provenance"])
    settings = provenance["fetch_settings"]
    assert (settings["layout"], settings["resize"], settings["jpeg_quality"], settings["per_host"]) == (
        "webdataset", 40, 80, 3)
    assert settings["per_host_overrides"] == [["example.org", 2]]
    bad = CliRunner().invoke(fetch_command, [str(sel), "-o", str(tmp_path / "o2"), "--per-host", "x=y"])
    assert bad.exit_code != 0


def test_shard_bytes_cuts_a_unit_into_several_tars(hosts: ImageHosts, tmp_path: Path) -> None:
    import webdataset as wds

    urls = [hosts.photo_url(300 + i) for i in range(12)]
    sel = write_selection(tmp_path / "sel.parquet", urls)
    fetch(sel, tmp_path / "out", FetchSettings(resize=200, workers=0, shard_size=12, shard_bytes=30_000,
                                               layout="webdataset"), progress=False)
    shards = sorted((tmp_path / "out" / "shards").glob("*.tar"))
    assert len(shards) >= 2 and all(p.name.startswith("shard-000000-") for p in shards)
    rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
    assert {r["shard"] for r in rows} == {f"shards/{p.name}" for p in shards}
    keys = [s["__key__"] for s in wds.WebDataset([str(p) for p in shards], shardshuffle=False)]
    assert keys == [r["key"] for r in rows]


def test_header_validation_keeps_original_bytes_without_pixel_hashes(hosts: ImageHosts, tmp_path: Path) -> None:
    urls = [hosts.photo_url(i) for i in range(400, 410)] + [hosts.fault_url("html", 3)]
    sel = write_selection(tmp_path / "sel.parquet", urls)
    fetch(sel, tmp_path / "out", FetchSettings(validate="header", shard_size=4), progress=False)
    rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
    assert [r["outcome"] for r in rows] == ["ok"] * 10 + ["not_image"]
    for row in rows[:10]:
        data = (tmp_path / "out" / row["path"]).read_bytes()
        assert data == requests_get(row["identifier"]) and row["pixel_hash"] is None and row["phash"] is None
        assert row["sha256"] == hashlib.sha256(data).hexdigest()


def requests_get(url: str) -> bytes:
    import requests

    return requests.get(url, timeout=10).content


def test_downloads_wait_while_too_many_images_or_bytes_wait_for_processing() -> None:
    import asyncio

    from gbifxdl.fetch.per_host import Backlog

    async def scenario() -> list[str]:
        backlog = Backlog(limit=2, max_bytes=1000)
        backlog.add(1, 10)
        backlog.add(1, 10)                       # two images wait for a worker: full
        started: list[str] = []

        async def download(name: str) -> None:
            await backlog.wait_room()
            started.append(name)

        tasks = [asyncio.create_task(download(n)) for n in "abc"]
        await asyncio.sleep(0.01)
        assert started == []
        backlog.add(-1, 1500)                    # one image left, but of 1510 bytes
        await asyncio.sleep(0.01)
        assert started == []
        backlog.add(-1, -1510)                   # processed: room again
        await asyncio.gather(*tasks)
        return started

    assert asyncio.run(scenario()) == ["a", "b", "c"]  # in order of asking
