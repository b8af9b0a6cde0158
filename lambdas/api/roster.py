"""The proctor's roster: every student of an exam, who needs attention first.

One call gives the console's live grid what it shows per student: the name
they signed in with (text, never markup), consent and registration, the risk
score, the open alerts, the newest chunk's result and a short-lived link to
the newest frame stored, and the session's state and a raised hand
(``lambdas.api.interventions``). Sorted by attention: open alerts (high
severity first), a raised hand, then risk, then the name.

``last_seen`` is when the student's newest analysed chunk reached the bucket; with
``now`` (the server's clock) and ``offline_after_s`` (the policy's ``offline_after``
chunk lengths) the console tells an OFFLINE student from a quiet one without trusting
the browser's clock. ``frame_key`` names the frame behind ``frame_url``: a console keeps
a tile's image while it stays the same (the presigned link changes on every call). It is
the newest frame stored (``consumer.latest``): with the policy's ``frame_every`` (a frame
kept every 6 chunks when no rule fires) at most 30 s old by default.

The risk and the newest chunk are what the consumer keeps on the student's session item
(``proctoring.rules.risk_score``, ``consumer.latest``): a poll is three queries whatever the
number of students (enrolments, sessions, alerts), not one more per student. The report
reads the same risk (``risks``).
"""

from __future__ import annotations

from typing import Any

from lambdas.api.app import PROCTORS, ROUTER, Context
from lambdas.api.exams import exam_for, exam_policy
from lambdas.api.http import Request, Response
from lambdas.api.schemas import INT, STR, obj
from proctoring.exams import now_iso

__all__ = ["attention_order", "risks"]

_FRAME_SECONDS = 300
_SEVERITY = {"high": 3, "medium": 2, "low": 1}
_LATEST = (
    "source",
    "sequence",
    "status",
    "faces",
    "identity",
    "captured_at",
    "processed_at",
    "risk",
)
ROSTER_ENTRY = obj(
    {"student_id": STR, "open_alerts": INT, "risk": {"type": "number"}},
    {
        "name": STR,
        "joined_at": STR,
        "registered_at": STR,
        "frame_url": STR,
        "session_state": STR,
        "hand_raised_at": STR,
        "last_seen": STR,
        "frame_key": STR,
    },
)
ROSTER = obj(
    {"students": {"type": "array", "items": ROSTER_ENTRY}},
    {"now": STR, "offline_after_s": {"type": "number"}, "exam_status": STR},
)


async def risks(ctx: Context, exam_id: str) -> dict[str, float]:
    """Each student's risk as the consumer last saved it: the console's and the report's."""
    return {
        s["student_id"]: float(s.get("risk") or 0)
        for s in await ctx.services.tables.students_by_risk(exam_id, ("risk",))
    }


def attention_order(entry: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key: who needs the proctor first."""
    return (
        -entry["open_alerts_severity"],
        -entry["open_alerts"],
        not entry.get("hand_raised_at"),
        -entry["risk"],
        str(entry.get("name") or entry["student_id"]).lower(),
    )


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/students",
    summary="The exam's students for the live grid, who needs attention first",
    groups=PROCTORS,
    response=ROSTER,
    tag="results",
)
async def list_students(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    exam_id = exam["exam_id"]
    services = ctx.services
    enrolments = await services.exams.students(exam_id)
    sessions = {
        s["student_id"]: s
        for s in await services.tables.students_by_risk(exam_id, ("risk", "latest"))
    }
    policy = await exam_policy(ctx, exam_id)
    open_alerts: dict[str, list[dict[str, Any]]] = {}
    for alert in await services.tables.alerts(exam_id):
        if alert.get("status", "open") == "open":
            open_alerts.setdefault(alert["student_id"], []).append(alert)
    entries = []
    for enrolment in enrolments:
        student_id = enrolment["student_id"]
        session = sessions.get(student_id, {})
        own = open_alerts.get(student_id, [])
        entry: dict[str, Any] = {
            "student_id": student_id,
            "name": enrolment.get("name"),
            "joined_at": enrolment.get("joined_at"),
            "consent": enrolment.get("consent"),
            "registered_at": enrolment.get("registered_at"),
            "risk": float(session.get("risk") or 0),
            "open_alerts": len(own),
            "open_alerts_severity": max(
                (_SEVERITY.get(a.get("severity", ""), 0) for a in own), default=0
            ),
            "open_alert_types": sorted({str(a.get("type")) for a in own}),
            "session_state": enrolment.get("session_state") or "running",
        }
        hand = enrolment.get("hand") or {}
        if hand.get("raised"):
            entry["hand_raised_at"] = hand.get("at")
        latest = session.get("latest")
        if latest is not None:
            entry["latest"] = {k: latest[k] for k in _LATEST if latest.get(k) is not None}
            entry["last_seen"] = _arrived(latest) or None
            if latest.get("frame_key"):
                entry["frame_key"] = latest["frame_key"]
                entry["frame_url"] = await services.s3.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": services.settings.names.frames_bucket,
                        "Key": latest["frame_key"],
                    },
                    ExpiresIn=_FRAME_SECONDS,
                )
        entries.append({k: v for k, v in entry.items() if v is not None})
    entries.sort(key=attention_order)
    return Response.json(
        200,
        {
            "students": entries,
            "now": now_iso(),
            "offline_after_s": policy.offline_after * services.settings.chunk_seconds,
            "exam_status": exam["status"],
        },
    )


def _arrived(row: dict[str, Any]) -> str:
    """When the chunk reached the bucket (the S3 event's time), else when it was processed."""
    return str(row.get("uploaded_at") or row.get("processed_at") or "")
