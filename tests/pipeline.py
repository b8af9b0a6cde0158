"""Running the local pipeline inside a test: router + consumer against the emulator.

``Pipeline`` starts the same services ``proctor up`` runs (the SQS-driven
chunk router and the consumer worker) on the test's stack, lets the test
upload chunks through S3 with the real replay code, and waits - polling
with a deadline - until every chunk has its result row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.services import run_services
from consumer.processor import ChunkProcessor
from consumer.worker import Worker
from proctoring.analysis.engine import LocalEngine
from proctoring.aws import AsyncClients, async_clients
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.rendering import render_chunks
from producer.replay import Uploaded, replay
from producer.scenario import load_scenario, scenario_for_recording
from tests.conftest import eventually


@dataclass
class Pipeline:
    settings: Settings
    clients: AsyncClients
    tables: Tables
    engine: LocalEngine
    metrics: list[str] = field(default_factory=list)

    async def register(self, exam_id: str, student_id: str, photo: Path) -> None:
        await self.engine.register(exam_id, student_id, await asyncio.to_thread(photo.read_bytes))

    async def play(
        self, exam_id: str, student_id: str, source: Path, *, register: Path | None = None
    ) -> list[Uploaded]:
        """Register (optionally) and upload a recording or a scenario file, as fast as possible."""
        if register is not None:
            await self.register(exam_id, student_id, register)
        scenario = (
            load_scenario(source, data_dir=self.settings.data_dir)
            if source.suffix in (".yaml", ".json")
            else scenario_for_recording(source)
        )
        chunks = await asyncio.to_thread(lambda: list(render_chunks(scenario)))
        return await replay(
            chunks,
            s3=self.clients.s3,
            bucket=self.settings.names.chunks_bucket,
            exam_id=exam_id,
            student_id=student_id,
            speed=None,
        )

    async def results(self, exam_id: str, student_id: str) -> list[dict[str, Any]]:
        rows = await self.tables.results(f"{exam_id}#{student_id}")
        return sorted(rows, key=lambda r: (r["source"], r["sequence"]))

    async def wait_for_results(
        self, exam_id: str, student_id: str, count: int, within: float = 90.0
    ) -> list[dict[str, Any]]:
        return await eventually(
            lambda: self.results(exam_id, student_id),
            lambda rows: len(rows) >= count,
            within=within,
        )

    async def alerts(self, exam_id: str, student_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.tables.alerts(exam_id)
        return sorted(
            (a for a in rows if student_id is None or a["student_id"] == student_id),
            key=lambda a: (a["student_id"], a["sequence"], a["type"]),
        )

    async def alert_messages(self) -> list[dict[str, Any]]:
        """Drain what SNS delivered to the alerts queue."""
        import json

        url = (await self.clients.sqs.get_queue_url(QueueName=self.settings.names.alerts_queue))[
            "QueueUrl"
        ]
        messages: list[dict[str, Any]] = []
        while True:
            response = await self.clients.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            batch = response.get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(json.loads(message["Body"])["Message"]))
                await self.clients.sqs.delete_message(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                )


async def upload_chunk(
    clients: AsyncClients,
    settings: Settings,
    *,
    exam_id: str,
    student_id: str,
    sequence: int,
    data: bytes,
) -> ChunkEvent:
    """Upload one camera chunk to the chunks bucket; its chunk event, as the router makes it."""
    key = ChunkKey(
        exam_id=exam_id,
        student_id=student_id,
        source="camera",
        sequence=sequence,
        captured_ms=1_795_000_000_000 + sequence * 5000,
        ext="mp4",
    ).key
    await clients.s3.put_object(Bucket=settings.names.chunks_bucket, Key=key, Body=data)
    return ChunkEvent.from_key(
        settings.names.chunks_bucket, key, size=len(data), uploaded_at=datetime.now(UTC)
    )


async def put_chunk(clients: AsyncClients, settings: Settings, **chunk: Any) -> dict[str, Any]:
    """Upload one chunk (``chunk``: :func:`upload_chunk`'s keywords) and put its event on the
    stream directly (the router's job, skipped).

    Returns PutRecord's answer (``ShardId``, ``SequenceNumber``).
    """
    event = await upload_chunk(clients, settings, **chunk)
    response: dict[str, Any] = await clients.kinesis.put_record(
        StreamName=settings.names.stream, Data=event.to_bytes(), PartitionKey=event.partition_key
    )
    return response


async def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record in the stream, read from the trim horizon, each with its ``ShardId``."""
    records: list[dict[str, Any]] = []
    for shard in (await kinesis.list_shards(StreamName=stream))["Shards"]:
        iterator = (
            await kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )
        )["ShardIterator"]
        response = await kinesis.get_records(ShardIterator=iterator, Limit=1000)
        records.extend({**r, "ShardId": shard["ShardId"]} for r in response["Records"])
    return records


@asynccontextmanager
async def running_worker(
    settings: Settings,
    clients: AsyncClients,
    processor: ChunkProcessor,
    metrics: Metrics,
    worker_id: str = "w",
) -> AsyncIterator[Worker]:
    """One consumer worker on the test's stream, running until the block ends (stopped
    cleanly: batches in hand finished, leases released)."""
    worker = Worker(
        settings=settings,
        kinesis=clients.kinesis,
        dynamodb=clients.dynamodb,
        processor=processor,
        metrics=metrics,
        worker_id=worker_id,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


@asynccontextmanager
async def running_pipeline(settings: Settings, pool: Executor) -> AsyncIterator[Pipeline]:
    stop = asyncio.Event()
    metrics: list[str] = []
    services = asyncio.create_task(
        run_services(settings, stop, executor=pool, metrics_sink=metrics.append)
    )
    try:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            engine = LocalEngine(
                tables,
                pool,
                threshold=settings.match_threshold,
                enrol_threshold=settings.enrol_threshold,
            )
            yield Pipeline(settings, clients, tables, engine, metrics)
    finally:
        stop.set()
        await services
