"""The cost-aware schedule: repeats carried over, identity and objects on their cadence."""

from __future__ import annotations

import io

from PIL import Image

from proctoring.analysis.base import FaceDetail
from proctoring.analysis.likeness import (
    FACE_CHANGE_ABOVE,
    face_difference,
    face_thumbnail,
    faces_content_changed,
    frame_difference,
    thumbnail,
)
from proctoring.analysis.scheduling import (
    Cadence,
    ScheduleState,
    advance,
    decide,
    faces_changed,
    signature,
    signature_changed,
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
    assert faces_changed((box,), ((75, 75, 155, 155),)), "1.55x: closer, in place"
    # one talking head's boxes, one place: the HOG pyramid's 1.2x levels, two apart
    assert not faces_changed(((221, 139, 187, 187),), ((230, 142, 269, 268),)), "jitter"
    assert faces_changed((box,), (box, (300, 100, 90, 90)))
    looking = FaceDetail(box=FACE.box, yaw=2.0, gaze="left", brightness=50, sharpness=70)
    assert not signature_changed(signature((FACE,)), signature((FACE,)))
    assert signature_changed(signature((FACE,)), signature((looking,)))
    assert signature_changed((), signature((FACE,)))


def _chunk_frames(scenario: str) -> list[bytes]:
    """The middle frame of each chunk of an eval scenario, as the consumer extracts it."""
    from pathlib import Path

    from proctoring.frames import extract_frame
    from producer.rendering import render_chunks
    from producer.scenario import load_scenario
    from tests.conftest import DATA, require_data

    require_data()
    path = Path(__file__).resolve().parents[2] / "producer/scenarios/eval" / scenario
    chunks = render_chunks(load_scenario(path, data_dir=DATA))
    return [extract_frame(c.data, position="middle").jpeg for c in chunks]


def test_someone_else_in_the_same_place_is_checked_the_same_person_moving_is_not() -> None:
    from proctoring.analysis.base import Plan
    from proctoring.analysis.describe import describe_frame

    # swap_d19_aoc: a man for 10 s (chunks 0-1), then a woman in the same box (chunks 2-4).
    frames = _chunk_frames("swap_d19_aoc.yaml")
    checked = describe_frame(frames[0], identity="yes")
    assert checked.embeddings and len(checked.face_thumbs) == 1
    previous = tuple(f.box for f in checked.faces)
    plan = Plan(
        identity="if_changed",
        previous_faces=previous,
        identity_faces=checked.face_thumbs,
        face_change_above=Cadence().face_change_above,
    )
    same, other = (
        describe_frame(
            frame,
            identity="if_changed",
            previous_faces=previous,
            identity_faces=plan.identity_faces,
            face_change_above=plan.face_change_above,
        )
        for frame in frames[1:3]
    )
    assert not faces_changed(previous, tuple(f.box for f in other.faces)), (
        "count, place and size alone say nothing changed"
    )
    assert same.embeddings is None, "the same man 5 s later: no identity check paid"
    assert other.embeddings is not None, "someone else in his place: identity checked"
    assert face_difference(checked.face_thumbs[0], other.face_thumbs[0]) > 1.5 * FACE_CHANGE_ABOVE
    assert face_difference(checked.face_thumbs[0], same.face_thumbs[0]) < FACE_CHANGE_ABOVE


def test_a_change_of_exposure_is_no_change_of_face() -> None:
    import numpy as np

    image = np.zeros((240, 320, 3), dtype=np.uint8)
    image[60:180, 100:160] = (190, 150, 120)  # light skin on the left, shadow on the right
    image[60:180, 160:220] = (90, 70, 60)
    brighter = np.clip(image.astype(np.float32) * 1.25, 0, 255).astype(np.uint8)
    box = (110, 70, 100, 100)
    assert face_difference(face_thumbnail(image, box), face_thumbnail(brighter, box)) < 0.2
    other = np.zeros_like(image)
    other[60:120, 100:220] = (40, 30, 30)  # dark hair above, darker skin below
    other[120:180, 100:220] = (150, 100, 70)
    assert face_difference(face_thumbnail(image, box), face_thumbnail(other, box)) > 1.0


def test_the_crops_at_the_last_identity_check_are_kept_with_the_session() -> None:
    crop = bytes(range(144)) + bytes(192)  # a layout and an empty colour histogram
    decision = decide(ScheduleState(), 0, None)
    state = advance(
        ScheduleState(),
        0,
        None,
        decision,
        boxes=(FACE.box,),
        identity_checked=True,
        face_thumbs=(crop,),
    )
    state = ScheduleState.from_dict(state.to_dict())
    assert state.identity_faces == (crop,)
    later = decide(state, 1, None)
    assert later.plan.identity == "if_changed"
    assert later.plan.identity_faces == (crop,), "the engine compares against them"
    unchecked = advance(
        state, 1, None, later, boxes=(FACE.box,), identity_checked=False, face_thumbs=(bytes(336),)
    )
    assert unchecked.identity_faces == (crop,), "only an identity check moves the reference"
    assert faces_content_changed(None, (crop,), 1.0), "unknown crops: check"
    assert faces_content_changed((crop,), (crop, crop), 1.0), "another count: check"
    assert not faces_content_changed((crop,), (crop,), 1.0)


def test_the_settings_default_is_the_measured_threshold() -> None:
    from proctoring.settings import Settings

    assert Settings().face_change_above == FACE_CHANGE_ABOVE == Cadence().face_change_above


def test_a_schedule_seeded_by_the_registration_frame_compares_the_first_chunk_with_it() -> None:
    crop = bytes(range(144)) + bytes(192)
    seeded = ScheduleState.from_dict(ScheduleState.enrolled((FACE.box,), (crop,)).to_dict())
    first = decide(seeded, 0, None)
    assert first.plan.identity == "if_changed", "checked only if the face is not the enrolled one"
    assert first.plan.previous_faces == (FACE.box,) and first.plan.identity_faces == (crop,)
    assert decide(ScheduleState(), 0, None).plan.identity == "yes", "no seed: checked"
    # the registration stands as a check just before chunk 0: the cadence counts from it
    every = Cadence().identity_every
    assert decide(seeded, every - 2, None).plan.identity == "if_changed"
    assert decide(seeded, every - 1, None).plan.identity == "yes"


def test_the_chunk_that_would_raise_a_look_away_is_analysed_not_carried_over() -> None:
    """One frame's line of sight near the limit, carried over to the identical chunks after
    it, filled LOOKING_AWAY's three-chunk tolerance on its own: the chunk that would raise
    the alert (``due``) is analysed on its own frame; the chunks before it, another rule
    due, or a look already alerted keep the carry-over."""
    still = thumbnail(_jpeg(120))
    state = advance(ScheduleState(), 0, still, decide(ScheduleState(), 0, still), boxes=())
    assert not decide(state, 1, still, flagged={"LOOKING_AWAY"}, due={"LOOKING_AWAY"}).repeat
    assert decide(state, 1, still, flagged={"LOOKING_AWAY"}).repeat, "pending, not yet due"
    assert decide(state, 1, still, flagged={"NO_FACE"}, due={"NO_FACE"}).repeat
    assert decide(state, 1, still, flagged={"LOOKING_AWAY"}, pending=set()).repeat
