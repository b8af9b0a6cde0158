"""A worker's share of the Rekognition request budget.

The account's quota (per region, e.g. 50 TPS for DetectLabels in us-east-1,
5 TPS in many others) is shared by every live consumer worker. Each worker
gets ``rate / live_workers()`` requests per second - the lease coordinator
supplies ``live_workers`` (default: 1) - as the project's token bucket
(:class:`proctoring.ratelimit.RateLimiter`) with a burst of one second's share,
re-read on every request so a scale-out or a failover re-divides the budget
within a request. Each API also has its own
concurrency limit, so a slow API cannot hold all the slots.

Throttling answers (``ThrottlingException``, ``ProvisionedThroughputExceededException``,
``LimitExceededException``) are retried with full-jitter exponential backoff, each
retry paying for a new token; past ``attempts`` they raise ``Throttled``.

The clock and the sleep are injected, so tests drive time instead of waiting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from proctoring.analysis.base import Throttled
from proctoring.ratelimit import RateLimiter

__all__ = ["THROTTLING_CODES", "Budget"]

T = TypeVar("T")
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"}
)


class Budget:
    """Per-API concurrency, the shared rate, and backoff on throttling."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        concurrency: int = 4,
        attempts: int = 6,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.limiter = limiter
        self._concurrency = concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._attempts = attempts
        self._base = base_delay
        self._max = max_delay
        self._timeout = timeout
        self._sleep = sleep
        self._jitter = jitter
        self.throttled = 0
        """Throttling answers seen (a metric)."""

    async def call(self, api: str, request: Callable[[], Awaitable[T]]) -> T:
        """Send ``request`` within the budget; retry throttling; Throttled when it persists."""
        slots = self._slots.setdefault(api, asyncio.Semaphore(self._concurrency))
        for attempt in range(self._attempts):
            async with slots:
                await self.limiter.acquire()
                try:
                    async with asyncio.timeout(self._timeout):
                        return await request()
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") not in THROTTLING_CODES:
                        raise
                    self.throttled += 1
            await self._sleep(self._jitter(0.0, min(self._max, self._base * 2**attempt)))
        raise Throttled(f"Rekognition {api} still throttled after {self._attempts} attempts")
