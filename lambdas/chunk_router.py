"""Chunk router: S3 ``ObjectCreated`` notifications -> one chunk event per chunk in Kinesis.

Over 400 lines on purpose: it is one Lambda's whole path (notification in, chunk events out,
bad input recorded) and this contract; split, the bad-input rules would be read in three files.

The handler takes what S3 delivers, either directly (``aws:s3`` records) or
through the chunk-events queue (``aws:sqs`` records whose body is the S3
notification; the deployed path, and the local one). Each object becomes a
``ChunkEvent`` put with ``PutRecords`` (at most 500 a call), partition key
``exam#student`` so one student's chunks stay on one shard, in order.
Records Kinesis rejects (throttling, internal errors) are retried with
exponential backoff; SQS messages whose records still fail are reported as
``batchItemFailures`` so only those come back. An object whose key is not a
chunk key is bad input: logged, counted and recorded in the errors table,
never retried. So is a message that is not an S3 notification, or an S3
record that lacks a field or carries one of the wrong type
(``bad_notification``): whoever can send to the queue must not be able to
fail the invocation, or the SQS batch around it would come back until its
good messages land in the dead-letter queue.

Two layouts become chunk events (``proctoring.events``): the browser's
uploads under ``chunks/`` and the Chime SDK media capture pipeline's under
``capture/<exam>/``. A capture video chunk names a meeting attendee; the
router looks the attendee up in the exams table (``attendee#<id>``, written
by the API when it created the attendee; cached, since an attendee never
changes hands) and routes the chunk as that student's, source ``chime``,
sequence = its 5 s moment. The proctor's attendee and content share
(``#content``) are skipped, as are the pipeline's other artifacts (``audio/``,
``meeting-events/``, ``data-channel/``): counted as ``RouterIgnored`` by
reason, not errors. A video chunk of an attendee nobody created
(``unknown_attendee``, the pipeline's own attendee included) is bad input like
a bad key: an errors row, a log line and ``RouterErrors``.

A warm container keeps its clients and the attendee cache between
invocations (``lambdas.container``).
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from lambdas import container
from proctoring.aws import AsyncClients, async_clients
from proctoring.events import CAPTURE_PREFIX, IDENTIFIER, CaptureKey, ChunkEvent, InvalidEvent
from proctoring.exams import ExamStore
from proctoring.logs import configure_logging
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["Attendees", "RouteOutcome", "handler", "route"]

_log = structlog.get_logger(__name__)
_MAX_RECORDS_PER_PUT = 500
_RAW_PREVIEW = 512
_MAX_SORT_KEY_BYTES = 1024  # DynamoDB's limit on a range key value


@dataclass
class RouteOutcome:
    routed: int = 0
    rejected: int = 0
    ignored: int = 0
    failed_messages: list[str] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        """The Lambda response SQS partial-batch failure reporting expects."""
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed_messages]}


class Attendees:
    """Who each meeting attendee is, from the exams table; known attendees are cached
    (at most ``size``), unknown ones asked again next time (the API may write them late)."""

    def __init__(self, exams: ExamStore, *, size: int = 10_000) -> None:
        self._exams = exams
        self._size = size
        self._known: dict[tuple[str, str], dict[str, Any]] = {}

    async def get(self, exam_id: str, attendee_id: str) -> dict[str, Any] | None:
        key = (exam_id, attendee_id)
        if key in self._known:
            return self._known[key]
        found = await self._exams.get_attendee(exam_id, attendee_id)
        if found is not None:
            if len(self._known) >= self._size:
                self._known.pop(next(iter(self._known)))
            self._known[key] = found
        return found


@dataclass(frozen=True)
class _Pending:
    message_id: str | None  # the SQS message the chunk came in, if any
    event: ChunkEvent


def _s3_records(
    event: Mapping[str, Any],
) -> tuple[list[tuple[str | None, Any]], list[tuple[str, str]]]:
    """(SQS message id or None, S3 record) for every S3 record, and (message id, body) of
    every message that is not an S3 notification."""
    found: list[tuple[str | None, Any]] = []
    unreadable: list[tuple[str, str]] = []
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:sqs":
            body = record.get("body")
            try:
                parsed = json.loads(body) if isinstance(body, str) else None
            except json.JSONDecodeError:
                parsed = None
            records = parsed.get("Records", []) if isinstance(parsed, dict) else None
            if not isinstance(records, list):
                unreadable.append((str(record.get("messageId", "?")), str(body)))
                continue
            found.extend((record.get("messageId"), r) for r in records)
        elif record.get("eventSource") == "aws:s3":
            found.append((None, record))
    return found, unreadable


def _object_created(record: Any) -> tuple[str, str, int, datetime]:
    """Bucket, key (URL-decoded), size and event time of an S3 record.

    Raises ValueError naming what is missing or malformed.
    """
    try:
        s3 = record["s3"]
        bucket, key = s3["bucket"]["name"], s3["object"]["key"]
        size, uploaded_at = int(s3["object"].get("size", 0)), record["eventTime"]
        if not (isinstance(bucket, str) and isinstance(key, str) and isinstance(uploaded_at, str)):
            raise TypeError("bucket, key and eventTime must be strings")
        return bucket, urllib.parse.unquote_plus(key), size, datetime.fromisoformat(uploaded_at)
    except KeyError as exc:
        raise ValueError(f"the S3 record has no {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"the S3 record is malformed: {type(exc).__name__}: {exc}") from exc


async def route(
    event: Mapping[str, Any],
    *,
    kinesis: Any,
    tables: Tables,
    stream: str,
    metrics: Metrics,
    attendees: Attendees | None = None,
    retention_days: int = 30,
    max_attempts: int = 5,
) -> RouteOutcome:
    """Put one chunk event per created object; see the module docstring."""
    notified_at = datetime.now(UTC)  # the notification reached the router: latency breakdown
    outcome = RouteOutcome()
    pending: list[_Pending] = []
    records, unreadable = _s3_records(event)
    for unreadable_id, body in unreadable:
        outcome.rejected += 1
        await _reject_message(
            tables,
            metrics,
            f"message#{unreadable_id}",
            "not_s3_notification",
            "the message is not an S3 notification (no Records list)",
            body,
            retention_days,
        )
    for position, (message_id, record) in enumerate(records):
        if isinstance(record, dict) and not str(record.get("eventName", "")).startswith(
            "ObjectCreated:"
        ):
            outcome.ignored += 1  # s3:TestEvent and the like carry no object
            continue
        try:
            bucket, key, size, uploaded_at = _object_created(record)
        except ValueError as exc:
            outcome.rejected += 1
            await _reject_message(
                tables,
                metrics,
                f"message#{message_id}#{position}",
                "bad_notification",
                str(exc),
                json.dumps(record, default=str),
                retention_days,
            )
            continue
        try:
            if key.startswith(CAPTURE_PREFIX):
                captured = await _capture_event(bucket, key, size, uploaded_at, attendees, metrics)
                if captured is None:
                    outcome.ignored += 1
                    continue
                chunk = captured
            else:
                chunk = ChunkEvent.from_key(bucket, key, size=size, uploaded_at=uploaded_at)
        except InvalidEvent as exc:
            outcome.rejected += 1
            await _reject(tables, metrics, bucket, key, exc, retention_days)
            continue
        timings = {"notified_at": notified_at}
        pending.append(_Pending(message_id, chunk.model_copy(update={"timings": timings})))

    for start in range(0, len(pending), _MAX_RECORDS_PER_PUT):
        batch = pending[start : start + _MAX_RECORDS_PER_PUT]
        failed = await _put_with_retries(kinesis, stream, batch, max_attempts)
        outcome.routed += len(batch) - len(failed)
        put_at = datetime.now(UTC)
        still_failing = {id(item) for item in failed}
        for item in batch:  # S3 ObjectCreated -> event in Kinesis: the router's share of e2e
            if id(item) not in still_failing:
                metrics.add(
                    MetricName.RouterLatencyMs,
                    (put_at - item.event.uploaded_at).total_seconds() * 1000,
                    "Milliseconds",
                )
        for item in failed:
            if item.message_id is None:
                raise RuntimeError(f"Kinesis kept rejecting the event for {item.event.key}")
            outcome.failed_messages.append(item.message_id)
    outcome.failed_messages = sorted(set(outcome.failed_messages))
    metrics.add(MetricName.EventsRouted, outcome.routed)
    if outcome.failed_messages:
        metrics.add(MetricName.RouterRetriesExhausted, len(outcome.failed_messages))
    metrics.flush()
    return outcome


async def _capture_event(
    bucket: str,
    key: str,
    size: int,
    uploaded_at: datetime,
    attendees: Attendees | None,
    metrics: Metrics,
) -> ChunkEvent | None:
    """The chunk event of a capture pipeline object, or None for one to skip (counted).

    Raises InvalidEvent for a key outside the layout or an attendee nobody created.
    """
    capture = CaptureKey.parse(key)
    skip = None
    if not capture.is_video:
        skip = f"capture_{capture.folder}"[:64]  # audio, meeting-events, data-channel
    elif capture.content:
        skip = "content_share"
    if skip is None:
        assert capture.attendee_id is not None
        attendee = await attendees.get(capture.exam_id, capture.attendee_id) if attendees else None
        if attendee is None:
            raise InvalidEvent(
                f"attendee {capture.attendee_id} of exam {capture.exam_id} is no student "
                "the API created an attendee for",
                reason="unknown_attendee",
            )
        if attendee.get("role") != "student":
            skip = f"{attendee.get('role')}_attendee"
        else:
            return ChunkEvent.from_capture(
                bucket,
                key,
                student_id=str(attendee["student_id"]),
                size=size,
                uploaded_at=uploaded_at,
            )
    metrics.add(MetricName.RouterIgnored, Reason=skip)
    _log.debug("capture object skipped", reason=skip)
    return None


async def _put_with_retries(
    kinesis: Any, stream: str, batch: list[_Pending], max_attempts: int
) -> list[_Pending]:
    """PutRecords, retrying only the records Kinesis rejected; return those still failing."""
    remaining = batch

    async def attempt() -> list[_Pending]:
        nonlocal remaining
        routed_at = datetime.now(UTC)  # the latency breakdown's router -> Kinesis
        response = await kinesis.put_records(
            StreamName=stream,
            Records=[
                {
                    "Data": _stamped(p.event, routed_at).to_bytes(),
                    "PartitionKey": p.event.partition_key,
                }
                for p in remaining
            ],
        )
        remaining = [
            p for p, r in zip(remaining, response["Records"], strict=True) if "ErrorCode" in r
        ]
        if remaining:
            _log.warning("kinesis rejected records", count=len(remaining))
        return remaining

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        retry=retry_if_result(bool),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else remaining,
    )
    still_failing: list[_Pending] = await retrying(attempt)
    return still_failing


def _stamped(event: ChunkEvent, routed_at: datetime) -> ChunkEvent:
    """The event with the time it is put on the stream (the latency breakdown's)."""
    return event.model_copy(update={"timings": {**(event.timings or {}), "routed_at": routed_at}})


async def _reject(
    tables: Tables, metrics: Metrics, bucket: str, key: str, exc: InvalidEvent, retention_days: int
) -> None:
    now = datetime.now(UTC)
    parts = key.split("/")
    exam_id = parts[1] if len(parts) > 2 and parts[0] in ("chunks", "capture") else ""
    if not re.fullmatch(IDENTIFIER, exam_id) or ".." in exam_id:
        exam_id = "_unknown"  # no partition per made-up exam name; operators look here
    error_id = f"object#{bucket}/{key}"
    if len(error_id.encode()) > _MAX_SORT_KEY_BYTES:
        # A 1,024-byte key of multi-byte characters: the row must still be written (a
        # refused write would fail the invocation and the SQS batch around it).
        error_id = f"object#{bucket}/sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    await tables.put_error(
        {
            "exam_id": exam_id,
            "error_id": error_id,
            "stage": "router",
            "reason": exc.reason,
            "message": str(exc),
            "bucket": bucket,
            "chunk_key": key[:1024],
            "created_at": now.isoformat(),
            "expires_at": int((now + timedelta(days=retention_days)).timestamp()),
        }
    )
    metrics.add(MetricName.RouterErrors, Reason=exc.reason)
    _log.error("object is not a chunk", reason=exc.reason, error=str(exc))


async def _reject_message(
    tables: Tables,
    metrics: Metrics,
    error_id: str,
    reason: str,
    message: str,
    raw: str,
    retention_days: int,
) -> None:
    """Record a queue message (or one of its records) that names no object."""
    now = datetime.now(UTC)
    await tables.put_error(
        {
            "exam_id": "_unknown",
            "error_id": error_id[:256],
            "stage": "router",
            "reason": reason,
            "message": message,
            "raw": raw[:_RAW_PREVIEW],
            "created_at": now.isoformat(),
            "expires_at": int((now + timedelta(days=retention_days)).timestamp()),
        }
    )
    metrics.add(MetricName.RouterErrors, Reason=reason)
    _log.error("message is not a chunk notification", reason=reason, error=message)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point."""
    settings = Settings()
    configure_logging(settings)
    return container.run(_handle(event, settings))


@dataclass(frozen=True)
class _Router:
    """What the handler keeps for the container: clients, tables, the attendee cache."""

    clients: AsyncClients
    tables: Tables
    attendees: Attendees


@asynccontextmanager
async def _open_router(settings: Settings) -> AsyncIterator[_Router]:
    async with async_clients(settings) as clients:
        yield _Router(
            clients,
            Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout),
            Attendees(ExamStore(clients.dynamodb, settings.names, timeout=settings.call_timeout)),
        )


async def _handle(event: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    metrics = Metrics(settings.metrics_namespace, "chunk-router", print)
    router = await container.kept("chunk-router", settings, _open_router)
    outcome = await route(
        event,
        kinesis=router.clients.kinesis,
        tables=router.tables,
        stream=settings.names.stream,
        metrics=metrics,
        attendees=router.attendees,
        retention_days=settings.retention_days,
    )
    return outcome.response()
