"""POST /exams/{exam_id}/meeting over HTTP: who gets live video join info, and what is kept.

The Chime requests behind ``join`` (GetMeeting, CreateAttendee for the proctor) are checked
against botocore's models in ``tests/proctoring/test_channels.py``; here the running service's
transport answers a join as ChimeTransport does, so the route's own rules show: the exam's
proctor and a consenting student get the meeting and their attendee, the attendee -> user
map the chunk router reads is kept with the caller's role, a student without consent or
whose session was ended gets nothing, and the local transport's answer is 409 no_meeting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from proctoring.aws import async_clients
from proctoring.exams import ExamStore
from tests.lambdas.api.conftest import Service


class _Meetings:
    """What ChimeTransport.join answers: the exam's meeting, an attendee per user."""

    def __init__(self) -> None:
        self.joined: list[str] = []

    async def join(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any]:
        self.joined.append(user_id)
        return {
            "Meeting": {"MeetingId": f"m-{exam['exam_id']}", "MediaPlacement": {}},
            "Attendee": {
                "AttendeeId": f"att-{user_id}",
                "ExternalUserId": user_id,
                "JoinToken": "jt",
            },
        }


def _attendee(service: Service, exam_id: str, attendee_id: str) -> dict[str, Any] | None:
    async def get() -> dict[str, Any] | None:
        async with async_clients(service.settings) as clients:
            store = ExamStore(clients.dynamodb, service.settings.names)
            return await store.get_attendee(exam_id, attendee_id)

    return asyncio.run(get())


def test_the_proctor_and_a_consenting_student_join_with_their_own_attendee(
    service: Service,
) -> None:
    exam_id = service.exam("proctor", start=True)
    student = service.enrol(exam_id, "student")
    service.enrol(exam_id, "other_student", consent=False)
    local = service.call("POST", f"/exams/{exam_id}/meeting", "proctor")
    assert (local.status_code, local.json()["reason"]) == (409, "no_meeting")

    assert service.server.server is not None
    meetings = _Meetings()
    service.server.server.api.services.channel.transport.join = meetings.join

    proctor = service.call("POST", f"/exams/{exam_id}/meeting", "proctor")
    assert proctor.status_code == 200, proctor.text
    joined = proctor.json()
    assert joined["Meeting"]["MeetingId"] == f"m-{exam_id}"
    assert joined["Attendee"]["ExternalUserId"] == service.ids["proctor"]
    assert joined["proctor_id"] == service.ids["proctor"]
    kept = _attendee(service, exam_id, f"att-{service.ids['proctor']}")
    assert kept is not None and kept["role"] == "proctor"  # the router skips its video

    mine = service.call("POST", f"/exams/{exam_id}/meeting", "student")
    assert mine.status_code == 200, mine.text
    assert mine.json()["Attendee"]["ExternalUserId"] == student
    kept = _attendee(service, exam_id, f"att-{student}")
    assert kept is not None and (kept["role"], kept["student_id"]) == ("student", student)

    no_consent = service.call("POST", f"/exams/{exam_id}/meeting", "other_student")
    assert (no_consent.status_code, no_consent.json()["reason"]) == (409, "consent_required")

    end = {"action": "end", "text": "left the room"}
    path = f"/exams/{exam_id}/students/{student}/interventions"
    assert service.call("POST", path, "proctor", json=end).status_code == 200
    after = service.call("POST", f"/exams/{exam_id}/meeting", "student")
    assert (after.status_code, after.json()["reason"]) == (409, "session_ended")

    not_started = service.exam("proctor")
    early = service.call("POST", f"/exams/{not_started}/meeting", "proctor")
    assert (early.status_code, early.json()["reason"]) == (409, "exam_not_started")
    assert meetings.joined == [service.ids["proctor"], student]  # no attendee for the refused
