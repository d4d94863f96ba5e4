"""The emulator's real answers and gbifxdl's own request bodies agree with the written GBIF facts.

Always on: no recorded material needed. tests/test_recorded_bodies.py proves the same facts
against bodies recorded from api.gbif.org where that material is present.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests

from gbifxdl.gbif import make_request
from gbifxdl.query import build_predicate, build_request
from gbifxdl.testing import gbif_facts as facts
from gbifxdl.testing.gbif_server import GbifEmulator

USERS = {"demo": "demo-password", "ann": "ann-pw"}
PREDICATE = {"type": "and", "predicates": [
    {"type": "equals", "key": "TAXON_KEY", "value": "7017"},
    {"type": "in", "key": "COUNTRY", "values": ["DK", "SE"]},
    {"type": "greaterThanOrEquals", "key": "YEAR", "value": "2015"},
    {"type": "not", "predicate": {"type": "isNull", "parameter": "MEDIA_TYPE"}},
]}


@pytest.fixture(scope="module")
def gbif(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbifEmulator]:
    with GbifEmulator(users=USERS, n_occurrences=30, prepare_seconds=0.2, run_seconds=0.3,
                      archive_dir=tmp_path_factory.mktemp("archives")) as emulator:
        yield emulator


def _post(gbif: GbifEmulator, body: dict[str, Any], user: str = "demo") -> str:
    response = requests.post(f"{gbif.api_url}/occurrence/download/request", json=body, auth=(user, USERS[user]), timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.text


def _status(gbif: GbifEmulator, key: str) -> dict[str, Any]:
    return requests.get(f"{gbif.api_url}/occurrence/download/{key}", timeout=10).json()


def test_status_bodies_in_every_state_agree_with_the_facts(gbif: GbifEmulator) -> None:
    key = _post(gbif, {"creator": "demo", "predicate": PREDICATE, "format": "DWCA"})
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    while "SUCCEEDED" not in seen:
        body = _status(gbif, key)
        seen[body["status"]] = body
        assert time.monotonic() < deadline, f"stuck in {body['status']}"
        time.sleep(0.05)
    for forced in ("FILE_ERASED", "CANCELLED", "KILLED", "FAILED", "SUSPENDED"):
        gbif.set_status(key, forced)
        seen[forced] = _status(gbif, key)
    assert {"PREPARING", "SUCCEEDED", "FILE_ERASED", "CANCELLED"} <= set(seen)
    for status, body in seen.items():
        assert facts.problems(body, facts.DOWNLOAD_STATUS) == [], status
        assert facts.predicate_problems(body["request"]["predicate"]) == [], status
    assert "doi" not in seen["PREPARING"] and seen["PREPARING"]["size"] == 0  # GBIF's running view
    assert "doi" in seen["SUCCEEDED"] and seen["SUCCEEDED"]["size"] > 0


def test_a_users_listing_agrees_with_the_facts(gbif: GbifEmulator) -> None:
    _post(gbif, {"creator": "ann", "predicate": {"type": "equals", "key": "COUNTRY", "value": "FI"}}, user="ann")
    page = requests.get(f"{gbif.api_url}/occurrence/download/user/ann", params={"limit": 5},
                        auth=("ann", USERS["ann"]), timeout=10).json()
    assert facts.problems(page, facts.DOWNLOAD_LIST_PAGE) == []
    assert page["results"] and page["results"][0]["request"]["creator"] == "ann"


def _names(gbif: GbifEmulator) -> dict[str, str]:
    universe = gbif.universe
    accepted = universe.species[0]
    synonym = next(t for t in universe.taxa if t.status == "SYNONYM")
    return {"EXACT": accepted.name, "SYNONYM": synonym.name, "FUZZY": accepted.name[:-1] + "x",
            "HIGHERRANK": f"{accepted.name.split()[0]} nosuchepithet", "NONE": "Zzzz qqqq"}


def test_species_match_v1_and_v2_agree_with_the_facts(gbif: GbifEmulator) -> None:
    root = gbif.api_url.removesuffix("/v1")
    kinds: set[str] = set()
    for label, name in _names(gbif).items():
        for verbose in ("false", "true"):
            v1 = requests.get(f"{root}/v1/species/match", params={"name": name, "verbose": verbose}, timeout=10).json()
            v2 = requests.get(f"{root}/v2/species/match", params={"scientificName": name, "verbose": verbose},
                              timeout=10).json()
            assert facts.problems(v1, facts.SPECIES_MATCH_V1) == [], (label, name)
            assert facts.problems(v2, facts.SPECIES_MATCH_V2) == [], (label, name)
            assert v1["matchType"] == v2["diagnostics"]["matchType"]
            kinds.add(v1["matchType"])
    assert {"EXACT", "NONE"} <= kinds


def test_gbifxdls_request_bodies_agree_with_the_facts() -> None:
    predicate = build_predicate(taxon_keys=[7017, 1898286], countries=["DK"], years="2015-2024",
                                basis_of_record=["HUMAN_OBSERVATION"], licenses=["CC0_1_0"])
    assert facts.predicate_problems(predicate) == []
    bodies = [
        make_request(predicate, creator="demo", email="demo@example.org"),
        make_request({"creator": "demo", "notification_address": ["demo@example.org"], "predicate": PREDICATE},
                     creator="demo"),  # rgbif's spelling, mapped to GBIF's
        build_request(predicate, creator="demo", notification_addresses=["a@example.org"], description="test"),
    ]
    for body in bodies:
        assert facts.problems(body, facts.REQUEST_BODY) == [], body
        assert facts.predicate_problems(body["predicate"]) == []


def test_the_facts_catch_what_gbif_would_not_send_or_accept() -> None:
    status = {"key": "0000001-250101000000000", "license": "unspecified", "status": "DONE", "size": "12",
              "request": {"predicate": PREDICATE, "sendNotification": False, "format": "DWCA", "type": "OCCURRENCE"},
              "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00.000+00:00",
              "eraseAfter": "2025-07-01T00:00:00.000+00:00", "downloadLink": "x", "numberDatasets": 1, "extra": 1}
    found = "\n".join(facts.problems(status, facts.DOWNLOAD_STATUS))
    for expected in ("body.status: 'DONE' is not one of", "body.size: a JSON string", "body.created:",
                     "body.totalRecords: missing", "body.extra: not a field", "body.downloadLink:"):
        assert expected in found
    assert facts.problems({"matchType": "NONE", "confidence": 100, "synonym": False, "usageKey": True},
                          facts.SPECIES_MATCH_V1) == ["body.usageKey: a JSON boolean (True), GBIF sends a integer"]
    assert facts.problems({"predicate": PREDICATE, "notification_address": []}, facts.REQUEST_BODY) == [
        "body.notification_address: not a field GBIF sends or accepts here"]
    bad = {"type": "and", "predicates": [{"type": "equals", "key": "taxonKey", "value": 7017}, {"type": "in", "key": "COUNTRY"}]}
    assert facts.predicate_problems(bad) == [
        "predicate.predicates[0].key: 'taxonKey' is not an UPPER_SNAKE search parameter",
        "predicate.predicates[0].value: a JSON integer, GBIF takes a string",
        "predicate.predicates[1].values: missing for a 'in' predicate",
    ]
