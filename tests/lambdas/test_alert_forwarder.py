"""The alert forwarder posts each alert once, to the right people, in order per exam."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from lambdas import alert_forwarder
from lambdas.alert_forwarder import forward
from proctoring.aws import async_clients
from proctoring.channels import Channel, TransportError
from proctoring.exams import ExamStore
from proctoring.settings import Settings


class _Recorder:
    """A transport that records deliveries (the Chime one is checked against botocore's models
    in tests/proctoring/test_channels.py) and can fail the first ``fail`` deliveries."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, str]] = []
        self._fail = fail

    async def open(self, exam: Mapping[str, Any], members: list[str]) -> dict[str, Any]:
        return {}

    async def add_member(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any]:
        return {}

    async def close(self, exam: Mapping[str, Any]) -> None:
        return None

    async def deliver(
        self, exam: Mapping[str, Any], message: Mapping[str, Any], target: str
    ) -> str | None:
        if self._fail:
            self._fail -= 1
            raise TransportError("Chime said no")
        self.sent.append((str(message["message_id"]), target))
        return "m"


def _sns_record(n: int, alert: dict[str, Any]) -> dict[str, Any]:
    envelope = {"Type": "Notification", "MessageId": f"sns-{n}", "Message": json.dumps(alert)}
    return {
        "messageId": f"sqs-{n}",
        "body": json.dumps(envelope),
        "attributes": {"MessageGroupId": alert["exam_id"]},
        "eventSource": "aws:sqs",
    }


def _alert(exam_id: str, n: int, student: str = "s1") -> dict[str, Any]:
    return {
        "exam_id": exam_id,
        "alert_id": f"NO_FACE-{n:016x}",
        "student_id": student,
        "type": "NO_FACE",
        "severity": "medium",
        "sequence": n,
        "frame_key": f"frames/{exam_id}/{student}/camera/{n:06d}.jpg",
        "created_at": f"2026-11-27T10:00:0{n}.000000+00:00",
        "evidence": {"face_details": [{"embedding": "never forwarded"}]},
    }


def _run(
    settings: Settings, transport: _Recorder, event: dict[str, Any], exams: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            store = ExamStore(clients.dynamodb, settings.names)
            for exam in exams:
                await store.create_exam(exam)
            response = await forward(event, exams=store, channel=Channel(store, transport))
            messages = [m for e in exams for m in await store.messages(e["exam_id"])]
            return response, messages

    return asyncio.run(run())


def test_an_alert_delivered_twice_is_posted_once(settings: Settings) -> None:
    exam = {"exam_id": "e1", "proctor_id": "p1", "status": "started", "title": "t"}
    twice = _alert("e1", 1)
    event = {
        "Records": [_sns_record(1, twice), _sns_record(2, twice), _sns_record(3, _alert("e1", 2))]
    }
    transport = _Recorder()
    response, messages = _run(settings, transport, event, [exam])
    assert response == {"batchItemFailures": []}
    assert transport.sent == [
        ("alert-NO_FACE-0000000000000001", "p1"),
        ("alert-NO_FACE-0000000000000002", "p1"),
    ]
    assert [m["alert"]["alert_id"] for m in messages] == [
        twice["alert_id"],
        "NO_FACE-0000000000000002",
    ]
    assert all("evidence" not in m["alert"] for m in messages)  # no face data on the channel


def test_the_student_gets_the_alert_only_when_the_exam_says_so(settings: Settings) -> None:
    exams = [
        {"exam_id": "quiet", "proctor_id": "p1", "status": "started", "title": "t"},
        {
            "exam_id": "open",
            "proctor_id": "p2",
            "status": "started",
            "title": "t",
            "student_alerts": True,
        },
    ]
    event = {"Records": [_sns_record(1, _alert("quiet", 1)), _sns_record(2, _alert("open", 2))]}
    transport = _Recorder()
    _run(settings, transport, event, exams)
    assert [target for _, target in transport.sent] == ["p1", "p2", "s1"]


def test_a_failed_post_is_retried_and_later_alerts_of_the_exam_wait(settings: Settings) -> None:
    exams = [
        {"exam_id": "e1", "proctor_id": "p1", "status": "started", "title": "t"},
        {"exam_id": "e2", "proctor_id": "p2", "status": "started", "title": "t"},
    ]
    records = [
        _sns_record(1, _alert("e1", 1)),
        _sns_record(2, _alert("e1", 2)),
        _sns_record(3, _alert("e2", 3)),
    ]
    transport = _Recorder(fail=1)
    response, _ = _run(settings, transport, {"Records": records}, exams)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "sqs-1"}, {"itemIdentifier": "sqs-2"}]
    }
    assert transport.sent == [("alert-NO_FACE-0000000000000003", "p2")]

    async def retry() -> list[dict[str, Any]]:  # SQS delivers the two again: each posted once
        async with async_clients(settings) as clients:
            store = ExamStore(clients.dynamodb, settings.names)
            again = await forward(
                {"Records": records}, exams=store, channel=Channel(store, transport)
            )
            assert again == {"batchItemFailures": []}
            return await store.messages("e1")

    messages = asyncio.run(retry())
    assert [m["message_id"] for m in messages] == [
        "alert-NO_FACE-0000000000000001",
        "alert-NO_FACE-0000000000000002",
    ]
    assert sorted(transport.sent) == [
        ("alert-NO_FACE-0000000000000001", "p1"),
        ("alert-NO_FACE-0000000000000002", "p1"),
        ("alert-NO_FACE-0000000000000003", "p2"),
    ]


def test_messages_that_are_not_alerts_are_dropped_not_retried(settings: Settings) -> None:
    event = {"Records": [{"messageId": "x", "body": "not json"}, {"messageId": "y", "body": "{}"}]}
    response, _ = _run(settings, _Recorder(), event, [])
    assert response == {"batchItemFailures": []}


def test_a_warm_forwarder_lambda_reuses_its_services(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, built_clients: list[str]
) -> None:
    """Through ``handler``, as Lambda calls it: one set of clients for two batches."""
    monkeypatch.setenv("PROCTOR_ENDPOINT_URL", settings.endpoint_url or "")
    monkeypatch.setenv("PROCTOR_PREFIX", settings.prefix)
    monkeypatch.setenv("PROCTOR_LOG_FORMAT", "console")
    exam = {"exam_id": "warm", "proctor_id": "p1", "status": "started", "title": "t"}

    async def create() -> None:
        async with async_clients(settings) as clients:
            await ExamStore(clients.dynamodb, settings.names).create_exam(exam)

    asyncio.run(create())
    built_clients.clear()  # the exam is set up; the Lambda is counted from here
    for n in (1, 2):
        event = {"Records": [_sns_record(n, _alert("warm", n))]}
        assert alert_forwarder.handler(event) == {"batchItemFailures": []}
    assert sorted(built_clients) == ["dynamodb", "kinesis", "s3", "sns", "sqs"]  # once, not twice

    async def posted() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            return await ExamStore(clients.dynamodb, settings.names).messages("warm")

    assert [m["alert"]["alert_id"] for m in asyncio.run(posted())] == [
        _alert("warm", 1)["alert_id"],
        _alert("warm", 2)["alert_id"],
    ]
