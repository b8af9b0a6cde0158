"""TALKING: speech summed over the policy's window on the capture time axis, one incident per
window, off unless the policy records the microphone, nothing twice for a re-delivered chunk."""

from __future__ import annotations

from collections.abc import Sequence

from proctoring.rules import Accommodations, Policy, RuleState, risk_score
from proctoring.rules.speech import SpeechFinding, SpeechState, judge

T0 = 1_765_000_000_000  # capture epoch ms of chunk 0
ON = Policy(audio=True)  # default: more than 10 s of speech in 60 s


def _run(
    chunks: Sequence[tuple[int, Sequence[tuple[float, float]]]],
    policy: Policy = ON,
    state: SpeechState | None = None,
) -> tuple[SpeechState, list[SpeechFinding]]:
    """Judge 5 s chunks given as (sequence, speech segments in the chunk)."""
    state, found = state or SpeechState(), []
    for sequence, segments in chunks:
        state, finding = judge(
            state,
            sequence=sequence,
            captured_ms=T0 + sequence * 5000,
            duration_s=5.0,
            segments=segments,
            policy=policy,
        )
        found += [finding] if finding else []
    return state, found


def test_speech_beyond_the_allowance_in_the_window_raises_talking_once() -> None:
    talk = [(0.0, 4.0)]  # 4 s of each 5 s chunk
    _, found = _run([(0, talk), (1, talk)])  # 8 s: under 10 s
    assert found == []
    state, found = _run([(0, talk), (1, talk), (2, talk), (3, talk), (4, talk)])
    assert [(f.finding.rule, f.finding.sequence) for f in found] == [("TALKING", 2)]  # 12 s
    assert found[0].speech_s == 12.0 and found[0].window_s == 60
    assert found[0].finding.severity == "medium"
    assert state.incidents == 1  # chunks 3 and 4: the same incident, no second alert


def test_speech_spread_thinner_than_the_window_allows_never_raises() -> None:
    # 2 s of speech every 15 s for ten minutes: 8 s in any minute
    _, found = _run([(seq, [(1.0, 3.0)] if seq % 3 == 0 else []) for seq in range(120)])
    assert found == []


def test_a_new_incident_needs_a_whole_window_after_the_last() -> None:
    talk = [(0.0, 5.0)]
    _, found = _run([(seq, talk) for seq in range(30)])  # 150 s of talking
    assert [f.finding.sequence for f in found] == [2, 14, 26]  # 15, 75, 135 s: 60 s apart


def test_late_and_repeated_chunks_count_where_they_were_spoken_and_once() -> None:
    talk = [(0.0, 4.0)]
    state, found = _run([(0, talk), (2, talk)])
    state, again = _run([(2, talk), (0, talk)], state=state)  # re-delivered: nothing
    assert found == again == []
    state, found = _run([(1, talk)], state=state)  # late, in between: 12 s in the window
    assert [f.finding.sequence for f in found] == [1]


def test_off_without_audio_and_for_a_student_whose_accommodation_disables_it() -> None:
    talk = [(0.0, 5.0)]
    assert _run([(s, talk) for s in range(6)], Policy())[1] == []  # audio: false (default)
    relaxed = ON.for_student(Accommodations(disabled_rules=("TALKING",)))
    assert _run([(s, talk) for s in range(6)], relaxed)[1] == []
    stricter = Policy(
        audio=True, talking_seconds=3, talking_window=30, severities={"TALKING": "high"}
    )
    _, found = _run([(0, talk)], stricter)
    assert [(f.finding.sequence, f.finding.severity) for f in found] == [(0, "high")]


def test_state_survives_the_session_item_and_counts_in_the_risk_score() -> None:
    state, _ = _run([(s, [(0.0, 5.0)]) for s in range(3)])
    stored = SpeechState.from_dict(state.to_dict())
    assert stored == state
    assert risk_score([RuleState(), stored.as_rule_state()], ON) == 4.0  # one medium incident
