"""Politeness per host: adaptive concurrency limits, Retry-After, and retries with backoff.

Each host has its own limit. It starts at ``per_host`` (or the host's override) and,
while every slot is busy and the host answers well, grows up to ``per_host_max``
(default 4 x the start): quickly until the host's first 429/503, then slowly, and never
within 30 s of one. It halves on a 429/503; a 429/503 also pauses that host
for its ``Retry-After`` (or an exponential backoff with jitter). Other hosts never wait
for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from gbifxdl.fetch.download import Attempt, attempt
from gbifxdl.fetch.settings import FetchSettings

# never sleep longer than this for one Retry-After (a host asking hours is treated as failing)
MAX_RETRY_AFTER = 600.0
# a host that asked us to slow down gets no extra slot for this many seconds
CALM_AFTER_THROTTLE = 30.0


class HostLimiter:
    """The concurrency slots of one host, with a pause after it asks us to slow down.

    Waiters queue in order and a freed slot is handed to exactly one of them (thousands
    of rows may wait on a big host: waking them all on every release would cost more
    than the downloads).
    """

    def __init__(self, start: int, ceiling: int) -> None:
        self.limit = float(start)
        self.ceiling = max(start, ceiling)
        self.in_use = 0
        self.paused_until = 0.0
        self.throttles = 0
        self.last_decrease = -CALM_AFTER_THROTTLE
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        """Wait for a free slot and for any pause to end."""
        loop = asyncio.get_running_loop()
        if not self._waiters and self.in_use < int(self.limit) and loop.time() >= self.paused_until:
            self.in_use += 1
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        self._dispatch()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.in_use -= 1  # the slot came with the cancellation: pass it on
                self._dispatch()
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def release(self, result: Attempt | None) -> None:
        """Free a slot, adapting the limit to how the host answered."""
        now = asyncio.get_running_loop().time()
        if result is not None and result.throttle:
            self.throttles += 1
            # the answers of one burst count as one signal: halve at most once a second
            if now - self.last_decrease >= 1.0:
                self.limit = max(1.0, self.limit / 2)
                self.last_decrease = now
        elif (result is not None and result.outcome == "ok" and self.in_use >= int(self.limit)
              and now - self.last_decrease >= CALM_AFTER_THROTTLE):
            # every slot busy and the host answers well: until its first 429/503 grow fast
            # (a slow host then soon has enough requests in flight), after it only slowly
            step = 0.5 if self.throttles == 0 else 0.25 / self.limit
            self.limit = min(float(self.ceiling), self.limit + step)
        self.in_use -= 1
        self._dispatch()

    def pause(self, seconds: float) -> None:
        """Stop starting requests on this host for ``seconds``."""
        loop = asyncio.get_running_loop()
        self.paused_until = max(self.paused_until, loop.time() + seconds)

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self.paused_until:
            if self._timer is None:
                self._timer = loop.call_at(self.paused_until, self._resume)
            return
        while self._waiters and self.in_use < int(self.limit):
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self.in_use += 1
            fut.set_result(None)

    def _resume(self) -> None:
        self._timer = None
        self._dispatch()


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
    """The final result of downloading one URL, after every attempt."""

    data: list[bytes] | None           # the body's chunks
    outcome: str
    error: str | None
    status: int | None
    attempts: int
    host: str


class Scheduler:
    """Downloads URLs politely: per-host limits, pauses, retries with backoff."""

    def __init__(self, session: aiohttp.ClientSession, settings: FetchSettings) -> None:
        self.session = session
        self.settings = settings
        self.hosts: dict[str, HostLimiter] = {}

    def limiter(self, host: str) -> HostLimiter:
        """Return the limiter of ``host``, creating it on first use."""
        lim = self.hosts.get(host)
        if lim is None:
            start = self.settings.limit_for(host)
            ceiling = self.settings.per_host_max or 4 * start
            # an explicit override is a promise to the host: never grow past it
            if host in dict(self.settings.per_host_overrides):
                ceiling = start
            lim = self.hosts[host] = HostLimiter(start, ceiling)
        return lim

    async def fetch(self, url: str, before_request: Callable[[], Awaitable[None]] | None = None) -> Fetched:
        """Return the bytes of ``url`` or its failure, retrying transient failures.

        ``before_request`` is awaited once a host slot is held, before each request (the
        caller uses it to hold back downloads while processing is behind, so that the
        images in memory stay bounded).
        """
        host = host_of(url)
        lim = self.limiter(host)
        settings = self.settings
        result = Attempt(None, "connection", "not attempted")
        attempts = 0
        while attempts < settings.max_attempts:
            await lim.acquire()
            current: Attempt | None = None
            try:
                if before_request is not None:
                    await before_request()
                attempts += 1
                current = result = await attempt(self.session, url, settings)
            finally:
                lim.release(current)
            if result.outcome == "ok" or not result.transient or attempts >= settings.max_attempts:
                break
            delay = backoff(settings.retry_backoff, attempts)
            if result.throttle:
                if result.retry_after is not None:
                    if result.retry_after > MAX_RETRY_AFTER:
                        break
                    delay = result.retry_after
                lim.pause(delay)
            await asyncio.sleep(delay)
        return Fetched(result.data, result.outcome, result.error, result.status, attempts, host)


def backoff(base: float, attempt_number: int) -> float:
    """Return the delay before the next attempt: exponential, with +-50% jitter."""
    return base * 2 ** (attempt_number - 1) * random.uniform(0.5, 1.5)


_NETLOC = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


def host_of(url: str) -> str:
    """Return the host (with port when given) of ``url``, lower-case ("" when it has none).

    A regular expression: ``urlsplit`` did the same at ten times the cost, on every URL.
    """
    m = _NETLOC.match(url)
    return m.group(1).lower().rsplit("@", 1)[-1] if m else ""
