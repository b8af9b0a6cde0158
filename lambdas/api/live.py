"""Live video: join the exam's Chime SDK meeting (the proctor's console, a student's page).

``POST /exams/{exam_id}/meeting`` answers what the Chime SDK for JavaScript
joins with, ``MeetingSessionConfiguration(Meeting, Attendee)``: the meeting
(its media placement) and the caller's own attendee, whose
``ExternalUserId`` is the caller (``proctoring.channels``: ``join``). The
exam's proctor (and an admin) joins to watch; an enrolled student who has
consented joins to publish their camera, with ``proctor_id`` so their page
takes an audio request from the proctor's attendee only. Each call keeps
attendee -> user, as starting and joining do (the chunk router maps capture
chunks with it). Without Chime (the local stack) there is no meeting: 409
``no_meeting`` says so, and the console keeps showing the latest frames.
"""

from __future__ import annotations

from lambdas.api.app import ANYONE_SIGNED_IN, ROUTER, Context
from lambdas.api.auth import STUDENT
from lambdas.api.exams import exam_for
from lambdas.api.http import Conflict, Request, Response

__all__ = ["NO_MEETING"]

NO_MEETING = "Live video needs a Chime meeting (AWS); here the console shows the latest frames."

_JOIN = {
    "type": "object",
    "required": ["Meeting", "Attendee", "proctor_id"],
    "properties": {
        "Meeting": {"type": "object", "description": "GetMeeting's Meeting, as the SDK takes it"},
        "Attendee": {
            "type": "object",
            "description": "the caller's attendee (AttendeeId, ExternalUserId, JoinToken)",
        },
        "proctor_id": {"type": "string", "description": "whose attendee may ask for audio"},
    },
}


@ROUTER.route(
    "POST",
    "/exams/{exam_id}/meeting",
    summary="Join the exam's Chime meeting for live video: the meeting and the caller's own "
    "attendee (the exam's proctor, or an enrolled student who consented)",
    groups=ANYONE_SIGNED_IN,
    response=_JOIN,
    errors=(400, 401, 403, 404, 409),
    tag="live",
)
async def join_meeting(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"), student=True)
    student = ctx.principal.role == STUDENT
    if student:
        enrolment = await ctx.services.exams.get_student(exam["exam_id"], ctx.user_id) or {}
        if (enrolment.get("consent") or {}).get("version") != ctx.services.settings.consent_version:
            raise Conflict("consent first: live video is recording too", reason="consent_required")
        if enrolment.get("session_state") == "ended":
            raise Conflict("your proctor ended your session", reason="session_ended")
    if exam["status"] != "started":
        raise Conflict("the exam is not running", reason="exam_not_started")
    joined = await ctx.services.channel.transport.join(exam, ctx.user_id)
    if joined is None:
        raise Conflict(NO_MEETING, reason="no_meeting")
    await ctx.services.exams.put_attendee(
        exam["exam_id"],
        joined["Attendee"]["AttendeeId"],
        ctx.user_id,
        "student" if student else "proctor",
    )
    return Response.json(200, {**joined, "proctor_id": exam["proctor_id"]})
