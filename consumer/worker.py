"""Reading the stream: one worker that reads every shard and checkpoints after each batch.

This is the single-worker reader; it keeps the record-processing core
(``consumer.processor``) apart from how shards are read. Checkpoints live in
the lease table with the Kinesis Client Library's attribute names
(``leaseKey``, ``leaseOwner``, ``leaseCounter``, ``checkpoint``,
``checkpointSubSequenceNumber``, ``parentShardIds``), so an operator reads
them with the tools they know.

Per shard: resume after the checkpoint (or from the trim horizon), poll
GetRecords at most ``1 / poll_interval`` times a second when idle (the
limit is 5 calls/s per shard), hand each non-empty batch to the processor,
checkpoint its last sequence number once the processor returned, and at the
end of a closed shard checkpoint ``SHARD_END``. A batch whose processing
raised is not checkpointed; it is read again from the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.processor import BatchFailed, ChunkProcessor, Record
from proctoring.settings import Settings
from proctoring.storage import from_item, to_item

__all__ = ["SHARD_END", "Checkpoints", "Worker"]

SHARD_END = "SHARD_END"
_log = structlog.get_logger(__name__)


class Checkpoints:
    """Per-shard checkpoints in the lease table (KCL attribute names)."""

    def __init__(self, dynamodb: Any, table: str, owner: str) -> None:
        self._db = dynamodb
        self._table = table
        self.owner = owner

    async def get(self, shard_id: str) -> str | None:
        response = await self._db.get_item(
            TableName=self._table, Key=to_item({"leaseKey": shard_id}), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        checkpoint = from_item(response["Item"]).get("checkpoint")
        return None if checkpoint in (None, "TRIM_HORIZON") else str(checkpoint)

    async def set(self, shard_id: str, checkpoint: str, parents: list[str] | None = None) -> None:
        await self._db.update_item(
            TableName=self._table,
            Key=to_item({"leaseKey": shard_id}),
            UpdateExpression=(
                "SET checkpoint = :c, checkpointSubSequenceNumber = :z, leaseOwner = :o,"
                " parentShardIds = :p ADD leaseCounter :one"
            ),
            ExpressionAttributeValues=to_item(
                {":c": checkpoint, ":z": 0, ":o": self.owner, ":p": parents or [], ":one": 1}
            ),
        )


class Worker:
    """Reads all shards of the stream, one task per shard."""

    def __init__(
        self,
        *,
        settings: Settings,
        kinesis: Any,
        dynamodb: Any,
        processor: ChunkProcessor,
        owner: str | None = None,
    ) -> None:
        self._settings = settings
        self._kinesis = kinesis
        self._processor = processor
        self._stream = settings.names.stream
        self.checkpoints = Checkpoints(
            dynamodb, settings.names.leases_table, owner or f"{socket.gethostname()}-worker"
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set; finish the batch in hand, checkpoint, return."""
        shards = await self._list_shards()
        _log.info("worker started", shards=len(shards), stream=self._stream)
        async with asyncio.TaskGroup() as group:
            for shard in shards:
                group.create_task(self._read_shard(shard, stop))

    async def _list_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self._stream}
        while True:
            response = await self._kinesis.list_shards(**kwargs)
            shards.extend(response["Shards"])
            token = response.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    async def _read_shard(self, shard: dict[str, Any], stop: asyncio.Event) -> None:
        shard_id = shard["ShardId"]
        log = _log.bind(shard=shard_id)
        checkpoint = await self.checkpoints.get(shard_id)
        if checkpoint == SHARD_END:
            return
        iterator = await self._iterator(shard_id, checkpoint)
        while not stop.is_set():
            try:
                response = await self._kinesis.get_records(
                    ShardIterator=iterator, Limit=self._settings.batch_size
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "ExpiredIteratorException":
                    iterator = await self._iterator(shard_id, checkpoint)
                    continue
                log.warning("GetRecords failed; retrying", code=code)
                await _wait(stop, self._settings.poll_interval)
                continue
            records = [
                Record(r["SequenceNumber"], r["Data"], r.get("PartitionKey", ""))
                for r in response["Records"]
            ]
            if records:
                try:
                    outcome = await self._processor.process(records, shard_id=shard_id)
                except BatchFailed as exc:
                    log.error("batch failed; reading it again from the checkpoint", error=str(exc))
                    iterator = await self._iterator(shard_id, checkpoint)
                    await _wait(stop, self._settings.poll_interval)
                    continue
                checkpoint = records[-1].sequence_number
                await self.checkpoints.set(
                    shard_id, checkpoint, shard.get("ParentShardId") and [shard["ParentShardId"]]
                )
                log.info(
                    "batch checkpointed",
                    records=len(records),
                    results=outcome.results,
                    errors=outcome.errors,
                    alerts=outcome.alerts,
                )
            next_iterator = response.get("NextShardIterator")
            if next_iterator is None:
                await self.checkpoints.set(shard_id, SHARD_END)
                log.info("shard ended")
                return
            iterator = next_iterator
            if not records:
                await _wait(stop, self._settings.poll_interval)

    async def _iterator(self, shard_id: str, checkpoint: str | None) -> str:
        kwargs: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": checkpoint}
            if checkpoint
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        response = await self._kinesis.get_shard_iterator(
            StreamName=self._stream, ShardId=shard_id, **kwargs
        )
        iterator: str = response["ShardIterator"]
        return iterator


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Pause between polls, returning at once when asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
