"""Exams through the local server: create, list, get, start, stop."""

from __future__ import annotations

from tests.lambdas.api.conftest import Service


def test_a_proctor_creates_starts_and_stops_an_exam(service: Service) -> None:
    created = service.call("POST", "/exams", "proctor", json={"title": "Algebra <b>I</b>"})
    assert created.status_code == 201
    exam = created.json()
    assert exam["status"] == "created" and exam["proctor_id"] == service.ids["proctor"]
    assert exam["title"] == "Algebra <b>I</b>"  # stored and returned as text, never markup
    assert created.headers["Content-Type"] == "application/json"
    assert created.headers["X-Content-Type-Options"] == "nosniff"

    exam_id = exam["exam_id"]
    started = service.call("POST", f"/exams/{exam_id}/start", "proctor").json()
    assert started["status"] == "started" and started["channel_arn"] == f"local:{exam_id}"
    stopped = service.call("POST", f"/exams/{exam_id}/stop", "proctor").json()
    assert stopped["status"] == "stopped" and stopped["stopped_at"] >= stopped["started_at"]
    again = service.call("POST", f"/exams/{exam_id}/start", "proctor")
    assert again.status_code == 409 and again.json()["reason"] == "exam_stopped"


def test_a_proctor_lists_only_their_exams_and_an_admin_all(service: Service) -> None:
    mine = service.exam("proctor")
    theirs = service.exam("other_proctor")
    listed = [e["exam_id"] for e in service.call("GET", "/exams", "proctor").json()["exams"]]
    assert listed == [mine]
    every = {e["exam_id"] for e in service.call("GET", "/exams", "admin").json()["exams"]}
    assert every == {mine, theirs}


def test_bad_input_gets_a_clear_4xx(service: Service) -> None:
    empty = service.call("POST", "/exams", "proctor", json={"title": ""})
    assert empty.status_code == 400 and "title" in empty.json()["error"]
    not_json = service.call("POST", "/exams", "proctor", data=b"{", headers={"Content-Type": "x"})
    assert not_json.status_code == 400
    bad_id = service.call("GET", "/exams/..%2Fx", "proctor")
    assert bad_id.status_code in (400, 404)
    unknown = service.call("GET", "/exams/ex-nope", "proctor")
    assert unknown.status_code == 404 and unknown.json()["reason"] == "no_exam"
    no_route = service.call("GET", "/nothing-here", "proctor")
    assert no_route.status_code == 404


def test_the_student_page_learns_from_the_policy_whether_the_microphone_is_recorded(
    service: Service,
) -> None:
    from proctoring.aws import sync_client
    from proctoring.storage import to_item

    quiet, spoken, broken = (service.exam("proctor") for _ in range(3))
    for exam_id, policy in ((spoken, {"audio": True}), (broken, {"audio": "loud"})):
        sync_client(service.settings, "dynamodb").put_item(
            TableName=service.settings.names.sessions_table,
            Item=to_item({"exam_id": exam_id, "student_id": "#policy", "policy": policy}),
        )
    for exam_id in (quiet, spoken, broken):
        service.enrol(exam_id)
    seen = {
        exam_id: service.call("GET", f"/exams/{exam_id}", "student").json()["audio"]
        for exam_id in (quiet, spoken, broken)
    }
    # no policy: off; an invalid policy: off, as the consumer then uses the defaults
    assert seen == {quiet: False, spoken: True, broken: False}
    assert service.call("GET", f"/exams/{spoken}", "proctor").json()["audio"] is True
    rules = {
        exam_id: service.call("POST", f"/exams/{exam_id}/join", "student").json()["rules"]
        for exam_id in (quiet, spoken)
    }
    assert "TALKING" in rules[spoken] and "TALKING" not in rules[quiet]  # told only if heard
