"""LOOKING_AWAY against the student's own baseline, bounded (``proctoring.rules.sight``)."""

from __future__ import annotations

import functools
import io

import pytest
from PIL import Image

from proctoring.analysis.base import FaceDetail
from proctoring.rules import Finding, Observation, Policy, RuleState, evaluate
from proctoring.rules.sight import line_of_sight, sight_baseline
from tests.conftest import DATA, needs_data

CLEAR = dict(brightness=50.0, sharpness=70.0)


def _looking(sight: float) -> FaceDetail:
    """A face whose line of sight is ``sight`` degrees: head yaw, eyes centred."""
    return FaceDetail(box=(100, 100, 160, 160), yaw=sight, gaze_ratio=0.5, **CLEAR)  # type: ignore[arg-type]


def _session(
    faces: list[FaceDetail], policy: Policy | None = None, state: RuleState | None = None
) -> tuple[list[Finding], RuleState]:
    """One chunk per face, one face on each, the student's (identity a match); the state
    goes through the sessions table between chunks."""
    state = state or RuleState()
    found: list[Finding] = []
    for sequence, face in enumerate(faces):
        obs = Observation(sequence, 1, "match", details=(face,))
        state, new = evaluate(state, obs, policy)
        state = RuleState.from_dict(state.to_dict())
        found.extend(new)
    return found, state


def _looks(found: list[Finding]) -> list[tuple[int, int]]:
    return [(f.first_sequence, f.sequence) for f in found if f.rule == "LOOKING_AWAY"]


def test_a_camera_beside_the_screen_is_the_students_baseline_within_the_bound() -> None:
    """Looking at the screen at 12° (within the 15° bound) for a minute is no look; 40°
    from there for three chunks is one; 41° (29° from the screen) is no look, though the
    absolute rule alerted on it. The baseline excuses, it never accuses: -28° is 40° from
    the screen but within 30° of the camera, and stays no look (a baseline read on noisy
    frames must not narrow the other side); -32° is beyond both."""
    found, state = _session([_looking(12.0)] * 12)
    assert found == []
    assert sight_baseline(state.sights, Policy()) == 12.0

    def looks(sight: float, chunks: int = 3, policy: Policy | None = None) -> list[tuple[int, int]]:
        faces = [_looking(12.0)] * 6 + [_looking(sight)] * chunks + [_looking(12.0)]
        return _looks(_session(faces, policy)[0])

    assert looks(52.0) == [(6, 8)], "40° from the baseline, on the third chunk"
    assert looks(52.0, chunks=2) == [], "two chunks: within the tolerance"
    assert looks(41.0) == []
    assert looks(41.0, policy=Policy(sight_baseline_limit=0)) == [(6, 8)], "absolute: alerted"
    assert looks(-28.0) == []
    assert looks(-32.0) == [(6, 8)]


def test_a_baseline_beyond_the_bound_is_clamped_so_looking_away_from_the_start_is_caught() -> None:
    """A student looking 32° off from the start may excuse 15° of it, no more: 46° is a
    look (31° from the clamped baseline), and so is 60° held from the very first chunk."""
    found, state = _session([_looking(32.0)] * 6)
    assert found == [] and sight_baseline(state.sights, Policy()) == 15.0
    assert _looks(_session([_looking(32.0)] * 6 + [_looking(46.0)] * 3)[0]) == [(6, 8)]
    assert _looks(_session([_looking(32.0)] * 6 + [_looking(44.0)] * 3)[0]) == []
    assert _looks(_session([_looking(60.0)] * 3)[0]) == [(0, 2)]
    assert _looks(_session([_looking(-60.0)] * 3)[0]) == [(0, 2)]
    assert Policy(sight_baseline_limit=5).sight_baseline_limit == 5  # a policy field
    found, _ = _session([_looking(32.0)] * 3, Policy(sight_baseline_limit=5))
    assert _looks(found) == [], "32 - 5 = 27°"
    with pytest.raises(ValueError, match="sight_baseline_limit"):
        Policy(sight_baseline_limit=90)


def test_a_look_away_in_the_first_chunks_does_not_move_the_baseline() -> None:
    """The baseline is where the student looks at the screen: a chunk that looks away from
    the baseline so far is no sample of it, so a look right after the start still alerts
    on its third chunk and the baseline stays at the screen."""
    start = [_looking(0.0), _looking(40.0), _looking(40.0), _looking(40.0), _looking(0.0)]
    found, state = _session(start)
    assert _looks(found) == [(1, 3)]
    assert state.sights == (0.0, 0.0)
    # Only the first chunks count: a minute later the student's look is judged, not learnt.
    _, state = _session([_looking(5.0)] * 6 + [_looking(25.0)] * 6)
    assert state.sights == (5.0,) * 6


def test_someone_else_or_a_second_face_is_no_sample_of_the_students_baseline() -> None:
    turned = _looking(14.0)
    stranger = Observation(0, 1, "mismatch", details=(turned,))
    pair = Observation(1, 2, "match", details=(turned, _looking(0.0)))
    state = RuleState()
    for obs in (stranger, pair):
        state, _ = evaluate(state, obs)
    assert state.sights == ()
    state, _ = evaluate(state, Observation(2, 1, "match", details=(turned,)))
    assert state.sights == (14.0,)


def test_registration_frame_seeds_the_baseline() -> None:
    """The consumer seeds the state with the registration's camera frame (sequence -1,
    ``consumer.analyser``): a student who looked at the screen there and is turned 40°
    from the first chunk on is looking away; without it the first chunk is judged
    against itself, and 15° of the turn is excused."""
    screen = Observation(-1, 1, "unchecked", details=(_looking(0.0),))
    seeded = RuleState().sighted(screen, Policy())
    assert seeded.sights == (0.0,) and not seeded.seen(0)
    found, state = _session([_looking(40.0)] * 3, state=seeded)
    assert _looks(found) == [(0, 2)] and state.sights == (0.0,)
    assert _looks(_session([_looking(40.0)] * 3)[0]) == []


@functools.cache
def _portrait_frame() -> bytes:
    """Lin-Manuel Miranda's portrait as the eval renders a still: fitted to a 640x480
    camera frame (``producer.rendering``)."""
    from producer.rendering import paste, photo_pixels

    pixels = paste(photo_pixels(DATA / "faces" / "lin-manuel-miranda.png", (640, 480)), (640, 480))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@needs_data
def test_an_honest_still_portrait_turned_past_the_limit_is_its_own_baseline() -> None:
    """The portrait behind the `regions` false alerts (head turned ~19°, eyes further the
    same way): its line of sight reads over the 30° limit with either detection, so the
    absolute rule alerts on it; judged against itself (clamped to 15°) it is no look, and
    the same student turning 40° further is."""
    pytest.importorskip("dlib", reason="dlib (the 'local' extra) is not installed")
    from proctoring.analysis.describe import describe_frame

    for detection in ("full", "regions"):
        (face,) = describe_frame(_portrait_frame(), detection=detection, identity="no").faces
        sight = line_of_sight(face, Policy())
        assert sight is not None and 30.0 < sight < 35.0, (detection, sight)
        absolute = Policy(sight_baseline_limit=0)
        assert _looks(_session([face] * 3, absolute)[0]) == [(0, 2)], "the old rule's alert"
        assert _looks(_session([face] * 12)[0]) == [], detection
        turned = FaceDetail(box=face.box, yaw=sight + 40.0, gaze_ratio=0.5, **CLEAR)  # type: ignore[arg-type]
        assert _looks(_session([face] * 6 + [turned] * 3)[0]) == [(6, 8)]
