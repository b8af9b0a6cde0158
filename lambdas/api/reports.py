"""The per-exam report: each student's timeline, alerts, the proctor's decisions and
interventions.

JSON for programs, CSV for the exam office's spreadsheet: one row per chunk,
per browser integrity event (``source`` = ``integrity``, ``status`` = its kind:
hidden, blur, paste, ...; ``duration_ms`` in the JSON), per alert (an integrity
alert with its ``duration_s``) and per intervention (a warning, its acknowledgement, a pause, a
resume, the end of a session, a raised or lowered hand: ``row`` =
``intervention``, ``status`` = what happened, ``reviewed_by`` = who did it,
``note`` = the text), in time order per student. Both carry the exam's audit
log as it stood (``proctoring.audit``): how many records, the log's head
(over every chain's newest hash) and whether it verifies - in JSON as
``audit`` (with each chain's head), in CSV as a last row (``row`` =
``audit``, ``sequence`` = records, ``status`` = ``verified`` or ``broken``,
``note`` = the head or the fault found). Cells that a spreadsheet would run
as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) are
prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from lambdas.api.alerts import exam_alerts, exam_results
from lambdas.api.app import PROCTORS, ROUTER, Context
from lambdas.api.exams import exam_for, public_exam
from lambdas.api.http import Request, Response
from lambdas.api.interventions import timeline
from lambdas.api.roster import risks
from lambdas.api.schemas import REPORT
from proctoring.audit import verify
from proctoring.exams import now_iso
from proctoring.integrity import INTEGRITY

__all__ = ["build_report"]

_TIMELINE = (
    "source",
    "sequence",
    "status",
    "faces",
    "identity",
    "risk",
    "captured_at",
    "error_reason",
    "speech_s",
)
_CSV_COLUMNS = (
    "student_id",
    "row",
    "source",
    "sequence",
    "time",
    "status",
    "faces",
    "identity",
    "alert_id",
    "type",
    "severity",
    "decision",
    "reviewed_by",
    "note",
)


async def build_report(ctx: Context, exam: dict[str, Any]) -> dict[str, Any]:
    exam_id = exam["exam_id"]
    enrolments = {s["student_id"]: s for s in await ctx.services.exams.students(exam_id)}
    alerts = await exam_alerts(ctx, exam_id, None)
    threads: dict[str, list[dict[str, Any]]] = {}
    for message in await ctx.services.exams.messages(exam_id):
        threads.setdefault(message["student_id"], []).append(message)
    students = sorted(set(enrolments) | {a["student_id"] for a in alerts})
    risk = await risks(ctx, exam_id)  # the console's figure: one risk everywhere
    report_students = []
    for student_id in students:
        enrolment = enrolments.get(student_id, {})
        every = await exam_results(ctx, exam_id, student_id)
        rows = [r for r in every if r.get("source") != INTEGRITY]
        rows.sort(key=lambda r: (r.get("source", ""), r.get("sequence", 0)))
        events = sorted(
            (r for r in every if r.get("source") == INTEGRITY), key=lambda r: r.get("sequence", 0)
        )
        own = [a for a in alerts if a["student_id"] == student_id]
        report_students.append(
            {
                "student_id": student_id,
                "joined_at": enrolment.get("joined_at"),
                "consent": enrolment.get("consent"),
                "registered_at": enrolment.get("registered_at"),
                "session_state": enrolment.get("session_state") or "running",
                "chunks": len(rows),
                "analysed": sum(1 for r in rows if r.get("status") == "ok"),
                "not_analysed": sum(1 for r in rows if r.get("status") == "not_analysed"),
                "errors": sum(1 for r in rows if r.get("status") == "error"),
                "risk": risk.get(student_id, 0.0),
                "timeline": [{k: r.get(k) for k in _TIMELINE if r.get(k) is not None} for r in rows]
                + [_event_entry(r) for r in events],
                "alerts": [
                    {
                        "alert_id": a["alert_id"],
                        "type": a.get("type"),
                        "severity": a.get("severity"),
                        "source": a.get("source"),
                        "first_sequence": a.get("first_sequence"),
                        "sequence": a.get("sequence"),
                        "created_at": a.get("created_at"),
                        "duration_s": a.get("duration_s"),
                        "status": a.get("status"),
                        "reviews": a.get("reviews", []),
                    }
                    for a in own
                ],
                "interventions": timeline(threads.get(student_id, [])),
            }
        )
    chain = verify(await ctx.services.audit.records(exam_id))
    return {
        "exam": public_exam(exam),
        "generated_at": now_iso(),
        "students": report_students,
        "audit": chain.as_dict(),
    }


def _event_entry(row: dict[str, Any]) -> dict[str, Any]:
    """A browser integrity event on the timeline: ``status`` is its kind (hidden, paste, ...)."""
    return {k: row.get(k) for k in (*_TIMELINE, "duration_ms") if row.get(k) is not None}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for student in report["students"]:
        sid = student["student_id"]
        for row in student["timeline"]:
            writer.writerow(
                _cell(v)
                for v in (
                    sid,
                    "event" if row.get("source") == INTEGRITY else "chunk",
                    row.get("source"),
                    row.get("sequence"),
                    row.get("captured_at"),
                    row.get("status"),
                    row.get("faces"),
                    row.get("identity"),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                )
            )
        for alert in student["alerts"]:
            last = alert["reviews"][-1] if alert["reviews"] else {}
            writer.writerow(
                _cell(v)
                for v in (
                    sid,
                    "alert",
                    alert.get("source"),
                    alert.get("sequence"),
                    alert.get("created_at"),
                    alert.get("status"),
                    "",
                    "",
                    alert["alert_id"],
                    alert.get("type"),
                    alert.get("severity"),
                    last.get("decision"),
                    last.get("by"),
                    last.get("note"),
                )
            )
        for event in student.get("interventions", []):
            writer.writerow(
                _cell(v)
                for v in (sid, "intervention", "", "", event["at"], event["action"])
                + ("",) * 6
                + (event["by"], event.get("text"))
            )
    chain = report["audit"]
    audit_row = ["", "audit", "", chain["records"], report["generated_at"]]
    audit_row.append("verified" if chain["verified"] else "broken")
    audit_row += [""] * (len(_CSV_COLUMNS) - len(audit_row) - 1)
    writer.writerow(_cell(v) for v in (*audit_row, chain["problem"] or chain["head"]))
    return out.getvalue()


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/report",
    summary="The exam's report as JSON: per student timeline, alerts, decisions",
    groups=PROCTORS,
    response=REPORT,
    tag="reports",
)
async def exam_report(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    return Response.json(200, await build_report(ctx, exam))


@ROUTER.route(
    "GET",
    "/exams/{exam_id}/report.csv",
    summary="The exam's report as CSV: one row per chunk and per alert",
    groups=PROCTORS,
    content_type="text/csv",
    response={"type": "string"},
    tag="reports",
)
async def exam_report_csv(request: Request, ctx: Context) -> Response:
    exam = await exam_for(ctx, request.param("exam_id"))
    text = report_csv(await build_report(ctx, exam))
    return Response.text(
        200,
        text,
        "text/csv; charset=utf-8",
        **{"Content-Disposition": f'attachment; filename="{exam["exam_id"]}-report.csv"'},
    )
