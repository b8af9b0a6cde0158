"""Rules with a tolerance window: what the proctor sees for a run of chunks."""

from __future__ import annotations

from proctoring.rules import Finding, Observation, Policy, RuleState, alert_id, evaluate


def _run(observations: list[Observation], policy: Policy | None = None) -> list[Finding]:
    state = RuleState()
    policy = policy or Policy()
    findings: list[Finding] = []
    for obs in observations:
        state, new = evaluate(state, obs, policy)
        # the state must survive being stored in DynamoDB and read back by another worker
        state = RuleState.from_dict(state.to_dict())
        findings.extend(new)
    return findings


def _faces(*counts: int) -> list[Observation]:
    return [Observation(i, n, "match" if n else "unknown") for i, n in enumerate(counts)]


def test_a_single_missed_face_raises_nothing() -> None:
    assert _run(_faces(1, 0, 1, 0, 1)) == []


def test_two_chunks_without_a_face_raise_one_no_face_alert() -> None:
    findings = _run(_faces(1, 0, 0, 0, 0, 1))
    assert [(f.rule, f.sequence, f.first_sequence) for f in findings] == [("NO_FACE", 2, 1)]


def test_a_new_incident_after_the_face_came_back_is_a_new_alert() -> None:
    findings = _run(_faces(0, 0, 1, 0, 0))
    assert [(f.rule, f.first_sequence) for f in findings] == [("NO_FACE", 0), ("NO_FACE", 3)]


def test_multiple_faces_and_tolerance_from_the_policy() -> None:
    assert _run(_faces(2, 2), Policy(tolerance=3)) == []
    findings = _run(_faces(2, 2, 3), Policy(tolerance=3))
    assert [(f.rule, f.severity, f.chunks) for f in findings] == [("MULTIPLE_FACES", "high", 3)]


def test_mismatch_streak_is_not_broken_by_a_chunk_without_a_face() -> None:
    observations = [
        Observation(0, 1, "mismatch", 0.8),
        Observation(1, 0, "unknown"),
        Observation(2, 1, "mismatch", 0.9),
    ]
    assert [f.rule for f in _run(observations)] == ["FACE_MISMATCH"]


def test_a_matching_chunk_breaks_the_mismatch_streak() -> None:
    observations = [
        Observation(0, 1, "mismatch", 0.8),
        Observation(1, 1, "match", 0.4),
        Observation(2, 1, "mismatch", 0.7),
    ]
    assert _run(observations) == []


def test_unregistered_students_get_no_identity_alerts() -> None:
    assert _run([Observation(i, 1, "unregistered") for i in range(5)]) == []


def test_replayed_or_late_chunks_change_nothing() -> None:
    state, _ = evaluate(RuleState(), Observation(0, 0, "unknown"))
    state, second = evaluate(state, Observation(1, 0, "unknown"))
    assert [f.rule for f in second] == ["NO_FACE"]
    again, none = evaluate(state, Observation(1, 0, "unknown"))
    assert (again, none) == (state, [])
    late, none = evaluate(state, Observation(0, 2, "match"))
    assert (late, none) == (state, [])


def test_alert_ids_are_deterministic_per_incident() -> None:
    finding = Finding("NO_FACE", "medium", 3, 2, 2)
    assert alert_id("e", "s", "camera", finding) == alert_id("e", "s", "camera", finding)
    other = Finding("NO_FACE", "medium", 7, 6, 2)
    assert alert_id("e", "s", "camera", finding) != alert_id("e", "s", "camera", other)


def test_a_face_mismatch_close_to_the_threshold_is_one_severity_lower() -> None:
    def raised(distance: float | None) -> Finding:
        state = RuleState()
        findings: list[Finding] = []
        for sequence in range(2):
            state, findings = evaluate(
                state,
                Observation(
                    sequence=sequence,
                    faces=1,
                    identity="mismatch",
                    distance=distance,
                    threshold=None if distance is None else 0.55,
                ),
            )
        (finding,) = findings
        return finding

    assert Policy().mismatch_low_margin == 0.05
    assert raised(0.72).severity == "high", "a clear stranger"
    assert raised(0.58).severity == "medium", "0.03 over the line: a near call"
    assert raised(None).severity == "high", "no distance (Rekognition): the rule's severity"
