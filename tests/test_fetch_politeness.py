"""Fetch is polite on rate-limited hosts, fetches small renditions, honours opt-outs, names a contact."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings as hsettings, strategies as st
from PIL import Image

from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.fetch.download import opted_out, user_agent
from gbifxdl.fetch.renditions import rendition_for
from gbifxdl.fetch.journal import RESULT_SCHEMA, FetchState
from gbifxdl.testing.image_hosts import HostPolicy, ImageHosts, write_selection

QUICK = dict(retry_backoff=0.05, workers=0, shard_size=50)


def netloc(base_url: str) -> str:
    return base_url.split("//")[1]


def host_stats(out: Path) -> dict[str, dict]:
    return {h["host"]: h for h in json.loads((out / ".gbifxdl" / "fetch" / "hosts.json").read_text())}


@pytest.mark.slow
def test_no_image_is_lost_to_429_and_no_request_arrives_inside_a_retry_after_window(tmp_path: Path) -> None:
    # host 0 answers 15 requests/s and 429 (Retry-After: 1) beyond; host 1 has no limit
    with ImageHosts(2, max_side=64, policies={0: HostPolicy(rate=15)}) as h:
        urls = [h.photo_url(i, host=i % 2) for i in range(120)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        summary = fetch(sel, tmp_path / "out", FetchSettings(max_attempts=1, **QUICK), progress=False)
        assert summary.ok == 120  # with a single attempt each: a 429 uses up none
        assert h.throttled(h.base_urls[0]) > 0  # it did refuse requests...
        assert h.requests_inside_retry_after() == 0  # ...and none came back inside a window
        stats = host_stats(tmp_path / "out")
        limited, free = stats[netloc(h.base_urls[0])], stats[netloc(h.base_urls[1])]
        # it learned a rate (it started unlimited), and did not meet each request with a 429
        assert limited["rate"] is not None and limited["throttled"] < 30
        assert free["rate"] is None and free["throttled"] == 0 and free["requests"] == 60
        assert free["connections"] < free["requests"]  # kept-alive connections were reused
        assert "hosts (2)" in summary.format()


@pytest.mark.slow
def test_a_window_limited_host_keeps_its_images_and_the_configured_concurrency_holds(tmp_path: Path) -> None:
    # 429 after 20 requests per 2-second window; at most 2 connections configured for it
    with ImageHosts(2, max_side=64, latency=0.01, policies={0: HostPolicy(per_window=20, window=2.0)}) as h:
        urls = [h.photo_url(i, host=i % 2) for i in range(100)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        settings = FetchSettings(per_host_overrides=((netloc(h.base_urls[0]), 2),), **QUICK)
        summary = fetch(sel, tmp_path / "out", settings, progress=False)
        assert summary.ok == 100
        assert h.requests_inside_retry_after() == 0
        assert h.max_concurrent(h.base_urls[0]) <= 2


@pytest.mark.slow
def test_a_redirect_counts_against_the_host_it_goes_to(tmp_path: Path) -> None:
    # every URL on host 0 redirects to host 1, which allows one connection and 10 requests/s
    with ImageHosts(2, max_side=64, latency=0.02, policies={1: HostPolicy(rate=10)}) as h:
        urls = [f"{h.base_urls[0]}/goto/1/photos/{i}/original.jpg" for i in range(40)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        target = netloc(h.base_urls[1])
        summary = fetch(sel, tmp_path / "out", FetchSettings(per_host_overrides=((target, 1),), **QUICK),
                        progress=False)
        assert summary.ok == 40
        assert h.max_concurrent(h.base_urls[1]) == 1
        assert h.requests_inside_retry_after() == 0
        stats = host_stats(tmp_path / "out")
        assert stats[target]["requests"] >= 40 and stats[target]["peak_in_flight"] == 1
        assert stats[netloc(h.base_urls[0])]["requests"] >= 40


def test_a_host_that_only_throttles_fails_its_images_after_the_host_deadline(tmp_path: Path) -> None:
    with ImageHosts(2, max_side=64) as h:
        stuck = [h.fault_url("429x100000", i, host=0) for i in range(5)]   # 429 forever, no Retry-After
        long_wait = [h.fault_url("429-after-120x1000", 9, host=0)]          # asks for 2 minutes
        fine = [h.photo_url(i, host=1) for i in range(10)]
        sel = write_selection(tmp_path / "sel.parquet", stuck + long_wait + fine)
        settings = FetchSettings(host_deadline=0.5, **QUICK)
        fetch(sel, tmp_path / "out", settings, progress=False)
        rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
        assert [r["outcome"] for r in rows[:6]] == ["host_deadline"] * 6
        assert all("host_deadline" in r["error"] for r in rows[:6])
        assert [r["outcome"] for r in rows[6:]] == ["ok"] * 10


def test_the_smallest_big_enough_rendition_is_fetched_and_recorded(tmp_path: Path) -> None:
    with ImageHosts(1, max_side=1200, exact_size=True) as h:
        base = h.base_urls[0]
        urls = ([f"{base}/photos/{i}/original.jpg" for i in range(4)]
                + [f"{base}/tiny/photos/{i}/original.jpg" for i in range(4, 6)]        # renditions too small
                + [f"{base}/norendition/photos/{i}/original.jpg" for i in range(6, 8)]  # renditions missing
                + [f"{base}/iiif/{i}/full/max/0/default.jpg" for i in range(8, 10)])
        sel = write_selection(tmp_path / "sel.parquet", urls)
        on = FetchSettings(resize=300, rendition_hosts=((netloc(base), "inaturalist"),), **QUICK)
        fetch(sel, tmp_path / "on", on, progress=False)
        fetch(sel, tmp_path / "off", FetchSettings(resize=300, renditions=False, **QUICK), progress=False)
        with_r = pq.read_table(tmp_path / "on" / "metadata.parquet").to_pylist()
        without = pq.read_table(tmp_path / "off" / "metadata.parquet").to_pylist()
        assert all(r["outcome"] == "ok" for r in with_r + without)
        assert [r["identifier"] for r in with_r] == urls
        assert [r["fetched_url"] for r in with_r[:4]] == [f"{base}/photos/{i}/medium.jpg" for i in range(4)]
        assert [r["fetched_url"] for r in with_r[4:8]] == urls[4:8]  # fell back to the URL as given
        assert [r["fetched_url"] for r in with_r[8:]] == [f"{base}/iiif/{i}/full/!300,300/0/default.jpg"
                                                         for i in (8, 9)]
        assert [r["fetched_url"] for r in without] == urls
        for a, b in zip(with_r, without):
            assert (a["width"], a["height"]) == (b["width"], b["height"]) and max(a["width"], a["height"]) == 300
            img = Image.open(io.BytesIO((tmp_path / "on" / a["path"]).read_bytes()))
            assert img.size == (a["width"], a["height"])
        assert with_r[0]["attempts"] == 1 and with_r[4]["attempts"] == 2  # a fallback costs one more request
        served = host_stats(tmp_path / "on")[netloc(base)]["bytes"]
        assert served < host_stats(tmp_path / "off")[netloc(base)]["bytes"]


def test_opted_out_images_are_skipped_before_their_body_unless_asked(tmp_path: Path) -> None:
    directives = ["noai", "noimageai", "none", "noindex, NoAI", "googlebot: noai", "noindex"]
    with ImageHosts(1, max_side=64) as h:
        urls = [f"{h.base_urls[0]}/optout/{d}/{i}.jpg" for i, d in enumerate(directives)]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        fetch(sel, tmp_path / "out", FetchSettings(**QUICK), progress=False)
        rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
        assert [r["outcome"] for r in rows] == ["opted_out"] * 4 + ["ok", "ok"]
        assert all(r["path"] is None for r in rows[:4])
        stats = host_stats(tmp_path / "out")[netloc(h.base_urls[0])]
        assert stats["opted_out"] == 4
        fetch(sel, tmp_path / "all", FetchSettings(respect_opt_out=False, **QUICK), progress=False)
        assert {r["outcome"] for r in pq.read_table(tmp_path / "all" / "metadata.parquet").to_pylist()} == {"ok"}


def test_the_user_agent_names_gbifxdl_and_the_contact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GBIF_EMAIL", "jdoe@example.org")
    with ImageHosts(1, max_side=64) as h:
        sel = write_selection(tmp_path / "sel.parquet", [h.photo_url(1)])
        fetch(sel, tmp_path / "a", FetchSettings(**QUICK), progress=False)
        agent = h.last_user_agent or ""
        assert agent.startswith("gbifxdl/") and "github.com" in agent and "mailto:jdoe@example.org" in agent
        fetch(sel, tmp_path / "b", FetchSettings(contact="ops@lab.example", **QUICK), progress=False)
        assert "mailto:ops@lab.example" in (h.last_user_agent or "")
    assert "mailto" not in user_agent(None)


def test_cli_politeness_options_reach_the_settings_and_stay_out_of_the_fingerprint(tmp_path: Path) -> None:
    from gbifxdl.cli.fetch import fetch as main

    with ImageHosts(1, max_side=64) as h:
        sel = write_selection(tmp_path / "sel.parquet", [h.photo_url(i) for i in range(3)])
        args = [str(sel), "-o", str(tmp_path / "out"), "--workers", "0", "--quiet",
                "--per-host-rate", "50", "--per-host-rate", "slow.example=0.5", "--host-deadline", "10m",
                "--no-renditions", "--ignore-opt-out", "--contact", "me@example.org"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        meta = pq.read_schema(tmp_path / "out" / "metadata.parquet").metadata[b"gbifxdl.provenance"]
        s = json.loads(meta)["fetch_settings"]
        assert (s["per_host_rate"], s["per_host_rate_overrides"], s["host_deadline"]) == (50, [["slow.example", 0.5]], 600)
        assert (s["renditions"], s["respect_opt_out"], s["contact"]) == (False, False, "me@example.org")
        # other politeness settings on the same folder: a resume, not a refusal
        again = CliRunner().invoke(main, [str(sel), "-o", str(tmp_path / "out"), "--workers", "0", "--quiet"])
        assert again.exit_code == 0, again.output
        bad = CliRunner().invoke(main, [str(sel), "-o", str(tmp_path / "x"), "--host-deadline", "soon"])
        assert bad.exit_code != 0 and "--host-deadline" in str(bad.exception)


def test_state_written_before_fetched_url_existed_is_still_read(tmp_path: Path) -> None:
    state = FetchState(tmp_path, FetchSettings())
    old = pa.schema([f for f in RESULT_SCHEMA if f.name != "fetched_url"])
    pq.write_table(pa.Table.from_pylist([{"outcome": "ok", "attempts": 1}], schema=old), state.unit_path(0))
    table = state.read_unit(0)
    assert table.schema == RESULT_SCHEMA and table.column("fetched_url").to_pylist() == [None]


def test_gbif_image_cache_gets_one_connection_and_is_never_a_rendition() -> None:
    import asyncio

    from gbifxdl.fetch.per_host import HostScheduler

    scheduler = HostScheduler(None, FetchSettings(per_host=16))  # type: ignore[arg-type]
    assert asyncio.run(_limit(scheduler, "api.gbif.org")) == 1
    assert rendition_for("https://api.gbif.org/v1/image/cache/occurrence/1/media/abc", 512) is None


async def _limit(scheduler, host: str) -> int:
    return int(scheduler.limiter(host).limit)


@hsettings(max_examples=200, deadline=None)
@given(host=st.sampled_from(["inaturalist-open-data.s3.amazonaws.com", "static.inaturalist.org",
                             "live.staticflickr.com", "iiif.example.org", "api.gbif.org"]),
       path=st.sampled_from(["/photos/12/original.jpg", "/photos/12/large.jpeg", "/a/b/full/max/0/default.jpg",
                             "/65535/123_abcdef_o.jpg", "/v1/image/cache/1/full/max/0/default.jpg", "/x.jpg"]),
       target=st.integers(1, 5000))
def test_a_rendition_stays_on_its_host_and_is_never_bigger_than_asked(host: str, path: str, target: int) -> None:
    url = f"https://{host}{path}"
    found = rendition_for(url, target)
    if found is not None:
        assert found.url.startswith(f"https://{host}/") and found.url != url
        assert found.nominal >= target


def test_x_robots_tag_parsing() -> None:
    assert opted_out(["noindex, noai"]) == "noai"
    assert opted_out(["NoImageAI"]) == "noimageai"
    assert opted_out(["otherbot: noai", "noindex"]) is None
    assert opted_out(["gbifxdl: none"]) == "none"
    assert opted_out([]) is None


def test_the_host_summary_stays_short_for_hundreds_of_hosts() -> None:
    from gbifxdl.fetch._host_stats import HostStats, format_hosts

    hosts = [HostStats(f"h{i}.example", requests=1000 - i, bytes=10**6, throttled=i % 3,
                       rate=None if i % 2 else 2.0).to_json() for i in range(300)]
    lines = format_hosts(hosts)
    assert len(lines) == 10 and lines[1].startswith("  h0.example: 1000 req")
    assert lines[-1].startswith("  292 other hosts:") and "146 of them rate-limited" in lines[-1]


@pytest.mark.slow
def test_a_fault_mix_with_a_throttling_host_loses_no_good_image(tmp_path: Path) -> None:
    # as seen in the field: one host allows 4 in flight and a few requests/s (Retry-After: 2
    # beyond), and random faults everywhere; every good image must arrive
    policies = {0: HostPolicy(rate=8, retry_after=2)}
    with ImageHosts(3, max_side=64, fault_rate=0.2, seed=5, max_connections_per_host=4, policies=policies) as h:
        ids = range(150)
        urls = [h.photo_url(i, host=i % 3) for i in ids]
        sel = write_selection(tmp_path / "sel.parquet", urls)
        first = netloc(h.base_urls[0])
        settings = FetchSettings(per_host_overrides=((first, 4),), **QUICK)
        fetch(sel, tmp_path / "out", settings, progress=False)
        rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
        good = [r for i, r in zip(ids, rows) if h.fault_of(i) is None]
        assert len(good) > 100 and all(r["outcome"] == "ok" for r in good)
        assert h.throttled(h.base_urls[0]) > 0 and h.requests_inside_retry_after() == 0
        assert h.max_concurrent(h.base_urls[0]) <= 4
