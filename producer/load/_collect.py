"""The collectors: result rows followed with paced incremental queries, and alerts received
from the alerts queue, each noted in the report when it arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import structlog
from botocore.exceptions import ClientError

from proctoring.aws import AsyncClients
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk
from producer.load._plan import LoadPlan, Progress
from producer.load._report import LoadReport

__all__ = ["collect_results", "watch_alerts"]

_log = structlog.get_logger(__name__)
_MARKS = ("notified_at", "routed_at", "arrived_at", "read_at", "extracted_at", "analysed_at")
_RESULT_FIELDS = (
    "chunk_id",
    "sequence",
    "processed_at",
    "uploaded_at",
    "status",
    "error_reason",
    *_MARKS,
)


async def collect_results(
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
                report.marks[key] = {
                    mark: datetime.fromisoformat(row[mark]).timestamp()
                    for mark in _MARKS
                    if row.get(mark)
                }
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


async def watch_alerts(
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
