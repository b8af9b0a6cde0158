"""One shard's reader and processor: records read while a batch runs become one batch, and
reads overlap (a student's records in order, checkpoints in read order)."""

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


def _consume(kinesis: _Pushes, runner: Any, leases: _Leases, *, reads_in_flight: int) -> None:
    """Consume the shard Kinesis pushes (read-ahead 3) to its end, within a deadline."""
    fan_out = FanOut(kinesis, stream="p-chunks", consumer_name="c")
    fan_out.consumer_arn = _CONSUMER_ARN
    shard = ShardConsumer(
        "shardId-000000000000",
        settings=Settings(read_ahead=3, reads_in_flight=reads_in_flight),
        kinesis=kinesis,
        runner=runner,
        leases=leases,  # type: ignore[arg-type]
        metrics=Metrics("Test", "consumer", lambda line: None),
        fan_out=fan_out,
    )

    async def run() -> None:
        async with asyncio.timeout(30):  # a deadline, not a pace
            await shard.run(asyncio.Event())

    asyncio.run(run())


def test_records_queued_behind_a_slow_batch_are_processed_as_one_batch() -> None:
    """Three reads wait behind a slow batch (read-ahead 3, one read in flight): they go to the
    processor together, concurrently, not as three batches one after another; checkpoints
    follow."""
    kinesis = _Pushes([*(_pushed([n], n) for n in "1234"), _pushed([], None)])
    leases, runner = _Leases(), _SlowFirstBatch(kinesis.queued)
    _consume(kinesis, runner, leases, reads_in_flight=1)
    assert runner.batches == [["1"], ["2", "3", "4"]]
    assert leases.checkpoints == ["1", "4", SHARD_END]


def _read(sequence: str, student: str) -> dict[str, Any]:
    """One pushed event with one record of ``student``'s (its partition key)."""
    event = _pushed([sequence], sequence)
    event["SubscribeToShardEvent"]["Records"][0]["PartitionKey"] = f"exam#{student}"
    return event


class _FirstWaitsForAnother:
    """Student a's first record is analysed only once student b's has finished: possible only
    if b's read overlaps a's. Notes when each batch started and finished."""

    def __init__(self) -> None:
        self.b_done = asyncio.Event()
        self.log: list[tuple[str, str]] = []

    async def run(self, records: list[Record], *, shard_id: str, check: Any) -> BatchOutcome:
        for record in records:
            self.log.append(("start", record.sequence_number))
        if any(r.sequence_number == "1" for r in records):
            await self.b_done.wait()
        for record in records:
            self.log.append(("end", record.sequence_number))
        if any(r.sequence_number == "2" for r in records):
            self.b_done.set()
        return BatchOutcome(results=len(records))

    def release(self, shard_id: str) -> None:
        """The shard is no longer read here."""


def test_a_later_read_overlaps_a_slow_one_keeping_each_students_order_and_checkpoints() -> None:
    """Student a's record 1 is slow (it waits for b's record 2, read after it). With two
    reads in flight, b's record is processed meanwhile; a's next record, 3, waits for 1
    (a student's records in order, one at a time); and the checkpoints never pass 1 before
    it is done, though 2 was done first. One read at a time would wait for ever here."""
    kinesis = _Pushes([_read("1", "a"), _read("2", "b"), _read("3", "a"), _pushed([], None)])
    leases, runner = _Leases(), _FirstWaitsForAnother()
    _consume(kinesis, runner, leases, reads_in_flight=2)
    log = runner.log
    assert log.index(("end", "2")) < log.index(("end", "1")), "b did not wait for a"
    assert log.index(("end", "1")) < log.index(("start", "3")), "a's records in order"
    assert leases.checkpoints[0] == "1", "never past an unfinished read"
    assert leases.checkpoints[-2:] == ["3", SHARD_END]
