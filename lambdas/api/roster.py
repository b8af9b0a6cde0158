"""The proctor's roster: every student of an exam, who needs attention first.

One call gives the console's live grid what it shows per student: the name
they signed in with (text, never markup), consent and registration, the risk
score, the open alerts, the latest camera chunk's result and a short-lived
link to its frame, and the session's state and a raised hand
(``lambdas.api.interventions``). Sorted by attention: open alerts (high
severity first), a raised hand, then risk, then the name.
"""

from __future__ import annotations

from typing import Any

from lambdas.api.app import PROCTORS, ROUTER, Context
from lambdas.api.exams import exam_for
from lambdas.api.http import Request, Response
from lambdas.api.schemas import INT, STR, listing, obj

__all__ = ["attention_order"]

_FRAME_SECONDS = 300
_SEVERITY = {"high": 3, "medium": 2, "low": 1}
_LATEST = ("sequence", "status", "faces", "identity", "captured_at", "processed_at", "risk")
ROSTER_ENTRY = obj(
    {"student_id": STR, "open_alerts": INT, "risk": {"type": "number"}},
    {
        "name": STR,
        "joined_at": STR,
        "registered_at": STR,
        "frame_url": STR,
        "session_state": STR,
        "hand_raised_at": STR,
    },
)


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
    response=listing("students", ROSTER_ENTRY),
    tag="results",
)
async def list_students(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    exam_id = exam["exam_id"]
    services = ctx.services
    enrolments = await services.exams.students(exam_id)
    risks = {
        s["student_id"]: float(s.get("risk") or 0)
        for s in await services.tables.students_by_risk(exam_id)
    }
    open_alerts: dict[str, list[dict[str, Any]]] = {}
    for alert in await services.tables.alerts(exam_id):
        if alert.get("status", "open") == "open":
            open_alerts.setdefault(alert["student_id"], []).append(alert)
    entries = []
    for enrolment in enrolments:
        student_id = enrolment["student_id"]
        own = open_alerts.get(student_id, [])
        entry: dict[str, Any] = {
            "student_id": student_id,
            "name": enrolment.get("name"),
            "joined_at": enrolment.get("joined_at"),
            "consent": enrolment.get("consent"),
            "registered_at": enrolment.get("registered_at"),
            "risk": risks.get(student_id, 0.0),
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
        latest = await services.tables.latest_result(f"{exam_id}#{student_id}")
        if latest is not None:
            entry["latest"] = {k: latest[k] for k in _LATEST if latest.get(k) is not None}
            if latest.get("frame_key"):
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
    return Response.json(200, {"students": entries})
