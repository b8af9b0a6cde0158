"""Processing a batch until it is done: retries with backoff, and parking what never succeeds.

A batch fails for one of two reasons (``BatchFailed.poison``):

- AWS is unavailable (throttling, timeouts, a service outage, a refused
  credential): the batch is tried again, with exponential backoff and jitter,
  for as long as it takes. Nothing is skipped; the shard's lag grows and the
  iterator-age alarm tells the operator.
- The records themselves fail (AWS rejects a request as invalid, or the
  pipeline hits an error no check anticipated): after ``poison_attempts`` such
  failures the records are tried one at a time, in order, so that the good
  ones are processed, and each record that still fails ``poison_attempts``
  times is parked (``ChunkProcessor.park``: a row in the errors table a human
  can inspect, a metric, a log line; ``proctor parked replay`` puts it back on
  the stream). The shard then moves on.

The native worker and the KCL record processor both go through here, so
both behave the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_exponential_jitter

from consumer.batch import BatchFailed, BatchOutcome, Record
from consumer.processor import ChunkProcessor
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.settings import Settings

__all__ = ["BatchRunner"]

_log = structlog.get_logger(__name__)


class BatchRunner:
    """Runs batches through the processor until done; parks poison records."""

    def __init__(
        self,
        processor: ChunkProcessor,
        *,
        settings: Settings,
        metrics: Metrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._processor = processor
        self._attempts = settings.poison_attempts
        self._wait = wait_exponential_jitter(
            multiplier=settings.retry_backoff,
            max=settings.retry_max_backoff,
            jitter=settings.retry_backoff,
        )
        self._metrics = metrics
        self._sleep = sleep

    def release(self, shard_id: str) -> None:
        """This worker no longer holds ``shard_id``: what the processor kept for it goes."""
        self._processor.release_shard(shard_id)

    async def run(
        self,
        records: Sequence[Record],
        *,
        shard_id: str,
        check: Callable[[], None] = lambda: None,
    ) -> BatchOutcome:
        """Process ``records``; return once every one is processed or parked.

        ``check`` runs before every try and may raise to give up (the native
        worker raises ``LeaseLost`` when the shard's lease is no longer held).
        """
        try:
            return await self._until_done(records, shard_id, check)
        except BatchFailed as failed:  # poison: find the record(s) that keep failing
            if len(records) == 1:
                return await self._park(records[0], shard_id, failed)
            _log.warning(
                "batch keeps failing; trying its records one by one",
                shard=shard_id,
                records=len(records),
                error=str(failed),
            )
        outcome = BatchOutcome()
        for record in records:
            try:
                outcome += await self._until_done([record], shard_id, check)
            except BatchFailed as failed:
                outcome += await self._park(record, shard_id, failed)
        return outcome

    async def _until_done(
        self, records: Sequence[Record], shard_id: str, check: Callable[[], None]
    ) -> BatchOutcome:
        """Try until success; raise the last BatchFailed after ``poison_attempts`` poison tries."""
        poisoned = 0

        def stop(state: RetryCallState) -> bool:
            nonlocal poisoned
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, BatchFailed) and failure.poison:
                poisoned += 1
            return poisoned >= self._attempts

        def before_sleep(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            self._metrics.add(
                MetricName.BatchFailures, Poison=str(getattr(failure, "poison", False))
            )
            _log.error(
                "batch failed; processing it again",
                shard=shard_id,
                records=len(records),
                attempt=state.attempt_number,
                pause=round(state.upcoming_sleep, 2),
                error=str(failure),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(BatchFailed),
            stop=stop,
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                check()
                return await self._processor.process(records, shard_id=shard_id)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _park(self, record: Record, shard_id: str, failed: BatchFailed) -> BatchOutcome:
        await self._processor.park(record, shard_id=shard_id, error=failed, attempts=self._attempts)
        return BatchOutcome(parked=1)
