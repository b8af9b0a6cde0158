"""Interventions: the proctor warns, pauses, resumes or ends one student's session; the student
raises a hand and acknowledges a warning.

The session's state is the server's, on the student's enrolment: ``session_state`` (absent
means ``running``; ``paused``; ``ended``) with ``session`` (the state, the reason, when, by
whom), ``hand`` (raised or not, when), and per warning ``warning:<id>`` (text, when, by
whom) and ``ack:<id>`` (when the student acknowledged it) - so reading a session is one
GetItem, whatever the thread holds (the page polls it in AWS). A state changes only by a
conditional write, so a paused session is resumed once and an ended one stays ended however
two proctors race::

    running --pause--> paused --resume--> running
    running | paused --end--> ended    final: no upload form after it (409 session_ended)

Each action, in this order: the enrolment's state (409 when the session is not in a state
the action applies to), an audit record (``ExamStore.audit``: who did what to whom, and the
text), then a message in the student's thread on the exam's channel (``Channel.post``) - the
timeline entry the console, the student's page and the report read. The channel delivers it
live: the local server streams the thread as SSE (the student's own stream, below), in AWS
the Chime transport sends it to the student (or, for a hand or an acknowledgement, to the
proctor) with ``SendChannelMessage``. Who may act: the exam's proctor (or an admin) for
warn, pause, resume, end and lower_hand; only the student themself for a hand and an
acknowledgement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lambdas.api.app import (
    ANYONE_SIGNED_IN,
    PROCTORS,
    ROUTER,
    STUDENTS,
    Context,
    Handler,
    Query,
)
from lambdas.api.auth import STUDENT, Role
from lambdas.api.exams import exam_for
from lambdas.api.http import Conflict, NotFound, Request, Response
from lambdas.api.schemas import BOOL, STR, check_id, obj
from lambdas.api.sessions import enrolment_for
from proctoring.exams import Conflict as StoreConflict
from proctoring.exams import now_iso

__all__ = ["CONTROL_KINDS", "Acknowledgement", "HandRaise", "Intervention", "timeline"]

Action = Literal["warn", "pause", "resume", "end", "lower_hand"]
SessionState = Literal["running", "paused", "ended"]
_RUNNING: tuple[str | None, ...] = (None, "running")  # absent: never paused or ended
_NOT_ENDED: tuple[str | None, ...] = (None, "running", "paused")
# action -> (message kind, states it applies to, state after it or None: unchanged)
_ACTIONS: dict[str, tuple[str, tuple[str | None, ...], SessionState | None]] = {
    "warn": ("warning", _NOT_ENDED, None),
    "pause": ("pause", _RUNNING, "paused"),
    "resume": ("resume", ("paused",), "running"),
    "end": ("end", _NOT_ENDED, "ended"),
    "lower_hand": ("hand_lowered", (*_NOT_ENDED, "ended"), None),
}
_STUDENT_PATH = "/exams/{exam_id}/students/{student_id}"
_TAG = "interventions"
_WARNING, _ACK = "warning:", "ack:"  # enrolment attributes, + the warning's message id
_NEEDS_TEXT = {"warn": "the warning", "pause": "the reason shown", "end": "the reason"}
# the channel's message kinds of this module (the thread's other kinds: chat, alert)
CONTROL_KINDS = ("warning", "pause", "resume", "end", "hand", "hand_lowered", "acknowledgement")

WARNING = obj(
    {"warning_id": STR, "text": STR, "at": STR, "by": STR},
    {"acknowledged_at": STR},
)
SESSION = obj(
    {
        "exam_id": STR,
        "student_id": STR,
        "state": {"type": "string", "enum": ["running", "paused", "ended"]},
        "hand_raised": BOOL,
        "warnings": {"type": "array", "items": WARNING},
    },
    {"reason": STR, "since": STR, "by": STR, "hand_raised_at": STR, "message_id": STR},
)


class Intervention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = Field(description="warn | pause | resume | end | lower_hand")
    text: str | None = Field(
        default=None,
        max_length=2000,
        description="the warning (warn), the reason the student is shown (pause, end; "
        "required), a note (resume, lower_hand; optional)",
    )

    @model_validator(mode="after")
    def _text_when_needed(self) -> Intervention:
        what = _NEEDS_TEXT.get(self.action)
        if what and not (self.text or "").strip():
            raise ValueError(f"{self.action} needs text ({what}), not blank")
        return self


class HandRaise(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=500, description="what it is about")


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _state(enrolment: dict[str, Any]) -> str:
    return str(enrolment.get("session_state") or "running")


def _view(enrolment: dict[str, Any]) -> dict[str, Any]:
    """The session as the student's page and the console show it."""
    session, hand = enrolment.get("session") or {}, enrolment.get("hand") or {}
    warnings = sorted(
        ((k.removeprefix(_WARNING), v) for k, v in enrolment.items() if k.startswith(_WARNING)),
        key=lambda item: str(item[1]["at"]),
    )
    view: dict[str, Any] = {
        "exam_id": enrolment["exam_id"],
        "student_id": enrolment["student_id"],
        "state": _state(enrolment),
        "reason": session.get("reason"),
        "since": session.get("at"),
        "by": session.get("by"),
        "hand_raised": bool(hand.get("raised")),
        "hand_raised_at": hand.get("at") if hand.get("raised") else None,
        "warnings": [
            {
                "warning_id": warning_id,
                "text": warning.get("text") or "",
                "at": warning["at"],
                "by": warning["by"],
                "acknowledged_at": enrolment.get(_ACK + warning_id),
            }
            for warning_id, warning in warnings
        ],
    }
    view["warnings"] = [{k: v for k, v in w.items() if v is not None} for w in view["warnings"]]
    return {k: v for k, v in view.items() if v is not None}


def timeline(thread: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The interventions of one thread, oldest first: the report's lines."""
    return [
        {
            "at": m["created_at"],
            "action": m["kind"],
            "by": m["sender_id"],
            "text": m.get("text"),
            "message_id": m["message_id"],
            "ref": m.get("ref"),
        }
        for m in thread
        if m.get("kind") in CONTROL_KINDS
    ]


Pair = tuple[dict[str, Any], dict[str, Any]]  # (exam, enrolment)


async def _proctors_student(ctx: Context, request: Request, *, running: bool = False) -> Pair:
    """(exam, enrolment) for the exam's proctor or an admin; 404 for a student not in it;
    409 unless the exam runs (``running``)."""
    exam = await exam_for(ctx, request.param("exam_id"))
    if running:
        _require_running_exam(exam)
    student_id = check_id(request.param("student_id"), "student_id")
    enrolment = await ctx.services.exams.get_student(exam["exam_id"], student_id)
    if enrolment is None:
        raise NotFound(f"{student_id} has not joined {exam['exam_id']}", reason="not_joined")
    return exam, enrolment


async def _own(ctx: Context, request: Request, *, running: bool = False) -> Pair:
    """(exam, enrolment) for the student themself; 409 unless the exam runs (``running``)."""
    enrolment = await enrolment_for(ctx, request.param("exam_id"), request.param("student_id"))
    exam = await ctx.services.exams.get_exam(enrolment["exam_id"])
    if exam is None:
        raise NotFound(f"no exam {enrolment['exam_id']}", reason="no_exam")
    if running:
        _require_running_exam(exam)
    return exam, enrolment


def _require_running_exam(exam: dict[str, Any]) -> None:
    if exam["status"] == "stopped":
        raise Conflict("the exam is over", reason="exam_stopped")
    if exam["status"] != "started":
        raise Conflict("the exam has not started", reason="exam_not_started")


async def _change(
    ctx: Context,
    enrolment: dict[str, Any],
    values: dict[str, Any],
    allowed: tuple[str | None, ...],
    action: str,
) -> dict[str, Any]:
    """Write ``values`` if the session is in one of ``allowed``; 409 saying why not."""
    try:
        return await ctx.services.exams.update_student(
            enrolment["exam_id"],
            enrolment["student_id"],
            values,
            expect={"session_state": allowed},
        )
    except StoreConflict as exc:
        found = await ctx.services.exams.get_student(enrolment["exam_id"], enrolment["student_id"])
        if found is None:  # erased in between
            raise NotFound("the student is not in the exam", reason="not_joined") from exc
        state = _state(found)
        reason = {"ended": "session_ended", "paused": "session_paused"}.get(state, "not_paused")
        raise Conflict(f"cannot {action}: the session is {state}", reason=reason) from exc


async def _record(
    ctx: Context,
    exam: dict[str, Any],
    student_id: str,
    kind: str,
    text: str | None,
    *,
    target: str,
    message_id: str,
    ref: str | None = None,
) -> dict[str, Any]:
    """Audit the action, then post it to the student's thread as ``message_id`` (recorded
    once however often it is sent), delivered to ``target``."""
    await ctx.services.audit.append(
        exam["exam_id"],
        {
            "action": f"intervention:{kind}",
            "student_id": student_id,
            "by": ctx.user_id,
            "text": text,
            "ref": ref,
        },
    )
    message, _ = await ctx.services.channel.post(
        exam,
        kind=kind,
        student_id=student_id,
        sender_id=ctx.user_id,
        message_id=message_id,
        created_at=now_iso(),
        text=text,
        ref=ref,
        targets=[target],
    )
    return message


def _answer(enrolment: dict[str, Any], message_id: str) -> Response:
    return Response.json(200, {**_view(enrolment), "message_id": message_id})


def _route(
    method: str, tail: str, groups: frozenset[Role], **options: Any
) -> Callable[[Handler], Handler]:
    """A route of this module, under the student's path, answered with the session; its
    summary is the handler's docstring."""
    options.setdefault("response", SESSION)
    options.setdefault("errors", (400, 401, 403, 404, 409))

    def register(handler: Handler) -> Handler:
        summary = " ".join((handler.__doc__ or "").split())
        path = f"{_STUDENT_PATH}/{tail}"
        return ROUTER.route(method, path, summary=summary, groups=groups, tag=_TAG, **options)(
            handler
        )

    return register


@_route("POST", "interventions", PROCTORS, body=Intervention)
async def intervene(request: Request, ctx: Context) -> Response:
    """The exam's proctor acts on a student's session: warn (the student must acknowledge),
    pause (exam content hidden, recording goes on), resume, end (recording stops, uploads
    refused), lower_hand; audited, on the student's thread and in the report"""
    body = request.json(Intervention)
    exam, enrolment = await _proctors_student(ctx, request, running=True)
    kind, allowed, after = _ACTIONS[body.action]
    at, message_id = now_iso(), f"{kind}-{uuid.uuid4().hex}"
    values: dict[str, Any] = {"last_intervention": {"action": body.action, "at": at}}
    if body.action == "warn":
        values[_WARNING + message_id] = {"text": body.text, "at": at, "by": ctx.user_id}
    if after is not None:
        values["session_state"] = after
        values["session"] = {"state": after, "reason": body.text, "at": at, "by": ctx.user_id}
    if body.action == "lower_hand":
        values["hand"] = {"raised": False, "at": at, "by": ctx.user_id}
    enrolment = await _change(ctx, enrolment, values, allowed, body.action)
    student_id = enrolment["student_id"]
    await _record(ctx, exam, student_id, kind, body.text, target=student_id, message_id=message_id)
    return _answer(enrolment, message_id)


@_route("POST", "hand", STUDENTS, body=HandRaise)
async def raise_hand(request: Request, ctx: Context) -> Response:
    """The student raises a hand: the proctor's console shows it (the student only)"""
    body = request.json(HandRaise)
    exam, enrolment = await _own(ctx, request, running=True)
    raised = {"hand": {"raised": True, "at": now_iso()}}
    enrolment = await _change(ctx, enrolment, raised, _NOT_ENDED, "raise a hand")
    message_id, proctor = f"hand-{uuid.uuid4().hex}", exam["proctor_id"]
    student_id = enrolment["student_id"]
    await _record(ctx, exam, student_id, "hand", body.text, target=proctor, message_id=message_id)
    return _answer(enrolment, message_id)


@_route("POST", "warnings/{warning_id}/acknowledgement", STUDENTS, body=Acknowledgement)
async def acknowledge_warning(request: Request, ctx: Context) -> Response:
    """The student acknowledges a warning (the student only; once, a repeat is harmless)"""
    request.json(Acknowledgement)
    exam, enrolment = await _own(ctx, request, running=True)
    warning_id = check_id(request.param("warning_id"), "warning_id", alert=True)
    warning = enrolment.get(_WARNING + warning_id)
    if warning is None:
        raise NotFound(f"no warning {warning_id} for you", reason="no_warning")
    ack_id = f"ack-{warning_id}"[:128]  # the message's id: recorded once
    if _ACK + warning_id not in enrolment:  # once: a repeat changes nothing
        student_id = enrolment["student_id"]
        enrolment = await ctx.services.exams.update_student(
            enrolment["exam_id"], student_id, {_ACK + warning_id: now_iso()}
        )
        kind, text, proctor = "acknowledgement", warning.get("text"), exam["proctor_id"]
        await _record(
            ctx, exam, student_id, kind, text, target=proctor, message_id=ack_id, ref=warning_id
        )
    return _answer(enrolment, ack_id)


@_route("GET", "session", ANYONE_SIGNED_IN, errors=(400, 401, 403, 404))
async def get_session(request: Request, ctx: Context) -> Response:
    """The student's session: running, paused or ended (why, since when, by whom), a raised
    hand, the warnings and their acknowledgement (the student, the exam's proctor)"""
    if ctx.principal.role == STUDENT:
        _, enrolment = await _own(ctx, request)
    else:
        _, enrolment = await _proctors_student(ctx, request)
    return Response.json(200, _view(enrolment))


@_route(
    "GET",
    "stream",
    STUDENTS,
    content_type="text/event-stream",
    query=(Query("access_token", "the bearer token, for EventSource"),),
    response={"type": "string"},
    local_only=True,
)
async def student_stream(request: Request, ctx: Context) -> Response:
    """The student's own thread as server-sent events (local server; the student only;
    EventSource may pass the token as ?access_token=): chat, interventions, and alerts when
    the exam shows them to students. Last-Event-ID resumes."""
    exam, enrolment = await _own(ctx, request)
    kinds = ["chat", *CONTROL_KINDS] + (["alert"] if exam.get("student_alerts") else [])
    # the local server streams after this 200, what it names (dashboard.server)
    return Response.json(
        200, {"exam_id": exam["exam_id"], "student_id": enrolment["student_id"], "kinds": kinds}
    )
