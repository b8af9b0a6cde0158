"""Chunk events: what travels through Kinesis for every uploaded video chunk.

A record carries a reference to the chunk in S3, never the video. The schema
is versioned by the ``v`` field; version 1 is::

    {"v": 1, "exam_id": "...", "student_id": "...", "source": "camera",
     "sequence": 12, "bucket": "...", "key": "chunks/EXAM/STUDENT/camera/000012_<ms>.webm",
     "size": 412345, "captured_at": "2026-11-27T10:00:00Z",
     "uploaded_at": "2026-11-27T10:00:05.2Z", "timings": {"notified_at": "...", ...}}

Chunk keys have two shapes, parsed here only. The browser uploads (sources
``camera`` and ``screen``; the API builds these keys)::

    chunks/<exam_id>/<student_id>/<source>/<sequence:06d>_<captured epoch ms>.<ext>

and the Chime SDK media capture pipeline writes, under the sink prefix
``capture/<exam_id>/`` (source ``chime``; :class:`CaptureKey`)::

    capture/<exam_id>/video/<yyyy-mm-dd-HH-MM-SS-mmm>-<attendeeId>.mp4
    capture/<exam_id>/video/<yyyy-mm-dd-HH-MM-SS-mmm>-<attendeeId>#content.mp4
    capture/<exam_id>/{audio,meeting-events,data-channel,transcription-messages}/...

A capture key names an attendee, not a student: the router maps it (the
API keeps attendee -> student when it creates the attendee) and the event
carries both ``student_id`` and ``attendee_id``. A chime chunk's sequence is
its moment: ``capture epoch ms // 5000`` (:data:`MOMENT_MS`), monotonic per
attendee, and the same number :func:`moment` gives a browser chunk captured
in the same 5 s - which is how an exam analysing both sources recognises the
same moment.

Errors::

    ProctoringError
     └── InvalidEvent          the record or key is not a valid chunk event
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from proctoring.errors import ReasonError

__all__ = [
    "CAPTURE_PREFIX",
    "IDENTIFIER",
    "MAX_EVENT_BYTES",
    "MOMENT_MS",
    "SCHEMA_VERSION",
    "CaptureKey",
    "ChunkEvent",
    "ChunkKey",
    "InvalidEvent",
    "Source",
    "check_version",
    "decode_record",
    "describe_invalid",
    "moment",
]

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES = 16 * 1024
CHUNK_PREFIX = "chunks/"
EXTENSIONS = ("mp4", "webm", "mkv")

Source = Literal["camera", "screen", "chime"]
MOMENT_MS: Final = 5000
"""The length of a moment (one chunk): chime sequences and cross-source dedupe count these."""
CAPTURE_PREFIX: Final = "capture/"
IDENTIFIER: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""What an exam or student id may be (and ``..`` is refused besides)."""
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

_KEY = re.compile(
    r"^chunks/(?P<exam_id>[^/]+)/(?P<student_id>[^/]+)/(?P<source>[^/]+)/"
    r"(?P<sequence>\d{6,9})_(?P<captured_ms>\d{1,15})\.(?P<ext>[a-z0-9]+)$"
)


_CAPTURE = re.compile(r"^capture/(?P<exam_id>[^/]+)/(?P<folder>[^/]+)/(?P<name>[^/]+)$")
_CAPTURE_VIDEO = re.compile(
    r"^(?P<stamp>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3})-"
    r"(?P<attendee_id>[A-Za-z0-9-]{1,64})(?P<content>#content)?\.mp4$"
)
_ATTENDEE_ID = r"^[A-Za-z0-9-]{1,64}$"


def moment(captured_at: datetime) -> int:
    """The 5 s slot a chunk was captured in (epoch based, so every source agrees)."""
    return int(captured_at.timestamp() * 1000) // MOMENT_MS


class InvalidEvent(ReasonError):
    """A record or an object key that is not a valid chunk event.

    ``reason`` is a short stable code for metrics; the message says exactly
    what is wrong.
    """

    default_reason = "invalid_event"


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
                f"object key {key[:200]!r}: {describe_invalid(exc)}", reason="bad_key"
            ) from exc


class CaptureKey(BaseModel):
    """The parts of a key the media capture pipeline wrote under ``capture/<exam_id>/``.

    ``folder`` is ``video`` for a chunk to analyse; ``audio``, ``meeting-events``,
    ``data-channel`` and the like are the pipeline's other artifacts (no attendee).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exam_id: Identifier
    folder: str
    attendee_id: str | None = None
    content: bool = False
    captured_ms: int | None = None

    @property
    def is_video(self) -> bool:
        return self.folder == "video"

    @property
    def sequence(self) -> int:
        """The chunk's moment (see the module docstring)."""
        assert self.captured_ms is not None
        return self.captured_ms // MOMENT_MS

    @property
    def captured_at(self) -> datetime:
        assert self.captured_ms is not None
        return datetime.fromtimestamp(self.captured_ms / 1000, tz=UTC)

    @classmethod
    def parse(cls, key: str) -> CaptureKey:
        """Parse a capture key; raise InvalidEvent (``bad_key``) outside the layout."""
        match = _CAPTURE.match(key)
        if match is None or ".." in match["exam_id"]:
            raise InvalidEvent(
                f"object key {key[:200]!r} is not capture/<exam>/<folder>/<name>",
                reason="bad_key",
            )
        parts: dict[str, Any] = {"exam_id": match["exam_id"], "folder": match["folder"]}
        if match["folder"] == "video":
            video = _CAPTURE_VIDEO.match(match["name"])
            if video is None:
                raise InvalidEvent(
                    f"object key {key[:200]!r} is not "
                    "capture/<exam>/video/<yyyy-mm-dd-HH-MM-SS-mmm>-<attendeeId>.mp4",
                    reason="bad_key",
                )
            try:
                stamp = datetime.strptime(video["stamp"] + "000", "%Y-%m-%d-%H-%M-%S-%f")
            except ValueError as exc:
                raise InvalidEvent(
                    f"object key {key[:200]!r}: bad capture time: {exc}", reason="bad_key"
                ) from exc
            parts.update(
                attendee_id=video["attendee_id"],
                content=bool(video["content"]),
                captured_ms=int(stamp.replace(tzinfo=UTC).timestamp() * 1000),
            )
        try:
            return cls.model_validate(parts)
        except ValidationError as exc:
            raise InvalidEvent(
                f"object key {key[:200]!r}: {describe_invalid(exc)}", reason="bad_key"
            ) from exc


class ChunkEvent(_Ids):
    """Version 1 of the chunk event; see the module docstring."""

    v: Literal[1] = SCHEMA_VERSION
    attendee_id: Annotated[str, Field(pattern=_ATTENDEE_ID)] | None = None
    """The Chime attendee whose video this is (source ``chime`` only)."""
    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0)
    captured_at: datetime
    uploaded_at: datetime
    timings: dict[Literal["notified_at", "routed_at"], AwareDatetime] | None = None  # router's

    @field_validator("captured_at", "uploaded_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone")
        return value.astimezone(UTC)

    def model_post_init(self, __context: Any) -> None:
        if self.source == "chime":
            self._check_capture_key()
            return
        if self.attendee_id is not None:
            raise InvalidEvent("only a chime chunk names an attendee", reason="key_mismatch")
        parsed = ChunkKey.parse(self.key)
        for name in ("exam_id", "student_id", "source", "sequence"):
            if getattr(parsed, name) != getattr(self, name):
                raise InvalidEvent(
                    f"{name} {getattr(self, name)!r} does not match the key {self.key!r}",
                    reason="key_mismatch",
                )

    def _check_capture_key(self) -> None:
        parsed = CaptureKey.parse(self.key)
        if not parsed.is_video or parsed.content:
            raise InvalidEvent(
                f"{self.key[:200]!r} is not a capture pipeline's attendee video chunk",
                reason="key_mismatch",
            )
        expected = {
            "exam_id": parsed.exam_id,
            "attendee_id": parsed.attendee_id,
            "sequence": parsed.sequence,
        }
        for name, value in expected.items():
            if getattr(self, name) != value:
                raise InvalidEvent(
                    f"{name} {getattr(self, name)!r} does not match the key {self.key!r}",
                    reason="key_mismatch",
                )

    @property
    def moment(self) -> int:
        """The 5 s slot the chunk was captured in (see the module docstring)."""
        return moment(self.captured_at)

    @property
    def partition_key(self) -> str:
        """Kinesis partition key: one student's chunks stay on one shard, in order."""
        return self.session_id

    @classmethod
    def from_key(cls, bucket: str, key: str, *, size: int, uploaded_at: datetime) -> ChunkEvent:
        """Build the event for an uploaded object (what the chunk router does)."""
        parts = ChunkKey.parse(key)
        return cls._for_object(
            bucket,
            key,
            size=size,
            uploaded_at=uploaded_at,
            exam_id=parts.exam_id,
            student_id=parts.student_id,
            source=parts.source,
            sequence=parts.sequence,
            captured_at=parts.captured_at,
        )

    @classmethod
    def from_capture(
        cls,
        bucket: str,
        key: str,
        *,
        student_id: str,
        size: int,
        uploaded_at: datetime,
    ) -> ChunkEvent:
        """The event for an attendee's video chunk the capture pipeline wrote; the router
        found ``student_id`` from the key's attendee."""
        parts = CaptureKey.parse(key)
        return cls._for_object(
            bucket,
            key,
            size=size,
            uploaded_at=uploaded_at,
            exam_id=parts.exam_id,
            student_id=student_id,
            source="chime",
            sequence=parts.sequence,
            attendee_id=parts.attendee_id,
            captured_at=parts.captured_at,
        )

    @classmethod
    def _for_object(
        cls, bucket: str, key: str, *, size: int, uploaded_at: datetime, **parts: Any
    ) -> ChunkEvent:
        try:
            return cls(bucket=bucket, key=key, size=size, uploaded_at=uploaded_at, **parts)
        except ValidationError as exc:
            # The notification's own fields: a negative size, a time without a zone.
            raise InvalidEvent(f"object {key[:200]!r}: {describe_invalid(exc)}") from exc

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkEvent:
        """Parse a Kinesis record's data; raise InvalidEvent saying what is wrong."""
        check_version(decode_record(data))
        try:
            # JSON mode: datetimes come as strings, everything else must have its type.
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidEvent(f"invalid chunk event: {describe_invalid(exc)}") from exc


def decode_record(data: bytes) -> dict[str, Any]:
    """A record's data as a JSON object of at most MAX_EVENT_BYTES, or InvalidEvent."""
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
    return raw


def check_version(raw: dict[str, Any]) -> None:
    """InvalidEvent (``bad_version``) unless the record is of this schema version."""
    if raw.get("v") != SCHEMA_VERSION:
        raise InvalidEvent(
            f"unsupported event version {raw.get('v')!r} (expected {SCHEMA_VERSION})",
            reason="bad_version",
        )


def describe_invalid(exc: ValidationError, *, inputs: bool = True) -> str:
    """One line naming every bad field, e.g. ``sequence: Input should be ... (got -1)``;
    without what was sent when ``inputs`` is false."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "event"
        if error["type"] == "missing":
            parts.append(f"{where}: missing")
        elif inputs:
            parts.append(f"{where}: {error['msg']} (got {repr(error.get('input'))[:60]})")
        else:
            parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
