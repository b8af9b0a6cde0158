"""The session item's encoding (``proctoring.session_item``): the worker's own state as one
compressed attribute, read back as the attribute form was, the console's fields untouched.

The round trips go through the same typing DynamoDB applies (``to_item``/``from_item``);
the stored item is checked in moto's server over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from proctoring.aws import async_clients
from proctoring.dynamo import from_item, to_item
from proctoring.session_item import PRIVATE, STATE, decode, encode
from proctoring.settings import Settings
from proctoring.storage import SessionSave, Tables
from proctoring.transactions import item_size

EXAM = "enc"


def _session(student: str = "s1") -> dict[str, Any]:
    """A session as the consumer writes one after an hour of ``sources: both``: every kind
    of value the private fields hold (floats, binaries, lists of binaries, None, empty maps)."""
    thumb = bytes(range(256)) * 4
    return {
        "exam_id": EXAM,
        "student_id": student,
        "rules": {
            "camera": {
                "last_sequence": 719,
                "streaks": {
                    rule: {"count": 0, "first": -1, "open": False, "since": None}
                    for rule in ("NO_FACE", "MULTIPLE_FACES", "FACE_MISMATCH", "LOOKING_AWAY")
                },
                "baseline": {"yaw": -3.25, "pitch": 1.5e-3, "samples": 12},
            }
        },
        "schedule": {
            "camera": {
                "thumb": thumb,
                "identity_faces": [thumb[:512], thumb[512:]],
                "boxes": [(100, 80, 160, 160)],
                "last_identity": 715,
                "empty": {},
            }
        },
        "last_analysis": {"camera": {"faces": 1, "identity": "match", "similarity": 99.125}},
        "moments": {str(m): f"camera#{m:06d}" for m in range(720)},
        "frames": {"camera": 714},
        "results_through": {"camera": 719},
        "speech": None,
        "calls": {"DetectFaces": 61, "SearchFacesByImage": 120},
        "calls_per_student_hour": {"DetectFaces": 61.0, "SearchFacesByImage": 120.0},
        "risk": 0.25,
        "latest": {"source": "camera", "sequence": 719, "status": "ok", "frame_key": None},
        "updated_at": "2027-01-15T09:00:00+00:00",
        "version": 720,
    }


def _as_stored(item: dict[str, Any]) -> dict[str, Any]:
    """What a read gives back: through DynamoDB's types and back."""
    return from_item(to_item(item))


def test_a_session_reads_back_as_the_attribute_form_read_back() -> None:
    """A kept session and one read afresh must behave alike: the private fields decode to
    the very values the nested-map form gave (numbers, binaries, dropped Nones, tuples as
    lists), and the public fields stay as they were."""
    session = _session()
    assert decode(_as_stored(encode(session))) == _as_stored(session)


def test_the_console_reads_its_fields_as_attributes_and_the_private_state_is_one() -> None:
    stored = to_item(encode(_session()))
    assert set(stored) & PRIVATE == set()
    assert {"risk", "latest", "calls", "updated_at", "version"} <= set(stored)
    assert stored["latest"]["M"]["sequence"] == {"N": "719"}
    assert set(stored[STATE]) == {"B"}


def test_the_stored_session_is_a_fraction_of_the_attribute_form() -> None:
    """DynamoDB bills a write by the item's size (1 KB units): the compressed state is
    what makes a save cheap (measured in docs/benchmarks.md)."""
    encoded, plain = item_size(to_item(encode(_session()))), item_size(to_item(_session()))
    assert encoded < plain / 3, (encoded, plain)


def test_an_item_written_before_the_encoding_is_read_as_it_is() -> None:
    old = _as_stored(_session())
    assert decode(old) == old
    assert (
        decode(_as_stored({**encode(_session()), "operator_note": "extra time"}))["operator_note"]
        == "extra time"
    )


def test_a_value_the_state_cannot_hold_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="set cannot be stored"):
        encode({"exam_id": EXAM, "student_id": "s", "rules": {"camera": {1, 2}}})
    with pytest.raises(ValueError):
        encode({"exam_id": EXAM, "student_id": "s", "rules": {"camera": float("nan")}})


def test_a_saved_session_reads_back_from_the_table_as_it_was_kept(settings: Settings) -> None:
    """Through moto's server: what ``save_sessions`` returns (the worker keeps it) equals
    what the next owner's ``get_session`` reads, and the raw item carries ``state``."""

    async def run() -> tuple[Any, Any, dict[str, Any]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            (kept,) = await tables.save_sessions([SessionSave(_session(), 0)])
            read = await tables.get_session(EXAM, "s1")
            raw = await clients.dynamodb.get_item(
                TableName=settings.names.sessions_table,
                Key=to_item({"exam_id": EXAM, "student_id": "s1"}),
            )
            return kept, read, raw["Item"]

    kept, read, raw = asyncio.run(run())
    assert kept == read
    assert read["version"] == 1 and read["moments"]["719"] == "camera#000719"
    assert read["schedule"]["camera"]["thumb"] == bytes(range(256)) * 4
    assert set(raw) & PRIVATE == set() and "B" in raw[STATE]
    assert json.loads(json.dumps(read["rules"])) == read["rules"]  # plain JSON values
