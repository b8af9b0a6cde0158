"""Chunks of exams that are not running are recorded and not analysed (PROCTOR_EXAM_GATE)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

from consumer.processor import Record
from consumer.wiring import build_processor
from proctoring.aws import async_clients
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.exams import ExamStore
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data


@needs_data
def test_only_chunks_of_started_exams_are_analysed(settings: Settings, pool: Executor) -> None:
    settings = settings.model_copy(update={"exam_gate": True})
    video = next(chunk_recording(DATA / "video/center_focus.mp4")).data
    exams = {"e-started": "started", "e-created": "created", "e-stopped": "stopped"}

    async def run() -> tuple[dict[str, list[dict[str, Any]]], list[str], Any]:
        lines: list[str] = []
        async with async_clients(settings) as clients:
            store = ExamStore(clients.dynamodb, settings.names)
            for exam_id, status in exams.items():
                await store.create_exam(
                    {"exam_id": exam_id, "proctor_id": "p", "title": "t", "status": status}
                )
            records = []
            for n, exam_id in enumerate([*exams, "e-unknown"]):
                key = ChunkKey(
                    exam_id=exam_id, student_id="s1", source="camera", sequence=0,
                    captured_ms=1_795_000_000_000, ext="mp4",
                ).key  # fmt: skip
                await clients.s3.put_object(
                    Bucket=settings.names.chunks_bucket, Key=key, Body=video
                )
                event = ChunkEvent.from_key(
                    settings.names.chunks_bucket,
                    key,
                    size=len(video),
                    uploaded_at=datetime.now(UTC),
                )
                records.append(Record(str(n), event.to_bytes(), event.partition_key))
            tables = Tables(clients.dynamodb, settings.names)
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lines.append)
            )
            outcome = await processor.process(records, shard_id="shard-0")
            rows = {e: await tables.results(f"{e}#s1") for e in [*exams, "e-unknown"]}
            frames = await clients.s3.list_objects_v2(Bucket=settings.names.frames_bucket)
        return rows, [o["Key"] for o in frames.get("Contents", [])], (outcome, lines)

    rows, frames, (outcome, lines) = asyncio.run(run())
    assert outcome.results == 4 and outcome.errors == 0
    assert rows["e-started"][0]["status"] == "ok" and rows["e-started"][0]["faces"] == 1
    for exam_id, reason in [
        ("e-created", "exam_created"),
        ("e-stopped", "exam_stopped"),
        ("e-unknown", "unknown_exam"),
    ]:
        (row,) = rows[exam_id]
        assert (row["status"], row["reason"]) == ("not_analysed", reason)
        assert "faces" not in row and "frame_key" not in row
    assert frames == ["frames/e-started/s1/camera/000000.jpg"]  # no frame even extracted
    assert any('"ChunksNotAnalysed"' in line for line in lines)
