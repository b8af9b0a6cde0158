"""AWS requests per chunk in the consumer: counted against moto's server, per operation.

The regression guard of the figure in docs/benchmarks.md (``bench.consumer_cpu``): batches
of chunks of several students, as a worker sees them (one chunk per student per batch, a
batch every poll), processed by the consumer's own wiring with the fixed engine (no
analysis requests of its own). Every HTTP request of the S3, DynamoDB and SNS clients is
counted (``RequestCounter``: botocore's ``before-send``, so a retry counts too) after the
first batch, which reads each student's session once.

The engine answers once every student of the batch is being analysed
(:class:`AnalysedTogether`): an analysis that outlasts the spread of the batch's frames, as
the benchmark's 0.1 s does for 40 students, without a pace set in seconds. The students'
saves then go in one transaction a batch (``consumer.sessions.SaveGroup``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from consumer.processor import Record
from consumer.wiring import build_processor
from proctoring.analysis.base import NAIVE, FrameAnalysis, Plan
from proctoring.analysis.fixed import FixedLatencyEngine
from proctoring.aws import RequestCounter, async_clients
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data

EXAM = "requests"
STUDENTS, BATCHES = 3, 7  # one chunk per student per batch; the policy keeps every 6th frame


class AnalysedTogether(FixedLatencyEngine):
    """The fixed engine, each answer given once ``together`` frames are being analysed (then
    the next ``together``): every student of a batch is in its analysis at once."""

    def __init__(self, together: int) -> None:
        super().__init__(0.0)
        self._barrier = asyncio.Barrier(together)

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        async with asyncio.timeout(60):  # a deadline, not a pace
            await self._barrier.wait()
        return await super().analyse(exam_id, student_id, jpeg, plan)


async def _batches(clients: Any, settings: Settings, videos: list[bytes]) -> list[list[Record]]:
    """``BATCHES`` batches, each with the next chunk of every student, uploaded to S3."""
    batches = []
    for sequence in range(BATCHES):
        batch = []
        for student in range(STUDENTS):
            data = videos[(student + sequence) % len(videos)]
            key = ChunkKey(
                exam_id=EXAM, student_id=f"s{student}", source="camera", sequence=sequence,
                captured_ms=1_795_000_000_000 + sequence * 5000, ext="mp4",
            ).key  # fmt: skip
            await clients.s3.put_object(Bucket=settings.names.chunks_bucket, Key=key, Body=data)
            event = ChunkEvent.from_key(
                settings.names.chunks_bucket, key, size=len(data), uploaded_at=datetime.now(UTC)
            )
            batch.append(Record(f"{sequence}-{student}", event.to_bytes(), event.partition_key))
        batches.append(batch)
    return batches


@needs_data
def test_the_consumer_makes_few_aws_requests_per_chunk(settings: Settings, pool: Executor) -> None:
    videos = [c.data for c in islice(chunk_recording(DATA / "video/center_focus.mp4"), 3)]
    # every chunk analysed; a batch's saves wait for each other however slow this machine is
    settings = settings.model_copy(update={"max_repeats": 0, "save_group_wait": 60.0})

    async def run() -> tuple[RequestCounter, list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            batches = await _batches(clients, settings, videos)
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda _: None),
                AnalysedTogether(STUDENTS),
            )  # fmt: skip
            await processor.process(batches[0], shard_id="shard-0")  # reads the sessions
            counter = RequestCounter().watch([clients.s3, clients.dynamodb, clients.sns])
            for batch in batches[1:]:
                await processor.process(batch, shard_id="shard-0")
            counter.stop()
            rows = [r for s in range(STUDENTS) for r in await tables.results(f"{EXAM}#s{s}")]
        return counter, rows

    counter, rows = asyncio.run(run())
    assert len(rows) == STUDENTS * BATCHES, "nothing lost"
    assert all(r["status"] == "ok" for r in rows)
    chunks = STUDENTS * (BATCHES - 1)  # after the first batch: the worker owns its students
    per_chunk = counter.total() / chunks
    counts = counter.counts
    assert per_chunk <= 1.5, dict(counts)
    assert counts["s3.GetObject"] == chunks, "each chunk read once"
    assert counts["s3.PutObject"] == STUDENTS, "one frame in six kept: sequence 6"
    # every student's rows and session in one transaction a batch (a retry would count too)
    assert counts["dynamodb.TransactWriteItems"] == BATCHES - 1, dict(counts)
    assert counts["dynamodb.GetItem"] == 0, "the sessions kept, the rows known to be new"
    assert counts["dynamodb.PutItem"] == 0, "no row written on its own"
    # a row's processed_at (the end of the latency breakdown) is when its transaction went,
    # after the batch's last analysis, not when the row was built before the group's wait
    for sequence in range(BATCHES):
        batch = [r for r in rows if r["sequence"] == sequence]
        assert min(r["processed_at"] for r in batch) >= max(r["analysed_at"] for r in batch)
