"""The token bucket keeps to its rate on an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from proctoring.ratelimit import RateLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_no_second_holds_more_than_the_rate() -> None:
    clock = _Clock()
    limiter = RateLimiter(30, clock=clock, sleep=clock.sleep)

    async def run() -> list[float]:
        times = []
        for _ in range(90):
            await limiter.acquire()
            times.append(clock.now)
        return times

    times = asyncio.run(run())
    assert times[0] == 0.0 and times[1] == pytest.approx(1 / 30)
    assert times[-1] == pytest.approx(89 / 30)  # 90 messages: three seconds at Chime's 30/s
    for start in times:
        in_that_second = [t for t in times if start - 1e-9 <= t < start + 1 - 1e-9]
        assert len(in_that_second) <= 30


def test_a_burst_passes_at_once_and_idle_time_refills_only_up_to_it() -> None:
    clock = _Clock()
    limiter = RateLimiter(10, burst=5, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()

    asyncio.run(take(5))
    clock.now += 60  # a quiet minute saves no more than the burst
    asyncio.run(take(6))
    assert clock.sleeps == [pytest.approx(0.1)]
    with pytest.raises(ValueError):
        RateLimiter(0)
