"""The full rule set, per-exam policy, accommodations and the risk score (pure functions)."""

from __future__ import annotations

import pytest

from proctoring.analysis.base import FaceDetail
from proctoring.rules import (
    Accommodations,
    Finding,
    Observation,
    Policy,
    PolicyError,
    RuleState,
    evaluate,
    risk_score,
    unavailable_rules,
)

CLEAR = dict(brightness=50.0, sharpness=70.0)


def _face(**fields: object) -> FaceDetail:
    values: dict[str, object] = {"box": (100, 100, 120, 120), "yaw": 0.0, "gaze": "center"}
    values.update(CLEAR)
    values.update(fields)
    return FaceDetail(**values)  # type: ignore[arg-type]


def _obs(
    sequence: int, *faces: FaceDetail, identity: str = "match", **fields: object
) -> Observation:
    return Observation(sequence, len(faces), identity, details=faces, **fields)  # type: ignore[arg-type]


def _run(observations: list[Observation], policy: Policy | None = None) -> list[Finding]:
    state = RuleState()
    found: list[Finding] = []
    for obs in observations:
        state, new = evaluate(state, obs, policy)
        state = RuleState.from_dict(state.to_dict())
        found.extend(new)
    return found


def test_a_glance_is_no_alert_looking_away_for_longer_than_the_window_is() -> None:
    left = _face(gaze="left")
    glance = [_obs(0, _face()), _obs(1, left), _obs(2, _face()), _obs(3, left), _obs(4, left)]
    assert _run(glance) == [], "two 5 s looks are not a 10 s+ one"
    long = [_obs(0, _face()), _obs(1, left), _obs(2, left), _obs(3, left)]
    assert [(f.rule, f.first_sequence, f.sequence) for f in _run(long)] == [("LOOKING_AWAY", 1, 3)]
    assert _run(long, Policy(tolerances={"LOOKING_AWAY": 4})) == []


def test_looks_before_and_after_a_break_are_two_looks_not_one() -> None:
    """Head turned for a chunk, away from the desk for three, turned again for two: never
    three turned chunks in a row with the student there, so no LOOKING_AWAY. A visitor in
    between (two faces: MULTIPLE_FACES's incident) splits the looks the same way. (Turned
    50°: beyond what any baseline of the first chunks may excuse, 30 + 15°.)"""
    turned = _face(yaw=50.0, gaze=None)
    away = [_obs(0, turned), _obs(1), _obs(2), _obs(3), _obs(4, turned), _obs(5, turned)]
    assert "LOOKING_AWAY" not in [f.rule for f in _run(away)]
    visitor = [_obs(0, turned), _obs(1, turned), _obs(2, turned, _face()), _obs(3, turned)]
    assert "LOOKING_AWAY" not in [f.rule for f in _run(visitor)]
    alone = [_obs(0, turned), _obs(1, turned), _obs(2, turned), _obs(3, turned)]
    assert [f.rule for f in _run(alone)] == ["LOOKING_AWAY"]


def test_someone_elses_looks_are_the_mismatch_incident_not_a_second_alert() -> None:
    """An impostor facing sideways is FACE_MISMATCH once, not also LOOKING_AWAY, while
    identity goes unchecked after the alert; the student back (a match) looks again."""
    turned = _face(yaw=40.0, gaze=None)
    impostor = [
        _obs(0, turned, identity="mismatch", distance=0.8, threshold=0.54),
        _obs(1, turned, identity="mismatch", distance=0.8, threshold=0.54),
        *[_obs(i, turned, identity="unchecked") for i in range(2, 6)],
    ]
    assert [f.rule for f in _run(impostor)] == ["FACE_MISMATCH"]
    back = [*impostor, *[_obs(i, turned) for i in range(6, 9)]]
    assert [f.rule for f in _run(back)] == ["FACE_MISMATCH", "LOOKING_AWAY"]
    blurred = [
        _obs(i, _face(yaw=40.0, gaze=None, sharpness=1.0), identity="mismatch") for i in range(3)
    ]
    assert "LOOKING_AWAY" in [f.rule for f in _run(blurred)], "an unclear face is no stranger"


def test_two_faces_are_never_a_face_mismatch() -> None:
    """The student beside a visitor, the student's face small and turned: MULTIPLE_FACES,
    not an accusation that the student is someone else; identity is decided again on one."""
    pair = [_obs(i, _face(), _face(yaw=30.0), identity="mismatch") for i in range(3)]
    assert [f.rule for f in _run(pair)] == ["MULTIPLE_FACES"]
    alone = [*pair, *[_obs(i, _face(), identity="mismatch") for i in range(3, 5)]]
    assert [f.rule for f in _run(alone)] == ["MULTIPLE_FACES", "FACE_MISMATCH"]


def test_head_yaw_and_the_local_pupil_ratio_follow_the_policy() -> None:
    """The student looks at the screen first (chunk 0, the baseline), then away."""
    screen = _obs(0, _face(gaze="center", gaze_ratio=0.5))
    turned = [screen, *[_obs(i, _face(yaw=40.0, gaze=None)) for i in range(1, 4)]]
    assert [f.rule for f in _run(turned)] == ["LOOKING_AWAY"]
    assert _run(turned, Policy(yaw_limit=45)) == []
    ratio = [screen, *[_obs(i, _face(gaze="center", gaze_ratio=0.36)) for i in range(1, 4)]]
    assert [f.rule for f in _run(ratio)] == ["LOOKING_AWAY"], "0.36 is left of the 0.11 band"
    assert _run(ratio, Policy(gaze_offset=0.2)) == []
    # Head and eyes together: the line of sight is their sum (eyes scaled so 0.11 = 30°)
    back = [_obs(i, _face(yaw=-42.0, gaze="right", gaze_ratio=0.627)) for i in range(3)]
    assert _run(back) == [], "head turned, eyes back on the screen: -42 + 34.6 = -7.4°"
    both = [screen, *[_obs(i, _face(yaw=-20.0, gaze_ratio=0.42)) for i in range(1, 4)]]
    assert [f.rule for f in _run(both)] == ["LOOKING_AWAY"], "-20 - 21.8 = -41.8°"
    down = [_obs(i, _face(pitch=-35.0)) for i in range(3)]
    assert _run(down) == [], "pitch is off by default"
    assert [f.rule for f in _run(down, Policy(pitch_limit=25))] == ["LOOKING_AWAY"]


def test_bad_light_is_face_not_clear_and_never_an_identity_alert() -> None:
    dark = [_obs(i, _face(brightness=8.0), identity="mismatch") for i in range(3)]
    findings = _run(dark)
    assert [(f.rule, f.severity) for f in findings] == [("FACE_NOT_CLEAR", "low")]
    cut = [_obs(i, _face(partial=True), identity="mismatch") for i in range(2)]
    assert [f.rule for f in _run(cut)] == ["FACE_NOT_CLEAR"]
    clear = [_obs(i, _face(), identity="mismatch") for i in range(2)]
    assert [f.rule for f in _run(clear)] == ["FACE_MISMATCH"]


def test_unchecked_identity_neither_extends_nor_breaks_a_mismatch_streak() -> None:
    observations = [
        _obs(0, _face(), identity="mismatch"),
        _obs(1, _face(), identity="unchecked"),
        _obs(2, _face(), identity="mismatch"),
    ]
    assert [(f.rule, f.first_sequence) for f in _run(observations)] == [("FACE_MISMATCH", 0)]


def test_extra_person_and_prohibited_objects_need_a_detector() -> None:
    people = [_obs(i, _face(), persons=2, objects_status="checked") for i in range(2)]
    assert [f.rule for f in _run(people)] == ["EXTRA_PERSON"]
    phone = (("Mobile Phone", 88.0),)
    seen = [_obs(i, _face(), persons=1, objects=phone, objects_status="checked") for i in range(2)]
    assert [f.rule for f in _run(seen)] == ["PROHIBITED_OBJECT"]
    assert _run(seen, Policy(prohibited_labels=("Book",))) == []
    assert _run(seen, Policy(object_confidence=90)) == []
    blind = _obs(0, _face(), objects_status="unavailable")
    assert unavailable_rules(blind, Policy()) == ["EXTRA_PERSON", "PROHIBITED_OBJECT"]
    assert unavailable_rules(_obs(0, _face(), objects_status="skipped"), Policy()) == []
    assert _run([blind, _obs(1, _face(), objects_status="unavailable")]) == []


def test_policy_from_the_exam_item_and_accommodations_that_relax_it() -> None:
    item = {
        "exam_id": "e",
        "student_id": "#policy",
        "policy": {
            "enabled_rules": ["NO_FACE", "FACE_MISMATCH", "LOOKING_AWAY"],
            "tolerances": {"NO_FACE": 3},
            "severities": {"NO_FACE": "high"},
        },
    }
    policy = Policy.from_item(item, tolerance=2)
    assert policy.tolerance_for("NO_FACE") == 3
    assert policy.tolerance_for("FACE_MISMATCH") == 2
    assert policy.severity_for("NO_FACE") == "high"
    no_face = [_obs(i) for i in range(3)]
    assert [(f.rule, f.severity, f.sequence) for f in _run(no_face, policy)] == [
        ("NO_FACE", "high", 2)
    ]
    relaxed = policy.for_student(
        Accommodations.from_item({"accommodations": {"face_checks": False}})
    )
    assert relaxed.enabled_rules == ("NO_FACE",)
    longer = policy.for_student(Accommodations(tolerances={"NO_FACE": 6}))
    assert longer.tolerance_for("NO_FACE") == 6
    assert Policy.from_item(None) == Policy()
    with pytest.raises(PolicyError, match="unknown rules"):
        Policy.from_item({"policy": {"enabled_rules": ["NO_PHONE"]}})
    with pytest.raises(PolicyError):
        Accommodations.from_item({"accommodations": {"disabled_rules": ["NOPE"]}})


def test_disabled_rules_raise_nothing() -> None:
    policy = Policy(enabled_rules=("MULTIPLE_FACES",))
    assert _run([_obs(i) for i in range(4)], policy) == []


def test_risk_grows_with_incidents_by_severity_and_with_pending_streaks() -> None:
    state = RuleState()
    assert risk_score([state]) == 0
    state, _ = evaluate(state, _obs(0, _face(gaze="left")))
    pending = risk_score([state])
    assert 0 < pending < 4
    for sequence in (1, 2):
        state, _ = evaluate(state, _obs(sequence, _face(gaze="left")))
    assert state.incidents == {"LOOKING_AWAY": 1}
    assert risk_score([state]) == 4.0, "one medium incident"
    two = RuleState(incidents={"FACE_MISMATCH": 1, "FACE_NOT_CLEAR": 2})
    assert risk_score([two]) == 12.0
