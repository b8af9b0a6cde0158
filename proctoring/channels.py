"""The exam's live transport: a Chime SDK meeting and messaging channel, or the local channel.

The exams table is the record of every message (chat and forwarded alerts,
``proctoring.exams``); a ``Transport`` delivers them live and owns the
exam's meeting:

- ``LocalTransport`` (no Chime app instance configured): the record is the
  channel; the local server streams it to the proctor's browser as SSE;
- ``ChimeTransport``: starting an exam creates a Chime SDK meeting
  (``CreateMeeting``), a restricted private channel in the app instance
  (``CreateChannel``) with the proctor and every enrolled student as members
  (``CreateAppInstanceUser`` + ``CreateChannelMembership``), a meeting
  attendee for the proctor and each enrolled student (``CreateAttendee``,
  ``ExternalUserId`` = the user id; a student joining later gets theirs from
  ``add_member``) and, when a sink role is configured, a media capture
  pipeline writing to the chunks bucket under ``capture/<exam>/``: every
  attendee's video (no selected streams, so a student who joins late is
  captured too) and the meeting's audio; content share is not captured
  (nothing analyses it). The attendees come back as ``attendees`` for the
  caller to store (attendee -> student, read by the chunk router); stopping
  deletes the pipeline, the meeting and the channel. ``join`` hands a member
  of a started exam what the Chime SDK for JavaScript joins with: the meeting
  (``GetMeeting``: its media placement) and the member's attendee
  (``CreateAttendee`` again: the service returns the existing attendee for an
  ``ExternalUserId``, so the join token is never stored). Messages go out with
  ``SendChannelMessage`` whose ``ClientRequestToken`` is the message id, so a
  retry is not a second message.

Every Chime request is checked against botocore's service models in the
tests (``AioStubber``); no emulator has Chime.

Errors::

    ProctoringError
     └── TransportError     Chime refused a request after botocore's retries
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from proctoring.errors import ProctoringError
from proctoring.exams import message_item
from proctoring.settings import Settings

__all__ = ["Channel", "ChimeTransport", "LocalTransport", "Transport", "TransportError"]

_MAX_CONTENT = 4096  # SendChannelMessage's Content limit


class TransportError(ProctoringError):
    """A Chime SDK request failed after botocore's retries."""


class Transport(Protocol):
    async def open(self, exam: Mapping[str, Any], members: list[str]) -> dict[str, Any]:
        """Create the exam's meeting and channel; return what to store on the exam, and under
        ``attendees`` the meeting attendees made (``user_id``, ``attendee_id``, ``role``)."""

    async def add_member(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any]:
        """A student joins a started exam: their meeting attendee and channel membership."""

    async def join(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any] | None:
        """The live video join info for ``user_id`` (``Meeting``, ``Attendee``, as the Chime
        SDK takes them), or None where there is no meeting (the local stack)."""

    async def close(self, exam: Mapping[str, Any]) -> None:
        """End the exam's meeting, capture pipeline and channel."""

    async def deliver(
        self, exam: Mapping[str, Any], message: Mapping[str, Any], target: str
    ) -> str | None:
        """Deliver a recorded message live to one member; the transport's message id, if any."""


class LocalTransport:
    """No Chime locally: the exams table's messages are the channel (streamed as SSE)."""

    async def open(self, exam: Mapping[str, Any], members: list[str]) -> dict[str, Any]:
        return {"channel_arn": f"local:{exam['exam_id']}"}

    async def add_member(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any]:
        return {}

    async def join(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any] | None:
        return None  # no meeting without Chime: the console keeps the latest frames

    async def close(self, exam: Mapping[str, Any]) -> None:
        return None

    async def deliver(
        self, exam: Mapping[str, Any], message: Mapping[str, Any], target: str
    ) -> str | None:
        return None


def _token(value: str) -> str:
    """A ClientRequestToken (2-64 characters of [-_a-zA-Z0-9])."""
    cleaned = re.sub(r"[^-_a-zA-Z0-9]", "-", value)[:64]
    return cleaned if len(cleaned) >= 2 else f"{cleaned}--"


class ChimeTransport:
    """Chime SDK meetings, messaging, identity and media pipelines; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        meetings: Any,
        messaging: Any,
        identity: Any,
        pipelines: Any,
    ) -> None:
        if not (settings.chime_app_instance_arn and settings.chime_bearer_arn):
            raise ValueError("Chime needs PROCTOR_CHIME_APP_INSTANCE_ARN and _BEARER_ARN")
        self._settings = settings
        self._app = settings.chime_app_instance_arn
        self._bearer = settings.chime_bearer_arn
        self._meetings = meetings
        self._messaging = messaging
        self._identity = identity
        self._pipelines = pipelines

    async def _call(self, client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._settings.call_timeout):
                result: dict[str, Any] = await getattr(client, operation)(**kwargs)
                return result
        except ClientError as exc:
            raise TransportError(f"Chime {operation}: {exc}") from exc

    def user_arn(self, user_id: str) -> str:
        return f"{self._app}/user/{user_id}"

    async def _ensure_user(self, user_id: str) -> str:
        try:
            await self._identity.create_app_instance_user(
                AppInstanceArn=self._app,
                AppInstanceUserId=user_id,
                Name=user_id,
                ClientRequestToken=_token(f"user-{user_id}"),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise TransportError(f"Chime CreateAppInstanceUser: {exc}") from exc
        return self.user_arn(user_id)

    async def open(self, exam: Mapping[str, Any], members: list[str]) -> dict[str, Any]:
        exam_id = str(exam["exam_id"])
        meeting = (
            await self._call(
                self._meetings,
                "create_meeting",
                ClientRequestToken=_token(f"exam-{exam_id}"),
                MediaRegion=self._settings.chime_media_region or self._settings.region,
                ExternalMeetingId=exam_id[:64],
            )
        )["Meeting"]
        channel = await self._call(
            self._messaging,
            "create_channel",
            AppInstanceArn=self._app,
            Name=f"exam {exam_id}"[:256],
            Mode="RESTRICTED",
            Privacy="PRIVATE",
            ClientRequestToken=_token(f"channel-{exam_id}"),
            ChimeBearer=self._bearer,
        )
        stored: dict[str, Any] = {
            "meeting_id": meeting["MeetingId"],
            "channel_arn": channel["ChannelArn"],
        }
        proctor_id = str(exam["proctor_id"])
        for user_id in [proctor_id, *members]:
            await self._add_membership(stored["channel_arn"], user_id)
        stored["attendees"] = [
            {
                "user_id": user_id,
                "attendee_id": (await self._attendee(meeting["MeetingId"], user_id))["AttendeeId"],
                "role": role,
            }
            for user_id, role in [(proctor_id, "proctor"), *((m, "student") for m in members)]
        ]
        if self._settings.chime_capture_role_arn:
            stored["pipeline_id"] = await self._capture(exam_id, meeting["MeetingId"])
        return stored

    async def _add_membership(self, channel_arn: str, user_id: str) -> None:
        await self._call(
            self._messaging,
            "create_channel_membership",
            ChannelArn=channel_arn,
            MemberArn=await self._ensure_user(user_id),
            Type="DEFAULT",
            ChimeBearer=self._bearer,
        )

    async def _capture(self, exam_id: str, meeting_id: str) -> str:
        account = str(self._app).split(":")[4]
        bucket = self._settings.names.chunks_bucket
        kwargs: dict[str, Any] = {
            "SourceType": "ChimeSdkMeeting",
            "SourceArn": f"arn:aws:chime::{account}:meeting:{meeting_id}",
            "SinkType": "S3Bucket",
            "SinkArn": f"arn:aws:s3:::{bucket}/capture/{exam_id}",
            "ClientRequestToken": _token(f"capture-{exam_id}"),
            "SinkIamRoleArn": self._settings.chime_capture_role_arn,
            "ChimeSdkMeetingConfiguration": {
                "ArtifactsConfiguration": {
                    "Audio": {"MuxType": "AudioOnly"},
                    "Video": {"State": "Enabled", "MuxType": "VideoOnly"},
                    "Content": {"State": "Disabled"},
                }
            },
        }
        if self._settings.data_key_arn:
            kwargs["SseAwsKeyManagementParams"] = {"AwsKmsKeyId": self._settings.data_key_arn}
        response = await self._call(self._pipelines, "create_media_capture_pipeline", **kwargs)
        return str(response["MediaCapturePipeline"]["MediaPipelineId"])

    async def add_member(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any]:
        await self._add_membership(str(exam["channel_arn"]), user_id)
        attendee = await self._attendee(str(exam["meeting_id"]), user_id)
        return {"attendee_id": attendee["AttendeeId"], "join_token": attendee["JoinToken"]}

    async def join(self, exam: Mapping[str, Any], user_id: str) -> dict[str, Any] | None:
        if not exam.get("meeting_id"):
            return None
        meeting_id = str(exam["meeting_id"])
        meeting = (await self._call(self._meetings, "get_meeting", MeetingId=meeting_id))["Meeting"]
        return {"Meeting": meeting, "Attendee": await self._attendee(meeting_id, user_id)}

    async def _attendee(self, meeting_id: str, user_id: str) -> dict[str, Any]:
        attendee: dict[str, Any] = (
            await self._call(
                self._meetings,
                "create_attendee",
                MeetingId=meeting_id,
                ExternalUserId=user_id[:64],
            )
        )["Attendee"]
        return attendee

    async def close(self, exam: Mapping[str, Any]) -> None:
        if exam.get("pipeline_id"):
            await self._ignore_missing(
                self._pipelines,
                "delete_media_capture_pipeline",
                MediaPipelineId=exam["pipeline_id"],
            )
        if exam.get("meeting_id"):
            await self._ignore_missing(
                self._meetings, "delete_meeting", MeetingId=exam["meeting_id"]
            )
        if exam.get("channel_arn"):
            await self._ignore_missing(
                self._messaging,
                "delete_channel",
                ChannelArn=exam["channel_arn"],
                ChimeBearer=self._bearer,
            )

    async def _ignore_missing(self, client: Any, operation: str, **kwargs: Any) -> None:
        try:
            await getattr(client, operation)(**kwargs)
        except ClientError as exc:  # stopping twice, or after AWS ended an idle meeting
            if exc.response.get("Error", {}).get("Code") not in ("NotFoundException",):
                raise TransportError(f"Chime {operation}: {exc}") from exc

    async def deliver(
        self, exam: Mapping[str, Any], message: Mapping[str, Any], target: str
    ) -> str | None:
        """A targeted message: only ``target`` (and the service) sees it, not the other students."""
        if not exam.get("channel_arn"):
            return None  # the exam is not started: the record is all there is
        content = json.dumps(
            {
                k: message[k]
                for k in ("kind", "student_id", "sender_id", "text", "alert", "ref")
                if message.get(k) is not None
            },
            default=str,
        )
        if len(content.encode()) > _MAX_CONTENT:
            content = json.dumps({k: message[k] for k in ("kind", "student_id") if k in message})
        response = await self._call(
            self._messaging,
            "send_channel_message",
            ChannelArn=exam["channel_arn"],
            Content=content,
            ContentType="application/json",
            Type="STANDARD",
            Persistence="PERSISTENT",
            ClientRequestToken=_token(f"{message['message_id']}-{target}"),
            ChimeBearer=self._bearer,
            Target=[{"MemberArn": self.user_arn(target)}],
        )
        return str(response["MessageId"])


class Channel:
    """Post to an exam's channel: record the message once, then deliver it live.

    The message id is the idempotency key: the forwarder uses the alert id, so a
    second delivery of the same alert neither records nor sends a second message.
    """

    def __init__(self, store: Any, transport: Transport, limiter: Any | None = None) -> None:
        self.store = store  # proctoring.exams.ExamStore
        self.transport = transport
        self._limiter = limiter

    async def post(
        self,
        exam: Mapping[str, Any],
        *,
        kind: str,
        student_id: str,
        sender_id: str,
        message_id: str,
        created_at: str,
        targets: list[str],
        text: str | None = None,
        alert: Mapping[str, Any] | None = None,
        ref: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(the message, whether this call recorded it); delivered to each of ``targets``.
        ``ref`` names the message this one answers (a warning's acknowledgement)."""
        message: dict[str, Any] = {
            "exam_id": exam["exam_id"],
            "item": message_item(created_at, message_id),
            "message_id": message_id,
            "kind": kind,
            "student_id": student_id,
            "sender_id": sender_id,
            "created_at": created_at,
            "text": text,
            "alert": dict(alert) if alert is not None else None,
            "ref": ref,
        }
        recorded = await self.store.put_message(message)
        for target in targets:
            if self._limiter is not None:
                await self._limiter.acquire()
            await self.transport.deliver(exam, message, target)
        return message, recorded
