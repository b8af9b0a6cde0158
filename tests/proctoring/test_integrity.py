"""The stream's second event type: parsed beside chunk events, refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from proctoring.events import ChunkEvent, InvalidEvent
from proctoring.integrity import IntegrityEvent, parse_record

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _event(**changes: object) -> IntegrityEvent:
    fields: dict[str, object] = {
        "exam_id": "exam-1",
        "student_id": "student-1",
        "event_id": "e0f1a2b3c4d5",
        "seq": 3,
        "kind": "hidden",
        "at": AT,
        "duration_ms": 12_000,
        "received_at": AT,
    }
    return IntegrityEvent(**(fields | changes))  # type: ignore[arg-type]


def test_an_integrity_event_round_trips_with_the_chunks_partition_key() -> None:
    event = _event()
    parsed = parse_record(event.to_bytes())
    assert parsed == event
    assert json.loads(event.to_bytes())["type"] == "integrity"
    assert event.partition_key == "exam-1#student-1"


def test_a_chunk_event_parses_with_or_without_its_type() -> None:
    chunk = ChunkEvent.from_key(
        "proctor-chunks",
        "chunks/exam-1/student-1/camera/000001_1764000000000.webm",
        size=10,
        uploaded_at=AT,
    )
    assert parse_record(chunk.to_bytes()) == chunk
    typed = json.dumps({**json.loads(chunk.to_bytes()), "type": "chunk"}).encode()
    assert parse_record(typed) == chunk


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "not_json"),
        (b'{"v": 1, "type": "speech"}', "bad_type"),
        (b'{"v": 2, "type": "integrity"}', "bad_version"),
        (json.dumps({**json.loads(_event().to_bytes()), "kind": "teleport"}).encode(),
         "invalid_integrity"),
        (json.dumps({**json.loads(_event().to_bytes()), "duration_ms": -1}).encode(),
         "invalid_integrity"),
        (json.dumps({**json.loads(_event().to_bytes()), "at": "2026-12-06T10:00:00"}).encode(),
         "invalid_integrity"),
        (b"x" * 20_000, "too_large"),
    ],
)  # fmt: skip
def test_bad_records_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_record(data)
    assert caught.value.reason == reason
