"""Integrity rules: from the browser's events and the student's state to incidents.

Pure, like :mod:`proctoring.rules.evaluate`: state and one event in, state and
findings out; the consumer keeps the state on the student's session item
(``integrity``). Events are judged on their own times (``at`` and
``duration_ms``), not on their arrival: a batch kept offline and sent late is
judged as if it had come at once. An event already judged (its ``event_id`` is
in the state) changes nothing, so a re-delivered record raises nothing twice.

- LEFT_EXAM: the exam tab hidden or the window unfocused for longer than the
  policy's tolerance (seconds), summed over the policy's window. Hidden and
  unfocused usually overlap (switching tabs does both): the time counted is
  the union of the intervals, never twice. The alert carries ``duration_s``.
- FULLSCREEN_EXIT, PASTE, SECOND_SCREEN, CAMERA_OFF: more occurrences in the
  window than the tolerance allows (default 0: the first raises the alert).
  ``copy``, ``contextmenu``, ``blur`` alone and ``offline`` are recorded on the
  timeline and judged by no rule of their own (``offline`` is the network).

One incident per rule per window: once a rule raised an alert, it raises the
next only for events that end a whole window later. An alert's id is derived
from (exam, student, ``integrity``, rule, the raising event's ``seq``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proctoring.integrity import IntegrityEvent
from proctoring.rules.evaluate import Finding, RuleState
from proctoring.rules.policy import Policy
from proctoring.rules.windows import union_ms

__all__ = ["IntegrityFinding", "IntegrityState", "judge"]

_COUNTED = {
    "fullscreen_exit": "FULLSCREEN_EXIT",
    "paste": "PASTE",
    "second_screen": "SECOND_SCREEN",
    "camera_ended": "CAMERA_OFF",
}
_AWAY = frozenset({"hidden", "blur"})
_SEEN_KEPT = 2000  # event ids remembered per student (an exam's worth of events)


@dataclass(frozen=True)
class IntegrityFinding:
    """An incident that just opened, with what the proctor is shown beside it."""

    finding: Finding
    duration_s: float | None = None
    occurrences: int = 1


@dataclass
class IntegrityState:
    """Per student: the recent intervals away, the recent occurrences, incidents so far."""

    away: list[tuple[int, int]] = field(default_factory=list)  # [start ms, end ms]
    occurrences: dict[str, list[int]] = field(default_factory=dict)  # rule -> event ms
    raised: dict[str, int] = field(default_factory=dict)  # rule -> ms of the last alert
    incidents: dict[str, int] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    last_seq: int = -1

    def as_rule_state(self) -> RuleState:
        """The incidents in the form the risk score reads."""
        return RuleState(incidents=dict(self.incidents))

    def to_dict(self) -> dict[str, Any]:
        return {
            "away": [list(pair) for pair in self.away],
            "occurrences": {rule: list(ms) for rule, ms in self.occurrences.items()},
            "raised": dict(self.raised),
            "incidents": dict(self.incidents),
            "seen": list(self.seen),
            "last_seq": self.last_seq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IntegrityState:
        data = data or {}
        return cls(
            away=[(int(a), int(b)) for a, b in data.get("away", [])],
            occurrences={r: [int(m) for m in ms] for r, ms in data.get("occurrences", {}).items()},
            raised={r: int(m) for r, m in data.get("raised", {}).items()},
            incidents={r: int(n) for r, n in data.get("incidents", {}).items()},
            seen=[str(s) for s in data.get("seen", [])],
            last_seq=int(data.get("last_seq", -1)),
        )


def _ms(event: IntegrityEvent) -> tuple[int, int]:
    start = int(event.at.timestamp() * 1000)
    return start, start + event.duration_ms


def judge(
    state: IntegrityState, event: IntegrityEvent, policy: Policy
) -> tuple[IntegrityState, list[IntegrityFinding]]:
    """Apply the enabled integrity rules to one event (mutates and returns ``state``)."""
    if event.event_id in state.seen:
        return state, []
    state.seen = [*state.seen, event.event_id][-_SEEN_KEPT:]
    state.last_seq = max(state.last_seq, event.seq)
    start, end = _ms(event)
    window = policy.integrity_window * 1000
    findings: list[IntegrityFinding] = []
    if event.kind in _AWAY:
        state.away = [*((a, b) for a, b in state.away if b >= end - 2 * window), (start, end)]
        rule = "LEFT_EXAM"
        until = max(b for _, b in state.away)  # a late event counts with the newer ones
        if rule in policy.enabled_rules and _quiet(state, rule, until, window):
            away_ms = union_ms(state.away, until - window, until)
            if away_ms > policy.integrity_tolerance(rule) * 1000:
                findings.append(_open(state, rule, event, policy, until, duration_s=away_ms / 1000))
    rule = _COUNTED.get(event.kind, "")
    if rule:
        recent = [m for m in state.occurrences.get(rule, []) if m > start - window] + [start]
        state.occurrences[rule] = recent
        if (
            rule in policy.enabled_rules
            and len(recent) > policy.integrity_tolerance(rule)
            and _quiet(state, rule, start, window)
        ):
            findings.append(_open(state, rule, event, policy, start, occurrences=len(recent)))
    return state, findings


def _quiet(state: IntegrityState, rule: str, at_ms: int, window: int) -> bool:
    """No alert of ``rule`` in the window before ``at_ms``: one incident per window."""
    last = state.raised.get(rule)
    return last is None or at_ms - last >= window


def _open(
    state: IntegrityState,
    rule: str,
    event: IntegrityEvent,
    policy: Policy,
    at_ms: int,
    *,
    duration_s: float | None = None,
    occurrences: int = 1,
) -> IntegrityFinding:
    state.raised[rule] = at_ms
    state.incidents[rule] = state.incidents.get(rule, 0) + 1
    finding = Finding(rule, policy.severity_for(rule), event.seq, event.seq, 1)
    return IntegrityFinding(
        finding, None if duration_s is None else round(duration_s, 1), occurrences
    )
