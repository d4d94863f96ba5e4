"""One host's limits: concurrency slots, request rate, and the pause it asked for.

See :mod:`gbifxdl.fetch.per_host` for how they adapt.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import TYPE_CHECKING

from gbifxdl.fetch._host_rate import HostRate
from gbifxdl.fetch._host_stats import HostStats

if TYPE_CHECKING:
    from gbifxdl.fetch.download import Attempt

# never sleep longer than this for one Retry-After (a host asking hours is treated as failing)
MAX_RETRY_AFTER = 600.0
# a host that asked us to slow down gets no extra slot for this many seconds
CALM_AFTER_THROTTLE = 30.0


class HostDeadline(Exception):
    """A host answered only 429/503 for ``host_deadline`` seconds (or paused us beyond it)."""


class HostLimiter:
    """The concurrency slots and request rate of one host, with a pause after it asks us to slow down.

    Waiters queue in order and a freed slot is handed to exactly one of them (thousands
    of rows may wait on a big host: waking them all on every release would cost more
    than the downloads). A slot is handed out only when the host's rate allows a request
    and no pause is running.
    """

    def __init__(self, host: str, start: int, ceiling: int, rate: HostRate) -> None:
        self.limit = float(start)
        self.ceiling = max(start, ceiling)
        self.rate = rate
        self.stats = HostStats(host, limit=start, ceiling=self.ceiling)
        self.in_use = 0
        self.paused_until = 0.0
        self.throttles = 0
        self.consecutive_throttles = 0
        self.last_decrease = -CALM_AFTER_THROTTLE
        self.last_served = float("-inf")       # when it last answered anything but 429/503
        self.throttled_since: float | None = None  # first 429/503 since it last served
        self.host_deadline = float("inf")
        self.rendition_failures = 0            # renditions that failed in a row here
        self.renditions_ok = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def _free(self, now: float) -> bool:
        return self.in_use < int(self.limit) and now >= self.paused_until and self.rate.delay(now) <= 0

    def _admit(self, now: float) -> None:
        self.in_use += 1
        self.rate.take(now)
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_use)

    def _expired(self, now: float) -> str | None:
        """Return why this host's images fail now (host_deadline), or None."""
        if self.throttled_since is None:
            return None
        deadline = self.throttled_since + self.host_deadline
        if now < deadline and self.paused_until <= deadline:
            return None
        return (f"{self.stats.host} answered only 429/503 for {now - self.throttled_since:.0f} s"
                + (f" and paused us for {self.paused_until - now:.0f} s more" if self.paused_until > now else "")
                + f"; host_deadline is {self.host_deadline:g} s")

    def try_acquire(self, now: float) -> bool:
        """Take a slot at once when one is free, nobody waits and the host's deadline holds; return whether it did.

        The common case, without a future: :meth:`acquire` tries it first, and the cluster's
        scheduler grants with it alone.
        """
        if self._waiters or self._expired(now) is not None or not self._free(now):
            return False
        self._admit(now)
        return True

    async def acquire(self) -> float:
        """Wait for a free slot, the host's rate and any pause to end; return when the request starts.

        Raises :class:`HostDeadline` when the host has answered only 429/503 for too long.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = self._expired(now)
        if expired is not None:
            raise HostDeadline(expired)
        if self.try_acquire(now):
            return now
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
        return loop.time()

    def paused(self) -> bool:
        """Return whether the host asked for a pause that is still running."""
        return asyncio.get_running_loop().time() < self.paused_until

    def release(self, result: Attempt | None, sent_at: float | None = None, nbytes: int = 0) -> None:
        """Free a slot, adapting the limits to how the host answered (None: no answer, or unused)."""
        now = asyncio.get_running_loop().time()
        if sent_at is not None:
            self.stats.requests += 1
            self.stats.bytes += nbytes
            self.stats.latency_sum += now - sent_at
        if result is not None and result.throttle:
            self.throttles += 1
            if self.throttled_since is None:
                self.throttled_since = now
            if now >= self.paused_until:  # the answers of one burst are one signal
                self.consecutive_throttles += 1
            self.stats.throttled += 1
            self.rate.throttled(sent_at if sent_at is not None else now, now, busy=bool(self._waiters))
            # the answers of one burst count as one signal: halve at most once a second
            if now - self.last_decrease >= 1.0:
                self.limit = max(1.0, self.limit / 2)
                self.last_decrease = now
            pause = result.retry_after
            if pause is None:
                pause = min(60.0, backoff(self.backoff_base, self.consecutive_throttles))
            self.pause(min(pause, MAX_RETRY_AFTER))
        elif result is not None:
            self.last_served = now
            self.throttled_since = None
            self.consecutive_throttles = 0
            self.rate.answered(sent_at or now, now, bound=bool(self._waiters))
            if (result.outcome == "ok" and self.in_use >= int(self.limit)
                    and now - self.last_decrease >= CALM_AFTER_THROTTLE):
                # every slot busy and the host answers well: until its first 429/503 grow fast
                # (a slow host then soon has enough requests in flight), after it only slowly
                step = 0.5 if self.throttles == 0 else 0.25 / self.limit
                self.limit = min(float(self.ceiling), self.limit + step)
        self.in_use -= 1
        self._dispatch()

    backoff_base = 1.0

    def pause(self, seconds: float) -> None:
        """Stop starting requests on this host for ``seconds``."""
        loop = asyncio.get_running_loop()
        self.paused_until = max(self.paused_until, loop.time() + seconds)
        self._dispatch()

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = self._expired(now) if self._waiters else None
        if expired is not None:
            # every waiting image fails now, rather than after a pause past the deadline
            while self._waiters:
                fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_exception(HostDeadline(expired))
            return
        while self._waiters and self.in_use < int(self.limit):
            wait = max(self.paused_until - now, self.rate.delay(now))
            if wait > 0:
                if self._timer is None:
                    self._timer = loop.call_at(now + wait, self._resume)
                return
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self._admit(now)
            fut.set_result(None)

    def _resume(self) -> None:
        self._timer = None
        self._dispatch()

    def snapshot(self) -> HostStats:
        """Return the host's stats with its current limits."""
        self.stats.limit = int(self.limit)
        self.stats.rate = self.rate.rate
        return self.stats


def backoff(base: float, attempt_number: int) -> float:
    """Return the delay before the next attempt: exponential, with +-50% jitter."""
    return base * 2 ** (attempt_number - 1) * random.uniform(0.5, 1.5)
