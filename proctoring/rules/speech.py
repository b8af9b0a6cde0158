"""The TALKING rule: from the speech heard in a student's chunks to incidents.

Pure, like :mod:`proctoring.rules.integrity`: state and one chunk's speech in,
state and at most one finding out; the consumer keeps the state on the
student's session item (``speech``). Only exams whose policy records the
microphone (``audio: true``) have speech to judge.

Speech is placed on the capture time axis (the chunk's ``captured_ms`` plus
the segment's offset), so chunks judged late or out of order count where they
were spoken. TALKING is raised when the speech inside the last
``talking_window`` seconds (ending at the newest speech judged; overlaps counted
once) exceeds ``talking_seconds``;
once raised, the rule raises its next alert only a whole window later (one
incident per window). A chunk already judged (its sequence is in the state)
changes nothing, so a re-delivered record raises nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proctoring.rules.evaluate import Finding, RuleState
from proctoring.rules.policy import Policy
from proctoring.rules.windows import union_ms

__all__ = ["RULE", "SpeechFinding", "SpeechState", "judge"]

RULE = "TALKING"
_SEEN_KEPT = 1000  # chunk sequences remembered per student (80 minutes of 5 s chunks)


@dataclass(frozen=True)
class SpeechFinding:
    """An incident that just opened, with what the proctor is shown beside it."""

    finding: Finding
    speech_s: float
    """Seconds of speech in the window that ends with the raising chunk."""
    window_s: int


@dataclass
class SpeechState:
    """Per student: recent speech intervals (capture ms), the last alert, incidents."""

    spoken: list[tuple[int, int]] = field(default_factory=list)
    raised: int | None = None
    incidents: int = 0
    seen: list[int] = field(default_factory=list)

    def as_rule_state(self) -> RuleState:
        """The incidents in the form the risk score reads."""
        return RuleState(incidents={RULE: self.incidents} if self.incidents else {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "spoken": [list(pair) for pair in self.spoken],
            "raised": self.raised,
            "incidents": self.incidents,
            "seen": list(self.seen),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SpeechState:
        data = data or {}
        raised = data.get("raised")
        return cls(
            spoken=[(int(a), int(b)) for a, b in data.get("spoken", [])],
            raised=None if raised is None else int(raised),
            incidents=int(data.get("incidents", 0)),
            seen=[int(s) for s in data.get("seen", [])],
        )


def judge(
    state: SpeechState,
    *,
    sequence: int,
    captured_ms: int,
    duration_s: float,
    segments: Sequence[tuple[float, float]],
    policy: Policy,
) -> tuple[SpeechState, SpeechFinding | None]:
    """Judge one chunk's speech (mutates and returns ``state``)."""
    if sequence in state.seen or not policy.audio:
        return state, None
    state.seen = [*state.seen, sequence][-_SEEN_KEPT:]
    window = policy.talking_window * 1000
    end = captured_ms + round(duration_s * 1000)
    newest = max([end, *(b for _, b in state.spoken)])
    state.spoken = [
        *((a, b) for a, b in state.spoken if b >= newest - 2 * window),
        *((captured_ms + round(a * 1000), captured_ms + round(b * 1000)) for a, b in segments),
    ]
    if RULE not in policy.enabled_rules or not segments:
        return state, None
    until = max(end, *(b for _, b in state.spoken))  # a late chunk counts with the newer
    if state.raised is not None and until - state.raised < window:
        return state, None
    spoken_ms = union_ms(state.spoken, until - window, until)
    if spoken_ms <= policy.talking_seconds * 1000:
        return state, None
    state.raised = until
    state.incidents += 1
    finding = Finding(RULE, policy.severity_for(RULE), sequence, sequence, 1)
    return state, SpeechFinding(finding, round(spoken_ms / 1000, 1), policy.talking_window)
