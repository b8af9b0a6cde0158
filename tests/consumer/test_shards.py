"""One shard's reader and processor: records read while a batch runs become one batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from consumer.batch import BatchOutcome, Record
from consumer.fan_out import FanOut
from consumer.leases import SHARD_END
from consumer.shards import ShardConsumer
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from tests.consumer.test_fan_out import _CONSUMER_ARN, _Leases, _pushed


class _Pushes:
    """Kinesis pushing one record per event; ``queued`` is set once the reader asked for
    the event after the last record's (so every record before it is in the queue)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self.queued = asyncio.Event()

    async def subscribe_to_shard(self, **params: Any) -> dict[str, Any]:
        async def stream() -> AsyncIterator[dict[str, Any]]:
            for n, event in enumerate(self._events):
                if n == len(self._events) - 1:
                    self.queued.set()
                yield event

        return {"EventStream": stream()}


class _SlowFirstBatch:
    """The first batch runs until every later record is queued behind it."""

    def __init__(self, until: asyncio.Event) -> None:
        self._until = until
        self.batches: list[list[str]] = []

    async def run(self, records: list[Record], *, shard_id: str, check: Any) -> BatchOutcome:
        self.batches.append([r.sequence_number for r in records])
        if len(self.batches) == 1:
            await self._until.wait()
        return BatchOutcome(results=len(records))

    def release(self, shard_id: str) -> None:
        """The shard is no longer read here (what the processor kept for it goes)."""


def test_records_queued_behind_a_slow_batch_are_processed_as_one_batch() -> None:
    """Three reads wait behind a slow batch (read-ahead 3): they go to the processor
    together, concurrently, not as three batches one after another; checkpoints follow."""
    kinesis = _Pushes([*(_pushed([n], n) for n in "1234"), _pushed([], None)])
    fan_out = FanOut(kinesis, stream="p-chunks", consumer_name="c")
    fan_out.consumer_arn = _CONSUMER_ARN
    leases, runner = _Leases(), _SlowFirstBatch(kinesis.queued)
    shard = ShardConsumer(
        "shardId-000000000000",
        settings=Settings(read_ahead=3),
        kinesis=kinesis,
        runner=runner,  # type: ignore[arg-type]
        leases=leases,  # type: ignore[arg-type]
        metrics=Metrics("Test", "consumer", lambda line: None),
        fan_out=fan_out,
    )

    async def run() -> None:
        async with asyncio.timeout(30):  # a deadline, not a pace
            await shard.run(asyncio.Event())

    asyncio.run(run())
    assert runner.batches == [["1"], ["2", "3", "4"]]
    assert leases.checkpoints == ["1", "4", SHARD_END]
