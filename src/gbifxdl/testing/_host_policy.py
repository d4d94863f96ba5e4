"""How an emulated image host limits its clients: requests per second, requests per window, latency.

A :class:`HostPolicy` is given per host to :class:`~gbifxdl.testing.image_hosts.ImageHosts`.
Its :class:`PolicyState` decides, when a request arrives, whether the host answers it or
asks the client to slow down (429 with ``Retry-After``), and records every request that
arrives inside a ``Retry-After`` window the host gave earlier (a polite client sends none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# a request sent before the client could have read the 429 (in flight, or sent while
# the client's busy loop had not yet read it) is not held against it: it must arrive
# this much after the 429 was sent to count
GRACE = 0.25


@dataclass(frozen=True)
class HostPolicy:
    """Limits of one emulated host (None: no such limit)."""

    rate: float | None = None          # requests per second (a token bucket holding one second)
    per_window: int | None = None      # requests answered per window, 429 beyond until it ends
    window: float = 60.0               # seconds of a ``per_window`` window
    latency: float | None = None       # seconds before answering (None: the hosts' latency)
    retry_after: int | None = None     # the Retry-After of its 429s (None: until a request would pass)


class PolicyState:
    """The running state of one host's policy; not thread-safe (the caller holds a lock)."""

    def __init__(self, policy: HostPolicy) -> None:
        self.policy = policy
        self.tokens = max(1.0, policy.rate or 1.0)
        self.last = 0.0
        self.window_start: float | None = None
        self.window_count = 0
        # the Retry-After window given last: (first 429 of the window, when it ends)
        self.pause_start = 0.0
        self.pause_end = 0.0
        self.inside_window = 0     # requests that arrived inside a Retry-After window
        self.throttled = 0         # 429 answers sent by the policy
        self.answered = 0

    def admit(self, now: float) -> int | None:
        """Return None to answer the request arriving at ``now``, else the Retry-After seconds to send."""
        if self.pause_start + GRACE < now < self.pause_end - GRACE:
            self.inside_window += 1
        policy = self.policy
        wait = 0.0
        if policy.rate:
            capacity = max(1.0, policy.rate)
            self.tokens = min(capacity, self.tokens + (now - self.last) * policy.rate) if self.last else self.tokens
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
            else:
                wait = (1.0 - self.tokens) / policy.rate
        if not wait and policy.per_window:
            if self.window_start is None or now >= self.window_start + policy.window:
                self.window_start, self.window_count = now, 0
            if self.window_count < policy.per_window:
                self.window_count += 1
            else:
                wait = self.window_start + policy.window - now
        if not wait:
            self.answered += 1
            return None
        seconds = policy.retry_after or max(1, math.ceil(wait))
        self.throttled += 1
        if now >= self.pause_end:
            self.pause_start = now
        self.pause_end = max(self.pause_end, now + seconds)
        return seconds

    def note_retry_after(self, now: float, seconds: float) -> None:
        """Record a ``Retry-After`` the host sent for another reason (a fault)."""
        if now >= self.pause_end:
            self.pause_start = now
        self.pause_end = max(self.pause_end, now + seconds)
