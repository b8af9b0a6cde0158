"""Erasure: every biometric and recorded trace of one student in one exam, then an audit record.

Deleted: the registered face (every FaceId of the student in the Rekognition
collection: the photo's, the enrolled camera frames', those of superseded
enrolments; and the faces table row), every chunk and frame object under the
student's prefixes (the registered photo among them: ``lambdas.api.photos``), the
video the Chime media capture pipeline recorded of the student's attendees
(``capture/<exam>/video/*-<attendeeId>[#content].mp4``), every
row of the results, alerts, sessions and errors tables about the student, and
the student's enrolment, consent, messages and forwarder claims in the exams
table. Kept: one record in the exam's audit log (who, when, how much was
deleted; nothing biometric; ``proctoring.audit``). The exam's proctor or an admin may erase.
Erasing twice is harmless: the second pass deletes nothing and is audited too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from lambdas.api.app import PROCTORS, ROUTER, Context
from lambdas.api.exams import exam_for
from lambdas.api.http import Request, Response
from lambdas.api.schemas import AUDIT, ERASURE, check_id
from proctoring.analysis.collection import face_ids
from proctoring.audit import verify
from proctoring.events import CaptureKey, InvalidEvent

__all__ = ["erase_student"]

_log = structlog.get_logger(__name__)


async def _delete_prefix(
    s3: Any,
    bucket: str,
    prefix: str,
    call_timeout: float,
    keep: Callable[[str], bool] = lambda key: False,
) -> int:
    """Delete every version (and delete marker) under ``prefix`` except the keys ``keep``
    says: the chunks bucket is versioned, so deleting the current objects alone would keep
    the recordings. Returns how many objects (keys) held data."""
    keys: set[str] = set()
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        async with asyncio.timeout(call_timeout):
            page = await s3.list_object_versions(**kwargs)
        versions = [v for v in page.get("Versions", []) if not keep(v["Key"])]
        keys.update(v["Key"] for v in versions)
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in (*versions, *page.get("DeleteMarkers", []))
            if not keep(v["Key"])
        ]
        for start in range(0, len(objects), 1000):  # DeleteObjects takes at most 1,000
            async with asyncio.timeout(call_timeout):
                response = await s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
                )
            if response.get("Errors"):
                raise RuntimeError(f"S3 kept {len(response['Errors'])} objects in {bucket}")
        if not page.get("IsTruncated"):
            return len(keys)
        kwargs["KeyMarker"] = page["NextKeyMarker"]
        kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]


async def erase_student(ctx: Context, exam_id: str, student_id: str) -> dict[str, int]:
    services = ctx.services
    settings = services.settings
    names = settings.names
    tables = services.tables
    counts: dict[str, int] = {}

    face = await tables.get_face(exam_id, student_id)
    ids = face_ids(face)  # the photo's, the camera frames', those of superseded enrolments
    rekognition = services.rekognition
    if rekognition is None:
        if ids:
            _log.warning(
                "face ids left in the collection: PROCTOR_ENGINE is not rekognition",
                exam=exam_id,
                student=student_id,
                face_ids=len(ids),
            )
        ids = []
    else:
        for start in range(0, len(ids), 4096):  # DeleteFaces takes at most 4,096
            async with asyncio.timeout(settings.call_timeout):
                await rekognition.delete_faces(
                    CollectionId=settings.collection_id, FaceIds=ids[start : start + 4096]
                )
    await tables.delete_face(exam_id, student_id)
    counts["faces"] = int(face is not None)
    counts["face_ids"] = len(ids)

    prefix = f"{exam_id}/{student_id}/"
    counts["chunks"] = await _delete_prefix(
        services.s3, names.chunks_bucket, f"chunks/{prefix}", settings.call_timeout
    )
    counts["frames"] = await _delete_prefix(
        services.s3, names.frames_bucket, f"frames/{prefix}", settings.call_timeout
    )

    own = await services.exams.student_items(exam_id, student_id)
    attendees = {
        item["item"].removeprefix("attendee#")
        for item in own
        if item["item"].startswith("attendee#")
    }
    counts["capture"] = await _delete_prefix(
        services.s3,
        names.chunks_bucket,
        f"capture/{exam_id}/video/",
        settings.call_timeout,
        keep=lambda key: _attendee(key) not in attendees,
    )

    results = await tables.results(f"{exam_id}#{student_id}")
    counts["results"] = await tables.delete_rows(
        names.results_table,
        [{"session_id": r["session_id"], "chunk_id": r["chunk_id"]} for r in results],
    )
    alerts = [a for a in await tables.alerts(exam_id) if a.get("student_id") == student_id]
    counts["alerts"] = await tables.delete_rows(
        names.alerts_table, [{"exam_id": exam_id, "alert_id": a["alert_id"]} for a in alerts]
    )
    errors = [
        e
        for e in await tables.errors(exam_id)
        if e.get("student_id") == student_id
        or str(e.get("chunk_key", "")).startswith(f"chunks/{prefix}")
    ]
    counts["errors"] = await tables.delete_rows(
        names.errors_table, [{"exam_id": exam_id, "error_id": e["error_id"]} for e in errors]
    )
    session = await tables.get_session(exam_id, student_id)
    await tables.delete_session(exam_id, student_id)
    counts["sessions"] = int(session is not None)

    for key in own:
        await services.exams.delete(key)
    counts["exam_items"] = len(own)
    return counts


def _attendee(key: str) -> str | None:
    try:
        return CaptureKey.parse(key).attendee_id
    except InvalidEvent:
        return None


@ROUTER.route(
    "DELETE",
    "/exams/{exam_id}/students/{student_id}",
    summary="Erase the student's face, recordings, frames, results, alerts and messages",
    groups=PROCTORS,
    response=ERASURE,
    tag="erasure",
)
async def erase(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    student_id = check_id(request.param("student_id"), "student_id")
    counts = await erase_student(ctx, exam["exam_id"], student_id)
    record = await ctx.services.audit.append(
        exam["exam_id"],
        {"action": "erasure", "student_id": student_id, "by": ctx.user_id, "deleted": counts},
    )
    _log.info("student erased", exam=exam["exam_id"], student=student_id, deleted=counts)
    return Response.json(
        200,
        {
            "exam_id": exam["exam_id"],
            "student_id": student_id,
            "deleted": counts,
            "audit_id": record["audit_id"],
        },
    )


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/audit",
    summary="The exam's audit log, oldest first, and whether its hash chain verifies",
    groups=PROCTORS,
    response=AUDIT,
    tag="erasure",
)
async def audit_trail(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    records = await ctx.services.audit.records(exam["exam_id"])
    return Response.json(
        200,
        {
            "records": [{k: v for k, v in r.items() if k != "expires_at"} for r in records],
            "verification": verify(records).as_dict(),
        },
    )
