"""Chunk events: what travels through Kinesis for every uploaded video chunk.

A record carries a reference to the chunk in S3, never the video. The schema
is versioned by the ``v`` field; version 1 is::

    {"v": 1, "exam_id": "...", "student_id": "...", "source": "camera",
     "sequence": 12, "bucket": "...", "key": "chunks/EXAM/STUDENT/camera/000012_<ms>.webm",
     "size": 412345, "captured_at": "2026-11-27T10:00:00Z",
     "uploaded_at": "2026-11-27T10:00:05.2Z"}

Chunk keys have one shape, built and parsed here only::

    chunks/<exam_id>/<student_id>/<source>/<sequence:06d>_<captured epoch ms>.<ext>

Errors::

    ProctoringError
     └── InvalidEvent          the record or key is not a valid chunk event
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proctoring.errors import ProctoringError

__all__ = [
    "IDENTIFIER",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "ChunkEvent",
    "ChunkKey",
    "InvalidEvent",
    "Source",
]

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES = 16 * 1024
CHUNK_PREFIX = "chunks/"
EXTENSIONS = ("mp4", "webm", "mkv")

Source = Literal["camera", "screen"]
IDENTIFIER: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""What an exam or student id may be (and ``..`` is refused besides)."""
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

_KEY = re.compile(
    r"^chunks/(?P<exam_id>[^/]+)/(?P<student_id>[^/]+)/(?P<source>[^/]+)/"
    r"(?P<sequence>\d{6,9})_(?P<captured_ms>\d{1,15})\.(?P<ext>[a-z0-9]+)$"
)


class InvalidEvent(ProctoringError):
    """A record or an object key that is not a valid chunk event.

    ``reason`` is a short stable code for metrics; the message says exactly
    what is wrong.
    """

    def __init__(self, message: str, *, reason: str = "invalid_event") -> None:
        super().__init__(message)
        self.reason = reason


class _Ids(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    exam_id: Identifier
    student_id: Identifier
    source: Source
    sequence: int = Field(ge=0, lt=10**9)

    @field_validator("exam_id", "student_id")
    @classmethod
    def _no_dot_segments(cls, value: str) -> str:
        if ".." in value:
            raise ValueError("must not contain '..'")
        return value

    @property
    def session_id(self) -> str:
        """The partition key of a student's session: ``exam#student``."""
        return f"{self.exam_id}#{self.student_id}"


class ChunkKey(_Ids):
    """The parts of a chunk's S3 key."""

    captured_ms: int = Field(ge=0)
    ext: Literal["mp4", "webm", "mkv"]

    @property
    def key(self) -> str:
        return (
            f"{CHUNK_PREFIX}{self.exam_id}/{self.student_id}/{self.source}/"
            f"{self.sequence:06d}_{self.captured_ms}.{self.ext}"
        )

    @property
    def captured_at(self) -> datetime:
        return datetime.fromtimestamp(self.captured_ms / 1000, tz=UTC)

    @classmethod
    def parse(cls, key: str) -> ChunkKey:
        """Parse an S3 key; raise InvalidEvent for anything outside the layout."""
        match = _KEY.match(key)
        if match is None:
            raise InvalidEvent(
                f"object key {key[:200]!r} is not "
                "chunks/<exam>/<student>/<source>/<seq>_<ms>.<ext>",
                reason="bad_key",
            )
        parts: dict[str, Any] = match.groupdict()
        parts["sequence"] = int(parts["sequence"])
        parts["captured_ms"] = int(parts["captured_ms"])
        try:
            return cls.model_validate(parts, strict=False)
        except ValidationError as exc:
            raise InvalidEvent(
                f"object key {key[:200]!r}: {_describe(exc)}", reason="bad_key"
            ) from exc


class ChunkEvent(_Ids):
    """Version 1 of the chunk event; see the module docstring."""

    v: Literal[1] = SCHEMA_VERSION
    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0)
    captured_at: datetime
    uploaded_at: datetime

    @field_validator("captured_at", "uploaded_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone")
        return value.astimezone(UTC)

    def model_post_init(self, __context: Any) -> None:
        parsed = ChunkKey.parse(self.key)
        for name in ("exam_id", "student_id", "source", "sequence"):
            if getattr(parsed, name) != getattr(self, name):
                raise InvalidEvent(
                    f"{name} {getattr(self, name)!r} does not match the key {self.key!r}",
                    reason="key_mismatch",
                )

    @property
    def partition_key(self) -> str:
        """Kinesis partition key: one student's chunks stay on one shard, in order."""
        return self.session_id

    @classmethod
    def from_key(cls, bucket: str, key: str, *, size: int, uploaded_at: datetime) -> ChunkEvent:
        """Build the event for an uploaded object (what the chunk router does)."""
        parts = ChunkKey.parse(key)
        try:
            return cls(
                exam_id=parts.exam_id,
                student_id=parts.student_id,
                source=parts.source,
                sequence=parts.sequence,
                bucket=bucket,
                key=key,
                size=size,
                captured_at=parts.captured_at,
                uploaded_at=uploaded_at,
            )
        except ValidationError as exc:
            # The notification's own fields: a negative size, a time without a zone.
            raise InvalidEvent(f"object {key[:200]!r}: {_describe(exc)}") from exc

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkEvent:
        """Parse a Kinesis record's data; raise InvalidEvent saying what is wrong."""
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidEvent(
                f"event is {len(data)} bytes, more than {MAX_EVENT_BYTES}", reason="too_large"
            )
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEvent(f"event is not JSON: {exc}", reason="not_json") from exc
        if not isinstance(raw, dict):
            raise InvalidEvent(
                f"event is a JSON {type(raw).__name__}, not an object", reason="not_object"
            )
        if raw.get("v") != SCHEMA_VERSION:
            raise InvalidEvent(
                f"unsupported event version {raw.get('v')!r} (expected {SCHEMA_VERSION})",
                reason="bad_version",
            )
        try:
            # JSON mode: datetimes come as strings, everything else must have its type.
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidEvent(f"invalid chunk event: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    """One line naming every bad field, e.g. ``sequence: Input should be ... (got -1)``."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "event"
        if error["type"] == "missing":
            parts.append(f"{where}: missing")
        else:
            parts.append(f"{where}: {error['msg']} (got {repr(error.get('input'))[:60]})")
    return "; ".join(parts)
