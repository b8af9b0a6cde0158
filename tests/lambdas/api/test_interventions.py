"""Interventions over HTTP: the proctor warns, pauses, resumes and ends one student's session,
the student raises a hand and acknowledges; each is audited, on the thread, in the report,
and streamed to that student only. Bad input gets its documented JSON 4xx."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import requests

from tests.lambdas.api.conftest import Service


def _act(service: Service, exam_id: str, student: str, who: str = "proctor", **body: Any) -> Any:
    return service.call(
        "POST", f"/exams/{exam_id}/students/{student}/interventions", who, json=body
    )


def _session(service: Service, exam_id: str, student: str, who: str) -> dict[str, Any]:
    response = service.call("GET", f"/exams/{exam_id}/students/{student}/session", who)
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def _refused(response: requests.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["reason"] == reason and response.json()["error"]


def _two_students(service: Service) -> tuple[str, str, str]:
    """A started exam with ``student`` and ``other_student``: (exam, student, other)."""
    exam_id = service.exam(start=True)
    return exam_id, service.enrol(exam_id, "student"), service.enrol(exam_id, "other_student")


def test_each_action_changes_the_session_and_is_audited_threaded_and_reported(
    service: Service,
) -> None:
    exam_id, student, other = _two_students(service)
    base = f"/exams/{exam_id}/students/{student}"
    proctor = service.ids["proctor"]

    warned = _act(service, exam_id, student, action="warn", text="Eyes on your own screen")
    assert warned.status_code == 200, warned.text
    warning_id = warned.json()["message_id"]
    (pending,) = _session(service, exam_id, student, "student")["warnings"]
    assert pending["warning_id"] == warning_id and "acknowledged_at" not in pending
    ack = f"{base}/warnings/{warning_id}/acknowledgement"
    first = service.call("POST", ack, "student", json={}).json()
    assert first["warnings"][0]["acknowledged_at"]
    again = service.call("POST", ack, "student", json={}).json()
    assert again["warnings"] == first["warnings"]  # once; a repeat changes nothing
    seen = _session(service, exam_id, student, "proctor")["warnings"][0]
    assert seen["acknowledged_at"] == first["warnings"][0]["acknowledged_at"]

    paused = _act(service, exam_id, student, action="pause", text="Your ID must be checked")
    assert paused.json()["state"] == "paused"
    assert paused.json()["reason"] == "Your ID must be checked" and paused.json()["by"] == proctor
    _refused(_act(service, exam_id, student, action="pause", text="again"), 409, "session_paused")
    assert _session(service, exam_id, student, "student")["state"] == "paused"  # a reload
    assert _session(service, exam_id, other, "other_student")["state"] == "running"
    uploads = service.call("POST", f"{base}/uploads", "student", json={"first_sequence": 0})
    assert uploads.status_code == 200, "uploads go on while paused"

    hand = service.call("POST", f"{base}/hand", "student", json={"text": "My camera froze"})
    assert hand.json()["hand_raised"] is True
    assert _session(service, exam_id, student, "proctor")["hand_raised_at"]
    assert _act(service, exam_id, student, action="lower_hand").json()["hand_raised"] is False

    resumed = _act(service, exam_id, student, action="resume")
    assert resumed.json()["state"] == "running" and "reason" not in resumed.json()
    _refused(_act(service, exam_id, student, action="resume"), 409, "not_paused")

    ended = _act(service, exam_id, student, action="end", text="Phone in use")
    assert ended.json()["state"] == "ended" and ended.json()["reason"] == "Phone in use"
    refused = service.call("POST", f"{base}/uploads", "student", json={"first_sequence": 1})
    _refused(refused, 409, "session_ended")
    _refused(_act(service, exam_id, student, action="pause", text="x"), 409, "session_ended")
    _refused(_act(service, exam_id, student, action="warn", text="x"), 409, "session_ended")
    _refused(service.call("POST", f"{base}/hand", "student", json={}), 409, "session_ended")
    assert _session(service, exam_id, student, "student")["state"] == "ended"  # a reload
    other_uploads = f"/exams/{exam_id}/students/{other}/uploads"
    assert service.call("POST", other_uploads, "other_student", json={"first_sequence": 0}).ok

    done = ["warning", "acknowledgement", "pause", "hand", "hand_lowered", "resume", "end"]
    by = [proctor, student, proctor, student, proctor, proctor, proctor]
    records = service.call("GET", f"/exams/{exam_id}/audit", "proctor").json()["records"]
    audited = [r for r in records if r["action"].startswith("intervention:")]
    assert [(r["action"], r["by"], r["student_id"]) for r in audited] == [
        (f"intervention:{kind}", who, student) for kind, who in zip(done, by, strict=True)
    ]
    assert audited[4]["action"] == "intervention:hand_lowered"
    assert audited[0]["text"] == "Eyes on your own screen"

    thread = service.call("GET", f"{base}/messages", "student").json()["messages"]
    assert [m["kind"] for m in thread] == done  # the student's page reads its timeline here
    report = service.call("GET", f"/exams/{exam_id}/report", "proctor").json()
    (row,) = [s for s in report["students"] if s["student_id"] == student]
    assert row["session_state"] == "ended"
    assert [(e["action"], e["by"]) for e in row["interventions"]] == list(
        zip(done, by, strict=True)
    )
    assert row["interventions"][1]["ref"] == warning_id
    (other_row,) = [s for s in report["students"] if s["student_id"] == other]
    assert other_row["interventions"] == [] and other_row["session_state"] == "running"
    text = service.call("GET", f"/exams/{exam_id}/report.csv", "proctor").text
    lines = [r for r in csv.DictReader(io.StringIO(text)) if r["row"] == "intervention"]
    assert [(r["student_id"], r["status"], r["reviewed_by"]) for r in lines] == [
        (student, kind, who) for kind, who in zip(done, by, strict=True)
    ]
    assert lines[0]["note"] == "Eyes on your own screen" and lines[-1]["note"] == "Phone in use"


def test_bad_input_and_the_wrong_caller_get_documented_json_answers(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id, "student")
    other_exam = service.exam("proctor", start=True)
    stranger = service.enrol(other_exam, "other_student")
    _refused(_act(service, exam_id, student, action="expel"), 400, "invalid_body")
    _refused(_act(service, exam_id, student, action="warn", text="   "), 400, "invalid_body")
    _refused(_act(service, exam_id, student, action="warn"), 400, "invalid_body")
    _refused(_act(service, exam_id, student, action="end", text=""), 400, "invalid_body")
    _refused(_act(service, exam_id, student, action="warn", text="x" * 2001), 400, "invalid_body")
    _refused(_act(service, exam_id, student, action="pause", text="a", at=1), 400, "invalid_body")
    blank = _act(service, exam_id, student, action="warn", text=" ").json()["error"]
    assert "warn needs text" in blank
    # the other exam's student, through this exam; this exam's student, by another proctor
    _refused(_act(service, exam_id, stranger, action="pause", text="x"), 404, "not_joined")
    _refused(
        _act(service, exam_id, student, "other_proctor", action="pause", text="x"), 403, "not_owner"
    )
    _refused(_act(service, exam_id, "no$such", action="pause", text="x"), 400, "bad_id")
    for action in ("warn", "pause", "resume", "end", "lower_hand"):  # students: none of these
        _refused(_act(service, exam_id, student, "student", action=action, text="x"), 403, "group")
    base = f"/exams/{exam_id}/students/{student}"
    _refused(service.call("POST", f"{base}/hand", "proctor", json={}), 403, "group")
    _refused(service.call("POST", f"{base}/hand", "other_student", json={}), 403, "not_owner")
    _refused(
        service.call("POST", f"{base}/warnings/nope-1/acknowledgement", "student", json={}),
        404,
        "no_warning",
    )
    warned = _act(service, other_exam, stranger, action="warn", text="only for you").json()
    foreign = f"{base}/warnings/{warned['message_id']}/acknowledgement"
    _refused(service.call("POST", foreign, "student", json={}), 404, "no_warning")
    _refused(service.call("GET", f"{base}/session", "other_student"), 403, "not_owner")
    created = service.exam("proctor")
    service.enrol(created, "student")
    _refused(_act(service, created, student, action="pause", text="x"), 409, "exam_not_started")
    service.call("POST", f"/exams/{exam_id}/stop", "proctor")
    _refused(_act(service, exam_id, student, action="warn", text="x"), 409, "exam_stopped")


def _events(response: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of an SSE stream, as they arrive."""
    event = ""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def test_the_student_s_stream_carries_their_interventions_only_within_two_seconds(
    service: Service,
) -> None:
    exam_id, student, other = _two_students(service)
    streams = {
        who: service.call(
            "GET", f"/exams/{exam_id}/students/{sid}/stream", who, stream=True, timeout=(5, 10)
        )
        for who, sid in (("student", student), ("other_student", other))
    }
    try:
        assert all(s.status_code == 200 for s in streams.values())
        _refused(
            service.call(
                "GET", f"/exams/{exam_id}/students/{student}/stream", "other_student", stream=True
            ),
            403,
            "not_owner",
        )
        started = time.monotonic()
        _act(service, exam_id, student, action="pause", text="ID check")
        event, data = next(_events(streams["student"]))
        latency = time.monotonic() - started
        print(f"pause on the student's stream {latency:.2f} s after the request was sent")
        assert (event, data["kind"], data["text"]) == ("control", "pause", "ID check")
        assert latency < 2.0
        _act(service, exam_id, other, action="warn", text="for the other")
        event, data = next(_events(streams["other_student"]))  # the pause never reached it
        assert (event, data["kind"], data["student_id"]) == ("control", "warning", other)
    finally:
        for stream in streams.values():
            stream.close()
