"""Proctoring rules: from one chunk's observation and the student's state to incidents.

Real footage is noisy, so no rule fires on a single chunk: a condition must
hold for ``tolerance`` consecutive analysed chunks (default 2) before an
incident opens. An incident stays open while the condition holds and closes
on the first chunk without it; one incident is one alert, whose id is
derived from (exam, student, source, rule, first sequence), so evaluating the
same chunks again yields the same alerts.

Rules:

- NO_FACE: no face in the frame.
- MULTIPLE_FACES: more than one face.
- FACE_MISMATCH: faces were seen and none matches the registered face
  (distance above the threshold). A chunk with no face says nothing about
  identity: it neither extends nor breaks a mismatch streak.

``evaluate`` is pure: state in, state and findings out. The consumer keeps
the state with the student's session in DynamoDB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "RULES",
    "Finding",
    "Identity",
    "Observation",
    "Policy",
    "RuleState",
    "Severity",
    "alert_id",
    "evaluate",
]

Identity = Literal["match", "mismatch", "unknown", "unregistered"]
Severity = Literal["low", "medium", "high"]
RULES: dict[str, Severity] = {
    "NO_FACE": "medium",
    "MULTIPLE_FACES": "high",
    "FACE_MISMATCH": "high",
}


@dataclass(frozen=True)
class Policy:
    tolerance: int = 2


@dataclass(frozen=True)
class Observation:
    """What one analysed chunk showed."""

    sequence: int
    faces: int
    identity: Identity
    distance: float | None = None


@dataclass(frozen=True)
class _Streak:
    count: int = 0
    first: int = -1  # sequence where the streak started
    open: bool = False  # an incident (alert) is open for this streak


@dataclass(frozen=True)
class RuleState:
    """Per student and source: where each rule's streak stands."""

    last_sequence: int = -1
    streaks: dict[str, _Streak] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_sequence": self.last_sequence,
            "streaks": {
                rule: {"count": s.count, "first": s.first, "open": s.open}
                for rule, s in self.streaks.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RuleState:
        if not data:
            return cls()
        return cls(
            last_sequence=int(data.get("last_sequence", -1)),
            streaks={
                rule: _Streak(int(s["count"]), int(s["first"]), bool(s["open"]))
                for rule, s in data.get("streaks", {}).items()
            },
        )


@dataclass(frozen=True)
class Finding:
    """An incident that just opened: one alert."""

    rule: str
    severity: Severity
    sequence: int  # the chunk on which the alert was raised
    first_sequence: int  # the first chunk of the incident
    chunks: int  # consecutive chunks seen so far


def _condition(rule: str, obs: Observation) -> bool | None:
    """True/False, or None when the chunk says nothing about this rule."""
    if rule == "NO_FACE":
        return obs.faces == 0
    if rule == "MULTIPLE_FACES":
        return obs.faces > 1
    if rule == "FACE_MISMATCH":
        if obs.identity in ("unknown", "unregistered"):
            return None
        return obs.identity == "mismatch"
    raise KeyError(rule)


def evaluate(
    state: RuleState, obs: Observation, policy: Policy = Policy()
) -> tuple[RuleState, list[Finding]]:
    """Apply every rule to one observation, in sequence order.

    An observation at or before ``state.last_sequence`` was evaluated already
    (a replay or a late duplicate): the state is returned unchanged, no findings.
    """
    if obs.sequence <= state.last_sequence:
        return state, []
    streaks = dict(state.streaks)
    findings: list[Finding] = []
    for rule, severity in RULES.items():
        holds = _condition(rule, obs)
        if holds is None:
            continue
        streak = streaks.get(rule, _Streak())
        if not holds:
            streaks[rule] = _Streak()
            continue
        streak = _Streak(
            count=streak.count + 1,
            first=obs.sequence if streak.count == 0 else streak.first,
            open=streak.open,
        )
        if streak.count >= policy.tolerance and not streak.open:
            streak = replace(streak, open=True)
            findings.append(Finding(rule, severity, obs.sequence, streak.first, streak.count))
        streaks[rule] = streak
    return RuleState(last_sequence=obs.sequence, streaks=streaks), findings


def alert_id(exam_id: str, student_id: str, source: str, finding: Finding) -> str:
    """Deterministic: the same incident always has the same id."""
    raw = f"{exam_id}#{student_id}#{source}#{finding.rule}#{finding.first_sequence}"
    return f"{finding.rule}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
