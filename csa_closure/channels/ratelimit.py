"""Client-side rate limiting: a token bucket under Notify's 3,000 requests a minute.

Notify counts every request made with a key (sends and lookups), so one bucket serves both.
The default leaves headroom: 2,700 a minute with bursts of 50, so even a full burst on top of
a steady minute stays under the limit. Several processes sending with the same key each have
their own bucket: give each a share of the limit (``rate_per_minute``), and Notify's own 429
``RateLimitError`` is retried with backoff in any case.
"""

from __future__ import annotations

import time
from collections.abc import Callable

NOTIFY_REQUESTS_PER_MINUTE = 3_000
DEFAULT_RATE_PER_MINUTE = 2_700
DEFAULT_BURST = 50


class TokenBucket:
    """``acquire()`` takes one token, sleeping until one is there. The clock and sleep are
    injectable, so tests never sleep."""

    def __init__(
        self,
        rate_per_minute: float = DEFAULT_RATE_PER_MINUTE,
        burst: int = DEFAULT_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_second = rate_per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self.waited = 0.0  # seconds slept in total, for progress reports and tests

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_second)
        self._last = max(self._last, now)

    def acquire(self) -> float:
        """Take a token; return the seconds slept for it."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        wait = (1.0 - self._tokens) / self.rate_per_second
        self._sleep(wait)
        self.waited += wait
        # The token was earned by waiting; account for it from the moment it became due, so
        # a sleep that returns early or late does not change the long-run rate.
        self._tokens = 0.0
        self._last += wait
        return wait
