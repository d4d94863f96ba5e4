"""The GBIF client against the loopback emulator: the happy path and every error path."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from gbifxdl import compat, gbif
from gbifxdl.credentials import Credentials
from gbifxdl.errors import (
    AuthenticationError,
    DownloadErased,
    DownloadFailed,
    DownloadNotReady,
    GbifUnavailable,
    PredicateError,
    PredicateRejected,
    TooManyDownloads,
    WaitTimeout,
)
from gbifxdl.gbif import ApiSettings, ArchiveCheckFailed
from gbifxdl.testing.gbif_server import GbifEmulator

USERS = {"demo": "demo-password", "busy": "busy-pw", "zed": "zed-pw"}
DEMO = Credentials("demo", USERS["demo"])
FAST = ApiSettings(retries=2, backoff=0.01, max_backoff=0.02, timeout=10)
POLL = {"min_interval": 0.05, "max_interval": 0.1, "progress": False, "settings": FAST}


def country(code: str) -> dict:
    return {"type": "and", "predicates": [{"type": "equals", "key": "COUNTRY", "value": code},
                                          {"type": "equals", "key": "MEDIA_TYPE", "value": "StillImage"}]}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbifEmulator]:
    with GbifEmulator(users=USERS, n_occurrences=40, prepare_seconds=0.1, run_seconds=0.2,
                      archive_dir=tmp_path_factory.mktemp("archives")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def ready_key(emu: GbifEmulator) -> str:
    """A download that has SUCCEEDED."""
    key = gbif.post_request(country("DK"), credentials=DEMO, api_url=emu.api_url, settings=FAST)
    gbif.wait(key, api_url=emu.api_url, **POLL)
    return key


def test_post_wait_download_cite(emu: GbifEmulator, ready_key: str, tmp_path: Path) -> None:
    st = gbif.status(ready_key, api_url=emu.api_url)
    assert st.succeeded and st.size > 0 and st.doi
    path = gbif.download_archive(ready_key, tmp_path / "out", api_url=emu.api_url, progress=False, settings=FAST)
    assert path == tmp_path / "out" / f"{ready_key}.zip"
    assert path.read_bytes() == emu.download(ready_key).archive.read_bytes()
    assert "meta.xml" in zipfile.ZipFile(path).namelist()
    assert not (tmp_path / "out" / f"{ready_key}.zip.part").exists()
    assert st.doi in gbif.citation(ready_key, api_url=emu.api_url)
    assert gbif.status(st.doi, api_url=emu.api_url).key == ready_key  # a DOI works as well
    before = len(emu.requests)
    assert gbif.download_archive(ready_key, tmp_path / "out", api_url=emu.api_url, progress=False) == path
    assert not any(r.host == "archive" for r in emu.requests[before:])  # a whole copy is not fetched again


def test_full_request_payload_file_and_rgbif_alias(emu: GbifEmulator, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"creator": "demo", "notification_address": ["demo@example.org"], "format": "DWCA",'
                       ' "predicate": {"type": "equals", "key": "COUNTRY", "value": "GL"}}')
    key = gbif.post_request(payload, credentials=DEMO, api_url=emu.api_url, settings=FAST)
    request = emu.download(key).request
    assert request["notificationAddresses"] == ["demo@example.org"] and request["creator"] == "demo"


def test_predicate_checked_locally_before_sending(emu: GbifEmulator) -> None:
    before = len(emu.requests)
    with pytest.raises(PredicateError, match="TAXON_KEY"):
        gbif.post_request({"type": "equals", "key": "taxonKey", "value": "1"}, credentials=DEMO, api_url=emu.api_url)
    assert len(emu.requests) == before


def test_bad_password_is_an_authentication_error(emu: GbifEmulator) -> None:
    secret = "not-the-Right-pw-42"
    with pytest.raises(AuthenticationError) as info:
        gbif.post_request(country("SE"), credentials=Credentials("demo", secret), api_url=emu.api_url)
    assert "401" in str(info.value) and "GBIF_PWD" in str(info.value) and secret not in str(info.value)


def test_too_many_downloads_names_the_running_ones(emu: GbifEmulator) -> None:
    busy = Credentials("busy", USERS["busy"])
    keys = []
    for code in ("FR", "DE", "ES"):
        key = gbif.post_request(country(code), credentials=busy, api_url=emu.api_url)
        emu.set_status(key, "SUSPENDED")  # stays running as long as the test needs
        keys.append(key)
    with pytest.raises(TooManyDownloads) as info:
        gbif.post_request(country("IT"), credentials=busy, api_url=emu.api_url)
    message = str(info.value)
    assert info.value.status == 420 and all(key in message for key in keys)
    assert f"gbifxdl cancel {keys[0]}" in message
    cancelled = gbif.cancel(keys[0], credentials=busy, api_url=emu.api_url)
    assert cancelled.status == "CANCELLED"
    assert gbif.post_request(country("IT"), credentials=busy, api_url=emu.api_url)
    listing = gbif.list_downloads(credentials=busy, api_url=emu.api_url, limit=2)
    assert len(listing) == 2 and listing.count == 4 and not listing.end_of_records
    assert listing[0].source and listing[0].request["creator"] == "busy"


@pytest.mark.parametrize("code", [400, 413])
def test_rejected_request_carries_gbifs_reason(emu: GbifEmulator, code: int) -> None:
    emu.fail_next("/v1/occurrence/download/request", code, "Invalid search parameter FOO_BAR {\"x\": 1}")
    with pytest.raises(PredicateRejected) as info:
        gbif.post_request(country("PT"), credentials=DEMO, api_url=emu.api_url)
    assert info.value.status == code and "Invalid search parameter FOO_BAR" in str(info.value)


def test_unknown_key_is_not_ready(emu: GbifEmulator, tmp_path: Path) -> None:
    with pytest.raises(DownloadNotReady, match="gbifxdl wait"):
        gbif.status("0999999-250101000000000", api_url=emu.api_url)
    key = gbif.post_request(country("BE"), credentials=DEMO, api_url=emu.api_url)
    with pytest.raises(DownloadNotReady, match="not ready"):
        gbif.download_archive(key, tmp_path, api_url=emu.api_url, progress=False)
    assert not list(tmp_path.iterdir())


def test_erased_and_failed_downloads(emu: GbifEmulator, tmp_path: Path) -> None:
    erased = gbif.post_request(country("NL"), credentials=DEMO, api_url=emu.api_url)
    gbif.wait(erased, api_url=emu.api_url, **POLL)
    emu.set_status(erased, "FILE_ERASED")
    with pytest.raises(DownloadErased, match="post the same request again"):
        gbif.download_archive(erased, tmp_path, api_url=emu.api_url, progress=False)
    failed = gbif.post_request(country("LU"), credentials=DEMO, api_url=emu.api_url)
    emu.set_status(failed, "FAILED")
    with pytest.raises(DownloadFailed, match="FAILED"):
        gbif.wait(failed, api_url=emu.api_url, **POLL)


def test_erased_archive_link_answers_410(emu: GbifEmulator, ready_key: str, tmp_path: Path) -> None:
    # The status still says SUCCEEDED but the archive host has meanwhile lost the file.
    emu.fail_next(f"/v1/occurrence/download/request/{ready_key}", 410, "Gone")
    with pytest.raises(DownloadErased):
        gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False, settings=FAST)


def test_wait_gives_up_after_its_timeout(emu: GbifEmulator) -> None:
    key = gbif.post_request(country("AT"), credentials=DEMO, api_url=emu.api_url)
    emu.set_status(key, "SUSPENDED")
    with pytest.raises(WaitTimeout, match=f"gbifxdl wait {key}"):
        gbif.wait(key, api_url=emu.api_url, timeout=0.3, **POLL)
    seen = []
    emu.set_status(key, "RUNNING")  # back to its lifecycle
    final = gbif.wait(key, api_url=emu.api_url, on_status=lambda st, elapsed: seen.append(st.status), **POLL)
    assert final.succeeded and seen[-1] == "SUCCEEDED"


def test_503_is_retried_then_succeeds(emu: GbifEmulator, ready_key: str) -> None:
    emu.fail_next(f"/v1/occurrence/download/{ready_key}", 503, "maintenance", times=2)
    assert gbif.status(ready_key, api_url=emu.api_url, settings=FAST).succeeded
    statuses = [r.status for r in emu.requests if r.path == f"/v1/occurrence/download/{ready_key}"][-3:]
    assert statuses == [503, 503, 200]


def test_5xx_exhausted_is_gbif_unavailable(emu: GbifEmulator, ready_key: str) -> None:
    emu.fail_next(f"/v1/occurrence/download/{ready_key}", 502, "bad gateway", times=3)
    with pytest.raises(GbifUnavailable, match="3 attempts"):
        gbif.status(ready_key, api_url=emu.api_url, settings=FAST)


def test_connection_refused_is_gbif_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GbifUnavailable, match="connection refused.*run the same command again"):
        gbif.status("0000001-250101000000000", api_url=f"http://127.0.0.1:{port}/v1", settings=FAST)


def test_interrupted_download_resumes_with_range(emu: GbifEmulator, ready_key: str, tmp_path: Path) -> None:
    whole = emu.download(ready_key).archive.read_bytes()
    half = len(whole) // 2
    (tmp_path / f"{ready_key}.zip.part").write_bytes(whole[:half])
    before = len(emu.requests)
    path = gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False, settings=FAST)
    assert path.read_bytes() == whole
    fetched = [r for r in emu.requests[before:] if r.host == "archive"]
    assert [(r.range, r.status) for r in fetched] == [(f"bytes={half}-", 206)]


def test_corrupt_partial_is_a_clear_error_and_nothing_at_final_path(emu: GbifEmulator, ready_key: str, tmp_path: Path) -> None:
    whole = emu.download(ready_key).archive.read_bytes()
    part = tmp_path / f"{ready_key}.zip.part"
    part.write_bytes(b"\0" * (len(whole) // 2))  # right length, wrong bytes
    with pytest.raises(ArchiveCheckFailed, match="run the same command again"):
        gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False, settings=FAST)
    assert not (tmp_path / f"{ready_key}.zip").exists() and not part.exists()
    part.write_bytes(whole + b"extra")  # longer than GBIF's size
    with pytest.raises(ArchiveCheckFailed, match=f"{len(whole):,}"):
        gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False, settings=FAST)
    assert not (tmp_path / f"{ready_key}.zip").exists()
    # the next run starts afresh and succeeds
    assert gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False).read_bytes() == whole


def test_original_api_keeps_working(emu: GbifEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "payload_traits.json"
    payload.write_text('{"creator": "zed", "notificationAddresses": [], "sendNotification": false, "format": "DWCA",'
                       ' "predicate": {"type": "equals", "key": "COUNTRY", "value": "CH"}}')
    key = compat.post(payload, pwd=USERS["zed"], wait=False, api_url=emu.api_url)
    assert key and compat.poll_status(key, wait=False, api_url=emu.api_url) == "pending"
    assert compat.poll_status(key, wait_period=0.05, api_url=emu.api_url) == "succeeded"
    path = compat.download_occurrences(key, tmp_path / "data", "dwca", api_url=emu.api_url)
    assert path == tmp_path / "data" / f"{key}.zip" and zipfile.is_zipfile(path)
    assert compat.post(payload, pwd="wrong-pw", api_url=emu.api_url) is None  # as the original: printed, None
    assert "401" in capsys.readouterr().err
    other = gbif.post_request(country("CZ"), credentials=DEMO, api_url=emu.api_url)
    emu.set_status(other, "KILLED")
    assert compat.poll_status(other, wait_period=0.05, api_url=emu.api_url) == "failed"


def test_transfer_dropped_midway_resumes_in_the_same_call(emu: GbifEmulator, ready_key: str, tmp_path: Path) -> None:
    whole = emu.download(ready_key).archive.read_bytes()
    emu.cut_next(after_bytes=5000, times=2)  # two drops: the first at 5000, the second 5000 later
    before = len(emu.requests)
    path = gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False, settings=FAST)
    assert path.read_bytes() == whole
    fetched = [(r.range, r.status) for r in emu.requests[before:] if r.host == "archive"]
    assert fetched == [(None, 200), ("bytes=5000-", 206), ("bytes=10000-", 206)]


def test_transfer_dropping_every_time_keeps_the_partial(emu: GbifEmulator, ready_key: str, tmp_path: Path) -> None:
    emu.cut_next(after_bytes=1000, times=3)
    with pytest.raises(GbifUnavailable, match="resume"):
        gbif.download_archive(ready_key, tmp_path, api_url=emu.api_url, progress=False, settings=FAST)
    assert (tmp_path / f"{ready_key}.zip.part").stat().st_size == 3000
    assert not (tmp_path / f"{ready_key}.zip").exists()


def test_post_accepts_200_as_current_gbif_code_does(emu: GbifEmulator) -> None:
    emu.fail_next("/v1/occurrence/download/request", 200, "0000042-250101000000000")
    assert gbif.post_request(country("MT"), credentials=DEMO, api_url=emu.api_url) == "0000042-250101000000000"


def test_429_on_post_is_too_many_downloads_without_retry(emu: GbifEmulator) -> None:
    before = len(emu.requests)
    emu.fail_next("/v1/occurrence/download/request", 429, "Too many requests")
    with pytest.raises(TooManyDownloads, match="gbifxdl cancel"):
        gbif.post_request(country("CY"), credentials=DEMO, api_url=emu.api_url, settings=FAST)
    posts = [r for r in emu.requests[before:] if r.method == "POST"]
    assert [r.status for r in posts] == [429]
