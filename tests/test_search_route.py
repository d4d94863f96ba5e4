"""The search route: GBIF's occurrence search API, emulated and read, gives the download's selection.

The emulator answers ``GET /v1/occurrence/search`` from the same occurrences as its download
archives, so a test can build one selection both ways and compare them; its pages are held
against the written facts (and, where ``../shared/gbif`` is present, against GBIF's recorded
pages and its recorded 429 body).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import pytest
import requests

from gbifxdl._meta import PROVENANCE_KEY
from gbifxdl.query import build_predicate
from gbifxdl.select import SelectSettings, select
from gbifxdl.select import search as search_route
from gbifxdl.select.search import SearchRefused, search_params, select_from_search
from gbifxdl.testing import gbif_facts as facts
from gbifxdl.testing.gbif_server import GbifEmulator

N = 700  # occurrences per query: three search pages of 300
PREDICATE = build_predicate(taxon_keys=[1], years="2010-2024")


@pytest.fixture(scope="module")
def gbif(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbifEmulator]:
    with GbifEmulator(n_occurrences=N, prepare_seconds=0, run_seconds=0,
                      archive_dir=tmp_path_factory.mktemp("archives")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def archive(gbif: GbifEmulator) -> Path:
    """The emulator's download archive of PREDICATE."""
    key = requests.post(f"{gbif.api_url}/occurrence/download/request", auth=("demo", "demo-password"),
                        json={"creator": "demo", "predicate": PREDICATE, "format": "DWCA"}, timeout=10).text
    deadline = time.monotonic() + 60
    while gbif.download(key).status != "SUCCEEDED":
        assert time.monotonic() < deadline, "the emulator's download did not finish"
        time.sleep(0.05)
    path = gbif.download(key).archive
    assert path is not None
    return path


def _search(gbif: GbifEmulator, **params: Any) -> requests.Response:
    return requests.get(f"{gbif.api_url}/occurrence/search", params=params, timeout=30)


def _searches(gbif: GbifEmulator, since: int = 0) -> list:
    return [r for r in gbif.requests[since:] if r.path == "/v1/occurrence/search"]


def _provenance(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[PROVENANCE_KEY])


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


# --- the emulated search API ------------------------------------------------------------------

def test_search_pages_agree_with_the_facts_and_gbifs_paging(gbif: GbifEmulator) -> None:
    params = dict(search_params(PREDICATE))
    page = _search(gbif, **params, limit=1000, facet="speciesKey", facetLimit=4).json()
    assert facts.problems(page, facts.OCCURRENCE_SEARCH_PAGE) == []
    assert page["limit"] == 300 and len(page["results"]) == 300  # clamped, as GBIF does
    assert page["count"] == N and page["endOfRecords"] is False and page["offset"] == 0
    assert all(any(m.get("type") == "StillImage" for m in r["media"]) for r in page["results"])
    (facet,) = page["facets"]
    assert facts.problems(facet, facts.OCCURRENCE_SEARCH_FACET) == []
    assert facet["field"] == "SPECIES_KEY" and len(facet["counts"]) == 4
    counts = [c["count"] for c in facet["counts"]]
    assert counts == sorted(counts, reverse=True)
    # the facet counts what a speciesKey search finds
    first = facet["counts"][0]
    assert _search(gbif, **params, speciesKey=first["name"], limit=0).json()["count"] == first["count"]
    more = _search(gbif, **params, limit=0, facet="speciesKey", facetLimit=2, facetOffset=2).json()
    assert more["facets"][0]["counts"] == facet["counts"][2:4] and more["results"] == []
    last = _search(gbif, **params, offset=600, limit=300).json()
    assert len(last["results"]) == 100 and last["endOfRecords"] is True


def test_the_search_ceiling_is_gbifs_400(gbif: GbifEmulator) -> None:
    answer = _search(gbif, offset=99_800, limit=300)
    assert answer.status_code == 400 and "100000" in answer.text
    assert _search(gbif, offset=99_700, limit=300).status_code == 200


def test_search_pages_have_the_recorded_shape(gbif: GbifEmulator, shared_gbif: Path) -> None:
    recorded = json.loads((shared_gbif / "api" / "occurrence_search_taxonKey2431762_limit300_inat.json").read_text())
    ours = _search(gbif, **dict(search_params(PREDICATE)), limit=300).json()
    assert set(ours) == set(recorded)  # offset, limit, endOfRecords, count, results, facets
    theirs = recorded["results"][0]
    mine = ours["results"][0]
    for name in ("key", "gbifID", "datasetKey", "basisOfRecord", "taxonKey", "speciesKey", "kingdom", "species",
                 "scientificName", "decimalLatitude", "eventDate", "year", "license", "issues", "media"):
        if name in mine:
            assert type(mine[name]) is type(theirs[name]), name
    media = [m for r in ours["results"] for m in r["media"]]
    assert {k for m in media for k in m} <= {k for r in recorded["results"] for m in r["media"] for k in m} | {"title"}


def test_rate_limit_is_gbifs_429_with_its_recorded_body(gbif: GbifEmulator, shared_gbif: Path) -> None:
    gbif.rate_limit_search(1, retry_after=7)
    answer = _search(gbif, limit=1)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.json() == json.loads((shared_gbif / "api" / "occurrence_search_429_body.json").read_text())
    assert _search(gbif, limit=1).status_code == 200


# --- the search route ---------------------------------------------------------------------------

def test_search_params_say_what_the_builder_writes() -> None:
    predicate = build_predicate(taxon_keys=[7017, 1], countries=["DK"], years="2015-", basis_of_record=["HUMAN_OBSERVATION"],
                                licenses=["CC0", "CC-BY"], dataset_keys=["50c9509d-22c7-4a22-a47d-8c48425ef4a7"])
    assert search_params(predicate) == [
        ("taxonKey", "7017"), ("taxonKey", "1"), ("mediaType", "StillImage"), ("country", "DK"),
        ("basisOfRecord", "HUMAN_OBSERVATION"), ("license", "CC0_1_0"), ("license", "CC_BY_4_0"),
        ("datasetKey", "50c9509d-22c7-4a22-a47d-8c48425ef4a7"), ("year", "2015,*")]
    assert ("year", "2020") in search_params(build_predicate(taxon_keys=[1], years="2020"))
    with pytest.raises(SearchRefused, match="use a download"):
        search_params({"type": "not", "predicate": {"type": "equals", "key": "COUNTRY", "value": "DK"}})


def test_search_and_download_give_the_same_selection(gbif: GbifEmulator, archive: Path, tmp_path: Path) -> None:
    for settings in (SelectSettings(), SelectSettings(one_per_occurrence=False, seed=3)):
        select(archive, tmp_path / "download.parquet", settings, progress=False)
        since = len(gbif.requests)
        summary = select_from_search(PREDICATE, tmp_path / "search.parquet", settings, api_url=gbif.api_url,
                                     progress=False)
        # a count, then three pages of 300 (700 occurrences)
        offsets = [r.query.get("offset") for r in _searches(gbif, since)]
        assert offsets == [None, "0", "300", "600"]
        downloaded, searched = pq.read_table(tmp_path / "download.parquet"), pq.read_table(tmp_path / "search.parquet")
        assert searched.schema.remove_metadata() == downloaded.schema.remove_metadata()
        assert searched.num_rows == downloaded.num_rows == summary.images_selected > 300
        assert searched.to_pylist() == downloaded.to_pylist()  # same images, same metadata, same order
        provenance = _provenance(tmp_path / "search.parquet")
        assert provenance["source"] == "search" and provenance["doi"] is None and provenance["download_key"] is None
        assert provenance["search"]["occurrences"] == N and sum(provenance["search"]["datasets"].values()) == N
        assert provenance["select_settings"] == settings.to_dict()
        assert "emulator" in provenance["emulator"]  # made-up records: derive keeps them from GBIF
        assert not (tmp_path / ".search.parquet.search").exists()  # the pages go once the selection is written


def test_capped_search_pages_each_species_only_as_far_as_its_cap(gbif: GbifEmulator, archive: Path,
                                                                 tmp_path: Path) -> None:
    cap = 3
    select(archive, tmp_path / "all.parquet", SelectSettings(one_per_occurrence=False), progress=False)
    select(archive, tmp_path / "one.parquet", SelectSettings(), progress=False)
    since = len(gbif.requests)
    select_from_search(PREDICATE, tmp_path / "capped.parquet", SelectSettings(max_per_class=cap),
                       api_url=gbif.api_url, progress=False)
    asked = _searches(gbif, since)
    assert asked[0].query.get("facet") == "speciesKey" and asked[0].query.get("limit") == "0"
    pages = [r for r in asked if "speciesKey" in r.query]
    # pages of 2 * cap + 10 records; a species needs a second only when its first held too few images
    assert all(r.query["limit"] == "16" for r in pages)
    first_pages = [r for r in pages if r.query["offset"] == "0"]
    assert len(first_pages) == len({r.query["speciesKey"] for r in pages}) > 20
    assert len(pages) - len(first_pages) <= 2
    capped = _rows(tmp_path / "capped.parquet")
    per_class = Counter(r["speciesKey"] for r in capped)
    available = Counter(r["speciesKey"] for r in _rows(tmp_path / "one.parquet"))
    assert per_class == Counter({k: min(cap, n) for k, n in available.items()})
    # every row is an image of the download, with the download's metadata
    everything = {(r["gbifID"], r["identifier"]): r for r in _rows(tmp_path / "all.parquet")}
    assert all(everything[(r["gbifID"], r["identifier"])] == r for r in capped)
    assert _provenance(tmp_path / "capped.parquet")["search"]["capped_per_species"] is True


def test_a_429_is_waited_out_and_no_page_is_lost(gbif: GbifEmulator, archive: Path, tmp_path: Path) -> None:
    select(archive, tmp_path / "download.parquet", progress=False)
    since = len(gbif.requests)
    gbif.rate_limit_search(2, retry_after=1)
    started = time.monotonic()
    select_from_search(PREDICATE, tmp_path / "search.parquet", api_url=gbif.api_url, progress=False)
    assert time.monotonic() - started >= 2  # Retry-After said 1 s, twice
    assert [r.status for r in _searches(gbif, since)][:3] == [429, 429, 200]
    assert _rows(tmp_path / "search.parquet") == _rows(tmp_path / "download.parquet")


def test_over_the_ceiling_is_refused_in_one_line(gbif: GbifEmulator, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the emulator's 700 occurrences stand for a query past GBIF's 100,000: the ceiling is lowered
    monkeypatch.setattr(search_route, "CEILING", 500)
    with pytest.raises(SearchRefused) as refused:
        select_from_search(PREDICATE, tmp_path / "search.parquet", api_url=gbif.api_url, progress=False)
    message = str(refused.value)
    assert "\n" not in message and "700" in message
    assert "use a download" in message and "--max-per-class" in message
    assert not (tmp_path / "search.parquet").exists()
    # capped per species, the same query goes through
    select_from_search(PREDICATE, tmp_path / "capped.parquet", SelectSettings(max_per_class=2),
                       api_url=gbif.api_url, progress=False)
    assert (tmp_path / "capped.parquet").exists()


def test_an_interrupted_search_resumes_from_the_last_page_it_wrote(gbif: GbifEmulator, archive: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "search.parquet"
    real_get = search_route._Client.get
    calls = {"n": 0}

    def dies_on_the_fourth_request(self: Any, params: list) -> dict:
        calls["n"] += 1
        if calls["n"] == 4:  # the count, two pages, then killed
            raise KeyboardInterrupt
        return real_get(self, params)

    monkeypatch.setattr(search_route._Client, "get", dies_on_the_fourth_request)
    with pytest.raises(KeyboardInterrupt):
        select_from_search(PREDICATE, output, api_url=gbif.api_url, progress=False)
    pages = sorted(p.name for p in (tmp_path / ".search.parquet.search" / "pages").iterdir())
    assert pages == ["all-0000000.json", "all-0000300.json"] and not output.exists()
    monkeypatch.setattr(search_route._Client, "get", real_get)
    since = len(gbif.requests)
    select_from_search(PREDICATE, output, api_url=gbif.api_url, progress=False)
    assert [r.query.get("offset") for r in _searches(gbif, since)] == [None, "600"]  # only what was missing
    select(archive, tmp_path / "download.parquet", progress=False)
    assert _rows(output) == _rows(tmp_path / "download.parquet")


# --- gbifxdl run --source search -----------------------------------------------------------------

def _run_command(out: Path, *extra: str, route: str = "search") -> list[str]:
    return [sys.executable, "-m", "gbifxdl", "run", "--source", route, "--taxon", "1", "--year", "2010-2024",
            "-o", str(out), "--no-progress", "--no-report", "--resize", "32", *extra]


def _env(api_url: str, home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    # no GBIF account at all: the search route needs none
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("GBIF_", "NETRC"))},
            "HOME": str(home), "NETRC": str(home / "no-netrc"), "GBIF_API_URL": api_url}


@pytest.mark.slow
def test_run_source_search_needs_no_account_and_resumes_after_a_kill(tmp_path: Path) -> None:
    """Killed and resumed with --source auto (no account: the search route), against --source search."""
    from gbifxdl.testing.local import LocalGbifSettings, local_gbif

    with local_gbif(LocalGbifSettings(n_occurrences=900, fault_rate=0.0, throttled_host_rate=None)) as local:
        local.emulator.search.delay = 0.1  # some 140 species pages, slow enough to be killed among them
        env = _env(local.api_url, tmp_path / "home")
        killed = tmp_path / "killed"
        proc = subprocess.Popen(_run_command(killed, "--max-per-class", "5", route="auto"), env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pages = killed / ".selection.parquet.search" / "pages"
        deadline = time.monotonic() + 120
        try:
            while not (pages.is_dir() and len(list(pages.glob("species-*.json"))) >= 2):
                assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        written = {p.name for p in pages.glob("*.json")}
        local.emulator.search.delay = 0.0
        since = len(local.emulator.requests)
        resumed = subprocess.run(_run_command(killed, "--max-per-class", "5", route="auto"), env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "Source: GBIF's occurrence search (--source auto)" in resumed.stdout
        again = [r for r in local.emulator.requests[since:] if r.path == "/v1/occurrence/search"]
        asked = {f"species-{r.query['speciesKey']}-{int(r.query['offset']):07d}.json"
                 for r in again if "speciesKey" in r.query}
        assert not asked & written  # no page written before the kill was asked for again
        reference = tmp_path / "reference"
        done = subprocess.run(_run_command(reference, "--max-per-class", "5"), env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert _rows(killed / "selection.parquet") == _rows(reference / "selection.parquet")
        assert (killed / "metadata.parquet").exists() and not (killed / "download_key.txt").exists()
        state = json.loads((killed / ".gbifxdl" / "run.json").read_text())
        assert "request" not in state["done"] and "select" in state["done"] and state["download_key"] is None
        assert state["settings"]["source"]["route"] == "search"
        # no DOI to cite: derive registers the dataset, crediting each source dataset
        from gbifxdl.publish.derived import derive_request

        body = derive_request(killed, title="t", source_url="https://example.org/ds")
        assert "originalDownloadDOI" not in body and body["relatedDatasets"]
        assert "GBIF's occurrence search http" in body["description"]
        # the card says so too: no download to cite, derive's DOI instead, the datasets counted
        card = (killed / "README.md").read_text()
        assert "no download DOI" in card and "gbifxdl derive" in card and "GBIF occurrence download" not in card
        counted = json.loads(pq.read_schema(killed / "metadata.parquet").metadata[PROVENANCE_KEY])
        assert all(f"| {k} | {v} |" in card for k, v in counted["search"]["datasets"].items())
        from gbifxdl.report import write_report

        report = write_report(killed).read_text()  # the run was told --no-report
        assert "GBIF occurrence search" in report and "no download DOI" in report and "GBIF download key" not in report


# --- choosing the route ----------------------------------------------------------------------------

def test_auto_chooses_search_without_an_account_or_when_capped(gbif: GbifEmulator, clean_env: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from gbifxdl.run import SourceSettings
    from gbifxdl.run._job import choose_route

    auto = SourceSettings(predicate=PREDICATE, route="auto", api_url=gbif.api_url)
    uncapped, capped = SelectSettings(), SelectSettings(max_per_class=20)
    since = len(gbif.requests)
    assert choose_route(auto, uncapped).route == "search"  # no account anywhere, and small enough
    assert [r.query.get("limit") for r in _searches(gbif, since)] == ["0"]  # one request: the count
    # without an account, a query past the search API's ceiling goes to a download (which asks for one)
    monkeypatch.setattr(search_route, "CEILING", N - 1)
    assert choose_route(auto, uncapped).route == "download"
    assert choose_route(auto, capped).route == "search"  # capped: the ceiling is per species, no count asked
    monkeypatch.setattr(search_route, "CEILING", N)
    assert choose_route(auto, uncapped).route == "search"  # exactly at the ceiling still fits
    monkeypatch.setenv("GBIF_USER", "ann")
    monkeypatch.setenv("GBIF_PWD", "secret")
    assert choose_route(auto, uncapped).route == "download"  # an account: a download, with its DOI
    assert choose_route(auto, capped).route == "search"  # capped per species: only what the cap needs
    assert choose_route(auto, SelectSettings(max_per_class=20, class_column="genusKey")).route == "download"
    geometry = {"type": "and", "predicates": [PREDICATE, {"type": "within", "geometry": "POLYGON((0 0,1 0,1 1,0 0))"}]}
    assert choose_route(SourceSettings(predicate=geometry, route="auto"), capped).route == "download"
    assert choose_route(auto, uncapped, earlier="search").route == "search"  # a resumed run keeps its route
    assert choose_route(SourceSettings(archive="x.zip", route="auto"), capped).route == "download"
    assert choose_route(SourceSettings(predicate=PREDICATE, route="search"), uncapped).route == "search"


def test_the_route_is_an_option_and_a_config_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gbifxdl.cli.run import run as run_command
    from gbifxdl.cli.run import settings_from_context
    from gbifxdl.errors import ConfigError

    config = tmp_path / "c.toml"
    config.write_text('output = "ds"\n[source]\ntaxon = ["1"]\nroute = "search"\n')
    for args, route in (([], "search"), (["--source", "download"], "download")):
        ctx = run_command.make_context("run", ["--config", str(config), *args])
        assert settings_from_context(ctx).source.route == route
    ctx = run_command.make_context("run", ["--key", "0026011-250827131500795", "--source", "search", "-o", "ds"])
    with pytest.raises(ConfigError, match="drop --source search"):
        settings_from_context(ctx)
    result = CliRunner().invoke(run_command, ["--help"])
    assert "--source [download|search|auto]" in result.output
