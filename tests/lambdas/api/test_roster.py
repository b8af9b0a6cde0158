"""What the proctor's console reads: the roster by attention, the evidence's chunk link,
the student's name from their token, the web pages' configuration."""

from __future__ import annotations

import asyncio
from typing import Any

import requests

from infrastructure.local import add_user, sign_in
from proctoring.aws import async_clients, sync_client
from proctoring.storage import Tables
from tests.lambdas.api.conftest import PASSWORD, Service


def _write(
    service: Service, *, alerts: list[dict[str, Any]], sessions: list[dict[str, Any]]
) -> None:
    async def run() -> None:
        async with async_clients(service.settings) as clients:
            tables = Tables(clients.dynamodb, service.settings.names)
            for alert in alerts:
                await tables.create_alert(alert)
            for session in sessions:
                await tables.save_session(session, expected_version=0)
            await clients.s3.put_object(
                Bucket=service.settings.names.chunks_bucket, Key="chunks/x.webm", Body=b"video"
            )

    asyncio.run(run())


def test_roster_puts_the_student_with_an_open_alert_first_with_name_and_frame(
    service: Service,
) -> None:
    exam_id = service.exam("proctor", start=True)
    calm = service.enrol(exam_id, "other_student")
    flagged = service.enrol(exam_id, "student")
    _write(
        service,
        alerts=[
            {"exam_id": exam_id, "alert_id": "NO_FACE-00000000000000aa", "student_id": flagged,
             "type": "NO_FACE", "severity": "high", "status": "open", "sequence": 3,
             "frame_key": "frames/f.jpg", "chunk_key": "chunks/x.webm"},
        ],
        sessions=[  # the consumer keeps the newest chunk on the session (consumer.latest)
            {"exam_id": exam_id, "student_id": calm,
             "latest": {"source": "camera", "sequence": 2, "status": "ok", "faces": 1,
                        "frame_key": "frames/2.jpg"}},
        ],
    )  # fmt: skip
    students = service.call("GET", f"/exams/{exam_id}/students", "proctor").json()["students"]
    assert [s["student_id"] for s in students] == [flagged, calm]
    assert students[0]["open_alerts"] == 1 and students[0]["open_alert_types"] == ["NO_FACE"]
    assert students[1]["latest"] == {"source": "camera", "sequence": 2, "status": "ok", "faces": 1}
    assert "/frames/2.jpg" in students[1]["frame_url"]
    assert students[0]["name"] == "student@example.edu"  # no name attribute: the email

    evidence = service.call(
        "GET", f"/exams/{exam_id}/alerts/NO_FACE-00000000000000aa/evidence", "proctor"
    ).json()
    chunk = requests.get(evidence["chunk_url"], timeout=10)
    assert chunk.content == b"video"

    reviewed = service.call(
        "POST", f"/exams/{exam_id}/alerts/NO_FACE-00000000000000aa/review", "proctor",
        json={"decision": "dismiss"},
    )  # fmt: skip
    assert reviewed.status_code == 200
    students = service.call("GET", f"/exams/{exam_id}/students", "proctor").json()["students"]
    assert students[0]["open_alerts"] == 0 and students[0]["student_id"] == calm


def test_a_students_name_attribute_reaches_the_proctor_as_sent(service: Service) -> None:
    name = "<b>Zoë</b> O'Brien"
    add_user(service.settings, "zoe@example.edu", "student", PASSWORD, name=name)
    token = sign_in(service.settings, "zoe@example.edu", PASSWORD)["IdToken"]
    exam_id = service.exam("proctor", start=True)
    joined = service.call("POST", f"/exams/{exam_id}/join", token=token).json()
    assert joined["name"] == name
    (student,) = service.call("GET", f"/exams/{exam_id}/students", "proctor").json()["students"]
    assert student["name"] == name


def test_a_student_cannot_take_another_students_name_on_the_roster(service: Service) -> None:
    """Issue 19, finding 3: a student renames themself with their own access token."""
    add_user(service.settings, "zoe@example.edu", "student", PASSWORD, name="Zoë Brown")
    add_user(service.settings, "ann@example.edu", "student", PASSWORD, name="Ann Other")
    exam_id = service.exam("proctor", start=True)
    for email in ("zoe@example.edu", "ann@example.edu"):
        token = sign_in(service.settings, email, PASSWORD)["IdToken"]
        assert service.call("POST", f"/exams/{exam_id}/join", token=token).status_code == 200

    cognito = sync_client(service.settings, "cognito-idp")
    client = cognito.describe_user_pool_client(
        UserPoolId=service.settings.user_pool_id, ClientId=service.settings.user_pool_client_id
    )["UserPoolClient"]
    assert "name" not in client["WriteAttributes"]  # in AWS the call below is refused...
    access = sign_in(service.settings, "zoe@example.edu", PASSWORD)["AccessToken"]
    cognito.update_user_attributes(  # ...moto does not enforce WriteAttributes, and takes it
        AccessToken=access, UserAttributes=[{"Name": "name", "Value": "Ann Other"}]
    )
    renamed = sign_in(service.settings, "zoe@example.edu", PASSWORD)["IdToken"]
    again = service.call("POST", f"/exams/{exam_id}/join", token=renamed)
    assert again.status_code == 200 and again.json()["name"] == "Zoë Brown"
    roster = service.call("GET", f"/exams/{exam_id}/students", "proctor").json()["students"]
    assert sorted(s["name"] for s in roster) == ["Ann Other", "Zoë Brown"]


def test_the_pages_get_their_configuration_from_the_server(service: Service) -> None:
    config = requests.get(f"{service.url}/config.json", timeout=10).json()
    assert config["client_id"] == service.settings.user_pool_client_id
    assert config["cognito_endpoint"] == service.settings.endpoint_url
    assert config["consent_version"] == service.settings.consent_version
    assert config["live_alerts"] == "sse" and config["chime"]["enabled"] is False
    page = requests.get(f"{service.url}/console.html", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = requests.get(f"{service.url}/js/console.js", timeout=10)
    assert script.headers["Content-Type"].startswith("text/javascript")


def test_roster_says_when_each_student_was_last_seen_and_the_report_shows_its_risk(
    service: Service,
) -> None:
    exam_id = service.exam("proctor", start=True)
    seen = service.enrol(exam_id, "student")
    silent = service.enrol(exam_id, "other_student")

    async def seed() -> None:
        async with async_clients(service.settings) as clients:
            tables = Tables(clients.dynamodb, service.settings.names)
            policy = {"exam_id": exam_id, "student_id": "#policy", "policy": {"offline_after": 3}}
            await tables.save_session(policy, expected_version=0)
            # the consumer's risk and newest chunk on the session item (consumer.latest)
            latest = {
                "source": "camera",
                "sequence": 1,
                "status": "ok",
                "risk": 1.0,
                "captured_at": "2026-12-06T10:00:00+00:00",
                "uploaded_at": "2026-12-06T10:00:05+00:00",
                "processed_at": "2026-12-06T10:00:09+00:00",
                "frame_key": "frames/1.jpg",
            }
            await tables.save_session(
                {"exam_id": exam_id, "student_id": seen, "risk": 4.0, "latest": latest},
                expected_version=0,
            )  # fmt: skip

    asyncio.run(seed())
    roster = service.call("GET", f"/exams/{exam_id}/students", "proctor").json()
    assert roster["offline_after_s"] == 3 * service.settings.chunk_seconds  # the policy's
    assert roster["exam_status"] == "started" and roster["now"] > "2026-12-06T10"
    by_id = {s["student_id"]: s for s in roster["students"]}
    assert by_id[seen]["last_seen"] == "2026-12-06T10:00:05+00:00"  # the newest chunk's upload
    assert by_id[seen]["frame_key"] == "frames/1.jpg"
    assert "last_seen" not in by_id[silent]  # no chunk yet: not "offline", not seen
    report = service.call("GET", f"/exams/{exam_id}/report", "proctor").json()
    reported = {s["student_id"]: s["risk"] for s in report["students"]}
    assert reported[seen] == by_id[seen]["risk"] == 4.0  # one risk figure, console and report
