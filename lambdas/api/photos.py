"""The registered photo: kept at registration, shown to the exam's proctor beside evidence.

A registration (the student's, or the proctor's reregistration) puts the photo in
the frames bucket under the student's prefix,
``frames/<exam>/<student>/registration/<ms>.<jpg|png>``, and names its key on the
enrolment (``photo_key``): the bucket's retention lifecycle expires it and erasure
(``lambdas.api.erasure``, every object under the student's frames prefix) deletes
it with the rest. ``GET .../photo`` answers a short-lived link to it, for the
exam's proctor or an admin only: the alert dialog shows it beside the evidence
frame, so an identity alert is decided by looking at both faces.
"""

from __future__ import annotations

import time

from lambdas.api.app import PROCTORS, ROUTER, Context
from lambdas.api.exams import exam_for
from lambdas.api.http import NotFound, Request, Response
from lambdas.api.schemas import check_id

__all__ = ["keep_photo"]

_LINK_SECONDS = 300


async def keep_photo(ctx: Context, exam_id: str, student_id: str, photo: bytes) -> str:
    """Put the registered ``photo`` beside the student's frames; its key."""
    png = photo.startswith(b"\x89PNG")
    key = (
        f"frames/{exam_id}/{student_id}/registration/"
        f"{int(time.time() * 1000)}.{'png' if png else 'jpg'}"
    )
    await ctx.services.s3.put_object(
        Bucket=ctx.services.settings.names.frames_bucket,
        Key=key,
        Body=photo,
        ContentType="image/png" if png else "image/jpeg",
    )
    return key


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/students/{student_id}/photo",
    summary="A short-lived link to the student's registered photo (the exam's proctor only)",
    groups=PROCTORS,
    response={"type": "object", "required": ["url"]},
    tag="sessions",
)
async def registered_photo(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    student_id = check_id(request.param("student_id"), "student_id")
    enrolment = await ctx.services.exams.get_student(exam["exam_id"], student_id)
    if enrolment is None:
        raise NotFound(f"{student_id} has not joined {exam['exam_id']}", reason="not_joined")
    key = enrolment.get("photo_key")
    if not key:
        raise NotFound("no registered photo", reason="no_photo")
    url = await ctx.services.s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": ctx.services.settings.names.frames_bucket, "Key": key},
        ExpiresIn=_LINK_SECONDS,
    )
    return Response.json(200, {"url": url})
