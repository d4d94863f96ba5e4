"""The fault-injecting image hosts answer what their docstring promises, and count requests."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from gbifxdl.testing.image_hosts import ImageHosts


@pytest.fixture(scope="module")
def hosts() -> ImageHosts:
    with ImageHosts(2, max_side=300) as h:
        yield h


def get(url: str) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=10)


def test_photos_come_in_several_formats_and_are_deterministic(hosts: ImageHosts) -> None:
    formats = {Image.open(io.BytesIO(get(hosts.photo_url(i)).content)).format for i in range(8)}
    assert formats == {"JPEG", "PNG", "GIF", "WEBP", "TIFF"}
    assert get(hosts.photo_url(9, 0)).content == get(hosts.photo_url(9, 1)).content
    assert get(f"{hosts.base_urls[0]}/alias/3/9.jpg").content == get(hosts.photo_url(9)).content


def test_status_faults_and_recovering_faults(hosts: ImageHosts) -> None:
    assert [get(hosts.fault_url(k, 1)).status_code for k in ("404", "410", "403")] == [404, 410, 403]
    url = hosts.fault_url("500x2", 2)
    assert [get(url).status_code for _ in range(3)] == [500, 500, 200]
    assert hosts.requests_for(url) == 3


def test_retry_after_is_sent_and_early_retries_are_counted(hosts: ImageHosts) -> None:
    before = hosts.early_retries(hosts.base_urls[1])
    url = hosts.fault_url("429-after-2x1", 3, host=1)
    first = get(url)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert get(url).status_code == 200  # too early: counted
    assert hosts.early_retries(hosts.base_urls[1]) == before + 1
    dated = get(hosts.fault_url("503-date-5x1", 3))
    assert dated.status_code == 503 and dated.headers["Retry-After"].endswith("GMT")


def test_redirects_and_bodies(hosts: ImageHosts) -> None:
    loop = get(hosts.fault_url("redirect-loop", 4))
    assert loop.status_code == 302 and loop.headers["Location"].endswith("/fault/redirect-loop/4.jpg")
    assert get(hosts.fault_url("redirect-ftp", 4)).headers["Location"].startswith("ftp://")
    assert requests.get(hosts.fault_url("redirect-3", 4), timeout=10).content == get(hosts.photo_url(4)).content
    assert get(hosts.fault_url("html", 5)).headers["Content-Type"].startswith("text/html")
    assert get(hosts.fault_url("empty", 5)).content == b""
    assert get(hosts.fault_url("wrongtype", 5)).headers["Content-Type"].startswith("text/plain")
    with pytest.raises(requests.exceptions.RequestException):
        get(hosts.fault_url("truncated", 5))
    huge = requests.get(hosts.fault_url("huge-1", 5), timeout=10, stream=True)
    assert int(huge.headers["Content-Length"]) == 2**20
    huge.close()


def test_slow_first_byte_waits(hosts: ImageHosts) -> None:
    start = time.monotonic()
    get(hosts.fault_url("slow-300", 6))
    assert time.monotonic() - start >= 0.3


def test_connection_limit_answers_429_and_concurrency_is_recorded() -> None:
    with ImageHosts(1, latency=0.2, max_connections_per_host=2, max_side=100) as h:
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda i: get(h.photo_url(i)).status_code, range(6)))
        assert codes.count(429) >= 1 and codes.count(200) >= 2
        assert h.max_concurrent(h.base_urls[0]) >= 3


def test_random_faults_are_deterministic_per_seed() -> None:
    a = ImageHosts(1, seed=1, fault_rate=0.3)
    b = ImageHosts(1, seed=1, fault_rate=0.3)
    faults = [a.fault_of(i) for i in range(200)]
    assert faults == [b.fault_of(i) for i in range(200)]
    assert 30 <= sum(f is not None for f in faults) <= 90
    assert faults != [ImageHosts(1, seed=2, fault_rate=0.3).fault_of(i) for i in range(200)]
