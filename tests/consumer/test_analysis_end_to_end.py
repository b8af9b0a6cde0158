"""Gaze, policy, accommodations, risk and cost through the whole local stack.

One exam, uploaded at once: S3 -> SQS -> router -> Kinesis -> consumer -> DynamoDB + SNS.
The man of the phone recordings is registered from his own first frame.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pytest

from infrastructure.emulator import Emulator
from proctoring.frames import extract_frame
from producer.chunking import chunk_recording
from tests.conftest import DATA, eventually, provisioned, require_data
from tests.pipeline import running_pipeline

pytestmark = pytest.mark.slow

EXAM = "analysis-exam"
LONG_LOOK = "producer/scenarios/eval/looking_left_long.yaml"


@pytest.fixture(scope="module")
def outcome(emulator: Emulator, pool: Executor) -> dict[str, Any]:
    require_data()
    settings = provisioned(emulator, "analysis-e2e")
    root = Path(__file__).resolve().parents[2]
    first = next(chunk_recording(DATA / "video/center_focus.mp4"))
    himself = extract_frame(first.data).jpeg
    sessions = {
        "glance": DATA / "video/center_left_center.mp4",
        "long-look": root / LONG_LOOK,
        "impostor": DATA / "video/center_focus.mp4",
        "accommodated": DATA / "video/center_focus.mp4",
    }

    async def run() -> dict[str, Any]:
        async with running_pipeline(settings, pool) as pipeline:
            tables = pipeline.tables
            # The exam's policy: the default rules, LOOKING_AWAY reported as low severity.
            await tables._call(
                "put_item",
                TableName=settings.names.sessions_table,
                Item={
                    "exam_id": {"S": EXAM},
                    "student_id": {"S": "#policy"},
                    "policy": {"M": {"severities": {"M": {"LOOKING_AWAY": {"S": "low"}}}}},
                },
            )
            await tables._call(
                "put_item",
                TableName=settings.names.sessions_table,
                Item={
                    "exam_id": {"S": EXAM},
                    "student_id": {"S": "accommodated"},
                    "accommodations": {"M": {"face_checks": {"BOOL": False}}},
                    "version": {"N": "1"},
                },
            )
            for student in ("glance", "long-look"):
                await pipeline.engine.register(EXAM, student, himself)
            photo = DATA / "faces/obama.jpg"
            for student in ("impostor", "accommodated"):
                await pipeline.register(EXAM, student, photo)
            uploaded = await asyncio.gather(
                *(pipeline.play(EXAM, student, source) for student, source in sessions.items())
            )
            results = {
                student: await pipeline.wait_for_results(EXAM, student, len(chunks))
                for student, chunks in zip(sessions, uploaded, strict=True)
            }
            # the session is saved after the result rows: wait for its last evaluation
            sessions_items = {}
            for student, chunks in zip(sessions, uploaded, strict=True):
                sessions_items[student] = await _evaluated(tables, student, len(chunks) - 1)
            alerts = {student: await pipeline.alerts(EXAM, student) for student in sessions}
            ranking = [s["student_id"] for s in await tables.students_by_risk(EXAM)]
            return {
                "results": results,
                "alerts": alerts,
                "sessions": sessions_items,
                "ranking": ranking,
            }

    return asyncio.run(run())


async def _evaluated(tables: Any, student: str, last: int) -> dict[str, Any]:
    def done(item: dict[str, Any] | None) -> bool:
        camera = (item or {}).get("rules", {}).get("camera", {})
        return int(camera.get("last_sequence", -1)) >= last

    item: dict[str, Any] = await eventually(lambda: tables.get_session(EXAM, student), done)
    return item


def test_a_five_second_glance_is_recorded_as_gaze_but_raises_nothing(
    outcome: dict[str, Any],
) -> None:
    rows = outcome["results"]["glance"]
    gaze = [r["face_details"][0]["gaze"] for r in rows[:3]]
    assert gaze == ["center", "left", "center"], "the middle frame of each chunk"
    assert all(abs(r["face_details"][0]["yaw"]) < 5 for r in rows[:3])
    assert rows[1]["face_details"][0]["gaze_ratio"] < 0.36
    assert outcome["alerts"]["glance"] == []


def test_looking_away_longer_than_the_window_is_an_alert_with_the_exam_severity(
    outcome: dict[str, Any],
) -> None:
    alerts = outcome["alerts"]["long-look"]
    assert [(a["type"], a["severity"], a["first_sequence"]) for a in alerts] == [
        ("LOOKING_AWAY", "low", 1)
    ]
    assert alerts[0]["evidence"]["face_details"][0]["gaze"] == "left"
    assert outcome["sessions"]["long-look"]["risk"] >= 1.0


def test_accommodations_turn_face_checks_off_for_one_student_only(
    outcome: dict[str, Any],
) -> None:
    assert [a["type"] for a in outcome["alerts"]["impostor"]] == ["FACE_MISMATCH"]
    assert outcome["alerts"]["accommodated"] == []
    assert outcome["sessions"]["accommodated"]["risk"] == 0
    assert outcome["sessions"]["impostor"]["risk"] >= 10
    assert outcome["ranking"][:2] == ["impostor", "long-look"], "the dashboard's order"
    assert "#policy" not in outcome["ranking"]


def test_object_rules_say_they_are_unavailable_without_a_detector(
    outcome: dict[str, Any],
) -> None:
    rows = outcome["results"]["glance"]
    looked = [r for r in rows if r["objects_status"] != "skipped"]
    assert looked, "objects were looked for while the glance was pending"
    assert all(r["objects_status"] == "unavailable" for r in looked)
    assert all(r["unavailable_rules"] == ["EXTRA_PERSON", "PROHIBITED_OBJECT"] for r in looked)
    assert outcome["sessions"]["glance"]["unavailable_rules"] == [
        "EXTRA_PERSON",
        "PROHIBITED_OBJECT",
    ]


def test_calls_are_counted_per_api_against_the_naive_plan(outcome: dict[str, Any]) -> None:
    session = outcome["sessions"]["long-look"]
    chunks = len(outcome["results"]["long-look"])
    assert session["naive_calls"] == 3 * chunks
    assert 0 < sum(session["calls"].values()) < session["naive_calls"]
    assert set(session["calls_per_student_hour"]) == {
        "DetectFaces",
        "SearchFacesByImage",
        "DetectLabels",
    }
    # The look's segment repeated (chunks 1-3, the same frames): chunk 2 is carried over at
    # no cost; chunk 3, which raises the alert, is analysed on its own frame (the alert
    # rests on two analysed frames, scheduling._FRESH_RULES), DetectFaces confirming it.
    rows = {r["sequence"]: r for r in outcome["results"]["long-look"]}
    assert rows[2]["analysed"] == "repeat" and sum(rows[2]["calls"].values()) == 0
    assert rows[3]["difference"] < 3, "a frame the schedule would have carried over"
    assert rows[3]["analysed"] == "frame" and rows[3]["calls"]["DetectFaces"] == 1
