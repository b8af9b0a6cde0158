"""Exams: create, list, get, start and stop (proctors; admins see every exam).

Starting opens the exam's meeting and channel (``proctoring.channels``) and
makes its chunks count: the consumer analyses only chunks of started exams
(``PROCTOR_EXAM_GATE``). Stopping ends them; chunks arriving later are
recorded, not analysed.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from lambdas.api.app import ANYONE_SIGNED_IN, PROCTORS, ROUTER, Context
from lambdas.api.auth import ADMIN, PROCTOR, STUDENT
from lambdas.api.http import Conflict, Forbidden, NotFound, Request, Response
from lambdas.api.schemas import EXAM, EXAM_LIST, Body, Visible, check_id
from proctoring.exams import Conflict as StoreConflict
from proctoring.exams import now_iso
from proctoring.rules.policy import POLICY_STUDENT_ID, Accommodations, Policy, PolicyError

__all__ = ["exam_for", "public_exam"]


class CreateExam(Body):
    title: Visible = Field(min_length=1, max_length=200)
    student_alerts: bool = Field(
        default=False, description="also post each alert to the student it is about"
    )
    screen: bool = Field(default=False, description="record the student's screen too")


_PUBLIC = (
    "exam_id",
    "title",
    "proctor_id",
    "status",
    "student_alerts",
    "screen",
    "created_at",
    "started_at",
    "stopped_at",
    "meeting_id",
    "channel_arn",
)


def public_exam(exam: dict[str, Any], *, for_student: bool = False) -> dict[str, Any]:
    keys = ("exam_id", "title", "status", "screen", "meeting_id") if for_student else _PUBLIC
    return {k: exam[k] for k in keys if exam.get(k) is not None}


async def exam_for(
    ctx: Context, exam_id: str, *, proctor: bool = True, student: bool = False
) -> dict[str, Any]:
    """The exam if the caller may see it: its proctor, an admin, or (``student``) an enrolled
    student; NotFound or Forbidden otherwise."""
    check_id(exam_id, "exam_id")
    exam = await ctx.services.exams.get_exam(exam_id)
    if exam is None:
        raise NotFound(f"no exam {exam_id}", reason="no_exam")
    who = ctx.principal
    if who.is_(ADMIN):
        return exam
    if proctor and who.is_(PROCTOR) and exam.get("proctor_id") == who.user_id:
        return exam
    if (
        student
        and who.is_(STUDENT)
        and await ctx.services.exams.get_student(exam_id, who.user_id) is not None
    ):
        return exam
    raise Forbidden(f"exam {exam_id} is not yours", reason="not_owner")


@ROUTER.route(
    "POST",
    "/exams",
    summary="Create an exam; the caller becomes its proctor",
    groups=PROCTORS,
    body=CreateExam,
    ok=201,
    response=EXAM,
    errors=(400, 401, 403),
    tag="exams",
)
async def create_exam(request: Request, ctx: Context) -> Response:
    body = request.json(CreateExam)
    exam = {
        "exam_id": f"ex-{uuid.uuid4().hex[:16]}",
        "title": body.title,
        "proctor_id": ctx.user_id,
        "status": "created",
        "student_alerts": body.student_alerts,
        "screen": body.screen,
        "created_at": now_iso(),
    }
    await ctx.services.exams.create_exam(exam)
    return Response.json(201, public_exam(exam))


@ROUTER.route(
    "GET",
    "/exams",
    summary="The exams the caller runs (every exam for an admin)",
    groups=PROCTORS,
    response=EXAM_LIST,
    errors=(401, 403),
    tag="exams",
)
async def list_exams(request: Request, ctx: Context) -> Response:
    store = ctx.services.exams
    exams = (
        await store.all_exams() if ctx.principal.is_(ADMIN) else await store.exams_of(ctx.user_id)
    )
    exams.sort(key=lambda e: str(e.get("created_at", "")))
    return Response.json(200, {"exams": [public_exam(e) for e in exams]})


@ROUTER.route(
    "GET",
    "/exams/{exam_id}",
    summary="One exam (its proctor and admins; an enrolled student sees title and status)",
    groups=ANYONE_SIGNED_IN,
    response=EXAM,
    tag="exams",
)
async def get_exam(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"), student=True)
    as_student = ctx.principal.role == STUDENT
    return Response.json(200, public_exam(exam, for_student=as_student))


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/start",
    summary="Start the exam: Chime meeting and channel (and capture in AWS); chunks count",
    groups=PROCTORS,
    response=EXAM,
    errors=(400, 401, 403, 404, 409),
    tag="exams",
)
async def start_exam(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    if exam["status"] == "started":
        return Response.json(200, public_exam(exam))
    if exam["status"] == "stopped":
        raise Conflict("the exam was stopped; create a new one", reason="exam_stopped")
    members = [s["student_id"] for s in await ctx.services.exams.students(exam["exam_id"])]
    opened = await ctx.services.channel.transport.open(exam, members)
    for attendee in opened.pop("attendees", []):  # the router maps capture chunks with these
        await ctx.services.exams.put_attendee(
            exam["exam_id"], attendee["attendee_id"], attendee["user_id"], attendee["role"]
        )
    try:
        exam = await ctx.services.exams.update_exam(
            exam["exam_id"],
            {**opened, "status": "started", "started_at": now_iso()},
            expect_status=("created",),
        )
    except StoreConflict as exc:
        await ctx.services.channel.transport.close({**exam, **opened})
        raise Conflict("the exam changed state meanwhile; try again", reason="state") from exc
    return Response.json(200, public_exam(exam))


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/stop",
    summary="Stop the exam: end the meeting, capture and channel; later chunks are not analysed",
    groups=PROCTORS,
    response=EXAM,
    errors=(400, 401, 403, 404, 409),
    tag="exams",
)
async def stop_exam(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    if exam["status"] == "stopped":
        return Response.json(200, public_exam(exam))
    try:
        updated = await ctx.services.exams.update_exam(
            exam["exam_id"],
            {"status": "stopped", "stopped_at": now_iso()},
            expect_status=("created", "started"),
        )
    except StoreConflict as exc:
        raise Conflict("the exam changed state meanwhile; try again", reason="state") from exc
    await ctx.services.channel.transport.close(exam)
    return Response.json(200, public_exam(updated))


async def exam_policy(ctx: Context, exam_id: str) -> Policy:
    """The exam's policy as the consumer reads it; the defaults where the stored one is invalid
    (the consumer logs that and records it)."""
    item = await ctx.services.tables.get_session(exam_id, POLICY_STUDENT_ID)
    try:
        return Policy.from_item(item, tolerance=ctx.services.settings.tolerance)
    except PolicyError:
        return Policy(tolerance=ctx.services.settings.tolerance)


async def student_rules(ctx: Context, exam_id: str, student_id: str) -> list[str]:
    """The rules that watch this student: the exam's policy relaxed by their accommodations."""
    policy = await exam_policy(ctx, exam_id)
    try:
        accommodations = Accommodations.from_item(
            await ctx.services.tables.get_session(exam_id, student_id)
        )
    except PolicyError:
        accommodations = None
    return list(policy.for_student(accommodations).enabled_rules)
