"""Politeness per host: adaptive concurrency and request rate, Retry-After, retries, renditions.

Each host has its own concurrency limit. It starts at ``per_host`` (or the host's
override) and, while every slot is busy and the host answers well, grows up to
``per_host_max`` (default 4 x the start): quickly until the host's first 429/503, then
slowly, and never within 30 s of one. It halves on a 429/503. Each host also has a
request rate (:mod:`~gbifxdl.fetch._host_rate`), unlimited until it first answers 429/503
(or ``per_host_rate``), learned from its answers. A 429/503 pauses every request to that
host for its ``Retry-After`` (or an exponential backoff with jitter) and does not use up
the image's attempts; the other hosts never wait for it. Redirects to another host hold
that host's slot and rate too. When resizing, the smallest big-enough rendition of a
photo is fetched first (:mod:`~gbifxdl.fetch.renditions`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import aiohttp

from gbifxdl.fetch._host_limiter import HostDeadline, HostLimiter, backoff
from gbifxdl.fetch._host_rate import HostRate
from gbifxdl.fetch._host_stats import HostStats
from gbifxdl.fetch.download import Attempt, attempt, host_of
from gbifxdl.fetch.renditions import big_enough, image_size, rendition_for
from gbifxdl.fetch.settings import FetchSettings

if TYPE_CHECKING:
    from gbifxdl.fetch._seams import GateFactory

# 429/503 answers one image may get, per allowed attempt, while its host serves others
THROTTLES_PER_IMAGE = 10
# renditions tried on a host before giving up on them there, when none has worked yet
RENDITION_TRIALS = 20
# hosts that get one connection whatever the settings: GBIF's image cache asks it of scripts
SINGLE_CONNECTION_HOSTS = ("api.gbif.org",)


class Backlog:
    """Holds back downloads while too many downloaded images wait for processing.

    A soft bound, in images and in bytes: while fewer than ``limit`` images and
    ``max_bytes`` wait, waiting downloads go (in order), so the bodies in memory stay
    below these plus the downloads in flight. Deep enough to hide latency: the workers
    must not run dry while the next requests are on their way.
    """

    def __init__(self, limit: int, max_bytes: int) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.count = 0
        self.bytes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _room(self) -> bool:
        return self.count < self.limit and self.bytes < self.max_bytes

    async def wait_room(self) -> None:
        """Return once there is room (in order of asking)."""
        if self._room() and not self._waiters:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            raise

    def add(self, n: int, nbytes: int) -> None:
        """Count ``n`` more (or fewer, when negative) images of ``nbytes`` waiting for processing."""
        self.count += n
        self.bytes += nbytes
        self._wake()

    def _wake(self) -> None:
        while self._room() and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)


@dataclass(frozen=True)
class Fetched:
    """The final result of downloading one image, after every attempt."""

    data: list[bytes] | None           # the body's chunks
    outcome: str
    error: str | None
    status: int | None
    attempts: int                      # requests made for it (redirect hops aside)
    host: str
    fetched_url: str | None = None     # the URL whose answer this is (a rendition, or the one given)


class HostScheduler:
    """Downloads images politely: per-host concurrency and rate, pauses, retries, renditions."""

    def __init__(self, session: aiohttp.ClientSession | None, settings: FetchSettings, *,
                 gate: GateFactory | None = None) -> None:
        self.session = session
        # makes what holds a request back until its hosts allow it: this process's limiters
        # by default; on a cluster, the limiters every worker shares (fetch.cluster)
        self.gate: GateFactory = gate or _Gate
        self.settings = settings
        self.hosts: dict[str, HostLimiter] = {}
        self._rates = dict(settings.per_host_rate_overrides)
        self._fixed = dict(settings.per_host_overrides)
        self._wants_renditions = (settings.renditions and settings.resize is not None
                                  and settings.should_reencode)

    def limiter(self, host: str) -> HostLimiter:
        """Return the limiter of ``host``, creating it on first use."""
        lim = self.hosts.get(host)
        if lim is None:
            start = self.settings.limit_for(host)
            ceiling = self.settings.per_host_max or 4 * start
            # an explicit override is a promise to the host: never grow past it
            if host in self._fixed:
                ceiling = start
            if host.split(":")[0] in SINGLE_CONNECTION_HOSTS:
                start = ceiling = 1  # GBIF asks scripts to use one connection to its image cache
            fixed_rate = self._rates.get(host)
            rate = HostRate(fixed_rate or self.settings.per_host_rate, fixed_rate)
            lim = self.hosts[host] = HostLimiter(host, start, ceiling, rate)
            lim.backoff_base = self.settings.retry_backoff
            lim.host_deadline = self.settings.host_deadline
        return lim

    def stats(self) -> list[HostStats]:
        """Return every host's traffic so far, busiest first."""
        return sorted((lim.snapshot() for lim in self.hosts.values()), key=lambda s: -s.requests)

    def stats_of(self, host: str) -> HostStats:
        """Return the traffic record of ``host`` (created on first use)."""
        return self.limiter(host.lower()).stats

    async def fetch(self, url: str, before_request: Callable[[], Awaitable[None]] | None = None) -> Fetched:
        """Return the bytes of ``url`` (or of its smallest big-enough rendition) or its failure.

        ``before_request`` is awaited once a host slot is held, before the first request (the
        caller uses it to hold back downloads while processing is behind, so that the
        images in memory stay bounded).
        """
        settings = self.settings
        rendition = None
        if self._wants_renditions:
            rendition = rendition_for(url, settings.resize or 0, settings.rendition_hosts)
            if rendition is not None and not self._renditions_work(host_of(rendition.url)):
                rendition = None
        spent = 0
        if rendition is not None:
            got = await self._fetch_url(rendition.url, before_request)
            spent = got.attempts
            lim = self.limiter(host_of(rendition.url))
            if got.outcome == "ok":
                size = image_size(got.data or [b""])
                if size is not None and big_enough(*size, settings.resize or 0, settings.resize_mode):
                    lim.rendition_failures = 0
                    lim.renditions_ok += 1
                    return got
            if got.outcome in ("opted_out", "host_deadline"):
                return got  # the host's answer for this photo, whatever its size
            lim.rendition_failures += 1
            before_request = None
        got = await self._fetch_url(url, before_request)
        return replace(got, attempts=got.attempts + spent) if spent else got

    def _renditions_work(self, host: str) -> bool:
        lim = self.limiter(host)
        return lim.renditions_ok > 0 or lim.rendition_failures < RENDITION_TRIALS

    async def _fetch_url(self, url: str, before_request: Callable[[], Awaitable[None]] | None) -> Fetched:
        """Return the bytes of ``url`` or its failure, retrying transient failures.

        A 429/503 does not use up an attempt: the host paused every request to it, and the
        image waits its turn again. It fails only when the host answered nothing but
        429/503 for ``host_deadline`` seconds, or paused us past that (outcome
        ``host_deadline``, for every image waiting on it), or after many throttled answers
        while the host serves others.
        """
        settings = self.settings
        gate = self.gate(self, before_request)
        result = Attempt(None, "connection", "not attempted")
        attempts = failed = throttled = 0
        host = host_of(url)
        while True:
            attempts += 1
            try:
                result = await attempt(self.session, url, settings, gate)
            except HostDeadline as exc:
                attempts -= 1 if gate.entered == 0 else 0
                result = Attempt(None, "host_deadline", str(exc), status=result.status, host=host)
                break
            finally:
                gate.entered = 0
            host = result.host or host
            if result.outcome == "ok" or not result.transient:
                break
            if result.throttle:
                throttled += 1
                if throttled >= THROTTLES_PER_IMAGE * settings.max_attempts:
                    result = replace(result, error=f"{result.error}, {throttled} times while {host} served others")
                    break
                continue  # the host's pause holds the next attempt back (until its host_deadline)
            failed += 1
            if failed >= settings.max_attempts:
                break
            await asyncio.sleep(backoff(settings.retry_backoff, failed))
        return Fetched(result.data, result.outcome, result.error, result.status, attempts, host, url)


class _Gate:
    """Holds a slot of each host a request goes to, the first one and every redirect's."""

    def __init__(self, scheduler: HostScheduler, before_request: Callable[[], Awaitable[None]] | None) -> None:
        self.scheduler = scheduler
        self.before_request = before_request
        self.entered = 0  # hosts entered in the current attempt

    async def enter(self, host: str) -> tuple[HostLimiter, float]:
        """Return the host's limiter and the time its request starts, once it may start."""
        lim = self.scheduler.limiter(host)
        while True:
            await lim.acquire()
            if self.before_request is not None:
                try:
                    await self.before_request()
                except BaseException:
                    lim.release(None)
                    raise
                self.before_request = None  # once per image
            # a slot handed over before a 429 arrived may reach this task after it (or after
            # the wait above): never send inside the pause that 429 started
            if not lim.paused():
                self.entered += 1
                return lim, asyncio.get_running_loop().time()
            lim.release(None)

    def leave(self, ticket: tuple[HostLimiter, float], result: Attempt | None, nbytes: int = 0) -> None:
        """Free the slot taken by :meth:`enter`, with how the host answered (None: no answer)."""
        lim, sent_at = ticket
        if result is not None and result.outcome == "opted_out":
            lim.stats.opted_out += 1
        lim.release(result, sent_at, nbytes)
