"""One-shot calls fail fast when GBIF cannot be reached; a wait rides out outages once GBIF has answered.

The outage is made at the resolver: ``socket.getaddrinfo`` answers 127.0.0.1 for a made-up
name while "up" and raises ``socket.gaierror`` while "down" (in this process; no DNS query
leaves the machine). The GBIF emulator serves on loopback.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from gbifxdl import gbif
from gbifxdl.credentials import Credentials
from gbifxdl.errors import GbifUnavailable
from gbifxdl.gbif import ApiSettings, GbifUnreachable
from gbifxdl.testing.gbif_server import GbifEmulator

NAME = "gbif-emulator.test"
DEMO = Credentials("demo", "demo-password")
FAST = ApiSettings(retries=1, backoff=0.01, max_backoff=0.02, timeout=10)
POLL: dict[str, Any] = {"min_interval": 0.05, "max_interval": 0.1, "progress": False, "settings": FAST}
PREDICATE = {"type": "equals", "key": "COUNTRY", "value": "DK"}


class Resolver:
    """Resolves NAME to 127.0.0.1 while up; counts the lookups that failed while down."""

    def __init__(self) -> None:
        self.down = False
        self.failed = 0


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    real = socket.getaddrinfo
    state = Resolver()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name == NAME:
            if state.down:
                state.failed += 1
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            return real("127.0.0.1", port, *args, **kwargs)
        assert name in ("127.0.0.1", "localhost"), f"a test tried to resolve {name}"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return state


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbifEmulator]:
    with GbifEmulator(users={"demo": "demo-password"}, n_occurrences=20, prepare_seconds=0.05, run_seconds=0.05,
                      archive_dir=tmp_path_factory.mktemp("archives")) as emulator:
        yield emulator


def held_download(emu: GbifEmulator, country: str) -> tuple[str, str]:
    """Return (key, API URL through NAME) of a download held RUNNING until the test lets it go."""
    key = gbif.post_request({**PREDICATE, "value": country}, credentials=DEMO, api_url=emu.api_url, settings=FAST)
    emu.set_status(key, "SUSPENDED")
    return key, emu.api_url.replace("127.0.0.1", NAME)


def test_wait_rides_out_a_dns_outage_after_gbif_has_answered(emu: GbifEmulator, resolver: Resolver) -> None:
    key, api = held_download(emu, "DK")

    def recover() -> None:
        resolver.down = False
        emu.set_status(key, "RUNNING")  # back to its lifecycle: it succeeds shortly

    def on_status(st: gbif.DownloadStatus, elapsed: float) -> None:
        if st.is_running and not resolver.down and resolver.failed == 0:  # the first answer: lose the network
            resolver.down = True
            threading.Timer(0.6, recover).start()

    final = gbif.wait(key, api_url=api, on_status=on_status, **POLL)
    assert final.succeeded and resolver.failed >= 2  # several polls failed, and the wait went on


def test_wait_gives_up_after_max_outage(emu: GbifEmulator, resolver: Resolver) -> None:
    key, api = held_download(emu, "SE")

    def on_status(st: gbif.DownloadStatus, elapsed: float) -> None:
        resolver.down = True  # lost for good after the first answer

    start = time.monotonic()
    with pytest.raises(GbifUnavailable, match=f"gave up waiting for GBIF download {key}.*does not resolve"):
        gbif.wait(key, api_url=api, on_status=on_status, max_outage=0.3, **POLL)
    assert time.monotonic() - start < 15 and resolver.failed >= 2


def test_first_poll_that_cannot_resolve_fails_at_once(emu: GbifEmulator, resolver: Resolver) -> None:
    key, api = held_download(emu, "NO")
    resolver.down = True
    start = time.monotonic()
    with pytest.raises(GbifUnreachable, match=f"the host name {NAME} does not resolve.*--api-url or GBIF_API_URL"):
        gbif.wait(key, api_url=api, **{**POLL, "settings": ApiSettings()})  # default retries: none for DNS
    assert resolver.failed == 1 and time.monotonic() - start < 15


def test_wait_rides_out_503_even_on_its_first_poll(emu: GbifEmulator, resolver: Resolver) -> None:
    key, api = held_download(emu, "FI")
    emu.set_status(key, "RUNNING")
    emu.fail_next(f"/v1/occurrence/download/{key}", 503, "maintenance", times=4)  # beyond FAST's one retry
    assert gbif.wait(key, api_url=api, **POLL).succeeded
    statuses = [r.status for r in emu.requests if r.path == f"/v1/occurrence/download/{key}"]
    assert statuses[:4] == [503] * 4 and statuses[-1] == 200


def test_one_shot_calls_do_not_retry_an_unresolvable_name(emu: GbifEmulator, resolver: Resolver, tmp_path: Path) -> None:
    key, api = held_download(emu, "IS")
    resolver.down = True
    calls = [
        lambda: gbif.status(key, api_url=api),
        lambda: gbif.citation(key, api_url=api),
        lambda: gbif.download_archive(key, tmp_path, api_url=api, progress=False),
        lambda: gbif.cancel(key, credentials=DEMO, api_url=api),
        lambda: gbif.list_downloads(credentials=DEMO, api_url=api),
        lambda: gbif.post_request(PREDICATE, credentials=DEMO, api_url=api),
    ]
    for call in calls:
        before = resolver.failed
        with pytest.raises(GbifUnreachable, match=NAME):
            call()
        assert resolver.failed == before + 1  # asked once, not retried with backoff
    assert not list(tmp_path.iterdir())
