"""The cost-aware schedule: repeats carried over, identity and objects on their cadence."""

from __future__ import annotations

import io

from PIL import Image

from proctoring.analysis.base import FaceDetail
from proctoring.analysis.scheduling import (
    Cadence,
    ScheduleState,
    advance,
    decide,
    faces_changed,
    frame_difference,
    signature,
    signature_changed,
    thumbnail,
)

FACE = FaceDetail(box=(100, 80, 120, 120), yaw=2.0, gaze="center", brightness=50, sharpness=70)


def _jpeg(grey: int, *, spot: int | None = None) -> bytes:
    image = Image.new("RGB", (320, 240), (grey, grey, grey))
    if spot is not None:
        image.paste((spot, spot, spot), (0, 0, 160, 240))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _save(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _run(thumbs: list[bytes], flagged: dict[int, set[str]] | None = None) -> list[str]:
    """Walk a schedule over frames; one letter per chunk: r(epeat) or the plan's I/O flags."""
    state = ScheduleState()
    marks = []
    for sequence, thumb in enumerate(thumbs):
        decision = decide(state, sequence, thumb, flagged=(flagged or {}).get(sequence, set()))
        if decision.repeat:
            marks.append("r")
        else:
            plan = decision.plan
            marks.append(("I" if plan.identity == "yes" else "i") + ("O" if plan.objects else "o"))
        state = advance(
            state,
            sequence,
            thumb,
            decision,
            boxes=(FACE.box,),
            identity_checked=not decision.repeat and decision.plan.identity == "yes",
            objects_checked=not decision.repeat and decision.plan.objects,
        )
        state = ScheduleState.from_dict(state.to_dict())  # survives the sessions table
    return marks


def test_a_still_frame_is_carried_over_at_most_max_repeats_times() -> None:
    still = thumbnail(_jpeg(120))
    marks = _run([still] * 9)
    assert Cadence().max_repeats == 6
    assert marks[0] == "Io", "identity checked at once, objects on their cadence"
    assert marks[1:7] == ["r"] * 6
    assert marks[7] != "r", "after max_repeats the frame is analysed again"


def test_a_changed_frame_is_analysed_and_identity_objects_follow_their_cadence() -> None:
    frames = [thumbnail(_jpeg(40 + 10 * (i % 2))) for i in range(14)]
    marks = _run(frames)
    assert "r" not in marks
    assert [i for i, m in enumerate(marks) if m[0] == "I"] == [0, 12]
    assert [i for i, m in enumerate(marks) if m[1] == "O"] == [5, 11]


def test_flagged_students_get_identity_or_objects_every_chunk() -> None:
    frames = [thumbnail(_jpeg(40 + 10 * (i % 2))) for i in range(4)]
    marks = _run(frames, flagged={2: {"FACE_MISMATCH"}, 3: {"LOOKING_AWAY"}})
    assert marks == ["Io", "io", "Io", "iO"], (
        "a pending mismatch checks identity, looking away objects"
    )


def test_thumbnails_see_big_changes_not_noise() -> None:
    base = thumbnail(_jpeg(120))
    assert len(base) == 32 * 32
    assert frame_difference(base, thumbnail(_jpeg(121))) < 3
    assert frame_difference(base, thumbnail(_jpeg(120, spot=30))) > 20
    eyes = Image.new("RGB", (320, 240), (120, 120, 120))
    eyes.paste((20, 20, 20), (150, 100, 160, 106))  # a pupil, 10x6 px, moves by 10 px
    moved = eyes.copy()
    moved.paste((120, 120, 120), (150, 100, 160, 106))
    moved.paste((20, 20, 20), (160, 100, 170, 106))
    assert frame_difference(thumbnail(_save(eyes)), thumbnail(_save(moved))) > 3, "local"


def test_faces_and_signatures_change_with_count_place_size_and_gaze() -> None:
    box = (100, 100, 100, 100)
    assert faces_changed(None, (box,))
    assert not faces_changed((box,), ((110, 95, 104, 100),))
    assert faces_changed((box,), ((180, 100, 100, 100),)), "moved by more than half a face"
    assert faces_changed((box,), ((100, 100, 160, 160),)), "much closer to the camera"
    assert faces_changed((box,), (box, (300, 100, 90, 90)))
    looking = FaceDetail(box=FACE.box, yaw=2.0, gaze="left", brightness=50, sharpness=70)
    assert not signature_changed(signature((FACE,)), signature((FACE,)))
    assert signature_changed(signature((FACE,)), signature((looking,)))
    assert signature_changed((), signature((FACE,)))
