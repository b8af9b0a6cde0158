"""Reading one leased shard: GetRecords into a bounded queue, batches out, checkpoints.

Two tasks per shard, joined by a queue of at most ``read_ahead`` batches
(backpressure: a slow processor stops the reader, memory stays bounded):

- the reader resumes after the lease's checkpoint (with enhanced fan-out,
  ``consumer.fan_out``, it takes the records Kinesis pushes instead), calls GetRecords at most
  once per ``min_get_interval`` (Kinesis allows 5 calls/s per shard) and once
  per ``poll_interval`` when the shard is idle, backs off exponentially on
  ``ProvisionedThroughputExceededException``, and asks for a new iterator
  after the last record it read when one expires;
- the processor hands each batch to the record-processing core (what was read while
  the last batch ran is joined into one batch: at most ``read_ahead + 1`` reads), through
  ``consumer.poison`` (retried with backoff while AWS fails, poison records parked), up
  to ``reads_in_flight`` batches at once: a batch starts while the one before is still
  being analysed and written, except for the students that one holds, whose records
  wait for it (:class:`_Overlap`: a student's records in order, one at a time). Each
  batch's last sequence number is checkpointed once it and every batch before it
  returned (every effect durable). At the end of a closed shard it checkpoints
  ``SHARD_END``, which lets the children start.

Both stop when the worker stops or the lease is lost; the batch in hand is
finished first, and a lost lease is never checkpointed (the write is
conditional). Then the processor forgets the sessions it kept for the shard's
students (``consumer.sessions``): whoever holds the lease next reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.batch import BatchOutcome, Record
from consumer.fan_out import FanOut
from consumer.leases import SHARD_END, TRIM_HORIZON, LeaseCoordinator, LeaseLost
from consumer.poison import BatchRunner
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.waiting import wait_any

__all__ = ["ShardConsumer"]

_log = structlog.get_logger(__name__)
_END = object()  # queued after the last batch of a closed shard


class ShardConsumer:
    """Reads and processes one shard while this worker holds its lease."""

    def __init__(
        self,
        shard_id: str,
        *,
        settings: Settings,
        kinesis: Any,
        runner: BatchRunner,
        leases: LeaseCoordinator,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        fan_out: FanOut | None = None,
    ) -> None:
        self.shard_id = shard_id
        self._settings = settings
        self._kinesis = kinesis
        self._runner = runner
        self._leases = leases
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock  # the records' read_at (latency breakdown)
        self._fan_out = fan_out  # records pushed (SubscribeToShard) instead of polled
        self._log = _log.bind(shard=shard_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until the worker stops, the lease is lost or the shard ends."""
        lost = self._leases.lost_event(self.shard_id)
        done = asyncio.Event()  # this shard's own stop: worker stop, lease lost, or shard end
        delay = self._leases.start_after(self.shard_id) - self._clock()
        if delay > 0:  # a stolen lease: the previous owner may still be finishing a batch
            await wait_any(stop, lost, within=delay)
        if stop.is_set() or lost.is_set():
            return
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._settings.read_ahead)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_relay(stop, lost, done))
                group.create_task(self._read(queue, done))
                group.create_task(self._process(queue, done))
        finally:  # the lease is the ownership of the shard's students' sessions
            self._runner.release(self.shard_id)

    async def _read(self, queue: asyncio.Queue[Any], done: asyncio.Event) -> None:
        checkpoint = self._leases.lease(self.shard_id).checkpoint
        if checkpoint == SHARD_END:
            done.set()
            return
        last_read = None if checkpoint == TRIM_HORIZON else checkpoint
        if self._fan_out is not None:
            await self._pushed(self._fan_out, last_read, queue, done)
            return
        iterator = await self._iterator(last_read)
        backoff = self._settings.min_get_interval
        while not done.is_set():
            started = self._clock()
            try:  # botocore bounds each attempt (call_timeout) and retries with backoff
                response = await self._kinesis.get_records(
                    ShardIterator=iterator, Limit=self._settings.batch_size
                )
            except (ClientError, BotoCoreError) as exc:
                code = (
                    exc.response.get("Error", {}).get("Code")
                    if isinstance(exc, ClientError)
                    else type(exc).__name__
                )
                if code == "ExpiredIteratorException":
                    iterator = await self._iterator(last_read)
                    continue
                if code == "ProvisionedThroughputExceededException":
                    self._metrics.add(MetricName.Throttles, Operation="GetRecords")
                backoff = min(backoff * 2, 5.0)
                self._log.warning("GetRecords failed; backing off", code=code, seconds=backoff)
                await wait_any(done, within=backoff * random.uniform(0.5, 1.0))
                continue
            backoff = self._settings.min_get_interval
            records = self._records(response)
            if records:
                last_read = records[-1].sequence_number
                await _put(queue, records, done)
            iterator = response.get("NextShardIterator")
            if iterator is None:
                await _put(queue, _END, done)
                return
            pause = self._settings.min_get_interval if records else self._settings.poll_interval
            await wait_any(done, within=max(0.0, pause - (self._clock() - started)))

    def _records(self, response: dict[str, Any]) -> list[Record]:
        """The records of a GetRecords response or a SubscribeToShard event; the lag metric."""
        read_at = self._wall_clock()
        if "MillisBehindLatest" in response:
            self._metrics.add(
                MetricName.MillisBehindLatest, response["MillisBehindLatest"], "Milliseconds"
            )
        return [
            Record(
                r["SequenceNumber"],
                r["Data"],
                r.get("PartitionKey", ""),
                arrived_at=_epoch(r.get("ApproximateArrivalTimestamp")),
                read_at=read_at,
            )
            for r in response["Records"]
        ]

    async def _pushed(
        self, fan_out: FanOut, after: str | None, queue: asyncio.Queue[Any], done: asyncio.Event
    ) -> None:
        """Enhanced fan-out: queue the records Kinesis pushes, until the shard ends or done."""

        async def pump() -> None:
            async for event in fan_out.events(self.shard_id, after):
                records = self._records(event)
                if records:
                    await _put(queue, records, done)
                if event.get("ContinuationSequenceNumber") is None:
                    await _put(queue, _END, done)
                    return

        pumping = asyncio.ensure_future(pump())
        await _first_future(pumping, done)  # done (stop, lease lost) cancels the subscription
        if pumping.done() and not pumping.cancelled():
            pumping.result()  # a failure of the reader is the shard consumer's

    async def _process(self, queue: asyncio.Queue[Any], done: asyncio.Event) -> None:
        """Take reads off the queue (what was read while the earlier ones ran joins into one
        read) and process up to ``reads_in_flight`` at once (:class:`_Overlap`); checkpoint
        each in read order once it and every read before it are done."""
        overlap = _Overlap(self._run_unit)
        try:
            while not done.is_set():
                await overlap.room(self._settings.reads_in_flight)
                item = await _get(queue, done)
                if item is None:
                    break
                ended = item is _END
                records: list[Record] = [] if ended else list(item)
                while not ended and not queue.empty():
                    # what was read while the last batch ran joins this one: one batch,
                    # processed concurrently, instead of one small batch after another
                    more = queue.get_nowait()
                    ended = more is _END
                    records += [] if ended else more
                if records:
                    overlap.start(records, self._checkpoint)
                if ended:
                    await overlap.drain()
                    await self._leases.checkpoint(self.shard_id, SHARD_END)
                    self._log.info("shard ended; children may start")
                    done.set()
                    return
            await overlap.drain()  # the batches in hand are finished first
        except LeaseLost:
            self._metrics.add(MetricName.CheckpointFailures)
            self._log.warning("lease lost; stopping this shard")
            done.set()
        finally:  # nothing of this shard runs on once it stopped (a no-op when drained)
            await overlap.drain(cancel=True)

    async def _run_unit(self, records: list[Record]) -> BatchOutcome:
        started = self._clock()
        with structlog.contextvars.bound_contextvars(shard=self.shard_id):
            outcome = await self._runner.run(records, shard_id=self.shard_id, check=self._held)
        self._metrics.add(
            MetricName.BatchLatencyMs, (self._clock() - started) * 1000, "Milliseconds"
        )
        return outcome

    async def _checkpoint(self, records: list[Record], outcome: BatchOutcome) -> None:
        await self._leases.checkpoint(self.shard_id, records[-1].sequence_number)
        self._metrics.add(MetricName.RecordsProcessed, len(records))
        self._log.info(
            "batch checkpointed",
            records=len(records),
            results=outcome.results,
            errors=outcome.errors,
            alerts=outcome.alerts,
            parked=outcome.parked,
        )

    def _held(self) -> None:
        if not self._leases.valid(self.shard_id):
            raise LeaseLost(f"lease {self.shard_id} is no longer valid")

    async def _iterator(self, after: str | None) -> str:
        kwargs: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
            if after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        response = await self._kinesis.get_shard_iterator(
            StreamName=self._settings.names.stream, ShardId=self.shard_id, **kwargs
        )
        iterator: str = response["ShardIterator"]
        return iterator


class _Overlap:
    """A shard's reads in flight: each one starts at once for the students no earlier read
    still holds, and after those reads for the others, so a student's records are always
    processed in order and one at a time; checkpoints follow the read order.

    One read (the records taken off the queue at once) becomes at most two *units*, each one
    ``BatchRunner.run`` (retries, parking): the records of students free now, and those of
    students an unfinished earlier unit holds, which waits for those units. A checkpoint
    after a read waits for its units and for the checkpoint of the read before it; it says
    every record up to the read's last is processed. Consecutive reads rarely share a
    student (each sends a chunk every 5 s, a read is a fraction of a second), so the second
    read's analysis and writes overlap the first's instead of queueing behind them.
    """

    def __init__(self, run: Callable[[list[Record]], Awaitable[BatchOutcome]]) -> None:
        self._run = run
        self._holders: dict[str, asyncio.Task[BatchOutcome]] = {}  # student -> latest unit
        self._checkpoints: list[asyncio.Task[None]] = []  # in read order, unfinished

    async def room(self, most: int) -> None:
        """Wait until fewer than ``most`` reads are in flight."""
        while len(self._checkpoints) >= most:
            await asyncio.wait([self._checkpoints[0]])
            self._forget()

    def start(
        self,
        records: list[Record],
        checkpoint: Callable[[list[Record], BatchOutcome], Awaitable[None]],
    ) -> None:
        """Start the read's units now; its checkpoint after them and after the earlier
        reads' checkpoints."""
        self._forget()  # the holders left are unfinished
        free = [r for r in records if r.partition_key not in self._holders]
        waiting = [r for r in records if r.partition_key in self._holders]
        started: list[tuple[asyncio.Task[BatchOutcome], list[Record]]] = []
        if free:
            started.append((asyncio.ensure_future(self._run(free)), free))
        if waiting:
            earlier = {self._holders[r.partition_key] for r in waiting}
            started.append((asyncio.ensure_future(self._after(earlier, waiting)), waiting))
        for unit, unit_records in started:
            self._holders.update(dict.fromkeys((r.partition_key for r in unit_records), unit))
        units = [unit for unit, _ in started]
        previous = self._checkpoints[-1] if self._checkpoints else None
        self._checkpoints.append(
            asyncio.ensure_future(self._checkpoint(units, previous, records, checkpoint))
        )

    async def drain(self, *, cancel: bool = False) -> None:
        """Wait for every read in flight (LeaseLost from them is raised); or cancel them."""
        while self._checkpoints:
            if cancel:
                for task in [*self._checkpoints, *self._holders.values()]:
                    task.cancel()
                await asyncio.gather(*self._checkpoints, return_exceptions=True)
                self._checkpoints.clear()
                return
            await self._checkpoints[0]
            self._forget()

    async def _after(
        self, earlier: set[asyncio.Task[BatchOutcome]], records: list[Record]
    ) -> BatchOutcome:
        await asyncio.wait(earlier)  # their failure is theirs: this unit runs after them
        return await self._run(records)

    @staticmethod
    async def _checkpoint(
        units: list[asyncio.Task[BatchOutcome]],
        previous: asyncio.Task[None] | None,
        records: list[Record],
        checkpoint: Callable[[list[Record], BatchOutcome], Awaitable[None]],
    ) -> None:
        if previous is not None:
            await previous  # in read order; its LeaseLost is this read's too
        outcome = BatchOutcome()
        for result in await asyncio.gather(*units):
            outcome += result
        await checkpoint(records, outcome)

    def _forget(self) -> None:
        """Drop finished checkpoints (at the front) and finished units' holds; a finished
        checkpoint's exception (LeaseLost) is raised here."""
        while self._checkpoints and self._checkpoints[0].done():
            self._checkpoints.pop(0).result()
        self._holders = {k: t for k, t in self._holders.items() if not t.done()}


def _epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


async def _relay(stop: asyncio.Event, lost: asyncio.Event, done: asyncio.Event) -> None:
    """Set ``done`` when the worker stops or the lease is lost."""
    await wait_any(stop, lost, done)
    done.set()


async def _put(queue: asyncio.Queue[Any], item: Any, done: asyncio.Event) -> None:
    """Queue an item, waiting for room (backpressure) unless the shard is done."""
    putter = asyncio.ensure_future(queue.put(item))
    await _first_future(putter, done)


async def _get(queue: asyncio.Queue[Any], done: asyncio.Event) -> Any:
    getter = asyncio.ensure_future(queue.get())
    await _first_future(getter, done)
    if getter.done() and not getter.cancelled():
        return getter.result()
    return None


async def _first_future(future: asyncio.Future[Any], done: asyncio.Event) -> None:
    stopper = asyncio.ensure_future(done.wait())
    try:
        await asyncio.wait([future, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not future.done():
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await future
