"""The Chime SDK transport: every request it makes, checked against botocore's service models.

No emulator has Chime, so each client is stubbed with aiobotocore's
``AioStubber``: the client still validates every request against the
service model (a wrong name, type or missing member fails), and the stub
checks the exact parameters and answers with model-valid responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from aiobotocore.session import get_session
from aiobotocore.stub import AioStubber

from proctoring.channels import ChimeTransport, TransportError
from proctoring.settings import Settings

APP = "arn:aws:chime:us-east-1:111122223333:app-instance/0f3c9a54-1b7e-4f59-9b1e-5a2d8f4c1e77"
BEARER = f"{APP}/user/proctoring-service"
CHANNEL = f"{APP}/channel/4e1b2c3d"
SETTINGS = Settings(
    prefix="exam1",
    chime_app_instance_arn=APP,
    chime_bearer_arn=BEARER,
    chime_capture_role_arn="arn:aws:iam::111122223333:role/exam1-capture",
    data_key_arn="arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
)
MEETING = {
    "MeetingId": "0a1b2c3d-1111-2222-3333-444455556666",
    "ExternalMeetingId": "ex-1",
    "MediaRegion": "us-east-1",
}
_SERVICES = {
    "meetings": "chime-sdk-meetings",
    "messaging": "chime-sdk-messaging",
    "identity": "chime-sdk-identity",
    "pipelines": "chime-sdk-media-pipelines",
}


@asynccontextmanager
async def _stubbed() -> AsyncIterator[tuple[ChimeTransport, dict[str, AioStubber]]]:
    session = get_session()
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(
                session.create_client(
                    service, region_name="us-east-1",
                    aws_access_key_id="stub", aws_secret_access_key="stub",
                )
            )
            for name, service in _SERVICES.items()
        }  # fmt: skip
        stubs = {name: AioStubber(client) for name, client in clients.items()}
        for stub in stubs.values():
            stub.activate()
        yield ChimeTransport(SETTINGS, **clients), stubs
        for stub in stubs.values():
            stub.assert_no_pending_responses()


def _run(test: Callable[[ChimeTransport, dict[str, AioStubber]], Any]) -> Any:
    async def run() -> Any:
        async with _stubbed() as (transport, stubs):
            return await test(transport, stubs)

    return asyncio.run(run())


def _membership(stubs: dict[str, AioStubber], user: str) -> None:
    stubs["identity"].add_response(
        "create_app_instance_user",
        {"AppInstanceUserArn": f"{APP}/user/{user}"},
        {
            "AppInstanceArn": APP,
            "AppInstanceUserId": user,
            "Name": user,
            "ClientRequestToken": f"user-{user}",
        },
    )
    stubs["messaging"].add_response(
        "create_channel_membership",
        {"ChannelArn": CHANNEL, "Member": {"Arn": f"{APP}/user/{user}"}},
        {"ChannelArn": CHANNEL, "MemberArn": f"{APP}/user/{user}", "Type": "DEFAULT",
         "ChimeBearer": BEARER},
    )  # fmt: skip


def test_starting_an_exam_creates_meeting_channel_members_and_capture() -> None:
    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> dict[str, Any]:
        stubs["meetings"].add_response(
            "create_meeting",
            {"Meeting": MEETING},
            {"ClientRequestToken": "exam-ex-1", "MediaRegion": "us-east-1",
             "ExternalMeetingId": "ex-1"},
        )  # fmt: skip
        stubs["messaging"].add_response(
            "create_channel",
            {"ChannelArn": CHANNEL},
            {"AppInstanceArn": APP, "Name": "exam ex-1", "Mode": "RESTRICTED",
             "Privacy": "PRIVATE", "ClientRequestToken": "channel-ex-1", "ChimeBearer": BEARER},
        )  # fmt: skip
        _membership(stubs, "proctor-1")
        _membership(stubs, "student-1")
        for user, attendee in (("proctor-1", "att-p"), ("student-1", "att-s")):
            stubs["meetings"].add_response(  # the router maps capture chunks by these ids
                "create_attendee",
                {"Attendee": {"AttendeeId": attendee, "ExternalUserId": user, "JoinToken": "jt"}},
                {"MeetingId": MEETING["MeetingId"], "ExternalUserId": user},
            )
        stubs["pipelines"].add_response(
            "create_media_capture_pipeline",
            {"MediaCapturePipeline": {"MediaPipelineId": "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"}},
            {
                "SourceType": "ChimeSdkMeeting",
                "SourceArn": f"arn:aws:chime::111122223333:meeting:{MEETING['MeetingId']}",
                "SinkType": "S3Bucket",
                "SinkArn": "arn:aws:s3:::exam1-chunks/capture/ex-1",
                "ClientRequestToken": "capture-ex-1",
                "SinkIamRoleArn": SETTINGS.chime_capture_role_arn,
                "SseAwsKeyManagementParams": {"AwsKmsKeyId": SETTINGS.data_key_arn},
                # No SourceConfiguration.SelectedVideoStreams: every attendee's video,
                # so a student who joins after the start is captured too; content
                # share is not captured (nothing analyses it).
                "ChimeSdkMeetingConfiguration": {
                    "ArtifactsConfiguration": {
                        "Audio": {"MuxType": "AudioOnly"},
                        "Video": {"State": "Enabled", "MuxType": "VideoOnly"},
                        "Content": {"State": "Disabled"},
                    }
                },
            },
        )
        return await transport.open({"exam_id": "ex-1", "proctor_id": "proctor-1"}, ["student-1"])

    stored = _run(test)
    assert stored == {
        "meeting_id": MEETING["MeetingId"],
        "channel_arn": CHANNEL,
        "pipeline_id": "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",
        "attendees": [
            {"user_id": "proctor-1", "attendee_id": "att-p", "role": "proctor"},
            {"user_id": "student-1", "attendee_id": "att-s", "role": "student"},
        ],
    }


def test_a_student_joining_a_started_exam_gets_membership_and_an_attendee() -> None:
    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> dict[str, Any]:
        stubs["identity"].add_client_error(
            "create_app_instance_user", service_error_code="ConflictException", http_status_code=409
        )  # the user exists from an earlier exam: fine
        stubs["messaging"].add_response(
            "create_channel_membership",
            {"ChannelArn": CHANNEL},
            {"ChannelArn": CHANNEL, "MemberArn": f"{APP}/user/student-2", "Type": "DEFAULT",
             "ChimeBearer": BEARER},
        )  # fmt: skip
        stubs["meetings"].add_response(
            "create_attendee",
            {
                "Attendee": {
                    "AttendeeId": "att-1",
                    "ExternalUserId": "student-2",
                    "JoinToken": "jt-1",
                }
            },
            {"MeetingId": MEETING["MeetingId"], "ExternalUserId": "student-2"},
        )
        exam = {"exam_id": "ex-1", "meeting_id": MEETING["MeetingId"], "channel_arn": CHANNEL}
        return await transport.add_member(exam, "student-2")

    assert _run(test) == {"attendee_id": "att-1", "join_token": "jt-1"}


def test_messages_are_targeted_idempotent_and_stopping_ends_everything() -> None:
    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> None:
        stubs["messaging"].add_response(
            "send_channel_message",
            {"ChannelArn": CHANNEL, "MessageId": "m-1"},
            {
                "ChannelArn": CHANNEL,
                "Content": '{"kind": "alert", "student_id": "s1", "alert": {"type": "NO_FACE"}}',
                "ContentType": "application/json",
                "Type": "STANDARD",
                "Persistence": "PERSISTENT",
                "ClientRequestToken": "alert-NO_FACE-1-p1",
                "ChimeBearer": BEARER,
                "Target": [{"MemberArn": f"{APP}/user/p1"}],
            },
        )
        stubs["pipelines"].add_response(
            "delete_media_capture_pipeline",
            {},
            {"MediaPipelineId": "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"},
        )
        stubs["meetings"].add_client_error(
            "delete_meeting", service_error_code="NotFoundException", http_status_code=404
        )  # Chime ended the idle meeting already
        stubs["messaging"].add_response(
            "delete_channel", {}, {"ChannelArn": CHANNEL, "ChimeBearer": BEARER}
        )
        exam = {
            "exam_id": "ex-1",
            "meeting_id": MEETING["MeetingId"],
            "channel_arn": CHANNEL,
            "pipeline_id": "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",
        }
        message = {
            "message_id": "alert-NO_FACE-1",
            "kind": "alert",
            "student_id": "s1",
            "alert": {"type": "NO_FACE"},
            "text": None,
        }
        assert await transport.deliver(exam, message, "p1") == "m-1"
        await transport.close(exam)

    _run(test)


def test_chime_refusals_become_transport_errors() -> None:
    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> None:
        stubs["messaging"].add_client_error(
            "send_channel_message", service_error_code="ThrottledClientException",
            http_status_code=429,
        )  # fmt: skip
        exam = {"exam_id": "ex-1", "channel_arn": CHANNEL}
        with pytest.raises(TransportError, match="ThrottledClientException"):
            await transport.deliver(exam, {"message_id": "m", "kind": "chat"}, "p1")

    _run(test)


def test_interventions_reach_their_one_member_through_the_channel(settings: Settings) -> None:
    """What lambdas.api.interventions posts: a pause to the student alone, the student's
    acknowledgement to the proctor alone, naming the warning it answers (``ref``); recorded
    in the exams table (moto) before it is sent."""
    from proctoring.aws import async_clients
    from proctoring.channels import Channel
    from proctoring.exams import ExamStore

    def sent(content: str, token: str, member: str) -> dict[str, Any]:
        return {
            "ChannelArn": CHANNEL,
            "Content": content,
            "ContentType": "application/json",
            "Type": "STANDARD",
            "Persistence": "PERSISTENT",
            "ClientRequestToken": token,
            "ChimeBearer": BEARER,
            "Target": [{"MemberArn": f"{APP}/user/{member}"}],
        }

    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> None:
        stubs["messaging"].add_response(
            "send_channel_message",
            {"ChannelArn": CHANNEL, "MessageId": "m-1"},
            sent(
                '{"kind": "pause", "student_id": "s1", "sender_id": "p1", "text": "ID check"}',
                "pause-1-s1",
                "s1",
            ),
        )
        stubs["messaging"].add_response(
            "send_channel_message",
            {"ChannelArn": CHANNEL, "MessageId": "m-2"},
            sent(
                '{"kind": "acknowledgement", "student_id": "s1", "sender_id": "s1", '
                '"text": "Eyes front", "ref": "warning-1"}',
                "ack-warning-1-p1",
                "p1",
            ),
        )
        exam = {"exam_id": "ex-1", "proctor_id": "p1", "channel_arn": CHANNEL}
        async with async_clients(settings) as clients:
            channel = Channel(ExamStore(clients.dynamodb, settings.names), transport)
            common = {"student_id": "s1", "created_at": "2026-12-06T10:00:00.000000Z"}
            await channel.post(
                exam, kind="pause", sender_id="p1", message_id="pause-1", text="ID check",
                targets=["s1"], **common,
            )  # fmt: skip
            await channel.post(
                exam, kind="acknowledgement", sender_id="s1", message_id="ack-warning-1",
                text="Eyes front", ref="warning-1", targets=["p1"], **common,
            )  # fmt: skip
            thread = await channel.store.messages("ex-1", student_id="s1")
        assert [(m["kind"], m.get("ref")) for m in thread] == [
            ("acknowledgement", "warning-1"),  # keyed by time, then id: "ack-" < "pause-"
            ("pause", None),
        ]

    _run(test)


# What GetMeeting answers: the media placement the Chime SDK for JavaScript connects to
LIVE_MEETING = {
    **MEETING,
    "MediaPlacement": {
        "AudioHostUrl": "0a1b2c3d.k.m1.ue1.app.chime.aws:3478",
        "AudioFallbackUrl": "wss://haxrp.m1.ue1.app.chime.aws:443/calls/0a1b2c3d",
        "SignalingUrl": "wss://signal.m1.ue1.app.chime.aws/control/0a1b2c3d",
        "TurnControlUrl": "https://2713.cell.us-east-1.meetings.chime.aws/v2/turn_sessions",
        "EventIngestionUrl": "https://data.svc.ue1.ingest.chime.aws/v1/client-events",
    },
}


def test_the_proctor_joins_the_live_meeting_with_their_own_attendee() -> None:
    """Live video: the console gets the meeting and an attendee whose ExternalUserId is the
    proctor; CreateAttendee is asked again each time (the service returns the existing
    attendee for the same ExternalUserId), so no join token is ever stored."""

    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> Any:
        stubs["meetings"].add_response(
            "get_meeting", {"Meeting": LIVE_MEETING}, {"MeetingId": MEETING["MeetingId"]}
        )
        attendee = {"AttendeeId": "att-p", "ExternalUserId": "proctor-1", "JoinToken": "jtP"}
        stubs["meetings"].add_response(
            "create_attendee",
            {"Attendee": attendee},
            {"MeetingId": MEETING["MeetingId"], "ExternalUserId": "proctor-1"},
        )
        exam = {"exam_id": "ex-1", "proctor_id": "proctor-1", "meeting_id": MEETING["MeetingId"]}
        return await transport.join(exam, "proctor-1"), await transport.join(
            {"exam_id": "ex-2"}, "proctor-1"
        )

    joined, without_meeting = _run(test)
    assert joined == {
        "Meeting": LIVE_MEETING,
        "Attendee": {"AttendeeId": "att-p", "ExternalUserId": "proctor-1", "JoinToken": "jtP"},
    }
    assert without_meeting is None  # an exam not started has no meeting: no call at all


def test_a_meeting_aws_ended_is_a_transport_error_not_a_crash() -> None:
    async def test(transport: ChimeTransport, stubs: dict[str, AioStubber]) -> None:
        stubs["meetings"].add_client_error(
            "get_meeting", service_error_code="NotFoundException", http_status_code=404
        )
        with pytest.raises(TransportError, match="get_meeting"):
            await transport.join({"exam_id": "ex-1", "meeting_id": MEETING["MeetingId"]}, "p-1")

    _run(test)
