"""``python -m bench.pool_handover``: the CPU a process-pool job costs beyond its own work.

Calls of a job that does nothing but return 60 kB (about a frame job's answer: a JPEG and
a thumbnail), made 40 at a time as the frame stage makes them (``PROCTOR_CONCURRENCY``
chunks in flight), on the consumer's own pool (``consumer.wiring.cpu_pool``):

- ``one job a call``: ``loop.run_in_executor`` for each, as the frame stage sent them
  before ``proctoring.pool.CallGroups``;
- ``CallGroups``: the same calls through it, at most one job per pool process.

Per call: CPU ms of this process (the event loop and the pool's threads in it) and of the
pool's processes; and the jobs sent. Single run, not in ``make bench``: the consumer's
figure (``bench/consumer_cpu.py``) is the one that counts; this shows where its change came
from (docs/benchmarks.md, "The pool's hand-over").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.harness import pool_cpu
from consumer.wiring import cpu_pool
from proctoring.pool import CallGroups, RenewingPool
from proctoring.settings import Settings

_ANSWER = bytes(60_000)
_IN_FLIGHT = 40
_CALLS = 4_000


def _answer(_: int) -> bytes:
    return _ANSWER


async def _per_call(
    pool: RenewingPool, call: Callable[[int], Awaitable[bytes]]
) -> tuple[float, float]:
    await asyncio.gather(*(call(i) for i in range(_IN_FLIGHT)))  # warm up
    own, workers = time.process_time(), pool_cpu(pool)
    for _ in range(_CALLS // _IN_FLIGHT):
        await asyncio.gather(*(call(i) for i in range(_IN_FLIGHT)))
    own, workers = time.process_time() - own, pool_cpu(pool) - workers
    return own * 1000 / _CALLS, workers * 1000 / _CALLS


async def _measure(pool: RenewingPool, workers: int) -> None:
    loop = asyncio.get_running_loop()

    async def alone(i: int) -> bytes:
        return await loop.run_in_executor(pool, _answer, i)

    groups = CallGroups(pool, _answer, jobs=workers)
    for name, call in (("one job a call", alone), ("CallGroups", groups)):
        sent = groups.sent
        own, pool_ms = await _per_call(pool, call)
        jobs = (groups.sent - sent) if call is groups else _CALLS + _IN_FLIGHT
        print(
            f"{name:15s} this process {own:.3f} ms a call, the pool's processes {pool_ms:.3f};"
            f" {jobs / (_CALLS + _IN_FLIGHT):.2f} jobs a call"
        )


def main() -> None:
    settings = Settings()
    with cpu_pool(settings) as pool:
        asyncio.run(_measure(pool, settings.cpu_workers))


if __name__ == "__main__":
    main()
