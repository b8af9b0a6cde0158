"""Alerts on the live stream (SSE from the local server), reviews, results and evidence."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import requests

from lambdas.alert_forwarder import forward
from proctoring.aws import async_clients
from proctoring.channels import Channel, LocalTransport
from proctoring.exams import ExamStore
from proctoring.storage import Tables
from tests.lambdas.api.conftest import Service


def _alert(exam_id: str, student: str, n: int) -> dict[str, Any]:
    return {
        "exam_id": exam_id,
        "alert_id": f"MULTIPLE_FACES-{n:016x}",
        "student_id": student,
        "source": "camera",
        "type": "MULTIPLE_FACES",
        "severity": "high",
        "sequence": n,
        "first_sequence": n - 1,
        "frame_key": f"frames/{exam_id}/{student}/camera/{n:06d}.jpg",
        "status": "open",
        "created_at": f"2026-11-27T10:00:{n:02d}+00:00",
    }


def _raise(service: Service, *alerts: dict[str, Any], deliveries: int = 1) -> None:
    """What the consumer and SNS do: the alert row, then the forwarder's delivery(ies)."""

    async def run() -> None:
        async with async_clients(service.settings) as clients:
            tables = Tables(clients.dynamodb, service.settings.names)
            store = ExamStore(clients.dynamodb, service.settings.names)
            for alert in alerts:
                await tables.create_alert(alert)
            envelope = [
                {"messageId": f"{a['alert_id']}-{d}", "body": json.dumps(
                    {"Type": "Notification", "Message": json.dumps(a)})}
                for a in alerts for d in range(deliveries)
            ]  # fmt: skip
            await forward(
                {"Records": envelope}, exams=store, channel=Channel(store, LocalTransport())
            )

    asyncio.run(run())


def _events(response: requests.Response) -> Iterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = value


def test_the_proctor_sees_each_alert_once_live_and_resumes_after_a_reconnect(
    service: Service,
) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    stream_url = f"/exams/{exam_id}/alerts/stream?access_token={service.tokens['proctor']}"
    with service.call("GET", stream_url, stream=True) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        events = _events(stream)
        _raise(service, _alert(exam_id, student, 3), deliveries=2)  # SNS delivered it twice
        first = next(events)
        assert first["event"] == "alert"
        data = json.loads(first["data"])
        assert (data["alert"]["type"], data["student_id"]) == ("MULTIPLE_FACES", student)
        service.call(
            "POST", f"/exams/{exam_id}/students/{student}/messages", "student",
            json={"text": "<script>alert(1)</script> my camera froze"},
        )  # fmt: skip
        second = next(events)  # the duplicate delivery was not posted: the chat comes next
        assert second["event"] == "chat"
        assert json.loads(second["data"])["text"] == "<script>alert(1)</script> my camera froze"
    _raise(service, _alert(exam_id, student, 4))
    resumed = service.call("GET", stream_url, stream=True, headers={"Last-Event-ID": second["id"]})
    with resumed:
        assert json.loads(next(_events(resumed))["data"])["alert"]["sequence"] == 4


def test_only_the_exams_proctor_may_follow_its_stream(service: Service) -> None:
    exam_id = service.exam(start=True)
    path = f"/exams/{exam_id}/alerts/stream"
    assert service.call("GET", path).status_code == 401
    assert service.call("GET", path, "other_proctor").status_code == 403
    assert service.call("GET", path, "student").status_code == 403


def test_a_review_records_the_decision_note_who_and_when(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    alert = _alert(exam_id, student, 5)
    _raise(service, alert)
    url = f"/exams/{exam_id}/alerts/{alert['alert_id']}/review"
    seen = service.call("POST", url, "proctor", json={"decision": "acknowledge"})
    assert seen.status_code == 200 and seen.json()["status"] == "acknowledged"
    confirmed = service.call(
        "POST", url, "proctor", json={"decision": "confirm", "note": "a second person at 10:00"}
    ).json()
    assert confirmed["status"] == "confirmed"
    assert [r["decision"] for r in confirmed["reviews"]] == ["acknowledge", "confirm"]
    assert confirmed["reviews"][-1]["by"] == service.ids["proctor"]
    assert confirmed["reviews"][-1]["note"] == "a second person at 10:00"

    listed = service.call("GET", f"/exams/{exam_id}/alerts?student_id={student}", "proctor")
    assert [a["status"] for a in listed.json()["alerts"]] == ["confirmed"]
    bad = service.call("POST", url, "proctor", json={"decision": "ignore"})
    assert bad.status_code == 400 and "decision" in bad.json()["error"]
    unknown = service.call(
        "POST", f"/exams/{exam_id}/alerts/NO_FACE-0/review", "proctor", json={"decision": "dismiss"}
    )
    assert unknown.status_code == 404
    assert (
        service.call("POST", url, "other_proctor", json={"decision": "dismiss"}).status_code == 403
    )
    evidence = service.call(
        "GET", f"/exams/{exam_id}/alerts/{alert['alert_id']}/evidence", "proctor"
    )
    assert evidence.status_code == 200 and alert["frame_key"] in evidence.json()["url"]


def test_an_evidence_frame_that_changed_since_the_alert_is_not_served(service: Service) -> None:
    """The alert stores its frame's SHA-256; the evidence route re-hashes the frame before it
    hands out a link, so a frame replaced behind the alert's back is refused (issue 19)."""
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    frame_key = f"frames/{exam_id}/{student}/camera/000003.jpg"
    frame = b"\xff\xd8\xff the frame the alert was raised on"

    async def write(body: bytes, *, alert: bool) -> None:
        async with async_clients(service.settings) as clients:
            await clients.s3.put_object(
                Bucket=service.settings.names.frames_bucket, Key=frame_key, Body=body
            )
            if alert:
                await Tables(clients.dynamodb, service.settings.names).create_alert(
                    {"exam_id": exam_id, "alert_id": "NO_FACE-00000000000000cc",
                     "student_id": student, "type": "NO_FACE", "status": "open",
                     "frame_key": frame_key,
                     "frame_sha256": hashlib.sha256(frame).hexdigest()}
                )  # fmt: skip

    url = f"/exams/{exam_id}/alerts/NO_FACE-00000000000000cc/evidence"
    asyncio.run(write(frame, alert=True))
    served = service.call("GET", url, "proctor")
    assert served.status_code == 200
    assert requests.get(served.json()["url"], timeout=10).content == frame
    asyncio.run(write(b"\xff\xd8\xff a nicer frame", alert=False))
    altered = service.call("GET", url, "proctor")
    assert altered.status_code == 409 and altered.json()["reason"] == "evidence_altered"


def test_an_alert_without_a_kept_frame_still_links_its_chunk(service: Service) -> None:
    """A CHUNK_REPLACED alert names the first chunk's evidence; when the policy's frame_every
    kept no frame of that chunk, the chunk itself is the evidence the proctor gets."""
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    chunk_key = f"chunks/{exam_id}/{student}/camera/000004_1.mp4"

    async def write() -> None:
        async with async_clients(service.settings) as clients:
            await clients.s3.put_object(
                Bucket=service.settings.names.chunks_bucket, Key=chunk_key, Body=b"video"
            )
            await Tables(clients.dynamodb, service.settings.names).create_alert(
                {"exam_id": exam_id, "alert_id": "CHUNK_REPLACED-00000000000000dd",
                 "student_id": student, "type": "CHUNK_REPLACED", "status": "open",
                 "chunk_key": chunk_key}
            )  # fmt: skip

    asyncio.run(write())
    served = service.call(
        "GET", f"/exams/{exam_id}/alerts/CHUNK_REPLACED-00000000000000dd/evidence", "proctor"
    )
    assert served.status_code == 200 and "url" not in served.json()
    assert requests.get(served.json()["chunk_url"], timeout=10).content == b"video"
