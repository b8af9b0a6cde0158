"""Chime capture chunks analysed: the media capture pipeline's layout through router and consumer.

Real MP4 chunks from ``../shared/data`` are uploaded to the emulator's S3
under the key layout the Chime SDK documents for a capture pipeline's sink
(``capture/<exam>/video/<yyyy-mm-dd-HH-MM-SS-mmm>-<attendeeId>.mp4``); the
attendee -> student mapping is written with the store method the API uses
when it creates an attendee.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

from consumer.processor import Record
from consumer.wiring import build_processor
from proctoring.aws import async_clients
from proctoring.events import MOMENT_MS, ChunkEvent, ChunkKey
from proctoring.exams import ExamStore
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from tests.conftest import DATA, eventually, needs_data
from tests.pipeline import running_pipeline

T0 = 1_795_000_000_000  # a moment boundary (divisible by MOMENT_MS)


def _capture_key(exam_id: str, at_ms: int, attendee_id: str, *, content: bool = False) -> str:
    stamp = datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d-%H-%M-%S")
    suffix = "#content" if content else ""
    return f"capture/{exam_id}/video/{stamp}-{at_ms % 1000:03d}-{attendee_id}{suffix}.mp4"


async def _policy(tables: Tables, exam_id: str, sources: str) -> None:
    await tables.save_session(
        {"exam_id": exam_id, "student_id": "#policy", "policy": {"sources": sources}},
        expected_version=0,
    )


@needs_data
def test_capture_chunks_become_each_students_results_in_order(
    settings: Settings, pool: Executor
) -> None:
    exam = "cap-exam"
    chunks = [c.data for c in chunk_recording(DATA / "video/center_focus.mp4")][:3]
    attendees = {
        "ana": "a1b2c3d4-0000-4000-8000-00000000000a",
        "ben": "b1b2c3d4-0000-4000-8000-00000000000b",
    }
    proctor, ghost = "c0c0c0c0-0000-4000-8000-00000000000c", "dead0000-0000-4000-8000-000000000000"

    async def run() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], list[str]]:
        async with running_pipeline(settings, pool) as pipeline:
            store = ExamStore(pipeline.clients.dynamodb, settings.names)
            for student, attendee in attendees.items():
                await store.put_attendee(exam, attendee, student, "student")
            await store.put_attendee(exam, proctor, "proctor-1", "proctor")
            await _policy(pipeline.tables, exam, "chime")
            s3, bucket = pipeline.clients.s3, settings.names.chunks_bucket
            for i, data in enumerate(chunks):  # 5 s apart, ms that differ per attendee
                for n, attendee in enumerate(attendees.values()):
                    key = _capture_key(exam, T0 + i * MOMENT_MS + 17 * n, attendee)
                    await s3.put_object(Bucket=bucket, Key=key, Body=data)
            skipped = [
                _capture_key(exam, T0, proctor),  # the proctor's camera
                _capture_key(exam, T0, attendees["ana"], content=True),  # her screen share
                f"capture/{exam}/audio/2026-11-18-08-53-20-000.mp4",  # the meeting's mix
            ]
            for key in skipped:
                await s3.put_object(Bucket=bucket, Key=key, Body=chunks[0])
            await s3.put_object(
                Bucket=bucket, Key=_capture_key(exam, T0, ghost), Body=chunks[0]
            )  # an attendee the API never created
            results = {
                student: await pipeline.wait_for_results(exam, student, len(chunks))
                for student in attendees
            }
            errors = await eventually(
                lambda: pipeline.tables.errors(exam), lambda rows: len(rows) >= 1
            )
            await eventually(  # every object has been through the router
                lambda: _routed(pipeline.metrics), lambda n: n >= 2 * len(chunks) + 4
            )
            results["proctor-1"] = await pipeline.results(exam, "proctor-1")
            return results, errors, pipeline.metrics

    results, errors, metrics = asyncio.run(run())
    for student in attendees:
        rows = results[student]
        assert [r["source"] for r in rows] == ["chime"] * 3
        assert [r["sequence"] for r in rows] == [T0 // MOMENT_MS + i for i in range(3)]
        assert [r["status"] for r in rows] == ["ok"] * 3
        assert all(r["faces"] == 1 for r in rows), "analysed as that student's camera"
        assert rows[0]["captured_at"].startswith("2026-11-18T")
    assert results["proctor-1"] == [], "the proctor's video is not a student's result"
    [error] = errors
    assert error["reason"] == "unknown_attendee"
    assert ghost in error["chunk_key"] and ghost in error["message"]
    text = "\n".join(metrics)
    assert '"Reason":"unknown_attendee"' in text
    for reason in ("proctor_attendee", "content_share", "capture_audio"):
        assert f'"Reason":"{reason}"' in text, reason


async def _routed(metrics: list[str]) -> int:
    """Objects the router has handled so far, from its EMF lines (routed + skipped + errors)."""
    total = 0
    for line in metrics:
        doc = json.loads(line)
        for name in ("EventsRouted", "RouterIgnored", "RouterErrors"):
            value = doc.get(name)
            if isinstance(value, list):
                total += int(sum(value))
            elif isinstance(value, (int, float)):
                total += int(value)
    return total


@needs_data
def test_with_both_sources_each_moment_is_analysed_once(settings: Settings, pool: Executor) -> None:
    video = next(chunk_recording(DATA / "video/center_focus.mp4")).data
    attendee = "a1b2c3d4-0000-4000-8000-00000000000a"
    bucket = settings.names.chunks_bucket

    async def put(clients: Any, key: str, event: ChunkEvent, n: int) -> Record:
        await clients.s3.put_object(Bucket=bucket, Key=key, Body=video)
        return Record(str(n), event.to_bytes(), event.partition_key)

    async def run() -> dict[str, list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            await _policy(tables, "both-exam", "both")
            await _policy(tables, "browser-exam", "browser")
            records = []
            for exam in ("both-exam", "browser-exam"):
                for i in range(3):  # the browser covers moments 0-2, the capture 1-3
                    key = ChunkKey(
                        exam_id=exam, student_id="ana", source="camera", sequence=i,
                        captured_ms=T0 + i * MOMENT_MS, ext="mp4",
                    ).key  # fmt: skip
                    event = ChunkEvent.from_key(
                        bucket, key, size=len(video), uploaded_at=datetime.now(UTC)
                    )
                    records.append(await put(clients, key, event, len(records)))
                for i in range(1, 4):
                    key = _capture_key(exam, T0 + i * MOMENT_MS + 1234, attendee)
                    event = ChunkEvent.from_capture(
                        bucket, key, student_id="ana", size=len(video),
                        uploaded_at=datetime.now(UTC),
                    )  # fmt: skip
                    records.append(await put(clients, key, event, len(records)))
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda _: None)
            )
            await processor.process(records, shard_id="shard-0")
            # Delivered again (at least once): the same chunks, the same decisions.
            await processor.process(records[3:6], shard_id="shard-0")
            return {e: await tables.results(f"{e}#ana") for e in ("both-exam", "browser-exam")}

    rows = asyncio.run(run())
    both = {r["chunk_id"]: r for r in rows["both-exam"]}
    slot = T0 // MOMENT_MS
    analysed = sorted(c for c, r in both.items() if r["status"] == "ok" and "faces" in r)
    assert analysed == [
        "camera#000000", "camera#000001", "camera#000002", f"chime#{slot + 3:06d}",
    ]  # fmt: skip
    for i in (1, 2):
        row = both[f"chime#{slot + i:06d}"]
        assert (row["status"], row["reason"]) == ("not_analysed", "same_moment")
        assert row["same_as"] == f"camera#{i:06d}"
    browser = {r["chunk_id"]: r for r in rows["browser-exam"]}
    assert {c for c, r in browser.items() if r["status"] == "ok"} == {
        "camera#000000", "camera#000001", "camera#000002",
    }  # fmt: skip
    for i in (1, 2, 3):
        row = browser[f"chime#{slot + i:06d}"]
        assert (row["status"], row["reason"]) == ("not_analysed", "source_off")
