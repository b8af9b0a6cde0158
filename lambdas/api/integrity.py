"""A student's integrity events: the browser's batch, checked, onto the chunk stream.

``POST /exams/{exam_id}/students/{student_id}/integrity`` takes what the exam page
saw (``dashboard/web/js/integrity.js``): at most :data:`MAX_EVENTS` events and
:data:`MAX_BATCH_BYTES` a batch, each with the browser's id, its ``seq`` (the
student's events on that browser, counted from 0 in the order they happened),
its kind, when it started and how long it lasted. Each event becomes one
record on the chunk stream (``proctoring.integrity.IntegrityEvent``) with the
student's partition key, so the worker that judges their chunks judges these.

Refused, each with its JSON 4xx and a row in the errors table (``stage =
integrity``, the reason below), and nothing put on the stream:

- 413 ``too_large``: a body over :data:`MAX_BATCH_BYTES`;
- 400 ``invalid_body``: not JSON, a field missing or of the wrong type, an
  unknown kind, no event or more than :data:`MAX_EVENTS`;
- 400 ``future_event``: an event that ends after the server's clock plus
  :data:`CLOCK_SKEW_SECONDS`;
- 400 ``out_of_order``: ``seq`` not strictly increasing within the batch;
- 400 ``duplicate_event``: one event id twice in the batch.

A batch sent again (its answer lost, or kept offline and sent once more) is
accepted again: the consumer writes each event once (conditional write on the
event id) and records the second copy as a duplicate. Batches that arrive out
of order (an older one after a newer) are accepted too: every event is judged
on its own times.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import Field

from lambdas.api.app import ROUTER, STUDENTS, Context
from lambdas.api.http import ApiError, BadRequest, Conflict, PayloadTooLarge, Request, Response
from lambdas.api.schemas import INT, Body, obj
from lambdas.api.sessions import enrolment_for, require_consent
from proctoring.integrity import EVENT_ID, MAX_DURATION_MS, IntegrityEvent, Kind

__all__ = ["CLOCK_SKEW_SECONDS", "MAX_BATCH_BYTES", "MAX_EVENTS", "IntegrityBatch"]

MAX_EVENTS: Final = 50
MAX_BATCH_BYTES: Final = 32 * 1024
CLOCK_SKEW_SECONDS: Final = 30
"""How far in the future (the server's clock) an event may end: browsers' clocks drift."""
_PUT_ATTEMPTS = 3
ACCEPTED = obj({"accepted": INT, "last_seq": INT})


class IntegrityItem(Body):
    """One event as the browser reports it."""

    event_id: Annotated[str, Field(pattern=EVENT_ID)]
    seq: int = Field(ge=0, lt=10**9)
    kind: Kind
    at: datetime = Field(description="when it started (ISO 8601 with a zone)")
    duration_ms: int = Field(default=0, ge=0, le=MAX_DURATION_MS)
    detail: str | None = Field(default=None, max_length=200)


class IntegrityBatch(Body):
    events: list[IntegrityItem] = Field(min_length=1, max_length=MAX_EVENTS)


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/students/{student_id}/integrity",
    summary="The student's browser integrity events (tab hidden, paste, fullscreen left, ...)",
    groups=STUDENTS,
    body=IntegrityBatch,
    ok=202,
    response=ACCEPTED,
    errors=(400, 401, 403, 404, 409, 413),
    tag="sessions",
)
async def report_integrity(request: Request, ctx: Context) -> Response:
    enrolment = await enrolment_for(ctx, request.param("exam_id"), request.param("student_id"))
    require_consent(ctx, enrolment)
    exam_id, student_id = enrolment["exam_id"], enrolment["student_id"]
    exam = await ctx.services.exams.get_exam(exam_id)
    if exam is None or exam["status"] == "created":  # stopped: what was kept offline still counts
        raise Conflict("the exam has not started", reason="exam_not_started")
    received = datetime.now(UTC)
    try:
        batch = _checked(request, received)
    except ApiError as exc:
        await _record_refusal(ctx, exam_id, student_id, request, exc, received)
        raise
    events = [
        IntegrityEvent(
            exam_id=exam_id,
            student_id=student_id,
            received_at=received,
            **item.model_dump(exclude_none=True),
        )
        for item in batch.events
    ]
    await _put(ctx, events)
    return Response.json(202, {"accepted": len(events), "last_seq": events[-1].seq})


def _checked(request: Request, now: datetime) -> IntegrityBatch:
    if len(request.body) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(
            f"the batch is {len(request.body)} bytes; at most {MAX_BATCH_BYTES}",
            reason="too_large",
        )
    batch = request.json(IntegrityBatch)
    latest = now + timedelta(seconds=CLOCK_SKEW_SECONDS)
    seen: set[str] = set()
    previous = -1
    for item in batch.events:
        if item.at.tzinfo is None:
            raise BadRequest(f"event {item.seq}: at must carry a time zone", reason="invalid_body")
        if item.at + timedelta(milliseconds=item.duration_ms) > latest:
            raise BadRequest(
                f"event {item.seq} ({item.kind}) ends after the server's time "
                f"{now.isoformat(timespec='seconds')}: check the computer's clock",
                reason="future_event",
            )
        if item.seq <= previous:
            raise BadRequest(
                f"event {item.seq} follows event {previous}: a batch is in seq order",
                reason="out_of_order",
            )
        if item.event_id in seen:
            raise BadRequest(
                f"event id {item.event_id} is twice in the batch", reason="duplicate_event"
            )
        seen.add(item.event_id)
        previous = item.seq
    return batch


async def _put(ctx: Context, events: list[IntegrityEvent]) -> None:
    """PutRecords, retrying only what Kinesis rejected; what still fails is a 503 (the page
    sends the batch again; the consumer writes each event once)."""
    pending = [{"Data": e.to_bytes(), "PartitionKey": e.partition_key} for e in events]
    stream = ctx.services.settings.names.stream
    for _ in range(_PUT_ATTEMPTS):
        response = await ctx.services.clients.kinesis.put_records(
            StreamName=stream, Records=pending
        )
        if not response.get("FailedRecordCount"):
            return
        pending = [
            record
            for record, result in zip(pending, response["Records"], strict=True)
            if result.get("ErrorCode")
        ]
    raise _Unavailable(f"{len(pending)} events were not accepted by the stream; send them again")


class _Unavailable(ApiError):
    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="unavailable")


async def _record_refusal(
    ctx: Context,
    exam_id: str,
    student_id: str,
    request: Request,
    exc: ApiError,
    received: datetime,
) -> None:
    """An errors row for a refused batch (what the student's browser sent, the reason)."""
    expires = received + timedelta(days=ctx.services.settings.retention_days)
    row: dict[str, Any] = {
        "exam_id": exam_id,
        "error_id": f"integrity#{student_id}#api#{time.time_ns()}",
        "stage": "integrity",
        "reason": exc.reason,
        "message": str(exc)[:1000],
        "student_id": student_id,
        "status": exc.status,
        "bytes": len(request.body),
        "raw": request.body[:512].decode("utf-8", "replace"),
        "created_at": received.isoformat(),
        "expires_at": int(expires.timestamp()),
    }
    await ctx.services.tables.put_error(row)
