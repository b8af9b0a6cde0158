"""The one token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``.

The default burst of one spaces acquisitions ``1/rate`` apart, so no window of
one second ever holds more than ``rate`` of them; a larger burst lets that
many through at once and then ``rate`` per second (up to ``burst + rate`` in
the first second); ``burst="second"`` holds one second's share (at least one).

A rate shared by several processes is divided by ``workers()``, re-read on every
acquisition, so a scale-out or a failover re-divides it within a request:

- Chime SDK messaging accepts 30 ``SendChannelMessage`` calls per second; the
  alert forwarder runs with a reserved concurrency of one, so one bucket per
  process is the account's limit;
- the Rekognition quota (per region and API) is shared by every live consumer
  worker, whose count the lease coordinator supplies
  (:class:`proctoring.analysis.budget.Budget`).

The clock and the sleep are injected, so the tests measure the schedule without
waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: int | Literal["second"] = 1,
        workers: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = rate
        self.burst = burst
        self._workers = workers
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0 if burst == "second" else float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0
        """Seconds spent waiting for tokens (a metric: how much the bucket holds back)."""

    @property
    def share(self) -> float:
        """This process's acquisitions per second now."""
        return self.rate / max(1, int(self._workers()))

    def _refill(self, share: float) -> None:
        now = self._clock()
        cap = max(share, 1.0) if self.burst == "second" else float(self.burst)
        self._tokens = min(cap, self._tokens + (now - self._updated) * share)
        self._updated = now

    async def acquire(self) -> None:
        """Wait until a token is free and take it (callers are served in order)."""
        async with self._lock:
            share = self.share
            self._refill(share)
            while self._tokens < 1 - 1e-9:  # float sums of pauses land a hair under 1
                pause = (1 - self._tokens) / share
                self.waited += pause
                await self._sleep(pause)
                share = self.share
                self._refill(share)
            self._tokens = max(0.0, self._tokens - 1)
