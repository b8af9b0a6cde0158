"""Integrity rules: durations summed over the window, occurrences counted, one incident per
window, accommodations relax, the risk score counts them like the video's incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from proctoring.integrity import IntegrityEvent
from proctoring.rules import Accommodations, Policy, RuleState, risk_score
from proctoring.rules.integrity import IntegrityState, judge

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _event(seq: int, kind: str, at_s: float, duration_s: float = 0.0) -> IntegrityEvent:
    return IntegrityEvent(
        exam_id="exam-1",
        student_id="student-1",
        event_id=f"event-{seq:06d}",
        seq=seq,
        kind=kind,  # type: ignore[arg-type]
        at=T0 + timedelta(seconds=at_s),
        duration_ms=int(duration_s * 1000),
        received_at=T0,
    )


def _run(
    events: list[IntegrityEvent], policy: Policy | None = None
) -> tuple[IntegrityState, list[Any]]:
    state, found = IntegrityState(), []
    for event in events:
        state, findings = judge(state, event, policy or Policy())
        found += findings
    return state, found


def test_left_exam_sums_the_time_away_over_the_window_and_counts_overlaps_once() -> None:
    # 4 s + 4 s hidden, each with the blur that came with it: 8 s away, under 10 s
    events = [
        _event(0, "hidden", 0, 4), _event(1, "blur", 0, 4),
        _event(2, "hidden", 60, 4), _event(3, "blur", 60, 4.5),
    ]  # fmt: skip
    _, found = _run(events)
    assert found == []
    _, found = _run([*events, _event(4, "hidden", 120, 3)])  # 11.5 s in 5 minutes
    assert [f.finding.rule for f in found] == ["LEFT_EXAM"]
    assert found[0].duration_s == 11.5
    assert found[0].finding.severity == "medium"


def test_time_away_outside_the_window_does_not_count() -> None:
    _, found = _run([_event(0, "hidden", 0, 8), _event(1, "hidden", 400, 8)])
    assert found == []


def test_one_incident_per_window_and_another_after_it() -> None:
    events = [_event(0, "hidden", 0, 30), _event(1, "hidden", 60, 30), _event(2, "hidden", 400, 30)]
    state, found = _run(events)
    assert [f.finding.sequence for f in found] == [0, 2]
    assert state.incidents == {"LEFT_EXAM": 2}


def test_counted_rules_raise_on_the_first_occurrence_by_default() -> None:
    events = [
        _event(0, "paste", 1), _event(1, "fullscreen_exit", 2), _event(2, "second_screen", 3),
        _event(3, "camera_ended", 4), _event(4, "copy", 5), _event(5, "contextmenu", 6),
        _event(6, "offline", 7, 20),
    ]  # fmt: skip
    _, found = _run(events)
    assert [f.finding.rule for f in found] == ["PASTE", "FULLSCREEN_EXIT", "SECOND_SCREEN",
                                               "CAMERA_OFF"]  # fmt: skip
    assert {f.finding.rule: f.finding.severity for f in found}["CAMERA_OFF"] == "high"


def test_tolerance_severity_and_accommodations_come_from_the_policy() -> None:
    policy = Policy(integrity_tolerances={"PASTE": 2}, severities={"PASTE": "high"})
    pastes = [_event(i, "paste", i * 10) for i in range(3)]
    _, found = _run(pastes[:2], policy)
    assert found == []
    _, found = _run(pastes, policy)
    assert [(f.finding.rule, f.finding.severity, f.occurrences) for f in found] == [
        ("PASTE", "high", 3)
    ]
    relaxed = Policy(integrity_tolerances={"LEFT_EXAM": 2}).for_student(
        Accommodations(integrity_tolerances={"LEFT_EXAM": 60}, disabled_rules=("PASTE",))
    )
    _, found = _run([_event(0, "hidden", 0, 30), *pastes], relaxed)
    assert found == []


def test_an_event_judged_already_changes_nothing() -> None:
    event = _event(0, "paste", 0)
    state, found = _run([event])
    state, again = judge(state, event, Policy())
    assert len(found) == 1 and again == []
    assert IntegrityState.from_dict(state.to_dict()) == state


def test_late_events_are_judged_on_their_own_times() -> None:
    # seq 1 arrives before seq 0: together 12 s away within the window
    _, found = _run([_event(1, "hidden", 100, 6), _event(0, "hidden", 10, 6)])
    assert [f.finding.rule for f in found] == ["LEFT_EXAM"]


def test_the_risk_score_counts_integrity_incidents_with_the_documented_weights() -> None:
    state, _ = _run(
        [_event(0, "hidden", 0, 30), _event(1, "paste", 40), _event(2, "camera_ended", 50)]
    )
    video = RuleState.from_dict(
        {"last_sequence": 4, "incidents": {"NO_FACE": 1},
         "streaks": {"LOOKING_AWAY": {"count": 1, "first": 4, "open": False}}}
    )  # fmt: skip
    # LEFT_EXAM medium 4 + PASTE medium 4 + CAMERA_OFF high 10 + NO_FACE medium 4
    # + LOOKING_AWAY pending 1 of 3 chunks: 0.5 * 1/3 * 4
    assert risk_score([video, state.as_rule_state()]) == round(22 + 0.5 * (1 / 3) * 4, 2)
    assert risk_score([state.as_rule_state()], Policy(severities={"PASTE": "low"})) == 15.0
