"""Per-exam policy and per-student accommodations.

A policy says which rules run, how long a condition must hold before it
becomes an alert (``tolerance``: consecutive analysed chunks, 5 s each), how
severe each alert is, and the thresholds the conditions use. It lives in the
sessions table as the exam's item with ``student_id = "#policy"`` (student
ids cannot contain ``#``); a missing item means the defaults. Accommodations
live on the student's own session item (``accommodations``) and only relax
the policy: they turn rules off (``disabled_rules``; ``face_checks: false``
turns off every rule that reads the face) or lengthen tolerances.

Example exam item (attribute ``policy``)::

    {"enabled_rules": ["NO_FACE", "MULTIPLE_FACES", "FACE_MISMATCH", "LOOKING_AWAY"],
     "tolerances": {"LOOKING_AWAY": 4}, "severities": {"LOOKING_AWAY": "low"},
     "yaw_limit": 35, "sight_baseline_limit": 10,
     "prohibited_labels": ["Mobile Phone", "Book"]}

``sources`` says which video is analysed: ``browser`` (the default: the
student page's uploads, source ``camera``), ``chime`` (the Chime SDK media
capture pipeline's per-attendee chunks, source ``chime``) or ``both``. With
``both`` a moment (5 s slot of capture time, ``proctoring.events.moment``)
is analysed once: the first chunk of that moment the consumer sees (in one
batch the browser's), and a chunk of the other source for the same moment
gets a ``not_analysed`` result row (``reason: same_moment``, ``same_as``: the
analysed chunk). A chunk of a source the policy does not analyse gets a
``not_analysed`` row (``reason: source_off``). Whatever the policy, the
capture pipeline's content share, the proctor's attendee and the pipeline's
audio and meeting events are never analysed (the router skips them).

Example accommodations on a student's item::

    {"face_checks": false}            {"tolerances": {"NO_FACE": 6}}

``offline_after`` is how many chunk lengths a student may send nothing before the
console shows them OFFLINE (default 2: 10 s with 5 s chunks); it clears with their next chunk.

``frame_every`` is how often a chunk's frame is stored as evidence when nothing fires
(default 6: every 30 s with 5 s chunks, the newest frame the console's tile shows); a chunk
a rule fires on and a student's first chunk of a source always keep theirs
(``consumer.frame_stage``).

Integrity rules (the browser's events, ``proctoring.rules.integrity``) have
their own tolerances, ``integrity_tolerances``: for LEFT_EXAM the seconds the
exam tab may be hidden or the window unfocused, summed over the last
``integrity_window`` seconds (default 10 s in 300 s); for FULLSCREEN_EXIT,
PASTE, SECOND_SCREEN and CAMERA_OFF how many occurrences the window allows
before an alert (default 0: the first one raises it). Accommodations may
lengthen them (``{"integrity_tolerances": {"LEFT_EXAM": 60}}``: a student
allowed breaks) or turn a rule off (``disabled_rules``).

Speech (``proctoring.rules.speech``): ``audio: true`` asks the student page to
record the microphone into the chunks (the consent text then names it) and the
consumer to run the voice activity detector on them; off by default. TALKING is
raised when more than ``talking_seconds`` of speech fall within the last
``talking_window`` seconds (default 10 s in 60 s). ``disabled_rules`` turns it
off for a student.

Errors::

    ProctoringError
     └── PolicyError        a stored policy or accommodation that does not validate
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proctoring.errors import ProctoringError

__all__ = [
    "DEFAULT_SEVERITIES",
    "FACE_RULES",
    "INTEGRITY_RULES",
    "INTEGRITY_SEVERITIES",
    "OBJECT_RULES",
    "POLICY_STUDENT_ID",
    "RULE_NAMES",
    "SPEECH_RULES",
    "SPEECH_SEVERITIES",
    "Accommodations",
    "ChunkSources",
    "Policy",
    "PolicyError",
    "Severity",
]

Severity = Literal["low", "medium", "high"]
ChunkSources = Literal["browser", "chime", "both"]
POLICY_STUDENT_ID = "#policy"
DEFAULT_SEVERITIES: dict[str, Severity] = {
    "NO_FACE": "medium",
    "MULTIPLE_FACES": "high",
    "FACE_MISMATCH": "high",
    "LOOKING_AWAY": "medium",
    "EXTRA_PERSON": "high",
    "PROHIBITED_OBJECT": "high",
    "FACE_NOT_CLEAR": "low",
}
RULE_NAMES = tuple(DEFAULT_SEVERITIES)
"""The video rules (one chunk's frame)."""
INTEGRITY_SEVERITIES: dict[str, Severity] = {
    "LEFT_EXAM": "medium",
    "FULLSCREEN_EXIT": "low",
    "PASTE": "medium",
    "SECOND_SCREEN": "high",
    "CAMERA_OFF": "high",
}
INTEGRITY_RULES = tuple(INTEGRITY_SEVERITIES)
"""The browser's integrity rules (``proctoring.rules.integrity``)."""
SPEECH_SEVERITIES: dict[str, Severity] = {"TALKING": "medium"}
SPEECH_RULES = tuple(SPEECH_SEVERITIES)
"""The microphone's rule (``proctoring.rules.speech``), with ``audio: true`` only."""
DEFAULT_INTEGRITY_TOLERANCES: dict[str, float] = {"LEFT_EXAM": 10.0}
"""LEFT_EXAM: seconds in the window; the others: occurrences allowed (0 when absent)."""
FACE_RULES = frozenset({"FACE_MISMATCH", "LOOKING_AWAY", "FACE_NOT_CLEAR"})
"""Rules that read the face (turned off by ``face_checks: false``)."""
OBJECT_RULES = frozenset({"EXTRA_PERSON", "PROHIBITED_OBJECT"})
"""Rules that need an object detector (Rekognition's DetectLabels or an ONNX model)."""
DEFAULT_PROHIBITED = (
    "Mobile Phone",
    "Cell Phone",
    "Phone",
    "Headphones",
    "Headset",
    "Book",
    "Tablet Computer",
)


class PolicyError(ProctoringError):
    """A stored policy or accommodation that does not validate."""


def _check_rules(
    names: Any, known: tuple[str, ...] = RULE_NAMES + INTEGRITY_RULES + SPEECH_RULES
) -> Any:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown rules {unknown}; known: {list(known)}")
    return names


def _check_integrity_tolerances(value: dict[str, float]) -> dict[str, float]:
    _check_rules(value, INTEGRITY_RULES)
    if any(v < 0 for v in value.values()):
        raise ValueError("integrity tolerances are at least 0")
    return value


class Policy(BaseModel):
    """An exam's rules, windows, severities and thresholds (defaults: the product's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: ChunkSources = "browser"
    """Which video is analysed: the browser's uploads, the Chime capture, or both (once)."""
    enabled_rules: tuple[str, ...] = RULE_NAMES + INTEGRITY_RULES + SPEECH_RULES
    tolerance: int = Field(default=2, ge=1, le=720)
    """Consecutive analysed chunks before an alert, for rules without their own."""
    tolerances: dict[str, int] = Field(default_factory=lambda: {"LOOKING_AWAY": 3})
    """Per rule: LOOKING_AWAY needs 3 chunks, i.e. more than 10 s: a glance is no alert."""
    severities: dict[str, Severity] = Field(default_factory=dict)
    yaw_limit: float = Field(default=30.0, gt=0, le=180)
    """Degrees of head yaw beyond which the student looks away."""
    pitch_limit: float | None = Field(default=None, gt=0, le=180)
    """Degrees of head pitch; off by default (the local estimate is biased by camera height)."""
    gaze_offset: float = Field(default=0.11, gt=0, lt=0.5)
    """Local pupil position: further than this from 0.5 is looking left/right."""
    sight_baseline_limit: float = Field(default=15.0, ge=0, le=45)
    """Degrees off centre the student's own "looking at the screen" direction may lie
    (``rules.sight``): LOOKING_AWAY judges the line of sight against it, so a camera beside
    the screen is no look away; 0 judges the line of sight from the camera."""
    sight_baseline_chunks: int = Field(default=6, ge=1, le=720)
    """The student's first chunks (30 s) whose line of sight makes that baseline."""
    min_brightness: float = Field(default=20.0, ge=0, le=100)
    min_sharpness: float = Field(default=20.0, ge=0, le=100)
    prohibited_labels: tuple[str, ...] = DEFAULT_PROHIBITED
    object_confidence: float = Field(default=60.0, ge=0, le=100)
    mismatch_low_margin: float = Field(default=0.05, ge=0, le=2)
    """A FACE_MISMATCH whose distance exceeds the threshold by less than this is one severity
    lower. 0.05 above the default threshold of 0.54 puts the line at 0.59, just under
    dlib's own 0.6: a distance the library's authors would still call the same person is a
    near call."""

    offline_after: int = Field(default=2, ge=1, le=720)
    """Chunk lengths without a new chunk from a student before the console shows them
    OFFLINE (2: one chunk late is jitter, two missing is a student whose video stopped)."""
    frame_every: int = Field(default=6, ge=1, le=720)
    """Chunks between two stored evidence frames of a student's source when no rule fires
    (6: the console's tile is never older than 30 s with 5 s chunks). A chunk a rule fires
    on, and the first chunk of a source, always keep their frame; 1 keeps every frame."""

    integrity_window: int = Field(default=300, ge=10, le=4 * 3600)
    """Seconds over which the integrity rules sum durations and count occurrences."""
    integrity_tolerances: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_INTEGRITY_TOLERANCES)
    )
    """See the module docstring: LEFT_EXAM in seconds, the others in occurrences."""

    audio: bool = False
    """Record the microphone into the chunks and judge TALKING on it (with consent)."""
    talking_window: int = Field(default=60, ge=10, le=3600)
    """Seconds over which TALKING sums speech."""
    talking_seconds: float = Field(default=10.0, ge=0, le=3600)
    """Seconds of speech the window allows; more raises TALKING."""

    @field_validator("enabled_rules", "severities")
    @classmethod
    def _known(cls, value: Any) -> Any:
        return _check_rules(value)

    @field_validator("tolerances")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        _check_rules(value, RULE_NAMES)
        if any(v < 1 for v in value.values()):
            raise ValueError("tolerances must be at least 1 chunk")
        return value

    @field_validator("integrity_tolerances")
    @classmethod
    def _integrity(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_integrity_tolerances(value)

    def integrity_tolerance(self, rule: str) -> float:
        return self.integrity_tolerances.get(rule, DEFAULT_INTEGRITY_TOLERANCES.get(rule, 0.0))

    def analyses(self, source: str) -> bool:
        """Whether chunks of ``source`` are analysed (``screen`` never is; it is recorded)."""
        if source == "camera":
            return self.sources in ("browser", "both")
        if source == "chime":
            return self.sources in ("chime", "both")
        return False

    def tolerance_for(self, rule: str) -> int:
        return self.tolerances.get(rule, self.tolerance)

    def severity_for(self, rule: str) -> Severity:
        default = (
            DEFAULT_SEVERITIES.get(rule)
            or INTEGRITY_SEVERITIES.get(rule)
            or SPEECH_SEVERITIES[rule]
        )
        return self.severities.get(rule, default)

    def for_student(self, accommodations: Accommodations | None) -> Policy:
        """This policy relaxed by a student's accommodations."""
        if accommodations is None:
            return self
        disabled = set(accommodations.disabled_rules)
        if not accommodations.face_checks:
            disabled |= FACE_RULES
        tolerances = dict(self.tolerances)
        for rule, chunks in accommodations.tolerances.items():
            tolerances[rule] = max(chunks, self.tolerance_for(rule))
        integrity = dict(self.integrity_tolerances)
        for rule, allowed in accommodations.integrity_tolerances.items():
            integrity[rule] = max(allowed, self.integrity_tolerance(rule))
        return self.model_copy(
            update={
                "enabled_rules": tuple(r for r in self.enabled_rules if r not in disabled),
                "tolerances": tolerances,
                "integrity_tolerances": integrity,
            }
        )

    @classmethod
    def from_item(cls, item: dict[str, Any] | None, *, tolerance: int = 2) -> Policy:
        """The exam's stored policy (``policy`` attribute), defaults where absent."""
        data = dict((item or {}).get("policy") or {})
        data.setdefault("tolerance", tolerance)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(f"invalid exam policy: {exc}") from exc


class Accommodations(BaseModel):
    """What a student's session item may relax (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    face_checks: bool = True
    disabled_rules: tuple[str, ...] = ()
    tolerances: dict[str, int] = Field(default_factory=dict)
    integrity_tolerances: dict[str, float] = Field(default_factory=dict)

    @field_validator("disabled_rules")
    @classmethod
    def _known(cls, value: Any) -> Any:
        return _check_rules(value)

    @field_validator("tolerances")
    @classmethod
    def _video(cls, value: Any) -> Any:
        return _check_rules(value, RULE_NAMES)

    @field_validator("integrity_tolerances")
    @classmethod
    def _integrity(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_integrity_tolerances(value)

    @classmethod
    def from_item(cls, session: dict[str, Any] | None) -> Accommodations | None:
        data = (session or {}).get("accommodations")
        if not data:
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(f"invalid accommodations: {exc}") from exc
