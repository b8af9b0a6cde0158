"""Rules: from one chunk's observation and the student's state to incidents.

Real footage is noisy, so no rule fires on a single chunk: a condition must
hold for the policy's tolerance (consecutive analysed chunks; 2 by default,
3 for LOOKING_AWAY) before an incident opens. An incident stays open while
the condition holds and closes on the first chunk without it; one incident
is one alert, whose id is derived from (exam, student, source, rule, first
sequence), so evaluating the same chunks again yields the same alerts.

A condition is True, False, or None when the chunk says nothing about it (no
face to judge the gaze by, identity not checked, objects not looked for):
None neither extends nor breaks a streak.

- NO_FACE: no face in the frame.
- MULTIPLE_FACES: more than one face.
- FACE_MISMATCH: one face was seen, identity was checked and it does not match.
  A face that is not clear says nothing about identity (bad light is not an
  identity alert; FACE_NOT_CLEAR reports it), nor does a chunk with several faces:
  "none of them is the student" would rest on a second, smaller, often turned face
  being judged like a face at the screen (an honest student beside a visitor was
  accused that way), and MULTIPLE_FACES already brings the proctor to that chunk; the
  identity is decided again when one face is left. Its severity follows the margin
  of the chunk that raised it (distance minus threshold, local engine): below
  the policy's ``mismatch_low_margin`` the alert is one step lower (high ->
  medium), a near call for the proctor to look at rather than a clear stranger;
  without a distance (Rekognition answers only matches) the rule's severity
  stands.
- LOOKING_AWAY: one face whose line of sight (head yaw plus the eyes' turn,
  :func:`looking_away`) is beyond the yaw limit, or turned beyond the pitch limit.
  A look is one stretch of the student alone at the desk: an empty frame or a
  second face ends the streak (looks before and after a break, or before and after a
  visitor, are two looks, not one; the visitor is MULTIPLE_FACES's incident), and so
  does a face that is not the student's (identity mismatch on the chunk, or a
  FACE_MISMATCH streak not ended by a match since): where someone else sits, their
  looks are part of that incident, not a second alert about the student.
- EXTRA_PERSON: the object detector counts more than one person, face or not.
- PROHIBITED_OBJECT: a prohibited label at or above the policy's confidence.
- FACE_NOT_CLEAR: the largest face is too dark, too blurred or cut by the frame.

EXTRA_PERSON and PROHIBITED_OBJECT need an object detector: on a chunk whose
objects are ``unavailable`` they are listed by :func:`unavailable_rules`.

``evaluate`` is pure: state in, state and findings out. The consumer keeps
the state with the student's session in DynamoDB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from proctoring.analysis.base import FaceDetail, Identity, ObjectsStatus
from proctoring.analysis.gaze import gaze_direction
from proctoring.rules.policy import DEFAULT_SEVERITIES, OBJECT_RULES, Policy, Severity

__all__ = [
    "RULES",
    "Finding",
    "Observation",
    "RuleState",
    "alert_id",
    "alert_item",
    "evaluate",
    "face_clear",
    "looking_away",
    "main_face",
    "risk_score",
    "unavailable_rules",
]

RULES: dict[str, Severity] = dict(DEFAULT_SEVERITIES)
_WEIGHTS: dict[str, float] = {"low": 1.0, "medium": 4.0, "high": 10.0}


@dataclass(frozen=True)
class Observation:
    """What one analysed chunk showed."""

    sequence: int
    faces: int
    identity: Identity
    distance: float | None = None
    threshold: float | None = None
    """The distance above which identity is a mismatch (with ``distance``)."""
    details: tuple[FaceDetail, ...] = ()
    persons: int | None = None
    objects: tuple[tuple[str, float], ...] = ()
    """(label, confidence 0-100) of what the detector saw."""
    objects_status: ObjectsStatus = "skipped"


@dataclass(frozen=True)
class _Streak:
    count: int = 0
    first: int = -1  # sequence where the streak started
    open: bool = False  # an incident (alert) is open for this streak


@dataclass(frozen=True)
class RuleState:
    """Per student and source: where each rule's streak stands, and incidents so far."""

    last_sequence: int = -1
    streaks: dict[str, _Streak] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)

    def flagged(self) -> set[str]:
        """Rules with a pending streak or an open incident."""
        return {rule for rule, s in self.streaks.items() if s.count > 0}

    def pending(self) -> set[str]:
        """Rules whose condition holds but has not yet outlasted its window (no alert yet)."""
        return {rule for rule, s in self.streaks.items() if s.count > 0 and not s.open}

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_sequence": self.last_sequence,
            "streaks": {
                rule: {"count": s.count, "first": s.first, "open": s.open}
                for rule, s in self.streaks.items()
            },
            "incidents": dict(self.incidents),
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
            incidents={rule: int(n) for rule, n in data.get("incidents", {}).items()},
        )


@dataclass(frozen=True)
class Finding:
    """An incident that just opened: one alert."""

    rule: str
    severity: Severity
    sequence: int  # the chunk on which the alert was raised
    first_sequence: int  # the first chunk of the incident
    chunks: int  # consecutive chunks seen so far


def main_face(faces: tuple[FaceDetail, ...]) -> FaceDetail | None:
    """The face the rules judge: the largest (the one nearest the camera); None: no face."""
    if not faces:
        return None
    return max(faces, key=lambda f: f.box[2] * f.box[3])


def face_clear(face: FaceDetail, policy: Policy) -> bool | None:
    """False when the face is too dark, blurred or cut off; None when quality is unknown."""
    if face.partial:
        return False
    if face.brightness is None and face.sharpness is None:
        return None
    if face.brightness is not None and face.brightness < policy.min_brightness:
        return False
    return not (face.sharpness is not None and face.sharpness < policy.min_sharpness)


def looking_away(face: FaceDetail, policy: Policy) -> bool | None:
    """True when head or eyes turn away; None when neither pose nor gaze is known.

    Where both the head's yaw and the local pupil ratio are known, the line of sight is
    their sum: ``yaw + (ratio - 0.5) * yaw_limit / gaze_offset`` degrees, the pupil's
    offset scaled so that the policy's two limits mean the same turn (eyes alone at
    ``gaze_offset`` from the centre = head alone at ``yaw_limit``). A head turned one way
    with the eyes turned back to the screen is not looking away (a camera beside the
    screen, a portrait in three-quarter view); head and eyes turned the same way are.
    """
    known = False
    if face.yaw is not None and face.gaze_ratio is not None:
        sight = face.yaw + (face.gaze_ratio - 0.5) * policy.yaw_limit / policy.gaze_offset
        if abs(sight) > policy.yaw_limit:
            return True
        return bool(
            face.pitch is not None
            and policy.pitch_limit is not None
            and abs(face.pitch) > policy.pitch_limit
        )
    if face.yaw is not None:
        known = True
        if abs(face.yaw) > policy.yaw_limit:
            return True
    if face.pitch is not None and policy.pitch_limit is not None:
        known = True
        if abs(face.pitch) > policy.pitch_limit:
            return True
    gaze = (
        gaze_direction(face.gaze_ratio, policy.gaze_offset)
        if face.gaze_ratio is not None
        else face.gaze
    )
    if gaze is not None:
        return gaze != "center"
    return False if known else None


def _condition(rule: str, obs: Observation, policy: Policy, *, stranger: bool) -> bool | None:
    """True/False, or None when the chunk says nothing about this rule (``stranger``: the
    face on camera is taken not to be the student's, see the module docstring)."""
    face = main_face(obs.details)
    if rule == "NO_FACE":
        return obs.faces == 0
    if rule == "MULTIPLE_FACES":
        return obs.faces > 1
    if rule == "FACE_MISMATCH":
        if obs.identity not in ("match", "mismatch") or obs.faces > 1:
            return None
        if obs.identity == "mismatch" and face is not None and face_clear(face, policy) is False:
            return None
        return obs.identity == "mismatch"
    if rule == "LOOKING_AWAY":
        if obs.faces != 1 or stranger:
            return False  # nobody, a visitor, someone else: a look is the student's alone
        if face is None:
            return None
        return looking_away(face, policy)
    if rule == "FACE_NOT_CLEAR":
        if face is None:
            return None
        clear = face_clear(face, policy)
        return None if clear is None else not clear
    if rule == "EXTRA_PERSON":
        if obs.objects_status != "checked" or obs.persons is None:
            return None
        return obs.persons > 1
    if rule == "PROHIBITED_OBJECT":
        if obs.objects_status != "checked":
            return None
        prohibited = {label.lower() for label in policy.prohibited_labels}
        return any(
            label.lower() in prohibited and confidence >= policy.object_confidence
            for label, confidence in obs.objects
        )
    raise KeyError(rule)


_LOWER: dict[Severity, Severity] = {"high": "medium", "medium": "low", "low": "low"}


def _severity(rule: str, obs: Observation, policy: Policy) -> Severity:
    """The rule's severity; a FACE_MISMATCH close to the threshold one step lower."""
    severity = policy.severity_for(rule)
    near = (
        rule == "FACE_MISMATCH"
        and obs.distance is not None
        and obs.threshold is not None
        and obs.distance - obs.threshold < policy.mismatch_low_margin
    )
    return _LOWER[severity] if near else severity


def unavailable_rules(obs: Observation, policy: Policy) -> list[str]:
    """Enabled rules the engine cannot evaluate on this chunk (no object detector)."""
    if obs.objects_status != "unavailable":
        return []
    return [r for r in policy.enabled_rules if r in OBJECT_RULES]


def evaluate(
    state: RuleState, obs: Observation, policy: Policy | None = None
) -> tuple[RuleState, list[Finding]]:
    """Apply every enabled rule to one observation, in sequence order.

    An observation at or before ``state.last_sequence`` was evaluated already
    (a replay or a late duplicate): the state is returned unchanged, no findings.
    """
    policy = policy or Policy()
    if obs.sequence <= state.last_sequence:
        return state, []
    streaks = dict(state.streaks)
    incidents = dict(state.incidents)
    findings: list[Finding] = []
    # Whose face it is: a mismatch on this chunk, or one not ended by a match since.
    mismatch = _condition("FACE_MISMATCH", obs, policy, stranger=False)
    stranger = bool(mismatch) or (
        mismatch is None and streaks.get("FACE_MISMATCH", _Streak()).count > 0
    )
    for rule in RULES:
        if rule not in policy.enabled_rules:
            streaks.pop(rule, None)
            continue
        holds = _condition(rule, obs, policy, stranger=stranger)
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
        if streak.count >= policy.tolerance_for(rule) and not streak.open:
            streak = replace(streak, open=True)
            incidents[rule] = incidents.get(rule, 0) + 1
            findings.append(
                Finding(
                    rule, _severity(rule, obs, policy), obs.sequence, streak.first, streak.count
                )
            )
        streaks[rule] = streak
    return RuleState(last_sequence=obs.sequence, streaks=streaks, incidents=incidents), findings


def risk_score(states: list[RuleState], policy: Policy | None = None) -> float:
    """A student's risk for the dashboard to sort by.

    ``risk = sum over incidents of weight(severity) + sum over pending streaks of
    0.5 * min(count / tolerance, 1) * weight(severity)``, with weights high 10, medium 4,
    low 1 and each rule's severity from the policy. Each incident raised counts its
    severity's weight; a streak still below its tolerance counts the share of the window it
    has filled, at half weight. The video's states (one per source) and the browser's
    integrity incidents (``IntegrityState.as_rule_state``: incidents, no streaks) are
    summed alike: a LEFT_EXAM (medium) adds 4 like a LOOKING_AWAY (medium) would.
    """
    policy = policy or Policy()
    score = 0.0
    for state in states:
        for rule, count in state.incidents.items():
            score += count * _WEIGHTS[policy.severity_for(rule)]
        for rule, streak in state.streaks.items():
            if streak.count and not streak.open:
                filled = min(streak.count / policy.tolerance_for(rule), 1.0)
                score += 0.5 * filled * _WEIGHTS[policy.severity_for(rule)]
    return round(score, 2)


def alert_item(
    exam_id: str,
    student_id: str,
    source: str,
    finding: Finding,
    *,
    now: datetime,
    expires_at: int,
    **fields: Any,
) -> dict[str, Any]:
    """The alerts table's item for one finding: its deterministic id, the rule, severity and
    chunks, then ``fields`` (the evidence; they may override the chunk fields, as a browser
    event's sequence does), open, with its times."""
    return {
        "exam_id": exam_id,
        "alert_id": alert_id(exam_id, student_id, source, finding),
        "student_id": student_id,
        "source": source,
        "type": finding.rule,
        "severity": finding.severity,
        "sequence": finding.sequence,
        "first_sequence": finding.first_sequence,
        "chunks": finding.chunks,
        **fields,
        "status": "open",
        "created_at": now.isoformat(),
        "expires_at": expires_at,
    }


def alert_id(exam_id: str, student_id: str, source: str, finding: Finding) -> str:
    """Deterministic: the same incident always has the same id."""
    raw = f"{exam_id}#{student_id}#{source}#{finding.rule}#{finding.first_sequence}"
    return f"{finding.rule}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
