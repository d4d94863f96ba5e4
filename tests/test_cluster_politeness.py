"""Politeness holds across a Dask cluster: per-host concurrency, rate and Retry-After, whatever the workers (issue 13)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'gbifxdl[dask]'")

from aiohttp import web  # noqa: E402

from gbifxdl.fetch import FetchSettings, fetch  # noqa: E402
from gbifxdl.testing.image_hosts import HostPolicy, ImageHosts, write_selection  # noqa: E402

LIMITED_IN_FLIGHT = 3
LIMITED_RATE = 20.0
PER_HOST = 2  # the other hosts start at 2 in flight and may grow to 4 x 2 (per_host_max unset)


class RecordingHosts(ImageHosts):
    """The emulated image hosts, also recording when each request arrived, per host."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._arrivals: dict[str, list[float]] = defaultdict(list)
        self._arrivals_lock = threading.Lock()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._arrivals_lock:
            self._arrivals[request.host].append(time.monotonic())
        return await super()._handle(request)

    def arrivals(self, base_url: str) -> list[float]:
        """Return the arrival times (monotonic seconds) of every request to ``base_url``'s host."""
        with self._arrivals_lock:
            return sorted(self._arrivals[base_url.split("//")[1]])


def most_in_one_second(times: list[float]) -> int:
    """Return the most requests that arrived within any window of one second [t, t + 1)."""
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_most_in_one_second_counts_a_sliding_window() -> None:
    assert most_in_one_second([]) == 0
    assert most_in_one_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # 0.5 to 1.2
    assert most_in_one_second([0.0, 0.1, 0.2, 1.05, 1.15]) == 3
    assert most_in_one_second([0.0, 1.0, 2.0]) == 1  # a window is [t, t + 1)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
def test_a_hosts_limits_hold_across_every_worker_of_the_cluster(tmp_path: Path, workers: int) -> None:
    # host 0: configured to 3 in flight and 20 requests/s; one photo in four takes 400 ms
    # to answer (then the 3 slots bind) and the others none (then the rate binds); it also
    # counts requests as a host would (a 20/s token bucket holding one second, 429 beyond).
    # host 1: answers 429 with Retry-After: 1 beyond 8 requests/s; nothing configured for it.
    # host 2: no limit. Rows interleave the three, 20 per unit: many units run at once.
    policies = {0: HostPolicy(rate=LIMITED_RATE), 1: HostPolicy(rate=8, retry_after=1)}
    with RecordingHosts(3, max_side=100, policies=policies) as h:
        limited, throttling, free = h.base_urls
        urls = []
        for i in range(240):
            if i % 3 == 0:
                urls.append(h.fault_url("slow-400", i, host=0) if i % 4 == 0 else h.photo_url(i, host=0))
            else:
                urls.append(h.photo_url(i, host=i % 3))
        sel = write_selection(tmp_path / "sel.parquet", urls)
        netloc = limited.split("//")[1]
        settings = FetchSettings(shard_size=20, workers=0, retry_backoff=0.05, per_host=PER_HOST,
                                 per_host_overrides=((netloc, LIMITED_IN_FLIGHT),),
                                 per_host_rate_overrides=((netloc, LIMITED_RATE),))
        summary = fetch(sel, tmp_path / "out", settings, progress=False, cluster=f"local:{workers}")

        # every image was delivered (the throttling host's too: a 429 is not a failure)
        rows = pq.read_table(tmp_path / "out" / "metadata.parquet").to_pylist()
        assert summary.ok == len(urls) == len(rows)
        assert [r["identifier"] for r in rows] == urls
        assert all(r["outcome"] == "ok" and (tmp_path / "out" / r["path"]).is_file() for r in rows)

        # the limited host: never more in flight than 3; never a request its 20/s bucket
        # refused; never more in any second than the rate, plus the one request the limiter's
        # bucket lets through early after an idle moment, plus one: the scheduler paces the
        # slots it grants, and a request leaves its worker a round trip (and an event-loop
        # turn) after its grant, so two grants 50 ms apart may arrive 5 ms apart (seen: 21
        # and 22 in a second at local:4; see the report on issue 13)
        assert h.max_concurrent(limited) <= LIMITED_IN_FLIGHT
        assert h.throttled(limited) == 0
        arrivals = h.arrivals(limited)
        assert len(arrivals) == 80
        assert most_in_one_second(arrivals) <= LIMITED_RATE + 2
        # ... and the limits did bind: it was kept busy (not a run too slow to test anything)
        assert h.max_concurrent(limited) == LIMITED_IN_FLIGHT

        # the throttling host did throttle, and no worker sent it anything inside a
        # Retry-After window (counted with the single-machine rule: see _host_policy.GRACE)
        assert h.throttled(throttling) > 0
        assert h.requests_inside_retry_after(throttling) == 0
        assert h.requests_inside_retry_after() == 0
        assert h.max_concurrent(throttling) <= 4 * PER_HOST and h.max_concurrent(free) <= 4 * PER_HOST
