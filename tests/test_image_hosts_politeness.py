"""The emulated image hosts limit rates, serve renditions, opt out and redirect across hosts, as documented."""

from __future__ import annotations

import io
import time

import pytest
import requests
from PIL import Image

from gbifxdl.testing.image_hosts import HostPolicy, ImageHosts


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=10, headers=headers)


def size_of(response: requests.Response) -> tuple[int, int]:
    return Image.open(io.BytesIO(response.content)).size


@pytest.fixture(scope="module")
def hosts() -> ImageHosts:
    with ImageHosts(2, max_side=1200, exact_size=True) as h:
        yield h


def test_a_rate_limited_host_answers_429_beyond_its_rate_and_counts_requests_inside_the_window() -> None:
    with ImageHosts(1, max_side=64, policies={0: HostPolicy(rate=2)}) as h:
        codes = [get(h.photo_url(i)).status_code for i in range(4)]
        assert codes[:2] == [200, 200] and 429 in codes[2:]
        refused = get(h.photo_url(9))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert h.throttled(h.base_urls[0]) >= 2 and h.requests_inside_retry_after() == 0
        time.sleep(0.4)  # past the grace, still inside the window
        get(h.photo_url(10))
        assert h.requests_inside_retry_after(h.base_urls[0]) == 1
        time.sleep(1.2)
        assert get(h.photo_url(11)).status_code == 200


def test_a_host_answers_429_after_n_requests_per_window() -> None:
    with ImageHosts(1, max_side=64, policies={0: HostPolicy(per_window=3, window=2.0)}) as h:
        codes = [get(h.photo_url(i)).status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert int(get(h.photo_url(6)).headers["Retry-After"]) <= 2


def test_inaturalist_renditions_have_their_sizes_and_never_enlarge(hosts: ImageHosts) -> None:
    base = hosts.base_urls[0]
    sizes = {s: max(size_of(get(f"{base}/photos/7/{s}.jpg"))) for s in ("original", "large", "medium", "small")}
    assert sizes == {"original": 1200, "large": 1024, "medium": 500, "small": 240}
    with ImageHosts(1, max_side=300) as small:
        original = max(size_of(get(small.photo_url(7))))
        assert max(size_of(get(f"{small.base_urls[0]}/photos/7/large.jpg"))) == original <= 300
    assert max(size_of(get(f"{base}/tiny/photos/7/large.jpg"))) == 100
    assert get(f"{base}/norendition/photos/7/large.jpg").status_code == 404
    assert get(f"{base}/norendition/photos/7/original.jpg").status_code == 200


def test_iiif_and_flickr_paths(hosts: ImageHosts) -> None:
    base = hosts.base_urls[0]
    assert max(size_of(get(f"{base}/iiif/3/full/max/0/default.jpg"))) == 1200
    assert max(size_of(get(f"{base}/iiif/3/full/!200,200/0/default.jpg"))) == 200
    assert max(size_of(get(f"{base}/65535/3_abc123_o.jpg"))) == 1200
    assert max(size_of(get(f"{base}/65535/3_abc123_z.jpg"))) == 640


def test_opt_out_headers_redirects_across_hosts_and_the_user_agent(hosts: ImageHosts) -> None:
    base, other = hosts.base_urls
    assert get(f"{base}/optout/noai/4.jpg").headers["X-Robots-Tag"] == "noai"
    assert "X-Robots-Tag" not in get(hosts.photo_url(4)).headers
    moved = get(f"{base}/goto/1/photos/4/original.jpg")
    assert moved.status_code == 302 and moved.headers["Location"] == f"{other}/photos/4/original.jpg"
    get(hosts.photo_url(5), **{"User-Agent": "gbifxdl/test (+x; mailto:a@b.c)"})
    assert hosts.last_user_agent == "gbifxdl/test (+x; mailto:a@b.c)"
