"""The integrity route over HTTP: bad batches refused with their JSON 4xx and an errors row,
good ones on the stream; with the pipeline running, judged by the consumer into alerts, each
event written once however often it is sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from proctoring.aws import sync_client
from tests.conftest import poll
from tests.lambdas.api.conftest import Service


def _events(first_seq: int, *kinds: tuple[str, float], start: datetime | None = None) -> list[Any]:
    """Events ``first_seq``.. of (kind, seconds it lasted), a second apart, ending before now."""
    at = start or datetime.now(UTC) - timedelta(seconds=600)
    out = []
    for i, (kind, seconds) in enumerate(kinds):
        out.append(
            {
                "event_id": f"ev-{uuid.uuid4().hex[:20]}",
                "seq": first_seq + i,
                "kind": kind,
                "at": (at + timedelta(seconds=i)).isoformat(),
                "duration_ms": int(seconds * 1000),
            }
        )
    return out


def _errors(service: Service, exam_id: str) -> list[dict[str, Any]]:
    dynamodb = sync_client(service.settings, "dynamodb")
    items = dynamodb.query(
        TableName=service.settings.names.errors_table,
        KeyConditionExpression="exam_id = :e",
        ExpressionAttributeValues={":e": {"S": exam_id}},
    )["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def _stream_events(service: Service) -> Iterator[dict[str, Any]]:
    kinesis = sync_client(service.settings, "kinesis")
    stream = service.settings.names.stream
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]:
            yield {"key": record["PartitionKey"], **json.loads(record["Data"])}


def test_a_batch_goes_on_the_stream_with_the_students_partition_key(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    path = f"/exams/{exam_id}/students/{student}/integrity"
    sent = _events(0, ("hidden", 12), ("paste", 0), ("fullscreen_exit", 0))
    answer = service.call("POST", path, "student", json={"events": sent})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 3, "last_seq": 2}
    on_stream = [e for e in _stream_events(service) if e.get("type") == "integrity"]
    assert [e["event_id"] for e in on_stream] == [e["event_id"] for e in sent]
    assert {e["key"] for e in on_stream} == {f"{exam_id}#{student}"}
    assert on_stream[0]["duration_ms"] == 12000 and on_stream[0]["student_id"] == student


def test_bad_batches_get_a_clear_error_and_an_errors_row(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    path = f"/exams/{exam_id}/students/{student}/integrity"
    future = _events(0, ("paste", 0), start=datetime.now(UTC) + timedelta(minutes=5))
    disorder = _events(0, ("paste", 0), ("copy", 0))
    disorder[1]["seq"] = 0
    twice = _events(0, ("paste", 0), ("copy", 0))
    twice[1]["event_id"] = twice[0]["event_id"]
    naive = _events(0, ("paste", 0))
    naive[0]["at"] = "2026-12-06T10:00:00"
    cases = {
        "not json": (b"{", 400, "invalid_body"),
        "a kind nobody knows": ({"events": [{**_events(0, ("paste", 0))[0], "kind": "x"}]},
                                400, "invalid_body"),
        "seq as a string": ({"events": [{**_events(0, ("paste", 0))[0], "seq": "1"}]},
                            400, "invalid_body"),
        "no events": ({"events": []}, 400, "invalid_body"),
        "too many events": ({"events": _events(0, *[("copy", 0)] * 51)}, 400, "invalid_body"),
        "oversized": ({"events": _events(0, ("copy", 0)), "pad": "x" * 40_000},
                      413, "too_large"),
        "future-dated": ({"events": future}, 400, "future_event"),
        "no time zone": ({"events": naive}, 400, "invalid_body"),
        "out of order": ({"events": disorder}, 400, "out_of_order"),
        "one event twice": ({"events": twice}, 400, "duplicate_event"),
    }  # fmt: skip
    for name, (body, status, reason) in cases.items():
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        answer = service.call("POST", path, "student", **kwargs)
        assert answer.status_code == status, (name, answer.text)
        assert answer.json()["reason"] == reason, name
        assert answer.json()["error"], name
    rows = [r for r in _errors(service, exam_id) if r.get("stage") == "integrity"]
    assert sorted(r["reason"] for r in rows) == sorted(c[2] for c in cases.values())
    assert all(r["student_id"] == student for r in rows)
    assert not [e for e in _stream_events(service) if e.get("type") == "integrity"]


def test_only_the_student_themself_once_the_exam_runs(service: Service) -> None:
    exam_id = service.exam()
    student = service.enrol(exam_id)
    path = f"/exams/{exam_id}/students/{student}/integrity"
    body = {"events": _events(0, ("paste", 0))}
    assert service.call("POST", path, json=body).status_code == 401
    other = service.call("POST", path, "other_student", json=body)
    assert other.status_code == 403 and other.json()["reason"] == "not_owner"
    proctor = service.call("POST", path, "proctor", json=body)
    assert proctor.status_code == 403
    early = service.call("POST", path, "student", json=body)
    assert early.status_code == 409 and early.json()["reason"] == "exam_not_started"
    assert service.call("POST", f"/exams/{exam_id}/start", "proctor").status_code == 200
    assert service.call("POST", f"/exams/{exam_id}/stop", "proctor").status_code == 200
    late = service.call("POST", path, "student", json=body)  # kept offline, sent after the end
    assert late.status_code == 202, late.text


def _put_policy(service: Service, exam_id: str, policy: dict[str, Any]) -> None:
    from proctoring.storage import to_item

    sync_client(service.settings, "dynamodb").put_item(
        TableName=service.settings.names.sessions_table,
        Item=to_item({"exam_id": exam_id, "student_id": "#policy", "policy": policy}),
    )


@pytest.mark.slow
def test_the_consumer_judges_the_events_and_writes_each_once(live: Service) -> None:
    exam_id = live.exam(start=True)
    student = live.enrol(exam_id)
    _put_policy(live, exam_id, {"integrity_tolerances": {"LEFT_EXAM": 5}})
    path = f"/exams/{exam_id}/students/{student}/integrity"
    first = _events(0, ("hidden", 3), ("blur", 3), ("paste", 0))
    second = _events(3, ("hidden", 4), ("camera_ended", 0), ("fullscreen_exit", 0),
                     ("second_screen", 0), ("copy", 0),
                     start=datetime.now(UTC) - timedelta(seconds=500))  # fmt: skip

    def alerts() -> list[dict[str, Any]]:
        return list(live.call("GET", f"/exams/{exam_id}/alerts", "proctor").json()["alerts"])

    # the newer batch first and judged, then the older one twice (its answer lost)
    assert live.call("POST", path, "student", json={"events": second}).status_code == 202
    for _ in poll("the newer batch judged", 60):
        if len(alerts()) >= 3:
            break
    for batch in (first, first):
        assert live.call("POST", path, "student", json={"events": batch}).status_code == 202
    for _ in poll("five integrity alerts", 60):
        if len(alerts()) >= 5:
            break
    by_type = {a["type"]: a for a in alerts()}
    assert set(by_type) == {"LEFT_EXAM", "PASTE", "CAMERA_OFF", "FULLSCREEN_EXIT",
                            "SECOND_SCREEN"}  # fmt: skip
    assert all(a["source"] == "integrity" for a in by_type.values())
    # the newer 4 s hidden alone stay under 5 s; the late 3 s hidden, judged on its own
    # time within the same window, make 7 s: the alert is raised on it
    assert float(by_type["LEFT_EXAM"]["duration_s"]) == 7.0
    assert by_type["LEFT_EXAM"]["sequence"] == 0
    results = live.call("GET", f"/exams/{exam_id}/results?student_id={student}", "proctor").json()[
        "results"
    ]
    rows = [r for r in results if r["source"] == "integrity"]
    assert sorted(r["sequence"] for r in rows) == list(range(8)), "every event, once"
    for _ in poll("the duplicate and the late events recorded", 30):
        reasons = [r["reason"] for r in _errors(live, exam_id) if r.get("stage") == "integrity"]
        if reasons.count("duplicate_event") == 3:
            break
    assert reasons.count("out_of_order") == 3
    students = live.call("GET", f"/exams/{exam_id}/students", "proctor").json()["students"]
    risk = next(s["risk"] for s in students if s["student_id"] == student)
    assert float(risk) == 4 + 4 + 10 + 1 + 10  # LEFT_EXAM, PASTE, CAMERA_OFF, FULLSCREEN, SECOND
    report = live.call("GET", f"/exams/{exam_id}/report", "proctor").json()
    mine = next(s for s in report["students"] if s["student_id"] == student)
    timeline = [t for t in mine["timeline"] if t["source"] == "integrity"]
    assert [t["sequence"] for t in timeline] == list(range(8))
    assert timeline[0] == {**timeline[0], "status": "hidden", "duration_ms": 3000}
    assert mine["chunks"] == 0, "events are not chunks"
    left = next(a for a in mine["alerts"] if a["type"] == "LEFT_EXAM")
    assert float(left["duration_s"]) == 7.0
    csv = live.call("GET", f"/exams/{exam_id}/report.csv", "proctor").text
    assert csv.count(",event,integrity,") == 8 and csv.count(",alert,integrity,") == 5
