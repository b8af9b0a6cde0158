"""A token bucket for one process: at most ``rate`` acquisitions per second, bursts of ``burst``.

The default burst of one spaces acquisitions ``1/rate`` apart, so no window of
one second ever holds more than ``rate`` of them; a larger burst lets that
many through at once and then ``rate`` per second (up to ``burst + rate`` in
the first second).

Chime SDK messaging accepts 30 ``SendChannelMessage`` calls per second; the
alert forwarder runs with a reserved concurrency of one, so one bucket per
process is the account's limit. The clock and the sleep are injected, so the
tests measure the schedule without waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else 1
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds spent waiting, for metrics and tests

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait until a token is free and take it (callers are served in order)."""
        async with self._lock:
            self._refill()
            while self._tokens < 1 - 1e-9:  # float sums of pauses land a hair under 1
                pause = (1 - self._tokens) / self.rate
                self.waited += pause
                await self._sleep(pause)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1)
