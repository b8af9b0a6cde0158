"""The record-processing core: bad input is recorded and isolated; replays change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumer.processor import BatchFailed, Record
from consumer.wiring import build_processor
from proctoring.aws import async_clients
from proctoring.dynamo import to_item
from proctoring.events import ChunkEvent
from proctoring.frames import extract_frame
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from producer.rendering import render_chunks
from producer.replay import replay
from producer.scenario import load_scenario
from tests.conftest import DATA, eventually, needs_data, require_data
from tests.faults import S3Front
from tests.pipeline import running_pipeline, stream_records

pytestmark = pytest.mark.slow

EXAM = "bad-input"


def test_bad_chunks_and_events_become_error_records_and_the_rest_goes_on(
    settings: Settings, pool: Executor
) -> None:
    require_data()
    good = next(chunk_recording(DATA / "video/center_focus.mp4")).data
    bad_objects = {
        "zero": b"",
        "text": b"this is a shopping list, not a video\n" * 20,
        "truncated": good[: len(good) * 3 // 10],
    }

    async def run() -> dict[str, Any]:
        async with running_pipeline(settings, pool) as pipeline:
            s3 = pipeline.clients.s3
            bucket = settings.names.chunks_bucket
            for student, body in bad_objects.items():
                await s3.put_object(
                    Bucket=bucket, Key=f"chunks/{EXAM}/{student}/camera/000000_1.mp4", Body=body
                )
            await s3.put_object(Bucket=bucket, Key=f"chunks/{EXAM}/odd/camera/clip.mp4", Body=good)
            foreign = ChunkEvent.from_key(
                "someone-elses-bucket",
                f"chunks/{EXAM}/odd/camera/000000_1.mp4",
                size=10,
                uploaded_at=datetime.now(UTC),
            ).to_bytes()
            for data in (b"not json {", json.dumps({"v": 1, "exam_id": EXAM}).encode(), foreign):
                await pipeline.clients.kinesis.put_record(
                    StreamName=settings.names.stream, Data=data, PartitionKey=f"{EXAM}#odd"
                )
            await s3.put_object(
                Bucket=bucket, Key=f"chunks/{EXAM}/good/camera/000000_1.mp4", Body=good
            )
            results = {
                student: await pipeline.wait_for_results(EXAM, student, 1)
                for student in [*bad_objects, "good"]
            }
            errors = await eventually(
                lambda: pipeline.tables.errors(EXAM), lambda rows: len(rows) >= 7
            )
            return {"results": results, "errors": errors, "metrics": pipeline.metrics}

    outcome = asyncio.run(run())
    results = outcome["results"]
    assert results["good"][0]["status"] == "ok"
    assert results["good"][0]["faces"] == 1
    expected_reasons = {"zero": "empty", "text": "not_video"}
    for student in bad_objects:
        (row,) = results[student]
        assert row["status"] == "error", student
        assert row["error"], "a human must be able to read what went wrong"
        if student in expected_reasons:
            assert row["error_reason"] == expected_reasons[student]
        else:
            assert row["error_reason"] in ("truncated", "not_video")

    by_stage: dict[str, list[dict[str, Any]]] = {}
    for row in outcome["errors"]:
        by_stage.setdefault(row["stage"], []).append(row)
    assert sorted(r["student_id"] for r in by_stage["chunk"]) == sorted(bad_objects)
    assert sorted(r["reason"] for r in by_stage["event"]) == [
        "foreign_bucket",
        "invalid_event",
        "not_json",
    ]
    assert all(r["raw"] for r in by_stage["event"]), "the bad record is kept for inspection"
    (router_error,) = by_stage["router"]
    assert router_error["reason"] == "bad_key"
    assert router_error["chunk_key"].endswith("clip.mp4")

    emitted = [json.loads(line) for line in outcome["metrics"]]
    reasons = {d.get("Reason") for d in emitted if "ChunkErrors" in d or "RouterErrors" in d}
    assert {"empty", "not_video", "not_json", "bad_key"} <= reasons


def _away_chunks(tmp_path: Any) -> list[Any]:
    require_data()
    scenario_file = tmp_path / "away.yaml"
    scenario_file.write_text("segments:\n  - empty: 15\n")
    return list(render_chunks(load_scenario(scenario_file, data_dir=DATA)))


async def _routed(
    clients: Any, tables: Tables, settings: Settings, chunks: list[Any]
) -> list[tuple[str, list[Record]]]:
    """Upload the chunks, route their S3 events into Kinesis as the router does, read them back."""
    from lambdas.chunk_router import route

    await replay(
        chunks,
        s3=clients.s3,
        bucket=settings.names.chunks_bucket,
        exam_id=EXAM,
        student_id="away",
        speed=None,
    )
    listing = await clients.s3.list_objects_v2(Bucket=settings.names.chunks_bucket)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-27T10:00:00.000Z",
                "s3": {
                    "bucket": {"name": settings.names.chunks_bucket},
                    "object": {"key": o["Key"], "size": 1},
                },
            }
            for o in listing["Contents"]
        ]
    }
    await route(
        event,
        kinesis=clients.kinesis,
        tables=tables,
        stream=settings.names.stream,
        metrics=Metrics("Test", "router", lambda line: None),
    )
    return await _read_all(clients.kinesis, settings.names.stream)


async def _delivered(clients: Any, settings: Settings) -> list[dict[str, Any]]:
    """What the alerts topic delivered to its queue, drained."""
    queue = (await clients.sqs.get_queue_url(QueueName=settings.names.alerts_queue))["QueueUrl"]
    messages: list[dict[str, Any]] = []
    while batch := (await clients.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)).get(
        "Messages"
    ):
        for message in batch:
            messages.append(json.loads(json.loads(message["Body"])["Message"]))
            await clients.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return messages


def test_processing_a_batch_again_creates_no_duplicate_results_or_alerts(
    settings: Settings, pool: Executor, tmp_path: Any
) -> None:
    chunks = _away_chunks(tmp_path)

    async def run() -> tuple[list[Any], ...]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            records = await _routed(clients, tables, settings, chunks)
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda line: None)
            )
            first = [await processor.process(batch, shard_id=shard) for shard, batch in records]
            alerts_once = await tables.alerts(EXAM)
            again = [await processor.process(batch, shard_id=shard) for shard, batch in records]
            alerts_twice = await tables.alerts(EXAM)
            results = await tables.results(f"{EXAM}#away")
            return (
                first,
                again,
                alerts_once,
                alerts_twice,
                results,
                await _delivered(clients, settings),
            )

    first, again, alerts_once, alerts_twice, results, delivered = asyncio.run(run())
    assert sum(o.alerts for o in first) == 1
    assert sum(o.alerts for o in again) == 0
    assert [a["type"] for a in alerts_once] == ["NO_FACE"]
    assert alerts_twice == alerts_once
    assert alerts_once[0]["published"] is True
    assert len(results) == len(chunks) == 3
    assert len(delivered) == 1, "the alert is published once, not once per processing"


class _DiesBeforeMarking(Tables):
    async def mark_alert_published(self, exam_id: str, alert_id: str, message_id: str) -> None:
        raise ConnectionResetError("worker killed after SNS accepted the alert")


def test_an_alert_published_by_a_worker_that_died_before_marking_it_is_delivered_once(
    settings: Settings, pool: Executor, tmp_path: Any
) -> None:
    """The window exactly-once hinges on: SNS accepted the alert, the worker died before
    the ``published`` mark, so the batch was not checkpointed and the next owner of the
    shard processes it again and publishes again. The FIFO topic drops the second copy."""
    chunks = _away_chunks(tmp_path)

    async def run() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            records = await _routed(clients, tables, settings, chunks)
            metrics = Metrics("Test", "consumer", lambda line: None)
            dying = build_processor(
                settings,
                clients,
                _DiesBeforeMarking(clients.dynamodb, settings.names),
                pool,
                metrics,
            )
            with pytest.raises(BatchFailed, match="worker killed"):
                for shard, batch in records:
                    await dying.process(batch, shard_id=shard)
            unmarked = await tables.alerts(EXAM)

            taking_over = build_processor(settings, clients, tables, pool, metrics)
            for shard, batch in records:
                await taking_over.process(batch, shard_id=shard)
            return unmarked, await tables.alerts(EXAM), await _delivered(clients, settings)

    unmarked, alerts, delivered = asyncio.run(run())
    assert [(a["type"], a["published"]) for a in unmarked] == [("NO_FACE", False)]
    assert [(a["type"], a["published"]) for a in alerts] == [("NO_FACE", True)]
    assert [m["alert_id"] for m in delivered] == [alerts[0]["alert_id"]], (
        "published by both workers, delivered once"
    )


async def _read_all(kinesis: Any, stream: str) -> list[tuple[str, list[Record]]]:
    """The stream's records as one batch per shard, as a worker would get them."""
    batches: dict[str, list[Record]] = {}
    for r in await stream_records(kinesis, stream):
        batches.setdefault(r["ShardId"], []).append(
            Record(r["SequenceNumber"], r["Data"], r["PartitionKey"])
        )
    return list(batches.items())


async def _keep_every_frame(dynamodb: Any, settings: Settings, exam: str) -> None:
    """The exam's policy keeps every chunk's frame (``frame_every: 1``), not one in six."""
    await dynamodb.put_item(
        TableName=settings.names.sessions_table,
        Item=to_item({"exam_id": exam, "student_id": "#policy", "policy": {"frame_every": 1}}),
    )


@needs_data
def test_the_first_frame_is_fetched_and_analysed_only_when_the_middle_shows_no_face(
    settings: Settings, pool: Executor
) -> None:
    """The Hamilton clip's middle frames catch the performer mid-turn (no face); its first
    frames show him. Those chunks are analysed on their first frame, which becomes the
    evidence; a chunk whose middle frame has a face never fetches the first one."""
    exam = "fallback-exam"

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[bytes], float]:
        async with running_pipeline(settings, pool) as pipeline:
            await _keep_every_frame(pipeline.clients.dynamodb, settings, exam)  # compare each
            hamilton = await pipeline.play(exam, "hamilton", DATA / "video/short_hamilton_clip.mp4")
            phone = await pipeline.play(exam, "phone", DATA / "video/center_focus.mp4")
            first = await pipeline.wait_for_results(exam, "hamilton", len(hamilton))
            second = await pipeline.wait_for_results(exam, "phone", len(phone))
            frames = []
            for row in first:
                response = await pipeline.clients.s3.get_object(
                    Bucket=settings.names.frames_bucket, Key=row["frame_key"]
                )
                async with response["Body"] as body:
                    frames.append(await body.read())

            async def decoded() -> float:  # the metric, summed over the flushed documents
                return sum(json.loads(line).get("FramesDecoded", 0) for line in pipeline.metrics)

            return first, second, frames, await eventually(decoded, lambda n: n >= 5, within=30)

    hamilton, phone, stored, frames_decoded = asyncio.run(run())
    # a keyframe at every middle (re-encoded Hamilton chunks, the phone's every 1.25 s): one
    # frame a chunk; the phone's 0.5 s tail starts within half a second of its middle, so its
    # first keyframe stands for it (it decoded 7 frames to reach the exact middle)
    assert frames_decoded == 1 + 1 + 1 + 1 + 1
    chunks = list(chunk_recording(DATA / "video/short_hamilton_clip.mp4"))
    # chunk 1: no face mid-turn, the performer in its first frame - that frame is the evidence
    assert hamilton[1]["analysed"] == "fallback" and hamilton[1]["faces"] >= 1
    assert stored[1] == extract_frame(chunks[1].data, position="first").jpeg
    # chunk 0: no face in either frame - the middle one stays the evidence
    assert hamilton[0]["analysed"] == "frame" and hamilton[0]["faces"] == 0
    assert stored[0] == extract_frame(chunks[0].data, position="middle").jpeg
    assert phone and all(r["analysed"] != "fallback" for r in phone if r["frame_time"] > 0)


@needs_data
def test_a_mismatch_on_one_frame_is_checked_on_a_second_frame_before_it_counts(
    settings: Settings, pool: Executor, tmp_path: Path
) -> None:
    """No student is accused on one frame with a turned face. Chunk 0 shows the registered
    student in its first frame and, at its middle, a face turned away that is not theirs
    (a turned head embeds far from the registration): the chunk is decided on the first
    frame, a match. Chunks 1-2 show someone else facing the camera in both frames: a clear
    mismatch needs no second frame, and FACE_MISMATCH is raised on the second of them."""
    scenario = tmp_path / "passer_by.yaml"
    scenario.write_text(
        "segments:\n"
        "  - {photo: faces/obama-480p.jpg, seconds: 0.4}\n"
        "  - {photo: identities/human/identity/stock-emotions-b-4.jpg, seconds: 4.6}\n"
        "  - {photo: faces/biden.jpg, seconds: 10}\n"
    )
    exam = "second-frame"

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with running_pipeline(settings, pool) as pipeline:
            await pipeline.play(exam, "s", scenario, register=DATA / "faces/obama.jpg")
            rows = await pipeline.wait_for_results(exam, "s", 3)
            alerts = await eventually(
                lambda: pipeline.alerts(exam, "s"), lambda found: len(found) >= 1
            )
            return rows, alerts

    rows, alerts = asyncio.run(run())
    assert [(r["analysed"], r["identity"]) for r in rows] == [
        ("fallback", "match"),
        ("frame", "mismatch"),
        ("repeat", "mismatch"),  # the same picture as chunk 1: its analysis carried over
    ]
    assert rows[0]["calls"]["SearchFacesByImage"] == 2, "both frames compared"
    assert rows[1]["calls"]["SearchFacesByImage"] == 1, "a clear mismatch is decided as it is"
    assert [(a["type"], a["first_sequence"], a["sequence"]) for a in alerts] == [
        ("FACE_MISMATCH", 1, 2)
    ]
    evidence = alerts[0]["evidence"]
    assert (evidence["analysed"], evidence["repeat_of"]) == ("repeat", 1), "what decided it"


def test_a_redelivered_chunk_changes_nothing_and_a_second_object_is_flagged_not_analysed(
    settings: Settings, pool: Executor
) -> None:
    """At least once: the same chunk processed again leaves its row as it was. A different
    object for an analysed sequence (another key, or two in one batch) is raised as
    CHUNK_REPLACED with an errors row, and the first row and frame stay byte for byte."""
    require_data()
    face, other = (c.data for c in list(chunk_recording(DATA / "video/center_focus.mp4"))[:2])
    exam, student = "write-once", "s1"

    async def run() -> dict[str, Any]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda line: None)
            )

            async def record(sequence: int, captured_ms: int, data: bytes) -> Record:
                key = f"chunks/{exam}/{student}/camera/{sequence:06d}_{captured_ms}.mp4"
                await clients.s3.put_object(Bucket=settings.names.chunks_bucket, Key=key, Body=data)
                event = ChunkEvent.from_key(
                    settings.names.chunks_bucket, key, size=len(data),
                    uploaded_at=datetime.now(UTC),
                )  # fmt: skip
                return Record(f"{sequence}{captured_ms}", event.to_bytes(), event.partition_key)

            async def frame(key: str) -> bytes:
                response = await clients.s3.get_object(Bucket=settings.names.frames_bucket, Key=key)
                async with response["Body"] as body:
                    data: bytes = await body.read()
                return data

            first = [await record(0, 1000, face)]
            await processor.process(first, shard_id="s")
            row = (await tables.results(f"{exam}#{student}"))[0]
            stored = await frame(row["frame_key"])
            again = await processor.process(first, shard_id="s")  # re-delivery
            row_again = (await tables.results(f"{exam}#{student}"))[0]
            other_key = await processor.process([await record(0, 2000, other)], shard_id="s")
            both = await processor.process(
                [await record(1, 6000, face), await record(1, 7000, other)], shard_id="s"
            )
            return {
                "row": row,
                "row_again": row_again,
                "again": again,
                "other_key": other_key,
                "both": both,
                "rows": await tables.results(f"{exam}#{student}"),
                "frame": stored,
                "frame_after": await frame(row["frame_key"]),
                "alerts": await tables.alerts(exam),
                "errors": await tables.errors(exam),
            }

    out = asyncio.run(run())
    assert out["row"]["chunk_sha256"] and out["row"]["frame_sha256"]
    assert out["row_again"] == out["row"], "a re-delivery is a no-op"
    assert (out["again"].errors, out["again"].alerts) == (0, 0)
    assert (out["other_key"].errors, out["other_key"].alerts) == (1, 1)
    assert (out["both"].results, out["both"].errors) == (1, 1)
    assert out["rows"][0] == out["row"] and out["frame_after"] == out["frame"]
    assert [r["chunk_key"].split("/")[-1] for r in out["rows"]] == [
        "000000_1000.mp4", "000001_6000.mp4",
    ]  # fmt: skip
    replaced = sorted(
        (a for a in out["alerts"] if a["type"] == "CHUNK_REPLACED"), key=lambda a: a["sequence"]
    )
    assert [(a["sequence"], a["severity"]) for a in replaced] == [(0, "high"), (1, "high")]
    assert replaced[0]["chunk_key"] == out["row"]["chunk_key"]
    assert replaced[0]["replaced_by"]["chunk_key"].endswith("000000_2000.mp4")
    assert [e["reason"] for e in out["errors"]].count("second_object") == 2


def test_a_chunk_that_arrives_late_is_judged_in_its_place_and_alerted_once(
    settings: Settings, pool: Executor, tmp_path: Any
) -> None:
    """S3 notifications and the router's retries keep no order: chunk 1 of a two-chunk
    absence arrives after chunks 2 and 3, and the absence is still one NO_FACE alert; the
    console's tile (the session's ``latest``, what the roster reads) stays on chunk 3."""
    require_data()
    scenario = tmp_path / "late.yaml"
    scenario.write_text(
        "segments:\n  - photo: faces/obama2.jpg\n    seconds: 5\n  - empty: 10\n"
        "  - photo: faces/obama2.jpg\n    seconds: 5\n"
    )
    chunks = list(render_chunks(load_scenario(scenario, data_dir=DATA)))

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, dict[str, Any]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            await _keep_every_frame(clients.dynamodb, settings, EXAM)  # the tile's: its chunk's
            ((shard, records),) = await _routed(clients, tables, settings, chunks)
            by_sequence = {ChunkEvent.from_bytes(r.data).sequence: r for r in records}
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda line: None)
            )
            for sequence in (0, 2, 3, 1):  # one batch each, chunk 1 last
                await processor.process([by_sequence[sequence]], shard_id=shard)
            alerts = await tables.alerts(EXAM)
            session = await tables.get_session(EXAM, "away")
            again = await processor.process(list(by_sequence.values()), shard_id=shard)
            assert session is not None
            return alerts, await tables.alerts(EXAM), again.alerts, session

    alerts, after_replay, raised_again, session = asyncio.run(run())
    latest = session["latest"]
    assert (latest["sequence"], latest["status"], latest["faces"]) == (3, "ok", 1)
    assert latest["frame_key"].endswith("camera/000003.jpg")
    assert [(a["type"], a["first_sequence"], a["sequence"]) for a in alerts] == [("NO_FACE", 1, 2)]
    assert after_replay == alerts and raised_again == 0


class _ResultsSeen(Tables):
    """Tables that say when a student's result row has been written (``written_then``)."""

    def __init__(self, *args: Any, student: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.student = student
        self.written_then: Callable[[], None] = lambda: None  # called when it is written

    async def put_result(self, result: Any) -> dict[str, Any] | None:
        earlier = await super().put_result(result)
        if result["student_id"] == self.student:
            self.written_then()
        return earlier

    async def save_sessions(self, saves: Any) -> list[Any]:
        """A new chunk's row goes with its student's session (one transaction)."""
        saved = await super().save_sessions(saves)
        if any(row["student_id"] == self.student for save in saves for row in save.results):
            self.written_then()
        return saved


@needs_data
def test_a_students_result_does_not_wait_for_another_students_slow_chunk(
    settings: Settings, pool: Executor
) -> None:
    """One batch, two students: the second's chunk is still downloading when the first's
    result row is written. Before, every frame of the batch came before any analysis, so
    one slow download held every student's result in the batch (here the held download
    timed out and the whole batch failed). The download is held where it travels: the
    process pool GETs the chunk, through ``S3Front`` in front of the emulator."""
    video = (DATA / "video" / "short_hamilton_clip.mp4").read_bytes()

    async def run(front: S3Front) -> list[str]:
        front.hold = lambda method, path: method == "GET" and "/slow/" in path
        async with async_clients(front.settings(settings)) as clients:
            tables = _ResultsSeen(clients.dynamodb, settings.names, student="quick")
            records = []
            for n, student in enumerate(["slow", "quick"]):
                key = f"chunks/{EXAM}/{student}/camera/000000_1795000000000.mp4"
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
            tables.written_then = front.released.set  # the quick row lets the slow GET go
            processor = build_processor(
                front.settings(settings),
                clients,
                tables,
                pool,
                Metrics("Test", "consumer", lambda line: None),
            )
            async with asyncio.timeout(120):  # a deadline, not a pace
                outcome = await processor.process(records, shard_id="shard-0")
            assert outcome.results == 2 and outcome.errors == 0
            rows = [await tables.results(f"{EXAM}#{s}") for s in ("quick", "slow")]
            return [row["status"] for student_rows in rows for row in student_rows]

    with S3Front(settings.endpoint_url or "") as front:
        assert asyncio.run(run(front)) == ["ok", "ok"]
        assert front.released.is_set(), "the quick student's row came while the slow GET waited"
        assert any(k.startswith("GET ") and "/slow/" in k for k in front.seen), "held there"
