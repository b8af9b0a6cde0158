"""Upload forms: presigned POSTs for a student's next chunks, each sequence issued once.

Upload forms are S3 presigned POSTs, one per chunk, each bound to one key the
server fixes - ``chunks/<exam>/<student>/<source>/<sequence>_<ms>.<ext>``
(``proctoring.events.ChunkKey``) - with a ``video/*`` content type and at
most ``PROCTOR_MAX_CHUNK_BYTES``: a student can write their own next chunks
and nothing else, after consent, while the exam runs. Each sequence's key is
fixed once, by a conditional write (``ExamStore.issue_upload``): asking again
for a sequence not yet uploaded gets a fresh form for the same key (an expired
form, a reloaded page); asking for one that is uploaded is refused (409
``already_uploaded``), so earlier evidence cannot be replaced through the API.
The exam's audit log (``proctoring.audit``) records the sequences each request
fixed (``uploads_issued``) and every refused request (``upload_refused``).

The speed check (``POST .../speed-check``) is the system check's upload test: it
takes up to ``SPEED_CHECK_MAX_BYTES`` of anything, keeps none of it and answers
how many bytes arrived, so the page times the transfer alone (no face check, no
S3 write) before the exam starts.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from lambdas.api.app import ROUTER, STUDENTS, Context
from lambdas.api.http import BadRequest, Conflict, PayloadTooLarge, Request, Response
from lambdas.api.schemas import UPLOADS, Body
from lambdas.api.sessions import enrolment_for, require_consent
from proctoring.events import ChunkKey

__all__ = ["SPEED_CHECK_MAX_BYTES", "UploadRequest"]

SPEED_CHECK_MAX_BYTES = 1024 * 1024  # the page sends 256 KiB; room, and no more


class UploadRequest(Body):
    source: Literal["camera", "screen"] = "camera"
    first_sequence: int = Field(ge=0, lt=10**9 - 1000)
    count: int = Field(default=1, ge=1, le=120)
    ext: Literal["webm", "mp4", "mkv"] = "webm"
    content_type: str = Field(default="video/webm", pattern=r"^video/[a-z0-9.+-]{1,40}$")


async def _uploaded(ctx: Context, key: str) -> bool:
    """Whether the chunks bucket holds an object under ``key``."""
    try:
        await ctx.services.s3.head_object(Bucket=ctx.services.settings.names.chunks_bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/students/{student_id}/uploads",
    summary="Presigned POST forms for the student's next chunks (after consent, exam started)",
    groups=STUDENTS,
    body=UploadRequest,
    response=UPLOADS,
    errors=(400, 401, 403, 404, 409),
    tag="sessions",
)
async def upload_forms(request: Request, ctx: Context) -> Response:
    body = request.json(UploadRequest)
    enrolment = await enrolment_for(ctx, request.param("exam_id"), request.param("student_id"))
    require_consent(ctx, enrolment)
    if enrolment.get("session_state") == "ended":  # by the proctor (lambdas.api.interventions)
        raise Conflict("your proctor ended your session: no more uploads", reason="session_ended")
    settings = ctx.services.settings
    exam = await ctx.services.exams.get_exam(enrolment["exam_id"])
    if exam is None or exam["status"] != "started":
        raise Conflict("the exam is not running", reason="exam_not_started")
    if body.count > settings.uploads_per_request:
        raise BadRequest(
            f"at most {settings.uploads_per_request} chunks per request", reason="too_many"
        )
    now_ms = int(time.time() * 1000)
    step_ms = int(settings.chunk_seconds * 1000)
    uploads = []
    issued: list[int] = []  # sequences whose key this request fixed
    for i in range(body.count):
        sequence = body.first_sequence + i
        proposed = ChunkKey(
            exam_id=enrolment["exam_id"],
            student_id=enrolment["student_id"],
            source=body.source,
            sequence=sequence,
            captured_ms=now_ms + i * step_ms,  # the server's estimate: the key is fixed here
            ext=body.ext,
        ).key
        key = await ctx.services.exams.issue_upload(
            enrolment["exam_id"], enrolment["student_id"], body.source, sequence, proposed
        )
        if key == proposed:
            issued.append(sequence)
        elif await _uploaded(ctx, key):
            await _audit(ctx, enrolment, body.source, issued, refused=sequence)
            raise Conflict(
                f"{body.source} chunk {sequence} is uploaded already; it cannot be replaced",
                reason="already_uploaded",
            )
        form = await ctx.services.s3.generate_presigned_post(
            Bucket=settings.names.chunks_bucket,
            Key=key,
            Fields={"Content-Type": body.content_type},
            Conditions=[
                {"Content-Type": body.content_type},
                ["starts-with", "$Content-Type", "video/"],
                ["content-length-range", 1, settings.max_chunk_bytes],
            ],
            ExpiresIn=settings.upload_url_seconds,
        )
        uploads.append(
            {"sequence": sequence, "key": key, "url": form["url"], "fields": form["fields"]}
        )
    if issued:
        await _audit(ctx, enrolment, body.source, issued)
    return Response.json(
        200,
        {
            "uploads": uploads,
            "max_bytes": settings.max_chunk_bytes,
            "expires_in": settings.upload_url_seconds,
        },
    )


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/students/{student_id}/speed-check",
    summary="Receive and discard a test payload: the system check times its upload alone",
    groups=STUDENTS,
    response={"type": "object", "required": ["received_bytes"]},
    errors=(400, 401, 403, 404, 409, 413),
    tag="sessions",
)
async def speed_check(request: Request, ctx: Context) -> Response:
    # the caller's own enrolment (joined, any state): a check costs a lookup, nothing stored
    await enrolment_for(ctx, request.param("exam_id"), request.param("student_id"))
    if len(request.body) > SPEED_CHECK_MAX_BYTES:
        raise PayloadTooLarge(
            f"a speed check sends at most {SPEED_CHECK_MAX_BYTES // 1024} KB", reason="too_large"
        )
    return Response.json(200, {"received_bytes": len(request.body)})


async def _audit(
    ctx: Context,
    enrolment: dict[str, Any],
    source: str,
    issued: list[int],
    *,
    refused: int | None = None,
) -> None:
    record: dict[str, Any] = {
        "action": "uploads_issued" if refused is None else "upload_refused",
        "student_id": enrolment["student_id"],
        "by": ctx.user_id,
        "source": source,
        "sequences": issued,
    }
    if refused is not None:
        record["refused"] = refused
    await ctx.services.audit.append(enrolment["exam_id"], record)
