"""The authorisation matrix: every route x proctor-owner, other proctor, student-owner,
other student, admin and anonymous, over HTTP with real Cognito tokens.

Each route gets a fresh exam run by ``proctor``, ``student`` enrolled with
consent and an alert about them, so a caller's answer depends only on who
they are. Mutating routes are called by everyone else first and by the owner
last. A route missing from the matrix fails the test.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.api import ROUTER
from proctoring.aws import async_clients
from proctoring.storage import Tables
from tests.conftest import DATA, needs_data
from tests.lambdas.api.conftest import Service

CALLERS = ("proctor", "other_proctor", "student", "other_student", "admin", None)
ALERT = "NO_FACE-00000000000000aa"

# route key -> expected status for CALLERS (proctor-owner, other proctor, student-owner,
# other student, admin, anonymous)
MATRIX: dict[str, tuple[int, int, int, int, int, int]] = {
    "GET /openapi.json": (200, 200, 200, 200, 200, 200),
    "POST /exams": (201, 201, 403, 403, 201, 401),
    "GET /exams": (200, 200, 403, 403, 200, 401),
    "GET /exams/{exam_id}": (200, 403, 200, 403, 200, 401),
    "POST /exams/{exam_id}/start": (200, 403, 403, 403, 200, 401),
    "POST /exams/{exam_id}/stop": (200, 403, 403, 403, 200, 401),
    # live video (issue 15): the exam's proctor and its students may join; locally there is
    # no meeting, so those allowed get 409 no_meeting (the join itself: tests/lambdas/api/test_live)
    "POST /exams/{exam_id}/meeting": (409, 403, 409, 403, 409, 401),
    "GET /exams/{exam_id}/results": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/students": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/alerts": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/alerts/stream": (200, 403, 403, 403, 200, 401),
    "POST /exams/{exam_id}/alerts/{alert_id}/review": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/alerts/{alert_id}/evidence": (200, 403, 403, 403, 200, 401),
    "POST /exams/{exam_id}/join": (403, 403, 200, 200, 403, 401),
    "GET /exams/{exam_id}/students/{student_id}": (200, 403, 200, 403, 200, 401),
    "PUT /exams/{exam_id}/students/{student_id}/consent": (403, 403, 200, 403, 403, 401),
    "POST /exams/{exam_id}/students/{student_id}/registration": (403, 403, 201, 403, 403, 401),
    "POST /exams/{exam_id}/students/{student_id}/reregistration": (201, 403, 403, 403, 201, 401),
    # the registered photo (issue 21): the exam's proctor only; the matrix's student has
    # not registered, so those allowed get 404 no_photo (the photo itself: test_sessions)
    "GET /exams/{exam_id}/students/{student_id}/photo": (404, 403, 403, 403, 404, 401),
    "POST /exams/{exam_id}/students/{student_id}/uploads": (403, 403, 200, 403, 403, 401),
    # the system check's upload test (issue 21): the student's own, received and discarded
    "POST /exams/{exam_id}/students/{student_id}/speed-check": (403, 403, 200, 403, 403, 401),
    "POST /exams/{exam_id}/students/{student_id}/messages": (201, 403, 201, 403, 201, 401),
    "GET /exams/{exam_id}/students/{student_id}/messages": (200, 403, 200, 403, 200, 401),
    "DELETE /exams/{exam_id}/students/{student_id}": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/audit": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/report": (200, 403, 403, 403, 200, 401),
    "GET /exams/{exam_id}/report.csv": (200, 403, 403, 403, 200, 401),
    # interventions (issue 15): the proctor's actions are not a student's, a hand and an
    # acknowledgement are the student's own
    "POST /exams/{exam_id}/students/{student_id}/interventions": (200, 403, 403, 403, 200, 401),
    "POST /exams/{exam_id}/students/{student_id}/hand": (403, 403, 200, 403, 403, 401),
    "POST /exams/{exam_id}/students/{student_id}/warnings/{warning_id}/acknowledgement": (
        403,
        403,
        200,
        403,
        403,
        401,
    ),
    "GET /exams/{exam_id}/students/{student_id}/session": (200, 403, 200, 403, 200, 401),
    "GET /exams/{exam_id}/students/{student_id}/stream": (403, 403, 200, 403, 403, 401),
    # integrity events (issue 16): the student's own browser's
    "POST /exams/{exam_id}/students/{student_id}/integrity": (403, 403, 202, 403, 403, 401),
}


def _bodies(service: Service) -> dict[str, Any]:
    photo = base64.b64encode((DATA / "faces/obama.jpg").read_bytes()).decode()
    return {
        "POST /exams": {"title": "Matrix"},
        "POST /exams/{exam_id}/alerts/{alert_id}/review": {"decision": "dismiss", "note": "ok"},
        "PUT /exams/{exam_id}/students/{student_id}/consent": {
            "policy_version": service.settings.consent_version,
            "accepted": True,
        },
        "POST /exams/{exam_id}/students/{student_id}/registration": {"photo": photo},
        "POST /exams/{exam_id}/students/{student_id}/reregistration": {
            "photo": photo,
            "reason": "old photo",
        },
        "POST /exams/{exam_id}/students/{student_id}/uploads": {"first_sequence": 0},
        "POST /exams/{exam_id}/students/{student_id}/messages": {"text": "hello"},
        "POST /exams/{exam_id}/students/{student_id}/interventions": {
            "action": "warn",  # repeatable: the admin's call does not change the owner's
            "text": "identity check",
        },
        "POST /exams/{exam_id}/students/{student_id}/hand": {},
        "POST /exams/{exam_id}/students/{student_id}/warnings/{warning_id}/acknowledgement": {},
        "POST /exams/{exam_id}/students/{student_id}/integrity": {
            "events": [
                {
                    "event_id": "ev-matrix-0001",
                    "seq": 0,
                    "kind": "paste",
                    "at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                }
            ]
        },
    }


def _fresh_exam(service: Service) -> tuple[str, str]:
    """A started exam with ``student`` enrolled, an alert and a warning about them."""
    exam_id = service.exam("proctor", start=True)
    student = service.enrol(exam_id, "student")
    warned = service.call(
        "POST",
        f"/exams/{exam_id}/students/{student}/interventions",
        "proctor",
        json={"action": "warn", "text": "eyes on your screen"},
    )
    assert warned.status_code == 200, warned.text

    async def alert() -> None:
        async with async_clients(service.settings) as clients:
            await Tables(clients.dynamodb, service.settings.names).create_alert(
                {
                    "exam_id": exam_id,
                    "alert_id": ALERT,
                    "student_id": service.ids["student"],
                    "type": "NO_FACE",
                    "status": "open",
                    "frame_key": f"frames/{exam_id}/{service.ids['student']}/camera/000001.jpg",
                }
            )

    asyncio.run(alert())
    return exam_id, warned.json()["message_id"]


@needs_data
def test_every_route_answers_each_caller_as_the_matrix_says(service: Service) -> None:
    assert set(MATRIX) == {r.route_key for r in ROUTER.routes}, "every route is in the matrix"
    bodies = _bodies(service)
    wrong = []
    for route_key, expected in MATRIX.items():
        method, template = route_key.split(" ", 1)
        exam_id, warning_id = _fresh_exam(service)
        path = template.format(
            exam_id=exam_id,
            student_id=service.ids["student"],
            alert_id=ALERT,
            warning_id=warning_id,
        )
        order = sorted(range(len(CALLERS)), key=lambda i: CALLERS[i] == "proctor")  # owner last
        for i in order:
            who = CALLERS[i]
            kwargs: dict[str, Any] = {"stream": True}
            if route_key in bodies:
                kwargs["json"] = bodies[route_key]
            with service.call(method, path, who, **kwargs) as response:
                got = response.status_code
            if got != expected[i]:
                wrong.append(f"{route_key} as {who or 'anonymous'}: {got}, expected {expected[i]}")
    assert wrong == []
