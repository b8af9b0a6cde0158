"""The worker: KCL-style leases and checkpoints per shard, resuming after them, retrying on failure.

Real chunks (5 s of a student in front of the camera) go to S3 and their
events straight into Kinesis, as the chunk router would put them; a real
``Worker`` with the real processor reads them from the emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import Any

import pytest

from consumer.processor import BatchOutcome, ChunkProcessor, Record
from consumer.wiring import build_processor
from consumer.worker import Worker
from proctoring.aws import AsyncClients, async_clients
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import SessionSave, StorageError, Tables, from_item
from tests.conftest import eventually
from tests.pipeline import put_chunk

pytestmark = pytest.mark.slow

EXAM = "worker-exam"


async def _put_chunks(
    clients: AsyncClients, settings: Settings, student: str, sequences: Sequence[int], data: bytes
) -> list[tuple[str, str]]:
    """Upload chunks and put their events on the stream; (shard id, sequence number) of each."""
    placed = []
    for sequence in sequences:
        response = await put_chunk(
            clients, settings, exam_id=EXAM, student_id=student, sequence=sequence, data=data
        )
        placed.append((response["ShardId"], response["SequenceNumber"]))
    return placed


async def _student_per_shard(clients: AsyncClients, settings: Settings) -> dict[str, str]:
    """A student id whose partition key (exam#student) hashes into each shard."""
    shards = (await clients.kinesis.list_shards(StreamName=settings.names.stream))["Shards"]
    chosen: dict[str, str] = {}
    for shard in shards:
        low = int(shard["HashKeyRange"]["StartingHashKey"])
        high = int(shard["HashKeyRange"]["EndingHashKey"])
        chosen[shard["ShardId"]] = next(
            student
            for student in (f"s{i}" for i in range(1000))
            if low <= int(hashlib.md5(f"{EXAM}#{student}".encode()).hexdigest(), 16) <= high
        )
    return chosen


async def _leases(clients: AsyncClients, settings: Settings) -> dict[str, dict[str, Any]]:
    response = await clients.dynamodb.scan(
        TableName=settings.names.leases_table, ConsistentRead=True
    )
    items = [from_item(item) for item in response["Items"]]
    return {item["leaseKey"]: item for item in items}


def _chunks_processed(lines: list[str]) -> float:
    """What the consumer reported through its metrics (EMF lines), summed."""
    return sum(json.loads(line).get("ChunksProcessed", 0) for line in lines)


@asynccontextmanager
async def _running(
    settings: Settings,
    clients: AsyncClients,
    pool: Executor,
    *,
    owner: str,
    metrics: list[str],
    wrap: Callable[[ChunkProcessor], Any] = lambda processor: processor,
    tables: Tables | None = None,
) -> AsyncIterator[Callable[[str, int], Any]]:
    """Run a worker; yield ``wait_for(student, count)``; stop it and wait for it on exit."""
    tables = tables or Tables(clients.dynamodb, settings.names)
    sink = Metrics("Test", "consumer", metrics.append)
    processor = build_processor(settings, clients, tables, pool, sink)
    worker = Worker(
        settings=settings,
        kinesis=clients.kinesis,
        dynamodb=clients.dynamodb,
        processor=wrap(processor),
        metrics=sink,
        worker_id=owner,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def results(student: str) -> list[dict[str, Any]]:
        if task.done():
            task.result()  # the worker died: say why instead of waiting for the deadline
            pytest.fail("the worker returned before it was stopped")
        rows = await tables.results(f"{EXAM}#{student}")
        return sorted(rows, key=lambda r: r["sequence"])

    async def wait_for(student: str, count: int) -> list[dict[str, Any]]:
        return await eventually(lambda: results(student), lambda rows: len(rows) >= count)

    try:
        yield wait_for
    finally:
        stop.set()
        await task


def test_checkpoints_are_kept_per_shard_with_kcl_attribute_names(
    settings: Settings, pool: Executor, present_chunk: bytes
) -> None:
    async def run() -> tuple[dict[str, tuple[str, str]], dict[str, Any], dict[str, Any]]:
        async with async_clients(settings) as clients:
            students = await _student_per_shard(clients, settings)
            placed = {
                student: await _put_chunks(clients, settings, student, range(count), present_chunk)
                for student, count in zip(students.values(), (2, 1), strict=True)
            }
            # the last record each shard received: (shard id, sequence number)
            last = {chunks[-1][0]: chunks[-1] for chunks in placed.values()}
            async with _running(settings, clients, pool, owner="worker-a", metrics=[]) as wait_for:
                for student, chunks in placed.items():
                    await wait_for(student, len(chunks))
                running = await eventually(
                    lambda: _leases(clients, settings),
                    lambda leases: all(leases[s]["checkpoint"] == n for s, (_, n) in last.items()),
                )
            return last, running, await _leases(clients, settings)

    last, running, stopped = asyncio.run(run())
    assert len(last) == 2, "both shards received records"
    assert running.keys() == last.keys(), "one lease item per shard"
    for shard_id, (_, sequence_number) in last.items():
        lease = running[shard_id]
        assert lease["leaseKey"] == shard_id
        assert lease["checkpoint"] == sequence_number
        assert lease["checkpointSubSequenceNumber"] == 0
        assert lease["ownerSwitchesSinceCheckpoint"] == 0
        assert lease["parentShardIds"] == []
        assert lease["leaseOwner"] == "worker-a"
        assert lease["leaseCounter"] >= 2, "taken, then checkpointed"
        assert "leaseOwner" not in stopped[shard_id], "released on a graceful stop"
        assert stopped[shard_id]["checkpoint"] == sequence_number


def test_a_restarted_worker_resumes_after_the_checkpoint(
    settings: Settings, pool: Executor, present_chunk: bytes
) -> None:
    first_metrics: list[str] = []
    second_metrics: list[str] = []

    async def run() -> dict[str, Any]:
        async with async_clients(settings) as clients:
            placed = await _put_chunks(clients, settings, "resumer", [0, 1], present_chunk)
            async with _running(
                settings, clients, pool, owner="worker-1", metrics=first_metrics
            ) as wait_for:
                before = await wait_for("resumer", 2)
            lease_before = (await _leases(clients, settings))[placed[-1][0]]

            placed += await _put_chunks(clients, settings, "resumer", [2, 3], present_chunk)
            async with _running(
                settings, clients, pool, owner="worker-2", metrics=second_metrics
            ) as wait_for:
                after = await wait_for("resumer", 4)
                lease_after = (
                    await eventually(
                        lambda: _leases(clients, settings),
                        lambda leases: leases[placed[-1][0]]["checkpoint"] == placed[3][1],
                    )
                )[placed[-1][0]]
            return {
                "placed": placed,
                "before": before,
                "after": after,
                "lease_before": lease_before,
                "lease_after": lease_after,
            }

    outcome = asyncio.run(run())
    assert _chunks_processed(first_metrics) == 2
    assert _chunks_processed(second_metrics) == 2, "the new worker processed only the new chunks"
    after = {row["sequence"]: row for row in outcome["after"]}
    assert sorted(after) == [0, 1, 2, 3]
    for row in outcome["before"]:
        assert after[row["sequence"]]["processed_at"] == row["processed_at"], "not processed again"
    assert all(row["status"] == "ok" and row["faces"] == 1 for row in after.values())
    assert outcome["lease_before"]["checkpoint"] == outcome["placed"][1][1]
    assert outcome["lease_after"]["checkpoint"] == outcome["placed"][3][1]
    assert outcome["lease_after"]["leaseOwner"] == "worker-2"
    assert outcome["lease_after"]["leaseCounter"] > outcome["lease_before"]["leaseCounter"]


class _ResultsTableFailsOnce(Tables):
    """The real tables, except that the first result write hits an outage (after retries):
    a row on its own, or new rows with sessions (``save_sessions``)."""

    failed = False

    def _fail_once(self) -> None:
        if not self.failed:
            self.failed = True
            raise StorageError(f"DynamoDB write timed out after {self._timeout} s")

    async def put_result(self, result: Mapping[str, Any]) -> dict[str, Any] | None:
        self._fail_once()
        return await super().put_result(result)

    async def save_sessions(self, saves: Sequence[SessionSave]) -> list[Any]:
        if any(save.results for save in saves):
            self._fail_once()
        return await super().save_sessions(saves)


class _Recording:
    """Passes batches to the processor, noting which records the worker handed over."""

    def __init__(self, processor: ChunkProcessor) -> None:
        self._processor = processor
        self.batches: list[list[str]] = []

    async def process(self, records: Sequence[Record], *, shard_id: str) -> BatchOutcome:
        self.batches.append([r.sequence_number for r in records])
        return await self._processor.process(records, shard_id=shard_id)

    def release_shard(self, shard_id: str) -> None:
        self._processor.release_shard(shard_id)


def test_a_batch_that_hit_a_storage_outage_is_not_checkpointed_and_is_read_again(
    settings: Settings, pool: Executor, present_chunk: bytes
) -> None:
    recorder: list[_Recording] = []
    metrics: list[str] = []

    def wrap(processor: ChunkProcessor) -> _Recording:
        recorder.append(_Recording(processor))
        return recorder[0]

    async def run() -> tuple[list[tuple[str, str]], list[dict[str, Any]], dict[str, Any]]:
        async with async_clients(settings) as clients:
            placed = await _put_chunks(clients, settings, "unlucky", [0, 1], present_chunk)
            tables = _ResultsTableFailsOnce(clients.dynamodb, settings.names)
            async with _running(
                settings, clients, pool, owner="worker-f", metrics=metrics, wrap=wrap, tables=tables
            ) as wait_for:
                rows = await wait_for("unlucky", 2)
            return placed, rows, await _leases(clients, settings)

    placed, rows, leases = asyncio.run(run())
    assert recorder[0].batches[0] == [number for _, number in placed]
    assert recorder[0].batches[1] == recorder[0].batches[0], (
        "the failed batch is processed again before anything after it, not skipped"
    )
    assert [(r["sequence"], r["status"], r["faces"]) for r in rows] == [(0, "ok", 1), (1, "ok", 1)]
    shard_id, last = placed[-1]
    assert leases[shard_id]["checkpoint"] == last
    assert _chunks_processed(metrics) == 2, "no result was written twice"
