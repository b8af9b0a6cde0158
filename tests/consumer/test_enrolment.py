"""Multi-frame enrolment through the whole local stack (issue 14).

An honest woman whose registration photo (``stock-emotions-b-4``) is far from what her
camera shows (``stock-emotions-b-8``: another expression and pose; 0.60 apart, above the
0.54 threshold) is accused with the photo alone, and matched once two frames of her own
camera at exam start are enrolled beside the photo. Frames of someone else are refused.
The registration's last frame, kept, is where the identity schedule starts: her first
chunk is not checked again, while someone else in her seat from the start is.
S3 -> SQS -> router -> Kinesis -> consumer -> DynamoDB + SNS, local engine.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

import pytest

from infrastructure.emulator import Emulator
from proctoring.analysis.faces import RegistrationError
from proctoring.enrolment import enrol, frame_key
from proctoring.frames import extract_frame
from producer.rendering import render_chunks
from producer.scenario import load_scenario
from tests.conftest import DATA, provisioned, require_data
from tests.pipeline import running_pipeline

pytestmark = pytest.mark.slow

EXAM = "enrolment-exam"
CAMERA = "segments:\n  - photo: identities/human/identity/stock-emotions-b-8.jpg\n    seconds: 20\n"
PHOTO = "identities/human/identity/stock-emotions-b-4.jpg"
SOMEONE_ELSE = "segments:\n  - photo: faces/biden.jpg\n    seconds: 20\n"


@pytest.fixture(scope="module")
def outcome(
    emulator: Emulator, pool: Executor, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    require_data()
    settings = provisioned(emulator, "enrol-e2e")
    folder = tmp_path_factory.mktemp("enrolment")
    camera, someone_else = folder / "camera.yaml", folder / "someone_else.yaml"
    camera.write_text(CAMERA)
    someone_else.write_text(SOMEONE_ELSE)
    # what the student page sends at exam start: frames of her own camera's first chunk
    first = next(iter(render_chunks(load_scenario(camera, data_dir=DATA))))
    frames = [extract_frame(first.data, position=p).jpeg for p in ("first", "middle")]
    photo = (DATA / PHOTO).read_bytes()

    async def run() -> dict[str, Any]:
        async with running_pipeline(settings, pool) as pipeline:
            engine = pipeline.engine
            alone = await engine.register(EXAM, "photo-only", photo)
            enrolled = await engine.register(EXAM, "enrolled", photo, frames)
            stranger = (DATA / "faces/biden.jpg").read_bytes()
            try:
                await engine.register(EXAM, "stranger", (DATA / "faces/obama.jpg").read_bytes(),
                                      [stranger, stranger])  # fmt: skip
                refused = None
            except RegistrationError as exc:
                refused = exc
            item = await pipeline.tables.get_face(EXAM, "enrolled")
            s3, bucket = pipeline.clients.s3, settings.names.frames_bucket
            # registered as the student page does it (photo, frames, the last frame kept)
            for student in ("seeded", "seat-taken", "photo-again"):
                await enrol(engine, s3, bucket, EXAM, student, photo, frames)
            await enrol(engine, s3, bucket, EXAM, "photo-again", photo)  # frames forgotten
            kept = {
                s: (await s3.list_objects_v2(Bucket=bucket, Prefix=frame_key(EXAM, s))).get(
                    "KeyCount", 0
                )
                for s in ("seeded", "photo-again")
            }
            students = ("photo-only", "enrolled", "seeded", "seat-taken")
            uploaded = await asyncio.gather(
                *(
                    pipeline.play(EXAM, s, someone_else if s == "seat-taken" else camera)
                    for s in students
                )
            )
            results = {
                s: await pipeline.wait_for_results(EXAM, s, len(chunks))
                for s, chunks in zip(students, uploaded, strict=True)
            }
            return {
                "registered": {"photo-only": alone, "enrolled": enrolled},
                "refused": refused,
                "stranger_item": await pipeline.tables.get_face(EXAM, "stranger"),
                "item": item,
                "kept": kept,
                "results": results,
                "alerts": {s: await pipeline.alerts(EXAM, s) for s in students},
                "sessions": {s: await pipeline.tables.get_session(EXAM, s) for s in students},
            }

    return asyncio.run(run())


def _mismatches(outcome: dict[str, Any], student: str) -> list[dict[str, Any]]:
    return [a for a in outcome["alerts"][student] if a["type"] == "FACE_MISMATCH"]


def test_with_the_photo_alone_the_honest_student_is_accused(outcome: dict[str, Any]) -> None:
    """The problem of issue 14, measured: her photo is over the threshold from her camera."""
    assert outcome["registered"]["photo-only"].frames_enrolled == 0
    (alert,) = _mismatches(outcome, "photo-only")
    assert alert["distance"] > alert["evidence"]["threshold"] == 0.54


def test_with_her_camera_frames_enrolled_she_is_matched_on_every_chunk(
    outcome: dict[str, Any],
) -> None:
    assert outcome["registered"]["enrolled"].frames_enrolled == 2
    assert _mismatches(outcome, "enrolled") == []
    checked = [r for r in outcome["results"]["enrolled"] if r.get("identity") != "unchecked"]
    assert checked, "identity was checked"
    assert {r["identity"] for r in checked} == {"match"}
    assert all(float(r["distance"]) <= 0.54 for r in checked)


def test_the_frames_are_kept_in_the_one_faces_item_erasure_deletes(
    outcome: dict[str, Any],
) -> None:
    item = outcome["item"]
    assert len(item["frames"]) == 2
    assert all(len(bytes(blob)) == 128 * 4 for blob in [item["embedding"], *item["frames"]])


def test_frames_of_someone_else_are_refused_and_nothing_is_stored(
    outcome: dict[str, Any],
) -> None:
    refused = outcome["refused"]
    assert isinstance(refused, RegistrationError) and refused.reason == "frames_mismatch"
    assert outcome["stranger_item"] is None


def test_her_first_chunk_is_not_checked_again_after_the_registration_kept_her_frame(
    outcome: dict[str, Any],
) -> None:
    assert outcome["kept"] == {"seeded": 1, "photo-again": 0}, (
        "the last frame is kept; a registration without frames forgets it"
    )
    unseeded = outcome["results"]["enrolled"][0]  # registered by the engine alone
    assert unseeded["sequence"] == 0 and unseeded["identity"] == "match"
    rows = outcome["results"]["seeded"]
    assert rows[0]["sequence"] == 0 and rows[0]["identity"] == "unchecked"
    assert sum(int(r["calls"]["SearchFacesByImage"]) for r in rows) == 0
    assert _mismatches(outcome, "seeded") == []


def test_someone_else_in_her_seat_from_the_start_is_checked_on_the_first_chunk(
    outcome: dict[str, Any],
) -> None:
    first = outcome["results"]["seat-taken"][0]
    assert first["sequence"] == 0 and first["identity"] == "mismatch"
    (alert,) = _mismatches(outcome, "seat-taken")
    assert alert["sequence"] <= 1, "flagged within two chunks of the exam's start"


def test_her_registration_frame_is_the_first_sample_of_where_she_looks_at_the_screen(
    outcome: dict[str, Any],
) -> None:
    """LOOKING_AWAY's baseline (``rules.sight``) starts from the kept registration frame:
    one sample more than a student registered without it, the frame's own line of sight
    (it is her first chunk's middle frame here)."""

    def sights(student: str) -> list[float]:
        return [float(v) for v in outcome["sessions"][student]["rules"]["camera"]["sights"]]

    seeded, unseeded = sights("seeded"), sights("enrolled")
    assert len(seeded) == len(unseeded) + 1 and unseeded
    assert seeded[0] == pytest.approx(unseeded[0], abs=0.2)
