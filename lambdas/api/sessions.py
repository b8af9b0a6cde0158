"""A student's session: join an exam, consent, register the face photo.

Joining answers the rules that watch the student (``rules``: the exam's policy relaxed by
their accommodations), so the page tells them what each asks of them.

Consent comes first: without consent to the current policy version
(``PROCTOR_CONSENT_VERSION``) registration and uploads (``lambdas.api.uploads``)
are refused (409 ``consent_required``). A registration, and a proctor's
reregistration, goes into the exam's audit log (``proctoring.audit``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import Field

from lambdas.api.app import ANYONE_SIGNED_IN, PROCTORS, ROUTER, STUDENTS, Context
from lambdas.api.exams import exam_for, student_rules
from lambdas.api.http import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Request,
    Response,
    Unprocessable,
)
from lambdas.api.photos import keep_photo
from lambdas.api.schemas import ENROLMENT, Body, JsonTrue, Visible, check_id, is_visible
from lambdas.register import MAX_PHOTO_BYTES
from proctoring.analysis.faces import MAX_ENROLMENT_FRAMES, RegistrationError
from proctoring.events import InvalidEvent
from proctoring.exams import now_iso

__all__ = ["enrolment_for", "require_consent"]


class Consent(Body):
    policy_version: Visible = Field(min_length=1, max_length=40)
    accepted: JsonTrue = Field(description="must be true; without consent there is no exam")


class Photo(Body):
    photo: str = Field(min_length=1, description="base64 JPEG or PNG, at most 5 MB decoded")
    frames: list[str] = Field(
        default_factory=list,
        max_length=MAX_ENROLMENT_FRAMES,
        description="frames from the student's own camera at exam start (base64 JPEG or PNG "
        "each); kept beside the photo, identity = the closest (local engine)",
    )


class Reregistration(Photo):
    reason: Visible = Field(
        min_length=3,
        max_length=500,
        description="why the reference face is replaced while the exam runs (audited)",
    )


def _view(enrolment: dict[str, Any]) -> dict[str, Any]:
    keys = ("exam_id", "student_id", "name", "joined_at", "consent", "registered_at", "meeting")
    return {k: enrolment[k] for k in keys if enrolment.get(k) is not None}


async def enrolment_for(ctx: Context, exam_id: str, student_id: str) -> dict[str, Any]:
    """The student's own enrolment (the caller must be that student)."""
    check_id(exam_id, "exam_id")
    check_id(student_id, "student_id")
    if student_id != ctx.user_id:
        raise Forbidden("a student may act only for themselves", reason="not_owner")
    enrolment = await ctx.services.exams.get_student(exam_id, student_id)
    if enrolment is None:
        if await ctx.services.exams.get_exam(exam_id) is None:
            raise NotFound(f"no exam {exam_id}", reason="no_exam")
        raise Conflict("join the exam first", reason="not_joined")
    return enrolment


def require_consent(ctx: Context, enrolment: dict[str, Any]) -> None:
    consent = enrolment.get("consent") or {}
    if consent.get("version") != ctx.services.settings.consent_version:
        raise Conflict(
            f"consent to policy version {ctx.services.settings.consent_version} first",
            reason="consent_required",
        )


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/join",
    summary="Join an exam as the calling student (idempotent)",
    groups=STUDENTS,
    response=ENROLMENT,
    errors=(400, 401, 403, 404, 409),
    tag="sessions",
)
async def join_exam(request: Request, ctx: Context) -> Response:
    exam_id = check_id(request.param("exam_id"), "exam_id")
    exam = await ctx.services.exams.get_exam(exam_id)
    if exam is None:
        raise NotFound(f"no exam {exam_id}", reason="no_exam")
    if exam["status"] == "stopped":
        raise Conflict("the exam is over", reason="exam_stopped")
    check_id(ctx.user_id, "your user id")
    enrolment = await ctx.services.exams.join(exam_id, ctx.user_id)
    # What the proctor's console shows, taken once, at the first join: a name the student
    # changes afterwards never renames them on the roster (the web client cannot write
    # `name` in AWS - WriteAttributes - but a stale or other client might).
    # A name with nothing visible in it (spaces, zero-width characters) would leave a blank
    # line on the roster: the email stands in for it.
    name = next((n for n in (ctx.principal.name, ctx.principal.email) if n and is_visible(n)), None)
    if name and not enrolment.get("name"):
        enrolment = await ctx.services.exams.update_student(exam_id, ctx.user_id, {"name": name})
    view = _view(enrolment)
    if exam["status"] == "started":
        view["meeting"] = await ctx.services.channel.transport.add_member(exam, ctx.user_id)
        if view["meeting"].get("attendee_id"):  # the router maps capture chunks with this
            await ctx.services.exams.put_attendee(
                exam_id, view["meeting"]["attendee_id"], ctx.user_id, "student"
            )
    view["consent_version"] = ctx.services.settings.consent_version
    view["rules"] = await student_rules(ctx, exam_id, ctx.user_id)  # the page's instructions
    view["privacy"] = {  # the consent text: how long data is kept, whom to ask
        "retention_days": ctx.services.settings.retention_days,
        "contact": ctx.services.settings.privacy_contact,
    }
    return Response.json(200, view)


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/students/{student_id}",
    summary="A student's enrolment: joined, consent, registered (the student, the proctor)",
    groups=ANYONE_SIGNED_IN,
    response=ENROLMENT,
    tag="sessions",
)
async def get_enrolment(request: Request, ctx: Context) -> Response:
    exam_id, student_id = request.param("exam_id"), request.param("student_id")
    if ctx.principal.role == "student":
        enrolment = await enrolment_for(ctx, exam_id, student_id)
    else:
        await exam_for(ctx, exam_id)
        check_id(student_id, "student_id")
        found = await ctx.services.exams.get_student(exam_id, student_id)
        if found is None:
            raise NotFound(f"{student_id} has not joined {exam_id}", reason="not_joined")
        enrolment = found
    view = _view(enrolment)
    view["consent_version"] = ctx.services.settings.consent_version
    return Response.json(200, view)


@ROUTER.route(
    "PUT",
    "/exams/{exam_id}/students/{student_id}/consent",
    summary="Record the student's consent to the current policy version (time is the server's)",
    groups=STUDENTS,
    body=Consent,
    response=ENROLMENT,
    errors=(400, 401, 403, 404, 409),
    tag="sessions",
)
async def give_consent(request: Request, ctx: Context) -> Response:
    body = request.json(Consent)
    enrolment = await enrolment_for(ctx, request.param("exam_id"), request.param("student_id"))
    current = ctx.services.settings.consent_version
    if body.policy_version != current:
        raise Conflict(
            f"policy version {body.policy_version!r} is not the current one ({current})",
            reason="stale_policy",
        )
    updated = await ctx.services.exams.update_student(
        enrolment["exam_id"],
        enrolment["student_id"],
        {"consent": {"version": current, "at": now_iso()}},
    )
    return Response.json(200, _view(updated))


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/students/{student_id}/registration",
    summary="Register the student's face photo (after consent); exactly one face",
    groups=STUDENTS,
    body=Photo,
    ok=201,
    response={"type": "object", "required": ["registered"]},
    errors=(400, 401, 403, 404, 409, 413, 422),
    tag="sessions",
)
async def register_face(request: Request, ctx: Context) -> Response:
    body = request.json(Photo)
    enrolment = await enrolment_for(ctx, request.param("exam_id"), request.param("student_id"))
    require_consent(ctx, enrolment)
    if enrolment.get("registered_at"):
        # Before the exam starts a student may retake the photo. Once it runs, the face the
        # chunks are compared with stays: otherwise whoever holds the student's session
        # (a friend taking over the seat) would register themselves and never be flagged.
        exam = await ctx.services.exams.get_exam(enrolment["exam_id"])
        if exam is None or exam["status"] != "created":
            raise Conflict(
                "the face is registered and the exam has started: it cannot be replaced now",
                reason="already_registered",
            )
    face = await _register(ctx, enrolment["exam_id"], enrolment["student_id"], body)
    photo_key = await keep_photo(
        ctx, enrolment["exam_id"], enrolment["student_id"], base64.b64decode(body.photo)
    )
    await ctx.services.exams.update_student(
        enrolment["exam_id"],
        enrolment["student_id"],
        {"registered_at": now_iso(), "photo_key": photo_key},
    )
    await ctx.services.audit.append(
        enrolment["exam_id"],
        {"action": "registration", "student_id": enrolment["student_id"], "by": ctx.user_id},
    )
    return Response.json(201, _registered(face))


async def _register(ctx: Context, exam_id: str, student_id: str, body: Photo) -> Any:
    """Decode the photo and frames, check their size, register them with the engine."""
    try:
        photo = base64.b64decode(body.photo, validate=True)
        frames = [base64.b64decode(frame, validate=True) for frame in body.frames]
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("photo must be base64 (JPEG or PNG)", reason="bad_photo") from exc
    for image in (photo, *frames):
        if len(image) > MAX_PHOTO_BYTES:
            raise PayloadTooLarge(
                f"the photo is {len(image) // 1024} KB; at most {MAX_PHOTO_BYTES // 1024} KB",
                reason="too_large",
            )
    try:
        return await ctx.services.register(exam_id, student_id, photo, frames)
    except RegistrationError as exc:
        raise Unprocessable(str(exc), reason=exc.reason) from exc
    except InvalidEvent as exc:
        raise BadRequest(str(exc), reason=exc.reason) from exc


def _registered(face: Any) -> dict[str, Any]:
    return {
        "registered": True,
        "face": {"box": list(face.box)},
        "frames_enrolled": face.frames_enrolled,
    }


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/students/{student_id}/reregistration",
    summary="The exam's proctor registers a new reference face for a student (audited; the "
    "old enrolment is kept, open alerts stay open)",
    groups=PROCTORS,
    body=Reregistration,
    ok=201,
    response={"type": "object", "required": ["registered"]},
    errors=(400, 401, 403, 404, 409, 413, 422),
    tag="sessions",
)
async def reregister_face(request: Request, ctx: Context) -> Response:
    """Once the exam runs only the proctor may replace a student's reference face (a student
    cannot: 409 ``already_registered``). The face replaced stays in the student's faces item
    (``superseded``), an audit record says who, when and why, and no alert is touched."""
    body = request.json(Reregistration)
    exam = await exam_for(ctx, request.param("exam_id"))
    exam_id = exam["exam_id"]
    student_id = check_id(request.param("student_id"), "student_id")
    if exam["status"] == "stopped":
        raise Conflict("the exam is over", reason="exam_stopped")
    enrolment = await ctx.services.exams.get_student(exam_id, student_id)
    if enrolment is None:
        raise NotFound(f"{student_id} has not joined {exam_id}", reason="not_joined")
    require_consent(ctx, enrolment)
    previous = await ctx.services.tables.get_face(exam_id, student_id)
    face = await _register(ctx, exam_id, student_id, body)
    if previous is not None:
        await ctx.services.tables.keep_superseded_face(exam_id, student_id, previous)
    photo_key = await keep_photo(ctx, exam_id, student_id, base64.b64decode(body.photo))
    at = now_iso()
    await ctx.services.exams.update_student(
        exam_id,
        student_id,
        {
            "registered_at": at,
            "photo_key": photo_key,
            "reregistered": {"by": ctx.user_id, "at": at, "reason": body.reason},
        },
    )
    await ctx.services.audit.append(
        exam_id,
        {
            "action": "reregistration",
            "student_id": student_id,
            "by": ctx.user_id,
            "reason": body.reason,
            "replaced": previous.get("registered_at") if previous else None,
        },
    )
    return Response.json(201, _registered(face))
