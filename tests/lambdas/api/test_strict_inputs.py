"""Issue 19, finding 4, through the local server: loose JSON types, blank text that looks
filled, the live stream replaying items that are not its events, aiohttp's own plain-text
errors. Each attempt now gets the documented JSON error."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from dashboard.server import MAX_LINE_BYTES
from tests.lambdas.api.conftest import Service
from tests.lambdas.api.test_alerts import _alert, _events, _raise

# whitespace of several kinds, and characters that take no room at all
BLANKS = (
    "   ",
    "\t\n\u00a0\u3000",
    "\u200b",
    "\u200b\u200c\u200d",
    "\u2060\ufeff",
    " \u200b \u2800 \u3164 ",  # a braille blank and a Hangul filler draw nothing either
    "\u0301",  # a combining accent with nothing to sit on
)


def _refused(response: Any, *fields: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["reason"] == "invalid_body" and all(f in body["error"] for f in fields), body


@pytest.mark.parametrize("loose", ["12", 12.0, True, "twelve", None])
def test_an_integer_is_a_json_integer_only(service: Service, loose: Any) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    url = f"/exams/{exam_id}/students/{student}/uploads"
    _refused(service.call("POST", url, "student", json={"first_sequence": loose}), "first_seq")
    _refused(service.call("POST", url, "student", json={"first_sequence": 3, "count": loose}))
    assert service.call("POST", url, "student", json={"first_sequence": 12}).status_code == 200


def test_booleans_and_literals_are_taken_strictly(service: Service) -> None:
    for loose in ("true", 1, "yes"):
        _refused(service.call("POST", "/exams", "proctor", json={"title": "A", "screen": loose}))
    exam_id = service.exam()
    student = service.enrol(exam_id, consent=False)
    consent = f"/exams/{exam_id}/students/{student}/consent"
    version = service.settings.consent_version
    for loose in ("true", 1):
        body = {"policy_version": version, "accepted": loose}
        _refused(service.call("PUT", consent, "student", json=body), "accepted")


@pytest.mark.parametrize("blank", BLANKS, ids=lambda b: "+".join(f"{ord(c):04x}" for c in b))
def test_text_a_reader_must_see_is_refused_when_nothing_shows(service: Service, blank: str) -> None:
    _refused(service.call("POST", "/exams", "proctor", json={"title": blank}), "title")
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    thread = f"/exams/{exam_id}/students/{student}/messages"
    _refused(service.call("POST", thread, "student", json={"text": blank}), "text")
    _refused(service.call("POST", thread, "proctor", json={"text": blank}), "text")
    alert = _alert(exam_id, student, 3)
    _raise(service, alert)
    review = f"/exams/{exam_id}/alerts/{alert['alert_id']}/review"
    note = {"decision": "dismiss", "note": blank}
    _refused(service.call("POST", review, "proctor", json=note), "note")
    reason = {"photo": "AAAA", "reason": blank * 3}
    rereg = f"/exams/{exam_id}/students/{student}/reregistration"
    _refused(service.call("POST", rereg, "proctor", json=reason), "reason")
    assert service.call("GET", thread, "proctor").json()["messages"][1:] == []  # the alert only


def test_short_or_foreign_text_that_shows_is_taken(service: Service) -> None:
    for title in ("Ω", "数学", "👍", "\u200b.\u200b"):
        created = service.call("POST", "/exams", "proctor", json={"title": title})
        assert created.status_code == 201 and created.json()["title"] == title
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    alert = _alert(exam_id, student, 3)
    _raise(service, alert)
    review = f"/exams/{exam_id}/alerts/{alert['alert_id']}/review"
    no_note = service.call("POST", review, "proctor", json={"decision": "acknowledge"})
    assert no_note.status_code == 200, "a note may be left out"


def test_the_stream_replays_only_its_own_events(service: Service) -> None:
    """Last-Event-ID ``a`` sorted before the exam's other items: the stream replayed the exam
    row and the forwarder's claims as chat events."""
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    _raise(service, _alert(exam_id, student, 3), _alert(exam_id, student, 4))  # + fwd# claims
    thread = f"/exams/{exam_id}/students/{student}/messages"
    service.call("POST", thread, "student", json={"text": "my camera froze"})
    url = f"/exams/{exam_id}/alerts/stream?access_token={service.tokens['proctor']}"
    for foreign in ("a", "exam", "fwd#", "attendee#x", "student#" + student, "msg#", "zzz"):
        refused = service.call("GET", url, headers={"Last-Event-ID": foreign})
        assert refused.status_code == 400, foreign
        assert refused.json()["reason"] == "bad_last_event_id"
    own = f"/exams/{exam_id}/students/{student}/stream?access_token={service.tokens['student']}"
    refused = service.call("GET", own, headers={"Last-Event-ID": "exam"})  # a thread's stream too
    assert refused.status_code == 400 and refused.json()["reason"] == "bad_last_event_id"
    earliest = "msg#0000-01-01T00:00:00.000000Z#x"  # a well-formed id before every message
    with service.call("GET", url, stream=True, headers={"Last-Event-ID": earliest}) as stream:
        events = _events(stream)
        replayed = [next(events) for _ in range(3)]
    assert [e["event"] for e in replayed] == ["alert", "alert", "chat"]
    assert all(e["id"].startswith("msg#") for e in replayed)
    assert all("status" not in json.loads(e["data"]) for e in replayed), "no exam row"


def _raw(service: Service, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as bytes (a client library would refuse to) and read the answer."""
    where = urlsplit(service.url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after an error
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GET /exams HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_LINE_BYTES + 10) + b"\r\n\r\n",
         "header_too_large"),
        (b"GET /exams?" + b"q" * (MAX_LINE_BYTES + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
         "header_too_large"),
        (b"NOT HTTP AT ALL\r\n\r\n", "bad_request"),
        (b"GET /exams HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "bad_request"),
    ],
    ids=["long-header", "long-request-line", "not-http", "bad-header-name"],
)  # fmt: skip
def test_requests_aiohttp_refuses_itself_get_the_json_error(
    service: Service, request_bytes: bytes, reason: str
) -> None:
    status, headers, body = _raw(service, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    answer = json.loads(body)
    assert set(answer) == {"error", "reason"} and answer["reason"] == reason
    assert service.call("GET", "/exams", "proctor").status_code == 200, "the server goes on"
