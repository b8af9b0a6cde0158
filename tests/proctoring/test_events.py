"""Chunk events: the schema the router writes and the consumer reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from proctoring.events import MAX_EVENT_BYTES, ChunkEvent, ChunkKey, InvalidEvent

KEY = "chunks/exam-1/student_7/camera/000012_1795770000000.mp4"


def _event(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "v": 1,
        "exam_id": "exam-1",
        "student_id": "student_7",
        "source": "camera",
        "sequence": 12,
        "bucket": "proctor-chunks",
        "key": KEY,
        "size": 1234,
        "captured_at": "2026-11-27T10:00:00Z",
        "uploaded_at": "2026-11-27T10:00:05.250Z",
    }
    event.update(changes)
    return event


def test_an_event_survives_the_round_trip_through_bytes() -> None:
    event = ChunkEvent.from_key(
        "proctor-chunks", KEY, size=1234, uploaded_at=datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
    )
    again = ChunkEvent.from_bytes(event.to_bytes())
    assert again == event
    assert again.partition_key == "exam-1#student_7"
    assert again.sequence == 12
    assert again.captured_at == datetime.fromtimestamp(1795770000, tz=UTC)


def test_key_is_built_and_parsed_the_same_way() -> None:
    parts = ChunkKey.parse(KEY)
    assert parts.key == KEY
    assert (parts.exam_id, parts.student_id, parts.source, parts.sequence) == (
        "exam-1",
        "student_7",
        "camera",
        12,
    )


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (b"not json at all", "not_json", "not JSON"),
        (b"[1, 2]", "not_object", "JSON list"),
        (json.dumps(_event(v=2)).encode(), "bad_version", "version 2"),
        (json.dumps(_event(sequence=-1)).encode(), "invalid_event", "sequence"),
        (json.dumps(_event(sequence="12")).encode(), "invalid_event", "sequence"),
        (json.dumps(_event(source="microphone")).encode(), "invalid_event", "source"),
        (json.dumps(_event(captured_at="yesterday")).encode(), "invalid_event", "captured_at"),
        (
            json.dumps(_event(captured_at="2026-11-27T10:00:00")).encode(),
            "invalid_event",
            "time zone",
        ),
        (
            json.dumps({k: v for k, v in _event().items() if k != "bucket"}).encode(),
            "invalid_event",
            "bucket",
        ),
        (json.dumps(_event(extra="field")).encode(), "invalid_event", "extra"),
        (json.dumps(_event(student_id="other")).encode(), "key_mismatch", "does not match"),
        (json.dumps(_event(key="chunks/../etc/000001_1.mp4")).encode(), "bad_key", "not chunks/"),
        (b"{" + b" " * MAX_EVENT_BYTES + b"}", "too_large", "bytes"),
    ],
)
def test_invalid_events_say_precisely_what_is_wrong(data: bytes, reason: str, words: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        ChunkEvent.from_bytes(data)
    assert caught.value.reason == reason
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "key",
    [
        "chunks/exam/student/camera/000001.mp4",  # no capture time
        "chunks/exam/student/webcam/000001_1.mp4",  # unknown source
        "chunks/ex..am/student/camera/000001_1.mp4",  # dot segments
        "chunks/exam#1/student/camera/000001_1.mp4",  # would break the partition key
        "uploads/exam/student/camera/000001_1.mp4",  # outside the prefix
        "chunks/exam/student/camera/000001_1.exe",
    ],
)
def test_keys_outside_the_layout_are_refused(key: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        ChunkKey.parse(key)
    assert caught.value.reason == "bad_key"
