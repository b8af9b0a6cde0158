"""Kinesis enhanced fan-out: a shard's records pushed over SubscribeToShard instead of polled.

An option (``PROCTOR_FAN_OUT_CONSUMER``: the registered consumer's name; unset, the
default, polls with GetRecords). With it, the worker registers the stream consumer once
(``RegisterStreamConsumer``; an existing one is reused) and waits until it is ``ACTIVE``;
each shard's reader (``consumer.shards``) then takes its records from
:meth:`FanOut.events`: a subscription per shard that Kinesis keeps open for 5 minutes and
pushes each record within ~70 ms of its arrival (AWS's figure; polling waits up to
``PROCTOR_POLL_INTERVAL`` or ``PROCTOR_MIN_GET_INTERVAL``, 0.25 s and 0.2 s). When the
subscription ends it subscribes again after the last ``ContinuationSequenceNumber``; an
event without one is the end of a closed shard (its ``ChildShards`` follow). A failed
subscription (another still open for 5 s, throttled, AWS unavailable) is retried with
backoff from where it stopped. Each consumer has its own 2 MB/s per shard, so it does not
share the 5 GetRecords/s of the stream's other readers. It costs extra (per consumer-shard
hour and per GB) and no emulator has it (moto, kinesis-local): the calls are tested against
botocore's service model (``tests/consumer/test_fan_out.py``), the figures are AWS's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["FanOut"]

_log = structlog.get_logger(__name__)


class FanOut:
    """One registered stream consumer and its subscriptions; see the module docstring."""

    def __init__(
        self,
        kinesis: Any,
        *,
        stream: str,
        consumer_name: str,
        active_within: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream
        self._name = consumer_name
        self._active_within = active_within
        self._sleep = sleep
        self.consumer_arn: str | None = None

    async def register(self) -> str:
        """Register the consumer (or find it registered) and wait until it is ACTIVE."""
        summary = await self._kinesis.describe_stream_summary(StreamName=self._stream)
        stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        try:
            await self._kinesis.register_stream_consumer(
                StreamARN=stream_arn, ConsumerName=self._name
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        waited = 0.0
        while True:
            described = await self._kinesis.describe_stream_consumer(
                StreamARN=stream_arn, ConsumerName=self._name
            )
            consumer = described["ConsumerDescription"]
            if consumer["ConsumerStatus"] == "ACTIVE":
                self.consumer_arn = str(consumer["ConsumerARN"])
                _log.info("fan-out consumer active", consumer=self._name)
                return self.consumer_arn
            if waited >= self._active_within:
                raise TimeoutError(
                    f"stream consumer {self._name} not ACTIVE after {self._active_within:.0f} s"
                    f" ({consumer['ConsumerStatus']})"
                )
            await self._sleep(1.0)  # polling the control plane for the status, bounded above
            waited += 1.0

    async def events(self, shard_id: str, after: str | None) -> AsyncIterator[dict[str, Any]]:
        """The shard's ``SubscribeToShardEvent``s after sequence ``after`` (None: from the
        start), across subscriptions, until the shard is closed and read to its end."""
        if self.consumer_arn is None:
            raise RuntimeError("register() the consumer first")
        position = _position(after)
        backoff = 1.0
        while True:
            try:
                response = await self._kinesis.subscribe_to_shard(
                    ConsumerARN=self.consumer_arn, ShardId=shard_id, StartingPosition=position
                )
                async for event in response["EventStream"]:
                    pushed = event.get("SubscribeToShardEvent")
                    if pushed is None:
                        continue
                    backoff = 1.0
                    yield pushed
                    continuation = pushed.get("ContinuationSequenceNumber")
                    if continuation is None:
                        return  # a closed shard, read to its end
                    position = _position(continuation)
            except (ClientError, BotoCoreError) as exc:
                code = (
                    exc.response.get("Error", {}).get("Code")
                    if isinstance(exc, ClientError)
                    else type(exc).__name__
                )
                _log.warning("subscription failed; subscribing again", code=code, seconds=backoff)
                await self._sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 10.0)
            # a subscription lasts 5 minutes: subscribe again where it stopped


def _position(after: str | None) -> dict[str, str]:
    if after is None:
        return {"Type": "TRIM_HORIZON"}
    return {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
