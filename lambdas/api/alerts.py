"""Results and alerts of an exam, the proctor's reviews, the evidence frame, the live stream.

Only the exam's proctor (and admins) see them. A review records a decision -
``acknowledge`` (seen, looking into it), ``confirm`` (misconduct) or
``dismiss`` (false alarm) - with a note, who and when; the alert keeps every
review and its status is the last decision, and the exam's audit log keeps
each decision (the note as its SHA-256). The evidence is served as
links to the exact S3 versions the alert names, after the frame's SHA-256 is
checked against the one recorded with the alert (409 ``evidence_altered``
when they differ: the proctor is never shown a replaced frame). The live stream (SSE) is served
by the local server (``dashboard.server``); in AWS the console follows the
exam's Chime channel instead.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import structlog
from pydantic import Field

from lambdas.api.app import PROCTORS, ROUTER, Context, Query
from lambdas.api.exams import exam_for
from lambdas.api.http import Conflict, NotFound, Request, Response
from lambdas.api.schemas import ALERT, EVIDENCE, RESULT, Body, OptionalVisible, check_id, listing
from proctoring.exams import now_iso

__all__ = ["Review"]

_EVIDENCE_SECONDS = 300
_log = structlog.get_logger(__name__)


class Review(Body):
    decision: Literal["acknowledge", "confirm", "dismiss"]
    note: OptionalVisible = Field(default="", max_length=2000)


_STATUS = {"acknowledge": "acknowledged", "confirm": "confirmed", "dismiss": "dismissed"}
_STUDENT_QUERY = Query("student_id", "only this student")


def public_alert(alert: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alert.items() if k not in ("expires_at", "message_id")}


async def exam_results(ctx: Context, exam_id: str, student_id: str | None) -> list[dict[str, Any]]:
    if student_id is not None:
        students = [check_id(student_id, "student_id")]
    else:
        students = [s["student_id"] for s in await ctx.services.exams.students(exam_id)]
    rows: list[dict[str, Any]] = []
    for student in students:
        rows.extend(await ctx.services.tables.results(f"{exam_id}#{student}"))
    return [{k: v for k, v in r.items() if k != "expires_at"} for r in rows]


async def exam_alerts(ctx: Context, exam_id: str, student_id: str | None) -> list[dict[str, Any]]:
    alerts = await ctx.services.tables.alerts(exam_id)
    if student_id is not None:
        alerts = [a for a in alerts if a.get("student_id") == student_id]
    alerts.sort(key=lambda a: (str(a.get("created_at", "")), a["alert_id"]))
    return [public_alert(a) for a in alerts]


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/results",
    summary="Per-chunk results of the exam's students (one student with ?student_id=)",
    groups=PROCTORS,
    query=(_STUDENT_QUERY,),
    response=listing("results", RESULT),
    tag="results",
)
async def list_results(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    rows = await exam_results(ctx, exam["exam_id"], request.query.get("student_id"))
    return Response.json(200, {"results": rows})


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/alerts",
    summary="The exam's alerts, oldest first (one student with ?student_id=)",
    groups=PROCTORS,
    query=(_STUDENT_QUERY,),
    response=listing("alerts", ALERT),
    tag="results",
)
async def list_alerts(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    student = request.query.get("student_id")
    if student is not None:
        check_id(student, "student_id")
    return Response.json(200, {"alerts": await exam_alerts(ctx, exam["exam_id"], student)})


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/alerts/stream",
    summary=(
        "Live alerts as server-sent events (local server; EventSource may pass the token as"
        " ?access_token=). Last-Event-ID resumes."
    ),
    groups=PROCTORS,
    content_type="text/event-stream",
    query=(Query("access_token", "the bearer token, for EventSource"),),
    response={"type": "string"},
    local_only=True,
    tag="results",
)
async def alert_stream(request: Request, ctx: Context) -> Response:
    """Authorises the stream; the local server streams after a 200 (``dashboard.server``)."""
    exam = await exam_for(ctx, request.param("exam_id"))
    return Response.json(200, {"exam_id": exam["exam_id"]})


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/alerts/{alert_id}/review",
    summary="Review an alert: acknowledge, confirm or dismiss, with a note",
    groups=PROCTORS,
    body=Review,
    response=ALERT,
    tag="results",
)
async def review_alert(request: Request, ctx: Context) -> Response:
    body = request.json(Review)
    exam = await exam_for(ctx, request.param("exam_id"))
    alert_id = check_id(request.param("alert_id"), "alert_id", alert=True)
    updated = await ctx.services.tables.review_alert(
        exam["exam_id"],
        alert_id,
        {
            "decision": body.decision,
            "note": body.note,
            "by": ctx.user_id,
            "at": now_iso(),
        },
        status=_STATUS[body.decision],
    )
    if updated is None:
        raise NotFound(f"no alert {alert_id} in {exam['exam_id']}", reason="no_alert")
    await ctx.services.audit.append(
        exam["exam_id"],
        {
            "action": "review",
            "alert_id": alert_id,
            "student_id": updated.get("student_id"),
            "decision": body.decision,
            "by": ctx.user_id,
            "note_sha256": hashlib.sha256(body.note.encode()).hexdigest(),  # not the text
        },
    )
    return Response.json(200, public_alert(updated))


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/alerts/{alert_id}/evidence",
    summary="Short-lived links to the alert's evidence frame and the chunk it came from",
    groups=PROCTORS,
    response=EVIDENCE,
    errors=(400, 401, 403, 404, 409),
    tag="results",
)
async def alert_evidence(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    alert_id = check_id(request.param("alert_id"), "alert_id", alert=True)
    alert = await ctx.services.tables.get_alert(exam["exam_id"], alert_id)
    if alert is None or not (alert.get("frame_key") or alert.get("chunk_key")):
        raise NotFound(f"no evidence for {alert_id}", reason="no_alert")
    names = ctx.services.settings.names
    links = {}
    if alert.get("frame_key"):  # none kept: a CHUNK_REPLACED whose first frame was not stored
        links["url"] = (names.frames_bucket, alert["frame_key"], alert.get("frame_version"))
    if alert.get("chunk_key"):  # the chunk the frame came from, for the console's video element
        links["chunk_url"] = (names.chunks_bucket, alert["chunk_key"], alert.get("chunk_version"))
    if "url" in links and alert.get("frame_sha256"):
        await _check_frame(ctx, alert, *links["url"])
    answer: dict[str, Any] = {"expires_in": _EVIDENCE_SECONDS}
    for name, (bucket, key, version) in links.items():
        params = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        answer[name] = await ctx.services.s3.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=_EVIDENCE_SECONDS
        )
    return Response.json(200, answer)


async def _check_frame(
    ctx: Context, alert: dict[str, Any], bucket: str, key: str, version: str | None
) -> None:
    """Refuse to serve a frame whose bytes are not the ones hashed when the alert was raised."""
    response = await ctx.services.s3.get_object(
        Bucket=bucket, Key=key, **({"VersionId": version} if version else {})
    )
    async with response["Body"] as body:
        digest = hashlib.sha256(await body.read()).hexdigest()
    if digest != alert["frame_sha256"]:
        _log.error("evidence frame altered", alert=alert["alert_id"], frame=key)
        raise Conflict(
            "the evidence frame is not the one recorded with the alert", reason="evidence_altered"
        )
