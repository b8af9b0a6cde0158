"""Each rule firing and staying quiet, on real footage, through the whole local stack.

One exam, six students, uploaded to S3 at once: S3 notification -> SQS ->
chunk router -> Kinesis -> consumer (frame, faces, rules) -> DynamoDB + SNS.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from infrastructure.emulator import Emulator
from proctoring.rules import Policy
from tests.conftest import DATA, provisioned, require_data
from tests.pipeline import running_pipeline

pytestmark = pytest.mark.slow

EXAM = "rules-exam"
SCENARIOS = {
    "alone": "segments:\n  - photo: faces/obama2.jpg\n    seconds: 10\n",
    "crowd": "segments:\n  - photo: faces/obama_and_biden.jpg\n    seconds: 10\n",
    "leaving": ("segments:\n  - photo: faces/obama2.jpg\n    seconds: 5\n  - empty: 10\n"),
    "blink": (
        "segments:\n  - photo: faces/obama2.jpg\n    seconds: 5\n  - empty: 5\n"
        "  - photo: faces/obama2.jpg\n    seconds: 5\n"
    ),
}


@pytest.fixture(scope="module")
def outcome(
    emulator: Emulator, pool: Executor, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run all sessions once; tests read what a proctor would see."""
    require_data()
    settings = provisioned(emulator, "rules-e2e")
    folder = tmp_path_factory.mktemp("scenarios")
    for name, text in SCENARIOS.items():
        (folder / f"{name}.yaml").write_text(text)
    sessions: dict[str, tuple[Path, Path]] = {
        "honest": (DATA / "video/short_hamilton_clip.mp4", DATA / "faces/lin-manuel-miranda.png"),
        "impostor": (DATA / "video/center_focus.mp4", DATA / "faces/obama.jpg"),
        **{name: (folder / f"{name}.yaml", DATA / "faces/obama.jpg") for name in SCENARIOS},
    }

    async def run() -> dict[str, Any]:
        async with running_pipeline(settings, pool) as pipeline:
            uploaded = await asyncio.gather(
                *(
                    pipeline.play(EXAM, student, source, register=photo)
                    for student, (source, photo) in sessions.items()
                )
            )
            results = {
                student: await pipeline.wait_for_results(EXAM, student, len(chunks))
                for student, chunks in zip(sessions, uploaded, strict=True)
            }
            alerts = {student: await pipeline.alerts(EXAM, student) for student in sessions}
            messages = await pipeline.alert_messages()
            first_frame = None
            impostor_alerts = alerts["impostor"]
            if impostor_alerts:
                response = await pipeline.clients.s3.get_object(
                    Bucket=settings.names.frames_bucket, Key=impostor_alerts[0]["frame_key"]
                )
                async with response["Body"] as body:
                    first_frame = await body.read()
            return {
                "uploaded": {s: len(c) for s, c in zip(sessions, uploaded, strict=True)},
                "results": results,
                "alerts": alerts,
                "messages": messages,
                "impostor_frame": first_frame,
            }

    return asyncio.run(run())


def _types(outcome: dict[str, Any], student: str) -> list[str]:
    return [a["type"] for a in outcome["alerts"][student]]


def test_every_uploaded_chunk_has_exactly_one_result_row(outcome: dict[str, Any]) -> None:
    for student, count in outcome["uploaded"].items():
        rows = outcome["results"][student]
        assert [r["sequence"] for r in rows] == list(range(count)), student
        assert all(r["status"] == "ok" for r in rows), student


def test_impostor_raises_face_mismatch_with_evidence(outcome: dict[str, Any]) -> None:
    alerts = [a for a in outcome["alerts"]["impostor"] if a["type"] == "FACE_MISMATCH"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["severity"] == "high"
    assert alert["distance"] > 0.6
    evidence = alert["evidence"]
    assert evidence["distance"] == alert["distance"]
    assert evidence["threshold"] == 0.54, "the local engine's default"
    assert evidence["margin"] == pytest.approx(evidence["distance"] - 0.54, abs=1e-3)
    assert evidence["margin"] >= Policy().mismatch_low_margin, "a clear stranger: high"
    assert (alert["first_sequence"], alert["sequence"]) == (0, 1)
    frame = Image.open(io.BytesIO(outcome["impostor_frame"]))
    assert frame.format == "JPEG"
    assert frame.height > frame.width, "the phone video's frame must be stored upright"


def test_honest_student_raises_no_identity_alert(outcome: dict[str, Any]) -> None:
    assert "FACE_MISMATCH" not in _types(outcome, "honest")
    matched = [r for r in outcome["results"]["honest"] if r.get("identity") == "match"]
    assert matched, "Lin-Manuel Miranda's registered face must match the clip"


def test_second_person_raises_multiple_faces_only(outcome: dict[str, Any]) -> None:
    assert _types(outcome, "crowd") == ["MULTIPLE_FACES"]
    assert all(r["faces"] >= 2 for r in outcome["results"]["crowd"])


def test_student_alone_raises_nothing(outcome: dict[str, Any]) -> None:
    assert _types(outcome, "alone") == []
    assert all(r["faces"] == 1 and r["identity"] == "match" for r in outcome["results"]["alone"])


def test_student_leaving_raises_no_face(outcome: dict[str, Any]) -> None:
    alerts = outcome["alerts"]["leaving"]
    assert [(a["type"], a["first_sequence"], a["sequence"]) for a in alerts] == [("NO_FACE", 1, 2)]


def test_one_chunk_without_a_face_is_tolerated(outcome: dict[str, Any]) -> None:
    assert [r["faces"] for r in outcome["results"]["blink"]] == [1, 0, 1]
    assert _types(outcome, "blink") == []


def test_every_alert_reaches_sns_exactly_once(outcome: dict[str, Any]) -> None:
    stored = sorted(a["alert_id"] for alerts in outcome["alerts"].values() for a in alerts)
    delivered = sorted(m["alert_id"] for m in outcome["messages"])
    assert stored and delivered == stored
