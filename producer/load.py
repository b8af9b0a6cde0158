"""Load replay: many simulated students at once, and what the pipeline made of them.

Every student replays the same session (a recording or a scenario, cycled to
``duration`` seconds), each shifted by a fraction of a chunk so the load is
smooth, in real time or ``speed`` times faster. Two modes:

- ``full``: each chunk is PUT to the chunks bucket when it is due; the S3
  notification, the chunk router and Kinesis carry it to the consumer (the
  deployed path);
- ``events``: every chunk is uploaded first (not timed), then each is
  announced when due by putting its chunk event on the stream (``PutRecords``,
  batched): the consumer alone is measured. The chunk router must not run
  meanwhile (``proctor up --no-router``; in AWS, disable its event source).

A chunk is *created* when it is due: the moment a real student's recorder
would hand it over. The run measures, per chunk, created -> result row
written (the row's ``processed_at``) and, per alert, created (its raising
chunk) -> delivered on the alerts queue (SNS -> SQS, what a proctor's screen
follows). Result rows are followed with incremental queries, at most
``poll_rate`` per second, so watching costs the stack little.

:func:`run_load` returns a :class:`LoadReport`; :func:`plot_report` draws it
(PNG, matplotlib from the ``load`` extra).

Errors::

    ProctoringError
     └── LoadError          the run cannot start (no chunks, bad parameters)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from proctoring.aws import AsyncClients
from proctoring.errors import ProctoringError
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk

__all__ = ["LoadError", "LoadPlan", "LoadReport", "Progress", "plot_report", "run_load"]

_log = structlog.get_logger(__name__)
Mode = Literal["full", "events"]
_THROTTLES = ("ProvisionedThroughputExceededException", "SlowDown", "ThrottlingException")
_FLAT_SLOPE_MS_PER_MIN = 1000
_RESULT_FIELDS = ("chunk_id", "sequence", "processed_at", "uploaded_at", "status", "error_reason")


class LoadError(ProctoringError):
    """The load run cannot start."""


@dataclass(frozen=True)
class LoadPlan:
    """What to replay: ``students`` copies of ``chunks``, cycled to ``duration`` seconds."""

    chunks: Sequence[Chunk]
    students: int
    exam_id: str
    student_prefix: str = "student"
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    """Part of every student id: evidence is written once per (exam, student, sequence), so a
    second run of the same exam must not replay the first run's students (their chunks
    would be taken for replaced evidence, CHUNK_REPLACED, and not analysed)."""
    speed: float | None = 1.0
    """1 = real time; None = every chunk at once (as fast as the stack takes them)."""
    duration: float | None = None
    """Seconds of session per student; default: the chunks once."""
    mode: Mode = "full"
    chunk_seconds: float = 5.0
    upload_concurrency: int = 64

    def __post_init__(self) -> None:
        if not self.chunks:
            raise LoadError("the session has no chunks")
        if self.students < 1:
            raise LoadError("students must be at least 1")
        if self.speed is not None and self.speed <= 0:
            raise LoadError("speed must be positive, or None for as fast as possible")

    def student_ids(self) -> list[str]:
        return [f"{self.student_prefix}-{self.run}-{i:05d}" for i in range(self.students)]

    def schedule(self) -> list[tuple[int, float, Chunk]]:
        """One student's (sequence, seconds after its start the chunk is due, chunk)."""
        seconds = self.duration or sum(c.duration for c in self.chunks)
        count = max(1, round(seconds / self.chunk_seconds))
        plan = []
        for sequence in range(count):
            chunk = self.chunks[sequence % len(self.chunks)]
            end = sequence * self.chunk_seconds + chunk.duration
            plan.append((sequence, 0.0 if self.speed is None else end / self.speed, chunk))
        return plan


@dataclass
class Progress:
    """Counts so far, handed to the progress callback."""

    planned: int = 0
    created: int = 0
    results: int = 0
    alerts: int = 0
    errors: int = 0
    """Uploads that failed and results with ``status = error``."""
    upload_errors: int = 0


@dataclass
class LoadReport:
    """Everything measured; :meth:`to_dict` is the JSON report."""

    plan: dict[str, Any]
    started: float
    finished: float = 0.0
    created: dict[tuple[str, int], float] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    written: dict[tuple[str, int], float] = field(default_factory=dict)
    uploaded: dict[tuple[str, int], float] = field(default_factory=dict)
    """When the chunk's S3 object was created (full path) or its event put (events)."""
    failed: dict[str, int] = field(default_factory=dict)
    alerts: list[tuple[str, int, str, float]] = field(default_factory=list)
    throttles: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def latencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(created seconds after the start, created -> result written in ms), by creation."""
        pairs = sorted(
            (self.created[k] - self.started, (w - self.created[k]) * 1000)
            for k, w in self.written.items()
            if k in self.created
        )
        array = np.array(pairs, dtype=float).reshape(-1, 2)
        return array[:, 0], array[:, 1]

    def alert_latencies(self) -> list[float]:
        return [
            (delivered - self.created[(student, sequence)]) * 1000
            for student, sequence, _, delivered in self.alerts
            if (student, sequence) in self.created
        ]

    def to_dict(self, *, timeline: bool = False) -> dict[str, Any]:
        at, latency = self.latencies()
        elapsed = max(self.finished - self.started, 1e-9)
        span = (max(self.created.values()) - self.started) if self.created else 0.0
        missing = len(self.created) - len(self.written)
        report: dict[str, Any] = {
            "plan": self.plan,
            "started_at": datetime.fromtimestamp(self.started, tz=UTC).isoformat(),
            "elapsed_seconds": round(elapsed, 2),
            "chunks": {
                "planned": self.plan["chunks"],
                "created": len(self.created),
                "results": len(self.written),
                "results_with_error": dict(self.failed),
                "missing": missing,
            },
            "throughput": {
                "created_per_second": round(len(self.created) / span, 2) if span else None,
                "results_per_second": _rate(sorted(self.written.values())),
            },
            "latency_ms": {
                "created_to_result": _percentiles(latency),
                "created_to_alert_delivered": _percentiles(np.array(self.alert_latencies())),
                # the parts: student -> S3 object (upload), S3 object -> result (the pipeline)
                "created_to_uploaded": _percentiles(
                    np.array([(u - self.created[k]) * 1000 for k, u in self.uploaded.items()])
                ),
                "uploaded_to_result": _percentiles(
                    np.array([(self.written[k] - u) * 1000 for k, u in self.uploaded.items()])
                ),
            },
            "lag": _lag(at, latency, missing),
            "alerts": {
                "delivered": len(self.alerts),
                "by_type": dict(Counter(kind for _, _, kind, _ in self.alerts)),
            },
            "throttles": dict(self.throttles),
            "errors": dict(self.errors),
            "generator_late_ms": _percentiles(np.array(self.lateness) * 1000),
        }
        if timeline:
            report["timeline"] = [
                [round(a, 3), round(b, 1)] for a, b in zip(at, latency, strict=True)
            ]
        return report


def _percentiles(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "count": int(values.size),
        "p50": round(float(p50), 1),
        "p90": round(float(p90), 1),
        "p99": round(float(p99), 1),
        "max": round(float(values.max()), 1),
        "mean": round(float(values.mean()), 1),
    }


def _rate(times: list[float]) -> float | None:
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return round((len(times) - 1) / (times[-1] - times[0]), 2)


def _lag(at: np.ndarray, latency: np.ndarray, missing: int) -> dict[str, Any]:
    """Is the lag flat? The last third of the chunks against the first, and the slope of a
    straight line through every chunk's latency against its creation time."""
    if latency.size < 6:
        return {"flat": missing == 0 and latency.size > 0, "reason": "too few chunks to tell"}
    third = latency.size // 3
    first, last = latency[:third], latency[-third:]
    first_p90, last_p90 = float(np.percentile(first, 90)), float(np.percentile(last, 90))
    slope = float(np.polyfit(at, latency, 1)[0]) * 60 if np.ptp(at) > 0 else 0.0
    # growing from one third to the last, or along the whole run (a backlog that built up
    # in the first seconds and keeps growing shows in the slope, not in the thirds)
    grew = last_p90 > max(1.5 * first_p90, first_p90 + 500) or slope > _FLAT_SLOPE_MS_PER_MIN
    return {
        "first_third_p90_ms": round(first_p90, 1),
        "last_third_p90_ms": round(last_p90, 1),
        "slope_ms_per_minute": round(slope, 1),
        "flat": not grew and missing == 0,
        "reason": "results missing"
        if missing
        else "latency grew over the run"
        if grew
        else "last third within 1.5x (or +500 ms) of the first, slope under "
        f"{_FLAT_SLOPE_MS_PER_MIN} ms a minute",
    }


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
            _watch_alerts(plan, settings, clients, report, progress, stop_watch, clock)
        )
        if plan.mode == "events":
            group.create_task(_put_events(settings, clients, events, report, clock))
        collector = group.create_task(
            _collect(plan, students, schedule, tables, report, progress, poll_rate, within, clock)
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


async def _collect(
    plan: LoadPlan,
    students: list[str],
    schedule: list[tuple[int, float, Chunk]],
    tables: Tables,
    report: LoadReport,
    progress: Progress,
    poll_rate: float,
    within: float,
    clock: Callable[[], float],
) -> None:
    """Follow every student's result rows until each created chunk has one (or ``within``).

    Rows are read from the lowest sequence not seen yet; every student is this run's own
    (``LoadPlan.run``), so every row is this run's.
    """
    seen: dict[str, set[int]] = {student: set() for student in students}
    lowest: dict[str, int] = dict.fromkeys(students, 0)  # lowest sequence without its row
    per_student = len(schedule)
    interval = 1.0 / poll_rate
    all_created_at: float | None = None
    while True:
        created = Counter(student for student, _ in report.created)
        outstanding = [s for s in students if len(seen[s]) < created[s]]
        everything_created = progress.created + progress.upload_errors >= progress.planned
        if everything_created and all_created_at is None:
            all_created_at = clock()
        if everything_created and not outstanding:
            return
        if all_created_at is not None and clock() - all_created_at > within:
            _log.warning("results still missing", students=len(outstanding))
            return
        if not outstanding:
            await asyncio.sleep(interval)  # pacing: nothing to look for yet
            continue
        for student in outstanding:
            started = clock()
            after = "#" if lowest[student] == 0 else f"camera#{lowest[student] - 1:06d}"
            rows = await tables.results_after(f"{plan.exam_id}#{student}", after, _RESULT_FIELDS)
            for row in rows:
                key = (student, int(row["sequence"]))
                created_at = report.created.get(key)
                if created_at is None or key in report.written:
                    continue
                uploaded = datetime.fromisoformat(row["uploaded_at"]).timestamp()
                report.written[key] = datetime.fromisoformat(row["processed_at"]).timestamp()
                report.uploaded[key] = uploaded
                if row.get("status") == "error":
                    reason = str(row.get("error_reason", "unknown"))
                    report.failed[reason] = report.failed.get(reason, 0) + 1
                    progress.errors += 1
                seen[student].add(key[1])
                progress.results += 1
            while lowest[student] in seen[student]:
                lowest[student] += 1
            if len(seen[student]) >= per_student:
                continue
            pause = interval - (clock() - started)
            if pause > 0:
                await asyncio.sleep(pause)  # pacing: at most poll_rate queries a second


async def _watch_alerts(
    plan: LoadPlan,
    settings: Settings,
    clients: AsyncClients,
    report: LoadReport,
    progress: Progress,
    stop: asyncio.Event,
    clock: Callable[[], float],
) -> None:
    """Receive what SNS delivers to the alerts queue; note when each of this exam's arrived."""
    try:
        url = (await clients.sqs.get_queue_url(QueueName=settings.names.alerts_queue))["QueueUrl"]
    except ClientError as exc:
        report.errors["alerts_queue:missing"] = 1
        _log.warning("no alerts queue; alert latency not measured", error=str(exc))
        return
    while not stop.is_set():
        response = await clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        received = clock()
        messages = response.get("Messages", [])
        for message in messages:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                alert = json.loads(json.loads(message["Body"])["Message"])
                if alert.get("exam_id") == plan.exam_id:
                    report.alerts.append(
                        (alert["student_id"], int(alert["sequence"]), alert["type"], received)
                    )
                    progress.alerts += 1
        if messages:
            await clients.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


def plot_report(report: LoadReport, path: Path, *, title: str = "") -> None:
    """A PNG: latency of every chunk over the run, and throughput per second."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LoadError("plotting needs matplotlib: pip install 'hybrid-proctoring[load]'") from exc
    at, latency = report.latencies()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    top.scatter(at, latency, s=3, alpha=0.4, label="created -> result written")
    alerts = [
        (report.created[(s, q)] - report.started, (d - report.created[(s, q)]) * 1000)
        for s, q, _, d in report.alerts
        if (s, q) in report.created
    ]
    if alerts:
        top.scatter(
            *zip(*alerts, strict=True),
            s=12,
            marker="x",
            color="red",
            label="created -> alert delivered",
        )
    top.set_ylabel("latency (ms)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    if at.size:
        seconds = np.arange(0, int(max(at.max(), 1)) + 2)
        created = np.histogram(at, bins=seconds)[0]
        written = np.histogram([w - report.started for w in report.written.values()], bins=seconds)[
            0
        ]
        bottom.step(seconds[:-1], created, where="post", label="chunks created / s")
        bottom.step(seconds[:-1], written, where="post", label="results written / s")
    bottom.set_xlabel("seconds since the start")
    bottom.set_ylabel("chunks per second")
    bottom.legend(loc="upper left")
    bottom.grid(alpha=0.3)
    plan = report.plan
    figure.suptitle(
        title or f"{plan['students']} students, {plan['mode']} path, speed {plan['speed'] or 'max'}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
