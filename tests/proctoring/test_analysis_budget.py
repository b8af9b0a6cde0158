"""The Rekognition budget: a fair share per live worker, per-API slots, backoff on throttling.

Time is injected: the limiter's clock is advanced by its own sleeps, nothing waits.
"""

from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import ClientError

from proctoring.analysis.base import Throttled
from proctoring.analysis.budget import Budget
from proctoring.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _throttled() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DetectFaces"
    )


def test_each_worker_gets_its_share_of_the_account_rate() -> None:
    time = FakeTime()
    workers = [1]
    limiter = RateLimiter(
        10.0, burst="second", workers=lambda: workers[0], clock=time.clock, sleep=time.sleep
    )

    async def take(n: int) -> float:
        start = time.now
        for _ in range(n):
            await limiter.acquire()
        return time.now - start

    assert asyncio.run(take(21)) == pytest.approx(2.0, abs=0.11)  # 10/s alone
    workers[0] = 4  # the lease table now says four workers share the budget
    assert limiter.share == 2.5
    assert asyncio.run(take(10)) == pytest.approx(4.0, abs=0.41)


def test_throttling_is_retried_with_backoff_then_succeeds() -> None:
    time = FakeTime()
    budget = Budget(
        RateLimiter(100.0, burst="second", clock=time.clock, sleep=time.sleep),
        sleep=time.sleep,
        jitter=lambda low, high: high,
    )
    answers: list[object] = [_throttled(), _throttled(), {"FaceDetails": []}]

    async def request() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert asyncio.run(budget.call("DetectFaces", request)) == {"FaceDetails": []}
    assert budget.throttled == 2
    assert [s for s in time.slept if s >= 0.2] == [0.2, 0.4], "exponential backoff"


def test_persistent_throttling_raises_and_other_errors_pass_through() -> None:
    time = FakeTime()
    budget = Budget(
        RateLimiter(100.0, burst="second", clock=time.clock, sleep=time.sleep),
        attempts=3,
        sleep=time.sleep,
    )

    async def throttled() -> object:
        raise _throttled()

    with pytest.raises(Throttled, match="3 attempts"):
        asyncio.run(budget.call("DetectLabels", throttled))

    async def denied() -> object:
        raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "DetectLabels")

    with pytest.raises(ClientError):
        asyncio.run(budget.call("DetectLabels", denied))
    assert budget.throttled == 3
