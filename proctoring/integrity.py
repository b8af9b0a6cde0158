"""Integrity events: what the student's browser saw, the second event type on the chunk stream.

The student page reports what a video frame cannot show: the exam tab hidden,
the window unfocused, full screen left, a copy, paste or context menu in the
exam area, a second screen (``screen.isExtended``), the camera track ended,
the network gone. The API puts one record per event on the chunk stream with
the same partition key as the student's chunks (``exam#student``), so both
types reach the same worker in order. A record says which type it is with
``type`` (absent: a chunk event, as before this type existed)::

    {"v": 1, "type": "integrity", "exam_id": "...", "student_id": "...",
     "event_id": "<client uuid>", "seq": 17, "kind": "hidden",
     "at": "2026-12-06T10:00:00Z", "duration_ms": 12400,
     "received_at": "2026-12-06T10:00:13.1Z"}

``event_id`` is the browser's own id for the event: an event sent twice (a
retry after a lost answer, a batch kept offline) is written once (the
consumer's conditional write). ``seq`` counts the student's events on that
browser from 0, in the order they happened. ``at`` is when the event
started; ``duration_ms`` how long it lasted (0 for an instant: a paste).

:func:`parse_record` is what a consumer calls on a record's data: it answers
a :class:`~proctoring.events.ChunkEvent` or an :class:`IntegrityEvent`, or
raises :class:`~proctoring.events.InvalidEvent`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from proctoring.events import (
    IDENTIFIER,
    SCHEMA_VERSION,
    ChunkEvent,
    InvalidEvent,
    check_version,
    decode_record,
    describe_invalid,
)

__all__ = [
    "EVENT_ID",
    "INTEGRITY",
    "KINDS",
    "MAX_DURATION_MS",
    "IntegrityEvent",
    "Kind",
    "parse_record",
]

INTEGRITY: Final = "integrity"
"""The ``type`` of an integrity event record (and the ``source`` of its rows and alerts)."""
Kind = Literal[
    "hidden",  # the exam tab was hidden (another tab, minimised) for duration_ms
    "blur",  # the window lost the focus for duration_ms
    "fullscreen_exit",  # full screen was left (duration_ms: until it was entered again)
    "copy",
    "paste",
    "contextmenu",
    "second_screen",  # screen.isExtended: more than one screen
    "camera_ended",  # the camera track ended (stopped, unplugged, taken by another app)
    "offline",  # the network was gone for duration_ms
]
KINDS: Final = (
    "hidden",
    "blur",
    "fullscreen_exit",
    "copy",
    "paste",
    "contextmenu",
    "second_screen",
    "camera_ended",
    "offline",
)
MAX_DURATION_MS: Final = 6 * 3600 * 1000
"""No event lasts longer than an exam day."""
EVENT_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{7,63}$"


def _no_dot_segments(value: str) -> str:
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone")
    return value.astimezone(UTC)


Identifier = Annotated[str, Field(pattern=IDENTIFIER), AfterValidator(_no_dot_segments)]
AwareTime = Annotated[datetime, AfterValidator(_in_utc)]


class IntegrityEvent(BaseModel):
    """Version 1 of the integrity event; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1] = SCHEMA_VERSION
    type: Literal["integrity"] = INTEGRITY
    exam_id: Identifier
    student_id: Identifier
    event_id: Annotated[str, Field(pattern=EVENT_ID)]
    seq: int = Field(ge=0, lt=10**9)
    kind: Kind
    at: AwareTime
    duration_ms: int = Field(default=0, ge=0, le=MAX_DURATION_MS)
    detail: Annotated[str, Field(max_length=200)] | None = None
    received_at: AwareTime

    @property
    def session_id(self) -> str:
        return f"{self.exam_id}#{self.student_id}"

    @property
    def partition_key(self) -> str:
        """The student's chunks' partition key: both types on one shard, in order."""
        return self.session_id

    @property
    def ends_at(self) -> datetime:
        return self.at + timedelta(milliseconds=self.duration_ms)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def parse_record(data: bytes) -> ChunkEvent | IntegrityEvent:
    """A Kinesis record's event, by its ``type`` (none: a chunk); InvalidEvent saying why not."""
    raw = decode_record(data)
    if raw.get("type", "chunk") == "chunk":
        # the chunk event's own checks, messages and reasons (type is not one of its fields)
        if "type" in raw:
            data = json.dumps({k: v for k, v in raw.items() if k != "type"}).encode()
        return ChunkEvent.from_bytes(data)
    if raw.get("type") != INTEGRITY:
        raise InvalidEvent(
            f"unknown event type {str(raw.get('type'))[:40]!r} (chunk or integrity)",
            reason="bad_type",
        )
    check_version(raw)
    try:
        return IntegrityEvent.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidEvent(
            f"invalid integrity event: {describe_invalid(exc, inputs=False)[:500]}",
            reason="invalid_integrity",
        ) from exc
