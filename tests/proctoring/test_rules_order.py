"""Chunks out of order: a late chunk is judged in its place, each incident alerted once."""

from __future__ import annotations

import random

from proctoring.rules import Observation, Policy, RuleState, evaluate
from proctoring.rules.evaluate import WINDOW


def _obs(sequence: int, faces: int) -> Observation:
    return Observation(sequence=sequence, faces=faces, identity="unchecked")


def _judge(order: list[int], faces: dict[int, int]) -> list[tuple[str, int, int]]:
    """Evaluate chunks in ``order``; the alerts raised, as (rule, first, sequence)."""
    state, raised = RuleState(), []
    for sequence in order:
        state, findings = evaluate(state, _obs(sequence, faces[sequence]), Policy())
        state = RuleState.from_dict(state.to_dict())  # kept with the session in between
        raised += [(f.rule, f.first_sequence, f.sequence) for f in findings]
    return raised


def test_a_late_chunk_completes_the_incident_it_belongs_to() -> None:
    faces = {0: 1, 1: 0, 2: 0, 3: 1}
    assert _judge([0, 1, 2, 3], faces) == [("NO_FACE", 1, 2)]
    assert _judge([0, 2, 3, 1], faces) == [("NO_FACE", 1, 2)], "chunk 1 arrives last"


def test_an_incident_is_alerted_once_whatever_the_order_of_its_chunks() -> None:
    faces = {s: 0 if 2 <= s <= 6 else 1 for s in range(12)}  # away for chunks 2-6
    shuffle = random.Random(14)
    for _ in range(300):  # each chunk delayed by up to 6 chunks
        order = sorted(faces, key=lambda s: s + shuffle.uniform(0, 6))
        raised = _judge(order, faces)
        assert len(raised) == 1, (order, raised)
        rule, first, at = raised[0]
        assert rule == "NO_FACE" and 2 <= first < at <= 6, (order, raised)


def test_two_incidents_stay_two_and_replays_and_chunks_beyond_the_window_change_nothing() -> None:
    faces = {s: 0 if s in (1, 2, 5, 6) else 1 for s in range(8)}
    assert _judge([0, 1, 2, 3, 4, 5, 6, 7], faces) == [("NO_FACE", 1, 2), ("NO_FACE", 5, 6)]
    assert _judge([0, 2, 3, 4, 6, 7, 5, 1, 1, 5], faces) == [("NO_FACE", 5, 6), ("NO_FACE", 1, 2)]
    # chunk 1 arrives a whole window late: the absence it would have completed is not judged
    late = [0, 2, *range(3, 3 + WINDOW), 1]
    faces.update({s: 1 for s in range(3, 3 + WINDOW)})
    assert _judge(late, faces) == []
