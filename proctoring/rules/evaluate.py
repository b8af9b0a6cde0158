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
- LOOKING_AWAY: one face whose line of sight (head yaw plus the eyes' turn) is beyond
  the yaw limit from the camera's axis and from the student's own baseline alike (the
  median of their first chunks, bounded: ``rules.sight``), or turned beyond the pitch
  limit.
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

Chunks may arrive out of order (S3 notifications and the router's retries keep
none): the state keeps what the last :data:`WINDOW` chunks said (``rules.window``)
and every chunk folds them again in sequence order, so a late one is judged in its
place; an incident opening in the fold is a finding unless one raised already lies
within it. A chunk older than the window, or judged already, changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from proctoring.analysis.base import FaceDetail, Identity, ObjectsStatus
from proctoring.rules.policy import DEFAULT_SEVERITIES, OBJECT_RULES, Policy, Severity
from proctoring.rules.sight import line_of_sight, looking_away, sight_baseline
from proctoring.rules.window import Entry, Streak, fold, streaks_from_dict, streaks_to_dict

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
WINDOW = 12
"""Chunks (a minute) a late chunk may trail the newest one by and still be judged in
its place; the order of the chunks within it is the order of their sequence numbers."""
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


def _entry(obs: Observation, policy: Policy, baseline: float) -> Entry:
    holds = {}
    for rule in RULES:
        alone = _condition(rule, obs, policy, baseline, stranger=False)
        stranger = _condition(rule, obs, policy, baseline, stranger=True)
        if alone is not None or stranger is not None:
            holds[rule] = (alone, stranger, _severity(rule, obs, policy))
    return Entry(obs.sequence, holds)


@dataclass(frozen=True)
class RuleState:
    """Per student and source: where each rule's streak stands, and incidents so far."""

    last_sequence: int = -1
    streaks: dict[str, Streak] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    window: tuple[Entry, ...] = ()
    """The last :data:`WINDOW` chunks judged, in sequence order."""
    base_sequence: int | None = None
    """The newest chunk before the window (None: ``last_sequence``, an empty window)."""
    base_streaks: dict[str, Streak] | None = None
    """The streaks after ``base_sequence`` (None: ``streaks``)."""
    raised: tuple[tuple[str, int], ...] = ()
    """(rule, chunk) of each alert raised within the window."""
    sights: tuple[float, ...] = ()
    """Line of sight (degrees) of the student's first chunks: LOOKING_AWAY's baseline."""

    def seen(self, sequence: int) -> bool:
        """True when chunk ``sequence`` was judged already, or is older than the window."""
        base = self.last_sequence if self.base_sequence is None else self.base_sequence
        return sequence <= base or any(e.sequence == sequence for e in self.window)

    def flagged(self) -> set[str]:
        """Rules with a pending streak or an open incident."""
        return {rule for rule, s in self.streaks.items() if s.count > 0}

    def pending(self) -> set[str]:
        """Rules whose condition holds but has not yet outlasted its window (no alert yet)."""
        return {rule for rule, s in self.streaks.items() if s.count > 0 and not s.open}

    def sighted(self, obs: Observation, policy: Policy) -> RuleState:
        """With ``obs``'s line of sight among the baseline's samples when it shows one clear
        face that is not someone else's (no mismatch on it or pending) and does not look
        away by the baseline so far (a look away is no sample of where the screen is);
        unchanged else."""
        face = main_face(obs.details)
        mismatch = self.streaks.get("FACE_MISMATCH", Streak())
        stranger = obs.identity == "mismatch" or (obs.identity != "match" and mismatch.count > 0)
        if face is None or obs.faces != 1 or stranger or face_clear(face, policy) is False:
            return self
        sight = line_of_sight(face, policy)
        baseline = sight_baseline(self.sights, policy)
        if sight is None or (
            self.sights and min(abs(sight), abs(sight - baseline)) > policy.yaw_limit
        ):
            return self
        return replace(self, sights=(*self.sights, round(sight, 1)))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "last_sequence": self.last_sequence,
            "streaks": streaks_to_dict(self.streaks),
            "incidents": dict(self.incidents),
        }
        if self.window:
            data["window"] = [e.to_dict() for e in self.window]
            data["raised"] = [[rule, at] for rule, at in self.raised]
        if self.sights:
            data["sights"] = list(self.sights)
        if self.base_sequence is not None:
            data["base"] = {
                "sequence": self.base_sequence,
                "streaks": streaks_to_dict(self.base_streaks or {}),
            }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RuleState:
        if not data:
            return cls()
        base = data.get("base")
        return cls(
            last_sequence=int(data.get("last_sequence", -1)),
            streaks=streaks_from_dict(data.get("streaks", {})),
            incidents={rule: int(n) for rule, n in data.get("incidents", {}).items()},
            window=tuple(Entry.from_dict(e) for e in data.get("window", [])),
            base_sequence=None if base is None else int(base["sequence"]),
            base_streaks=None if base is None else streaks_from_dict(base.get("streaks", {})),
            raised=tuple((str(rule), int(at)) for rule, at in data.get("raised", [])),
            sights=tuple(float(v) for v in data.get("sights", [])),
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


def _condition(
    rule: str, obs: Observation, policy: Policy, baseline: float, *, stranger: bool
) -> bool | None:
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
        return looking_away(face, policy, baseline)
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

    A chunk judged already (a replay, a duplicate) or older than the window changes
    nothing and finds nothing; a late one within it is judged in its place (see the
    module docstring).
    """
    policy = policy or Policy()
    if state.seen(obs.sequence):
        return state, []
    if obs.sequence < policy.sight_baseline_chunks:
        state = state.sighted(obs, policy)
    entry = _entry(obs, policy, sight_baseline(state.sights, policy))
    window = tuple(sorted((*state.window, entry), key=lambda e: e.sequence))
    base_sequence = state.last_sequence if state.base_sequence is None else state.base_sequence
    base_streaks = state.streaks if state.base_streaks is None else state.base_streaks
    streaks, openings = fold(base_streaks, window, policy)
    new = [
        o
        for o in openings
        if not any(rule == o.rule and o.first <= at <= o.end for rule, at in state.raised)
    ]
    incidents = dict(state.incidents)
    for opening in new:
        incidents[opening.rule] = incidents.get(opening.rule, 0) + 1
    raised = (*state.raised, *((o.rule, o.at) for o in new))
    while len(window) > WINDOW:  # the oldest chunk leaves the window: the base moves on
        base_streaks, _ = fold(base_streaks, window[:1], policy)
        base_sequence, window = window[0].sequence, window[1:]
    state = RuleState(
        last_sequence=max(state.last_sequence, obs.sequence),
        streaks=streaks,
        incidents=incidents,
        window=window,
        base_sequence=base_sequence,
        base_streaks=base_streaks,
        raised=tuple((rule, at) for rule, at in raised if at > base_sequence),
        sights=state.sights,
    )
    return state, [Finding(o.rule, o.severity, o.at, o.first, o.chunks) for o in new]


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
