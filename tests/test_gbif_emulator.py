"""The emulator answers as GBIF does: compared field by field with recorded GBIF bodies."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from gbifxdl.testing.gbif_server import GbifEmulator

USERS = {"demo": "demo-password", "ann": "ann-pw", "ben": "ben-pw", "cat": "cat-pw"}
PREDICATE = {"type": "equals", "key": "COUNTRY", "value": "DK"}


@pytest.fixture(scope="module")
def gbif(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbifEmulator]:
    with GbifEmulator(users=USERS, n_occurrences=30, prepare_seconds=0.2, run_seconds=0.3,
                      archive_dir=tmp_path_factory.mktemp("archives")) as emulator:
        yield emulator


def _post(gbif: GbifEmulator, body: dict[str, Any], user: str = "demo", password: str | None = None) -> requests.Response:
    return requests.post(f"{gbif.api_url}/occurrence/download/request", json=body,
                         auth=(user, password or USERS[user]), timeout=10)


def _status(gbif: GbifEmulator, key: str) -> dict[str, Any]:
    response = requests.get(f"{gbif.api_url}/occurrence/download/{key}", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    return response.json()


def _until(gbif: GbifEmulator, key: str, status: str, limit: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while (body := _status(gbif, key))["status"] != status:
        assert body["status"] in ("PREPARING", "RUNNING"), f"{key} ended as {body['status']}"
        assert time.monotonic() < deadline, f"{key} stuck in {body['status']}"
        time.sleep(0.05)
    return body


def _shape(value: Any, name: str = "") -> Any:
    """Return the field names and JSON types of a body (recursively; predicates compared apart)."""
    if isinstance(value, dict) and name != "predicate":
        return {key: _shape(item, key) for key, item in value.items()}
    return type(value).__name__


def _recorded(shared: Path, name: str) -> Any:
    return json.loads((shared / "api" / name).read_text())


def _new_key(gbif: GbifEmulator, value: str, user: str = "demo") -> str:
    response = _post(gbif, {"creator": user, "predicate": {**PREDICATE, "value": value}, "format": "DWCA"}, user)
    assert response.status_code == 201, response.text
    return response.text


def test_post_answers_201_with_a_bare_key_as_recorded(gbif: GbifEmulator, shared_gbif: Path) -> None:
    response = _post(gbif, {"creator": "demo", "predicate": PREDICATE, "sendNotification": False, "format": "DWCA"})
    recorded = (shared_gbif / "api" / "download_request_POST_201_body.txt").read_text()
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    key_format = re.compile(r"^\d{7}-\d{15}$")
    assert key_format.match(recorded) and key_format.match(response.text)  # no quotes, no newline


def test_status_has_the_recorded_fields_in_each_state(gbif: GbifEmulator, shared_gbif: Path) -> None:
    rgbif = _recorded(shared_gbif, "download_request_POST_body_rgbif.json")
    key = _post(gbif, {"creator": "demo", "predicate": rgbif["predicate"], "format": "DWCA"}).text
    preparing = _status(gbif, key)
    assert preparing["status"] == "PREPARING"
    # GBIF echoes the predicate with matchCase added to its leaves
    assert preparing["request"] == _recorded(shared_gbif, "download_status_PREPARING.json")["request"]
    assert _shape(preparing) == _shape(_recorded(shared_gbif, "download_status_PREPARING.json"))
    running = _until(gbif, key, "RUNNING")
    assert _shape(running) == _shape(_recorded(shared_gbif, "download_status_RUNNING.json"))
    done = _until(gbif, key, "SUCCEEDED")
    assert _shape(done) == _shape(_recorded(shared_gbif, "download_status_SUCCEEDED_2025.json"))
    assert done["size"] == gbif.download(key).archive.stat().st_size > 0
    assert done["created"] == preparing["created"] and done["eraseAfter"] > done["created"]
    assert re.match(r"^10\.15468/dl\.[a-z0-9]{6}$", done["doi"])
    by_doi = _status(gbif, done["doi"])
    assert by_doi == done


def test_cancelled_status_matches_the_recorded_one(gbif: GbifEmulator, shared_gbif: Path) -> None:
    key = _new_key(gbif, "NO")
    response = requests.delete(f"{gbif.api_url}/occurrence/download/request/{key}", auth=("demo", USERS["demo"]), timeout=10)
    assert response.status_code == 204 and response.content == b""
    cancelled = _status(gbif, key)
    assert cancelled["status"] == "CANCELLED"
    assert _shape(cancelled) == _shape(_recorded(shared_gbif, "download_status_CANCELLED_2020.json"))
    archive = requests.get(f"{gbif.api_url}/occurrence/download/request/{key}.zip", timeout=10, allow_redirects=False)
    assert archive.status_code == 404 and archive.text == f"Download {key} is not ready yet"


def test_user_listing_has_the_recorded_page_shape(gbif: GbifEmulator, shared_gbif: Path) -> None:
    _new_key(gbif, "FI", user="ann")
    recorded = _recorded(shared_gbif, "download_list_user_page.json")
    response = requests.get(f"{gbif.api_url}/occurrence/download/user/ann", params={"limit": 5},
                            auth=("ann", USERS["ann"]), timeout=10)
    page = response.json()
    assert set(page) == set(recorded) and page["count"] == 1 and page["endOfRecords"] is True
    recorded_running = next(r for r in recorded["results"] if "doi" not in r)
    assert _shape(page["results"][0]) == _shape(recorded_running)
    assert page["results"][0]["request"]["creator"] == "ann"


def test_401_body_is_the_recorded_one(gbif: GbifEmulator, shared_gbif: Path) -> None:
    recorded = (shared_gbif / "api" / "download_list_user_401_body.txt").read_bytes().decode()  # keep its \r\n
    response = requests.get(f"{gbif.api_url}/occurrence/download/user/foobar", auth=("foobar", "wrong"), timeout=10)
    assert response.status_code == 401 and response.text == recorded


def test_citation_has_the_recorded_form(gbif: GbifEmulator, shared_gbif: Path) -> None:
    key = _new_key(gbif, "IS")
    done = _until(gbif, key, "SUCCEEDED")
    text = requests.get(f"{gbif.api_url}/occurrence/download/{key}/citation", timeout=10).text
    recorded = (shared_gbif / "api" / "download_citation.txt").read_text()
    form = re.compile(r"^GBIF\.org \(\d{1,2} [A-Z][a-z]+ \d{4}\) GBIF Occurrence Download https://doi\.org/(\S+)\n$")
    assert form.match(recorded) and form.match(text).group(1) == done["doi"]


def test_refusals_as_gbif(gbif: GbifEmulator) -> None:
    unknown = _post(gbif, {"creator": "demo", "predicate": PREDICATE, "notification_address": ["x@example.org"]})
    assert unknown.status_code == 400 and "notification_address" in unknown.text
    assert _post(gbif, {"creator": "ann", "predicate": PREDICATE}).status_code == 401  # creator is not the user
    assert _post(gbif, {"predicate": PREDICATE}, password="wrong").status_code == 401
    bad = _post(gbif, {"predicate": {"type": "equalz", "key": "COUNTRY", "value": "DK"}})
    assert bad.status_code == 400 and "equalz" in bad.text


def test_identical_request_returns_the_existing_key(gbif: GbifEmulator) -> None:
    first = _new_key(gbif, "EE", user="cat")
    assert _new_key(gbif, "EE", user="cat") == first
    assert _new_key(gbif, "LV", user="cat") != first


def test_fourth_simultaneous_download_is_refused_with_420(gbif: GbifEmulator) -> None:
    keys = [_new_key(gbif, country, user="ben") for country in ("DE", "FR", "ES")]
    refused = _post(gbif, {"predicate": {**PREDICATE, "value": "IT"}}, user="ben")
    assert refused.status_code == 420 and refused.text.startswith("A download limitation is exceeded:")
    gbif.set_status(keys[0], "KILLED")  # a slot frees up
    assert _post(gbif, {"predicate": {**PREDICATE, "value": "IT"}}, user="ben").status_code == 201


def test_archive_redirects_to_another_host_that_honours_range(gbif: GbifEmulator) -> None:
    key = _new_key(gbif, "PL")
    _until(gbif, key, "SUCCEEDED")
    link = requests.get(f"{gbif.api_url}/occurrence/download/request/{key}.zip", allow_redirects=False, timeout=10)
    assert link.status_code == 302
    location = link.headers["Location"]
    assert location.startswith(gbif.archive_url) and not location.startswith(gbif.api_url.rsplit("/", 1)[0])
    whole = requests.get(location, timeout=10)
    assert whole.status_code == 200 and whole.content[:4] == b"PK\x03\x04"
    tail = requests.get(location, headers={"Range": "bytes=100-"}, timeout=10)
    assert tail.status_code == 206 and tail.content == whole.content[100:]
    assert tail.headers["Content-Range"] == f"bytes 100-{len(whole.content) - 1}/{len(whole.content)}"


def test_forced_states_and_erased_archive(gbif: GbifEmulator) -> None:
    key = _new_key(gbif, "LT")
    _until(gbif, key, "SUCCEEDED")
    gbif.set_status(key, "FILE_ERASED")
    body = _status(gbif, key)
    assert body["status"] == "FILE_ERASED" and "doi" in body
    gone = requests.get(f"{gbif.api_url}/occurrence/download/request/{key}.zip", allow_redirects=False, timeout=10)
    assert gone.status_code == 410
    failing = _new_key(gbif, "HU")
    gbif.set_status(failing, "FAILED")
    assert _status(gbif, failing)["status"] == "FAILED"
    time.sleep(0.6)  # its lifecycle must not bring it back to SUCCEEDED
    assert _status(gbif, failing)["status"] == "FAILED"


def test_unknown_key_is_404(gbif: GbifEmulator) -> None:
    assert requests.get(f"{gbif.api_url}/occurrence/download/0999999-250101000000000", timeout=10).status_code == 404


def test_request_log_and_injected_faults(gbif: GbifEmulator) -> None:
    gbif.fail_next("/v1/occurrence/download/0", 503, "maintenance", times=1)
    url = f"{gbif.api_url}/occurrence/download/0000001-x"
    first, second = requests.get(url, timeout=10), requests.get(url, timeout=10)
    assert (first.status_code, first.text, second.status_code) == (503, "maintenance", 404)
    assert [(r.method, r.status) for r in gbif.requests[-2:]] == [("GET", 503), ("GET", 404)]


def test_species_match_v1_and_v2_have_the_recorded_shapes(gbif: GbifEmulator, shared_gbif: Path) -> None:
    root = gbif.api_url.removesuffix("/v1")
    v1 = requests.get(f"{root}/v1/species/match", params={"name": "Helianthus annuus"}, timeout=10).json()
    recorded_v1 = _recorded(shared_gbif, "species_match_v1_exact.json")
    assert _shape(v1) == _shape(recorded_v1) and v1["usageKey"] == 9206251
    none_v1 = requests.get(f"{root}/v1/species/match", params={"name": "Zzzz qqqq"}, timeout=10).json()
    assert set(none_v1) == set(_recorded(shared_gbif, "species_match_v1_none.json"))
    v2 = requests.get(f"{root}/v2/species/match", params={"scientificName": "Helianthus annuus"}, timeout=10).json()
    recorded_v2 = _recorded(shared_gbif, "species_match_v2_exact.json")
    assert set(v2["usage"]) <= set(recorded_v2["usage"]) | {"code"} and v2["usage"]["key"] == "9206251"
    assert [c["rank"] for c in v2["classification"]] == [c["rank"] for c in recorded_v2["classification"]]
    assert all(isinstance(c["key"], str) for c in v2["classification"])


def test_only_loopback_addresses_are_accepted() -> None:
    with pytest.raises(ValueError, match="loopback"):
        GbifEmulator(host="0.0.0.0")
