"""The request rate of one host, learned from its answers.

Requests are paced (a token bucket that holds about one request: they go out evenly
spaced, never in bursts a host would count against us). A host starts unlimited unless
a rate is given. When it answers 429 or 503, its rate becomes 0.9 x the rate at which
it was answering well (its answers over the last ten seconds, the pauses it asked for
included), and that rate is remembered as what the host allows. Then, while the
rate is what holds the requests back and the host answers well, the rate grows again:
quickly up to near the remembered rate, then by 1% of it per second (probing whether the
host allows more). The throttled answers of requests sent before a decrease are the
same signal and do not decrease it again.
"""

from __future__ import annotations

from collections import deque

# never slower than one request a minute (a host that wants less says so in Retry-After)
MIN_RATE = 1 / 60
# seconds of answers over which the rate a host allows is measured
WINDOW = 10.0
# after a decrease, grow quickly up to this fraction of the remembered rate, then probe
REGAIN = 0.95
PROBE = 0.01       # of the remembered rate, per second
BACKOFF = 0.9      # the new rate, times the rate measured when the host throttled
MIN_ANSWERS = 3   # answers in the window below which they tell no rate


class HostRate:
    """Pacing and rate adaptation of one host (None rate: unlimited)."""

    def __init__(self, start: float | None, ceiling: float | None) -> None:
        self.rate = start if ceiling is None or start is None else min(start, ceiling)
        self.ceiling = ceiling
        self.learned: float | None = None
        self.next_at = 0.0              # when the next request may start
        self.last_decrease = float("-inf")
        self.last_grow = 0.0
        # measurements start at the first request (the pauses a host asked for are part
        # of the rate it allows)
        self.window_from = float("-inf")
        self._answers: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Return the seconds until the next request may start (0: now)."""
        if self.rate is None:
            return 0.0
        # a little slack: timers fire late, and a late request must not push the next one
        return max(0.0, self.next_at - now - 0.05 / self.rate)

    def take(self, now: float) -> None:
        """Count a request starting at ``now``."""
        if self.window_from == float("-inf"):
            self.window_from = now
        if self.rate is not None:
            self.next_at = max(self.next_at, now - 0.5 / self.rate) + 1.0 / self.rate

    def answered(self, sent_at: float, now: float, *, bound: bool) -> None:
        """Adapt to an answer that was not a 429/503; ``bound``: requests wait for the rate."""
        self._answers.append(now)
        while self._answers and self._answers[0] < now - WINDOW:
            self._answers.popleft()
        if self.rate is None:
            return
        elapsed = min(1.0, now - self.last_grow)
        self.last_grow = now
        if not bound or now - self.last_decrease < 1.0:
            return
        if self.learned is None or self.rate < REGAIN * self.learned:
            self.rate *= 1.0 + 0.5 * elapsed
            if self.learned is not None:
                self.rate = min(self.rate, REGAIN * self.learned)
        else:
            self.rate += PROBE * self.learned * elapsed
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)

    def throttled(self, sent_at: float, now: float, *, busy: bool) -> None:
        """Adapt to a 429/503 answer to a request sent at ``sent_at``; ``busy``: more requests wait.

        A host throttling while we send it only now and then is not telling a rate (its
        pause is enough): the rate changes only while requests queue for the host.
        """
        if sent_at < self.last_decrease or now - self.last_decrease < 1.0 or not busy:
            return  # sent before the last decrease, or right after: part of the same signal
        start = max(now - WINDOW, self.window_from)
        answered = sum(1 for t in self._answers if t >= start)
        measured = answered / max(1e-3, now - start)
        # hosts count requests over a second or more: a burst of answers in 10 ms, or a
        # handful of them, tells no rate
        if answered < MIN_ANSWERS or now - start < 1.0:
            # too few answers to tell a rate: halve a known one, else rely on the pause
            # (and the halved concurrency) until the answers tell one
            if self.rate is None:
                return
            measured = self.rate / 2
        current = self.rate if self.rate is not None else float("inf")
        allowed = min(current, measured)
        self.learned = allowed
        self.rate = max(MIN_RATE, BACKOFF * allowed)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self.last_decrease = now
        self.last_grow = now
