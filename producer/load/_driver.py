"""The run: students handing over chunks when due (uploads, or events put on the stream),
with the collectors following what the pipeline made of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from proctoring.aws import AsyncClients
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk
from producer.load._collect import collect_results, watch_alerts
from producer.load._plan import LoadPlan, Progress
from producer.load._report import LoadReport

__all__ = ["run_load"]

_log = structlog.get_logger(__name__)
_THROTTLES = ("ProvisionedThroughputExceededException", "SlowDown", "ThrottlingException")


async def run_load(
    plan: LoadPlan,
    *,
    settings: Settings,
    clients: AsyncClients,
    tables: Tables,
    within: float = 120.0,
    poll_rate: float = 20.0,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> LoadReport:
    """Replay ``plan`` against the stack ``settings`` names; see the module docstring.

    Waits up to ``within`` seconds after the last chunk is created for the
    remaining results (what is still missing then is reported as missing).
    """
    students = plan.student_ids()
    schedule = plan.schedule()
    progress = Progress(planned=len(students) * len(schedule))
    report = LoadReport(
        plan={
            "students": plan.students,
            "chunks_per_student": len(schedule),
            "chunks": progress.planned,
            "speed": plan.speed,
            "mode": plan.mode,
            "exam_id": plan.exam_id,
            "stack": settings.endpoint_url or f"aws:{settings.region}",
            "prefix": settings.prefix,
        },
        started=clock(),
    )
    notify = on_progress or (lambda _: None)
    uploads = asyncio.Semaphore(plan.upload_concurrency)
    if plan.mode == "events":
        await _preupload(plan, students, schedule, settings, clients, uploads, report)
    stop_watch = asyncio.Event()
    events: asyncio.Queue[tuple[ChunkEvent, float] | None] = asyncio.Queue()
    report.started = clock()
    async with asyncio.TaskGroup() as group:
        group.create_task(
            watch_alerts(plan, settings, clients, report, progress, stop_watch, clock)
        )
        if plan.mode == "events":
            group.create_task(_put_events(settings, clients, events, report, clock))
        collector = group.create_task(
            collect_results(
                plan, students, schedule, tables, report, progress, poll_rate, within, clock
            )
        )
        ticker = group.create_task(_tick(progress, notify, collector))
        stagger = 0.0 if plan.speed is None else plan.chunk_seconds / plan.speed
        async with asyncio.TaskGroup() as students_group:
            for index, student in enumerate(students):
                offset = stagger * index / len(students)
                students_group.create_task(
                    _student(
                        plan,
                        student,
                        offset,
                        schedule,
                        settings,
                        clients,
                        uploads,
                        events,
                        report,
                        progress,
                        clock,
                    )
                )
        await events.put(None)  # every event is queued: the putter may finish
        await collector
        stop_watch.set()
        ticker.cancel()
    report.finished = clock()
    notify(progress)
    return report


async def _tick(
    progress: Progress, notify: Callable[[Progress], None], until: asyncio.Task[None]
) -> None:
    """Refresh the progress view a few times a second (a display, not a synchronisation)."""
    while not until.done():
        notify(progress)
        await asyncio.sleep(0.25)


def _key(plan: LoadPlan, student: str, sequence: int, captured: float) -> str:
    return ChunkKey(
        exam_id=plan.exam_id,
        student_id=student,
        source="camera",
        sequence=sequence,
        captured_ms=int(captured * 1000),
        ext="mp4",
    ).key


async def _preupload(
    plan: LoadPlan,
    students: list[str],
    schedule: list[tuple[int, float, Chunk]],
    settings: Settings,
    clients: AsyncClients,
    uploads: asyncio.Semaphore,
    report: LoadReport,
) -> None:
    """Events mode: every student's chunks into the bucket before the clock starts."""

    async def one(student: str, sequence: int, chunk: Chunk) -> None:
        async with uploads:
            await clients.s3.put_object(
                Bucket=settings.names.chunks_bucket,
                Key=_key(plan, student, sequence, 0.0),
                Body=chunk.data,
                ContentType="video/mp4",
            )

    async with asyncio.TaskGroup() as group:
        for student in students:
            for sequence, _, chunk in schedule:
                group.create_task(one(student, sequence, chunk))


async def _student(
    plan: LoadPlan,
    student: str,
    offset: float,
    schedule: list[tuple[int, float, Chunk]],
    settings: Settings,
    clients: AsyncClients,
    uploads: asyncio.Semaphore,
    events: asyncio.Queue[tuple[ChunkEvent, float] | None],
    report: LoadReport,
    progress: Progress,
    clock: Callable[[], float],
) -> None:
    for sequence, due_after, chunk in schedule:
        due = report.started + offset + due_after
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)  # the student's recorder, handing over chunk by chunk
        created = max(due, report.started)
        report.lateness.append(max(0.0, clock() - due))
        if plan.mode == "events":
            key = _key(plan, student, sequence, 0.0)
            event = ChunkEvent.from_key(
                settings.names.chunks_bucket,
                key,
                size=len(chunk.data),
                uploaded_at=datetime.fromtimestamp(created, tz=UTC),
            )
            await events.put((event, created))
        else:
            key = _key(plan, student, sequence, created - chunk.duration)
            async with uploads:
                try:
                    await clients.s3.put_object(
                        Bucket=settings.names.chunks_bucket,
                        Key=key,
                        Body=chunk.data,
                        ContentType="video/mp4",
                    )
                except (ClientError, BotoCoreError) as exc:
                    _count_failure(report, "upload", exc)
                    progress.errors += 1
                    progress.upload_errors += 1
                    continue
        report.created[(student, sequence)] = created
        progress.created += 1


def _count_failure(report: LoadReport, stage: str, exc: BaseException) -> None:
    code = (
        exc.response.get("Error", {}).get("Code", "ClientError")
        if isinstance(exc, ClientError)
        else type(exc).__name__
    )
    bucket = report.throttles if code in _THROTTLES else report.errors
    name = f"{stage}:{code}"
    bucket[name] = bucket.get(name, 0) + 1
    _log.warning("load step failed", stage=stage, code=code)


async def _put_events(
    settings: Settings,
    clients: AsyncClients,
    events: asyncio.Queue[tuple[ChunkEvent, float] | None],
    report: LoadReport,
    clock: Callable[[], float],
) -> None:
    """Events mode: batch the due events into PutRecords (<= 500), retrying rejected ones."""
    done = False
    while not done:
        first = await events.get()
        batch = [] if first is None else [first]
        done = first is None
        while not done and len(batch) < 500 and not events.empty():
            item = events.get_nowait()
            done = item is None
            if item is not None:
                batch.append(item)
        attempt = 0
        while batch:
            response = await clients.kinesis.put_records(
                StreamName=settings.names.stream,
                Records=[{"Data": e.to_bytes(), "PartitionKey": e.partition_key} for e, _ in batch],
            )
            rejected = [
                (item, r.get("ErrorCode", ""))
                for item, r in zip(batch, response["Records"], strict=True)
                if "ErrorCode" in r
            ]
            for _, code in rejected:
                bucket = report.throttles if code in _THROTTLES else report.errors
                bucket[f"put_records:{code}"] = bucket.get(f"put_records:{code}", 0) + 1
            batch = [item for item, _ in rejected]
            attempt += 1
            if batch:
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))  # backoff before the retry
