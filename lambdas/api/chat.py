"""Chat between an exam's proctor and one student, on the exam's channel.

Each student has one thread (``student_id``) in the exam's channel; the
proctor and that student post to it and read it. Text is stored and sent as a
JSON string, never as markup. The thread also shows the alerts the forwarder
posted about the student - to the proctor always, to the student only when
the exam says so (``student_alerts``).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from lambdas.api.app import ANYONE_SIGNED_IN, ROUTER, Context
from lambdas.api.auth import STUDENT
from lambdas.api.exams import exam_for
from lambdas.api.http import Conflict, Request, Response
from lambdas.api.schemas import MESSAGE, Body, Visible, check_id, listing
from lambdas.api.sessions import enrolment_for
from proctoring.exams import now_iso

__all__ = ["ChatMessage"]


class ChatMessage(Body):
    text: Visible = Field(min_length=1, max_length=2000)


def public_message(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("exam_id", "item", "expires_at")}


async def _thread(ctx: Context, request: Request) -> tuple[dict[str, Any], str]:
    """The exam and the thread's student, if the caller is that student or the exam's proctor."""
    exam_id, student_id = request.param("exam_id"), request.param("student_id")
    if ctx.principal.role == STUDENT:
        enrolment = await enrolment_for(ctx, exam_id, student_id)
        exam = await ctx.services.exams.get_exam(enrolment["exam_id"])
        assert exam is not None
        return exam, student_id
    exam = await exam_for(ctx, exam_id)
    return exam, check_id(student_id, "student_id")


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/students/{student_id}/messages",
    summary="Send a chat message in the student's thread (the proctor or the student)",
    groups=ANYONE_SIGNED_IN,
    body=ChatMessage,
    ok=201,
    response=MESSAGE,
    errors=(400, 401, 403, 404, 409),
    tag="chat",
)
async def send_message(request: Request, ctx: Context) -> Response:
    body = request.json(ChatMessage)
    exam, student_id = await _thread(ctx, request)
    if exam["status"] == "stopped":
        raise Conflict("the exam is over; the channel is closed", reason="exam_stopped")
    message, _ = await ctx.services.channel.post(
        exam,
        kind="chat",
        student_id=student_id,
        sender_id=ctx.user_id,
        message_id=f"chat-{uuid.uuid4().hex}",
        created_at=now_iso(),
        text=body.text,
        targets=[exam["proctor_id"] if ctx.principal.role == STUDENT else student_id],
    )
    return Response.json(201, public_message(message))


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/students/{student_id}/messages",
    summary="The student's thread, oldest first",
    groups=ANYONE_SIGNED_IN,
    response=listing("messages", MESSAGE),
    tag="chat",
)
async def list_messages(request: Request, ctx: Context) -> Response:
    exam, student_id = await _thread(ctx, request)
    messages = await ctx.services.exams.messages(exam["exam_id"], student_id=student_id)
    if ctx.principal.role == STUDENT and not exam.get("student_alerts"):
        messages = [m for m in messages if m.get("kind") != "alert"]
    return Response.json(200, {"messages": [public_message(m) for m in messages]})
