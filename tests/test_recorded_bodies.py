"""Every status body recorded from api.gbif.org parses into a DownloadStatus with its fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gbifxdl.gbif import DownloadPage, DownloadStatus

KEY_RE = re.compile(r"^\d{7}-\d{15}$")
CITATION_RE = re.compile(r"^GBIF\.org \(\d{1,2} [A-Z][a-z]+ \d{4}\) GBIF Occurrence Download https://doi\.org/10\.15468/dl\.[a-z0-9]{6}\n$")


def _status_files(shared: Path) -> list[Path]:
    files = sorted((shared / "api").glob("download_status_*.json"))
    assert len(files) >= 7, files
    return files


def test_every_recorded_status_parses_with_all_fields(shared_gbif: Path) -> None:
    for path in _status_files(shared_gbif):
        data = json.loads(path.read_text())
        st = DownloadStatus.from_json(data)
        assert st.key == data["key"] and KEY_RE.match(st.key), path.name
        assert st.status == data["status"]
        assert st.doi == data.get("doi")
        assert st.size == data["size"] and st.total_records == data["totalRecords"]
        assert st.number_datasets == data["numberDatasets"]
        assert (st.created, st.modified, st.erase_after) == (data["created"], data["modified"], data["eraseAfter"])
        assert st.download_link == data["downloadLink"] and st.license == data["license"]
        assert st.predicate == data["request"]["predicate"] and st.format == data["request"]["format"]
        assert st.raw == data  # nothing GBIF said is lost
        assert st.created_at is not None and st.created_at.tzinfo is not None
        # exactly one of the lifecycle views holds
        assert [st.is_running, st.succeeded, st.failed, st.erased].count(True) == 1, path.name


def test_lifecycle_properties_follow_the_recorded_states(shared_gbif: Path) -> None:
    api = shared_gbif / "api"
    load = lambda name: DownloadStatus.from_json(json.loads((api / name).read_text()))  # noqa: E731
    preparing, running = load("download_status_PREPARING.json"), load("download_status_RUNNING.json")
    done, cancelled = load("download_status_SUCCEEDED_2025.json"), load("download_status_CANCELLED_2020.json")
    assert preparing.is_running and running.is_running and not preparing.finished
    assert preparing.doi is None and preparing.size == 0  # GBIF shows neither while running
    assert done.succeeded and done.finished and done.size == 8329717
    assert done.doi_url == "https://doi.org/10.15468/dl.np3k7j"
    assert cancelled.failed and not cancelled.succeeded
    assert "doi:10.15468/dl.np3k7j" in done.summary() and "22,235 records" in done.summary()


def test_unknown_fields_are_kept_in_raw() -> None:
    st = DownloadStatus.from_json({"key": "0000001-250101000000000", "status": "RUNNING", "size": 0, "newField": [1]})
    assert st.raw["newField"] == [1] and st.is_running and st.doi is None


def test_user_listing_page_parses(shared_gbif: Path) -> None:
    data = json.loads((shared_gbif / "api" / "download_list_user_page.json").read_text())
    page = DownloadPage.from_json(data)
    assert (page.offset, page.limit, page.count, page.end_of_records) == (0, 20, 2089, False)
    assert len(page) == len(data["results"]) == 20
    assert [d.key for d in page] == [r["key"] for r in data["results"]]
    assert all(d.source == "rgbif" for d in page)
    assert {d.request.get("creator") for d in page} == {"<gbif_user>"}


def test_recorded_key_and_citation_formats(shared_gbif: Path) -> None:
    api = shared_gbif / "api"
    assert KEY_RE.match((api / "download_request_POST_201_body.txt").read_text())
    assert CITATION_RE.match((api / "download_citation.txt").read_text())


@pytest.mark.parametrize("name", ["download_status_by_DOI.json", "download_status_SUCCEEDED_2020_within.json"])
def test_within_predicate_survives_parsing(shared_gbif: Path, name: str) -> None:
    st = DownloadStatus.from_json(json.loads((shared_gbif / "api" / name).read_text()))
    assert st.predicate["predicates"][0]["type"] == "within" and st.doi == "10.15468/dl.hx3uzz"


# The written GBIF facts (gbifxdl.testing.gbif_facts), proven against GBIF's own bodies.
_FACTS_BY_PREFIX = {
    "download_status_": "DOWNLOAD_STATUS",
    "download_list_user_page": "DOWNLOAD_LIST_PAGE",
    "species_match_v1_": "SPECIES_MATCH_V1",
    "species_match_v2_": "SPECIES_MATCH_V2",
    "occurrence_search_taxonKey": "OCCURRENCE_SEARCH_PAGE",
    "occurrence_search_identifiedBy": "OCCURRENCE_SEARCH_PAGE",
}


def test_every_recorded_body_agrees_with_the_written_facts(shared_gbif: Path) -> None:
    from gbifxdl.testing import gbif_facts as facts

    checked = set()
    for path in sorted((shared_gbif / "api").glob("*.json")):
        fact = next((name for prefix, name in _FACTS_BY_PREFIX.items() if path.name.startswith(prefix)), None)
        if fact is None:
            continue
        body = json.loads(path.read_text())
        assert facts.problems(body, getattr(facts, fact)) == [], path.name
        checked.add(fact)
        results = body.get("results", [body]) if fact.startswith("DOWNLOAD") else []
        for status in results:
            if "predicate" in status["request"]:
                assert facts.predicate_problems(status["request"]["predicate"]) == [], path.name
    assert checked == set(_FACTS_BY_PREFIX.values())


def test_the_recorded_request_body_agrees_with_the_facts_but_for_rgbifs_old_spelling(shared_gbif: Path) -> None:
    from gbifxdl.testing import gbif_facts as facts

    body = json.loads((shared_gbif / "api" / "download_request_POST_body_rgbif.json").read_text())
    assert facts.predicate_problems(body["predicate"]) == []
    # rgbif wrote notification_address; GBIF's field is notificationAddresses (make_request maps it)
    assert facts.problems(body, facts.REQUEST_BODY) == ["body.notification_address: not a field GBIF sends or accepts here"]
