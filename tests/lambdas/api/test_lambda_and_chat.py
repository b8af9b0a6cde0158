"""The Lambda entry point as API Gateway calls it; chat threads; report cells; erasing twice."""

from __future__ import annotations

import csv
import io
import json

import pytest

from lambdas.api import handler
from lambdas.api.reports import report_csv
from tests.lambdas.api.conftest import Service, lambda_environment


def test_the_lambda_handler_serves_a_route_as_api_gateway_calls_it(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_environment(service.settings, monkeypatch)
    event = {
        "version": "2.0",
        "routeKey": "POST /exams",
        "rawPath": "/exams",
        "headers": {"authorization": f"Bearer {service.tokens['proctor']}"},
        "requestContext": {"http": {"method": "POST", "path": "/exams"}},
        "body": json.dumps({"title": "Through Lambda"}),
        "isBase64Encoded": False,
    }
    created = handler(event)
    assert created["statusCode"] == 201
    exam_id = json.loads(created["body"])["exam_id"]
    listed = service.call("GET", "/exams", "proctor").json()["exams"]
    assert exam_id in [e["exam_id"] for e in listed]  # the same tables the local server uses
    event["headers"] = {"authorization": f"Bearer {service.tokens['student']}"}
    assert handler(event)["statusCode"] == 403


def test_chat_threads_are_per_student_and_alerts_reach_students_only_when_allowed(
    service: Service,
) -> None:
    exam_id = service.exam(start=True)
    student, other = service.enrol(exam_id, "student"), service.enrol(exam_id, "other_student")
    thread = f"/exams/{exam_id}/students/{student}/messages"
    assert service.call("POST", thread, "proctor", json={"text": "Please face the camera"}).ok
    assert service.call("POST", thread, "student", json={"text": "Sorry, done"}).ok
    assert service.call("POST", thread, "student", json={"text": "   "}).status_code == 400
    assert service.call("POST", thread, "student", json={"text": "x" * 2001}).status_code == 400
    messages = service.call("GET", thread, "student").json()["messages"]
    assert [(m["sender_id"], m["text"]) for m in messages] == [
        (service.ids["proctor"], "Please face the camera"),
        (student, "Sorry, done"),
    ]
    others = f"/exams/{exam_id}/students/{other}/messages"
    assert service.call("GET", others, "proctor").json()["messages"] == []
    assert service.call("GET", others, "student").status_code == 403
    service.call("POST", f"/exams/{exam_id}/stop", "proctor")
    closed = service.call("POST", thread, "student", json={"text": "hello?"})
    assert closed.status_code == 409 and closed.json()["reason"] == "exam_stopped"


def test_report_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    report = {
        "generated_at": "2026-11-27T10:00:00.000000Z",
        "audit": {"verified": True, "records": 1, "head": "ab" * 32, "problem": None},
        "students": [
            {
                "student_id": "s1",
                "timeline": [],
                "alerts": [
                    {
                        "alert_id": "NO_FACE-1",
                        "type": "NO_FACE",
                        "status": "dismissed",
                        "reviews": [{"decision": "dismiss", "by": "p", "note": '=HYPERLINK("x")'}],
                    }
                ],
            }
        ],
    }
    [row, audit] = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert row["note"] == '\'=HYPERLINK("x")' and row["decision"] == "dismiss"
    assert (audit["row"], audit["status"], audit["note"]) == ("audit", "verified", "ab" * 32)


def test_erasing_twice_is_harmless_and_audited_twice(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    first = service.call("DELETE", f"/exams/{exam_id}/students/{student}", "admin").json()
    assert first["deleted"]["exam_items"] == 1  # the enrolment with its consent
    second = service.call("DELETE", f"/exams/{exam_id}/students/{student}", "admin").json()
    assert set(second["deleted"].values()) == {0}
    records = service.call("GET", f"/exams/{exam_id}/audit", "proctor").json()["records"]
    assert [r["by"] for r in records] == [service.ids["admin"]] * 2
    gone = service.call("GET", f"/exams/{exam_id}/students/{student}", "student")
    assert gone.status_code == 409  # consent and enrolment are gone: join and consent again
