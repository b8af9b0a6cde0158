"""The analysis path of the processor: one student's chunks, in order, through schedule,
engine and rules.

For one student and one batch, :class:`StudentAnalyser` holds the state read
from the student's session item (rule streaks, the schedule, the last
analysis, call counts, accommodations) and, per camera or chime chunk in sequence
order:

1. asks the schedule what to analyse (``analysis.scheduling``): a frame nearly
   identical to the last analysed one is a *repeat* and its analysis is
   carried over; otherwise the engine answers the plan (faces always, identity
   and objects on their cadence or when flagged);
2. turns the analysis into an :class:`~proctoring.rules.Observation` and
   evaluates the rules with the exam's policy relaxed by the student's
   accommodations;
3. counts the Rekognition calls made (AWS) or planned (local) against the naive
   plan of every API on every chunk.

:meth:`StudentAnalyser.session_fields` gives what to store back with the
session; :class:`Policies` reads each exam's policy item, cached for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog

from proctoring.analysis.base import API_NAMES, Engine, FrameAnalysis
from proctoring.analysis.faces import ImageError
from proctoring.analysis.scheduling import Cadence, Decision, ScheduleState, advance, decide
from proctoring.enrolment import read_frame
from proctoring.events import ChunkEvent
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.rules import (
    OBJECT_RULES,
    POLICY_STUDENT_ID,
    Accommodations,
    Finding,
    Observation,
    Policy,
    PolicyError,
    RuleState,
    evaluate,
    face_clear,
    looking_away,
    main_face,
    risk_score,
    unavailable_rules,
)
from proctoring.rules.integrity import IntegrityState
from proctoring.rules.speech import SpeechState
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["Analysed", "Policies", "StudentAnalyser", "enrolment_view", "observation"]

_log = structlog.get_logger(__name__)


def observation(sequence: int, analysis: FrameAnalysis) -> Observation:
    """What the rules read from one frame's analysis."""
    return Observation(
        sequence=sequence,
        faces=len(analysis.faces),
        identity=analysis.identity,
        distance=analysis.distance,
        threshold=analysis.threshold,
        details=analysis.faces,
        persons=analysis.persons,
        objects=tuple((o.label, o.confidence) for o in analysis.objects),
        objects_status=analysis.objects_status,
    )


class Policies:
    """Each exam's policy from its ``#policy`` item in the sessions table, cached."""

    def __init__(
        self,
        tables: Tables,
        *,
        tolerance: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tables = tables
        self._tolerance = tolerance
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Policy]] = {}

    async def get(self, exam_id: str) -> Policy:
        cached = self._cache.get(exam_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        item = await self._tables.get_session(exam_id, POLICY_STUDENT_ID)
        try:
            policy = Policy.from_item(item, tolerance=self._tolerance)
        except PolicyError as exc:
            _log.error("invalid exam policy; using the defaults", exam=exam_id, error=str(exc))
            policy = Policy(tolerance=self._tolerance)
        self._cache[exam_id] = (now, policy)
        return policy


@dataclass
class Analysed:
    """One camera or chime chunk's outcome: result-row fields and the incidents it opened."""

    analysis: FrameAnalysis
    row: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    used_fallback: bool = False
    """The middle frame showed no face and the chunk's first frame did: it was used."""


class StudentAnalyser:
    """See the module docstring. One per student and batch."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        policy: Policy,
        session: dict[str, Any],
        metrics: Metrics,
        enrolment: Callable[[ChunkEvent], Awaitable[FrameAnalysis | None]] | None = None,
    ) -> None:
        """``enrolment``: the local view of the student's registration frame, read before
        their first camera chunk is scheduled (``proctoring.enrolment``)."""
        self._engine = engine
        self._enrolment = enrolment
        self._metrics = metrics
        self._cadence = Cadence(
            faces_every=settings.faces_every,
            identity_every=settings.identity_every,
            objects_every=settings.objects_every,
            similar_below=settings.similar_below,
            max_repeats=settings.max_repeats,
            face_change_above=settings.face_change_above,
        )
        self._chunk_seconds = settings.chunk_seconds
        self.policy = policy.for_student(Accommodations.from_item(session))
        self.states = {s: RuleState.from_dict(d) for s, d in session.get("rules", {}).items()}
        # the browser's incidents count in the same score (consumer.integrity keeps them)
        self._integrity = IntegrityState.from_dict(session.get("integrity")).as_rule_state()
        self.speech = SpeechState.from_dict(session.get("speech"))
        """TALKING's state (``consumer.speech`` judges it; its incidents count in the risk)."""
        self._schedules = {
            s: ScheduleState.from_dict(d) for s, d in session.get("schedule", {}).items()
        }
        self._last: dict[str, dict[str, Any]] = dict(session.get("last_analysis", {}))
        self._calls: dict[str, int] = {api: 0 for api in API_NAMES} | {
            k: int(v) for k, v in session.get("calls", {}).items()
        }
        self._naive = int(session.get("naive_calls", 0))
        self._seconds = float(session.get("analysed_seconds", 0.0))
        self._unavailable: set[str] = set(session.get("unavailable_rules", []))

    async def analyse(
        self,
        event: ChunkEvent,
        jpeg: bytes,
        thumb: bytes | None,
        fallback: Callable[[], Awaitable[bytes | None]] | None = None,
    ) -> Analysed:
        """Schedule, analyse and evaluate one camera or chime chunk (in sequence order).

        ``fallback`` gives a second frame of the chunk (its first), analysed when ``jpeg``
        leaves the chunk in doubt (:func:`_doubt`): no face, a face that is not clear, or
        a turned face that does not match. One frame caught mid-motion, with the head
        turned or blurred, is common; a student away from the desk is absent from both
        frames. The chunk is decided on the second frame only where it settles the doubt
        (:func:`_resolves`): so no student is accused on a single bad frame. It is asked
        for only then (None: the frame could not be had), so most chunks never pay for it.
        """
        source = event.source
        schedule = self._schedules.get(source) or await self._first_schedule(event)
        state = self.states.get(source, RuleState())
        fresh = not state.seen(event.sequence)  # a late chunk is judged in its place
        newest = event.sequence > state.last_sequence
        objects_wanted = bool(OBJECT_RULES & set(self.policy.enabled_rules))
        decision = decide(
            schedule,
            event.sequence,
            thumb,
            flagged=state.flagged(),
            pending=state.pending(),
            cadence=self._cadence,
            objects_wanted=objects_wanted,
            due={
                rule
                for rule in state.pending()
                if state.streaks[rule].count == self.policy.tolerance_for(rule) - 1
            },
        )
        carried = self._last.get(source)
        used_fallback = False
        if decision.repeat and carried is not None:
            analysis = FrameAnalysis.from_summary(carried)
            calls = {api: 0 for api in API_NAMES}
        else:
            decision = Decision(repeat=False, plan=decision.plan, difference=decision.difference)
            started = time.perf_counter()
            analysis = await self._engine.analyse(
                event.exam_id, event.student_id, jpeg, decision.plan
            )
            calls = {api: int(analysis.calls.get(api, 0)) for api in API_NAMES}
            second_jpeg = None
            doubt = _doubt(analysis, self.policy)
            if doubt is not None and fallback is not None:
                second_jpeg = await fallback()
            if second_jpeg is not None:
                # The chunk's second frame, faces (and identity, where the first frame's
                # identity is in doubt) only: DetectFaces is paid only where the local
                # detector sees other faces than in the first frame; objects were looked
                # for already.
                plan = replace(
                    decision.plan,
                    objects=False,
                    confirm="if_changed",
                    confirmed=analysis.signature or (),
                )
                if analysis.identity in ("match", "mismatch"):
                    plan = replace(plan, identity="yes")  # decided on it: checked on it
                second = await self._engine.analyse(
                    event.exam_id, event.student_id, second_jpeg, plan
                )
                calls = {api: calls[api] + int(second.calls.get(api, 0)) for api in API_NAMES}
                if _resolves(doubt, second, self.policy):
                    used_fallback = True
                    analysis = replace(
                        second,
                        persons=analysis.persons,
                        objects=analysis.objects,
                        objects_status=analysis.objects_status,
                    )
            self._metrics.add(
                MetricName.AnalysisMs, (time.perf_counter() - started) * 1000, "Milliseconds"
            )
        obs = observation(event.sequence, analysis)
        new_state, findings = evaluate(state, obs, self.policy)
        unavailable = unavailable_rules(obs, self.policy)
        if fresh:
            self.states[source] = new_state
        if fresh and newest:  # the schedule and the carried analysis follow the newest chunk
            self._schedules[source] = advance(
                schedule,
                event.sequence,
                # Decided on the chunk's other frame: the next chunk's likeness to this
                # one's middle frame says nothing about what was decided, so no repeat.
                None if used_fallback else thumb,
                decision,
                boxes=tuple(b for b, _, _ in analysis.signature)
                if analysis.signature is not None
                else tuple(f.box for f in analysis.faces),
                identity_checked=analysis.identity != "unchecked",
                objects_checked=analysis.objects_status != "skipped",
                faces_confirmed=calls["DetectFaces"] > 0,
                sig=analysis.signature,
                face_thumbs=analysis.face_thumbs,
            )
            if not decision.repeat:
                self._last[source] = analysis.summary()
        if fresh:
            for api, count in calls.items():
                self._calls[api] += count
                if count:
                    self._metrics.add(MetricName.RekognitionCalls, count, Api=api)
            self._naive += len(API_NAMES)
            self._seconds += self._chunk_seconds
            self._unavailable |= set(unavailable)
        row = {
            **analysis.summary(),
            "calls": calls,
            "analysed": "repeat" if decision.repeat else "fallback" if used_fallback else "frame",
            "repeat_of": schedule.analysed_sequence if decision.repeat else None,
            "difference": decision.difference,
            "unavailable_rules": unavailable or None,
            "risk": self.risk,
        }
        return Analysed(analysis, row, findings, used_fallback)

    async def _first_schedule(self, event: ChunkEvent) -> ScheduleState:
        """A source's schedule before its first chunk: the camera's starts from the
        registration's frame when it shows one face (:meth:`ScheduleState.enrolled`), and
        so does LOOKING_AWAY's baseline (the student's line of sight on it, ``rules.sight``)."""
        if event.source != "camera" or self._enrolment is None:
            return ScheduleState()
        view = await self._enrolment(event)
        if view is None or len(view.faces) != 1 or not view.face_thumbs:
            return ScheduleState()
        if event.source not in self.states:  # LOOKING_AWAY's baseline starts from it too
            self.states[event.source] = RuleState().sighted(observation(-1, view), self.policy)
        boxes = (
            tuple(b for b, _, _ in view.signature)
            if view.signature is not None
            else tuple(f.box for f in view.faces)
        )
        return ScheduleState.enrolled(boxes, view.face_thumbs)

    @property
    def risk(self) -> float:
        return risk_score(
            [*self.states.values(), self._integrity, self.speech.as_rule_state()], self.policy
        )

    def session_fields(self) -> dict[str, Any]:
        """What to store back on the student's session item."""
        hours = self._seconds / 3600.0
        speech = {"speech": self.speech.to_dict()} if self.speech.seen else {}
        return speech | {
            "rules": {source: state.to_dict() for source, state in self.states.items()},
            "schedule": {source: s.to_dict() for source, s in self._schedules.items()},
            "last_analysis": self._last,
            "calls": dict(self._calls),
            "naive_calls": self._naive,
            "analysed_seconds": self._seconds,
            "calls_per_student_hour": (
                {api: round(n / hours, 1) for api, n in self._calls.items()} if hours else None
            ),
            "unavailable_rules": sorted(self._unavailable) or None,
            "risk": self.risk,
        }


Doubt = Literal["no_face", "not_clear", "turned"]


def _doubt(analysis: FrameAnalysis, policy: Policy) -> Doubt | None:
    """Why one frame is not enough to decide the chunk on; None: it is enough.

    No face (a face missed mid-motion), a face that is not clear (blurred, dark, cut),
    or a face turned away that does not match (an embedding of a turned face is far from
    the registered one). A clear mismatch facing the camera is no doubt: it is decided
    as it is, so an impostor who sits down mid-chunk is not matched on the frame before.
    """
    main = main_face(analysis.faces)
    if main is None:
        return "no_face"
    if face_clear(main, policy) is False:
        return "not_clear"
    if analysis.identity == "mismatch" and looking_away(main, policy):
        return "turned"
    return None


def _resolves(doubt: Doubt | None, second: FrameAnalysis, policy: Policy) -> bool:
    """The second frame settles the doubt: a face after none; a clear face after an
    unclear one; the registered student after a turned stranger."""
    if doubt == "no_face":
        return bool(second.faces)
    main = main_face(second.faces)
    if main is None:
        return False
    if doubt == "not_clear":
        return face_clear(main, policy) is True
    return doubt == "turned" and second.identity == "match"


async def enrolment_view(
    s3: Any, engine: Engine, settings: Settings, event: ChunkEvent
) -> FrameAnalysis | None:
    """The engine's local view of the student's registration frame, if one is kept
    (``proctoring.enrolment``): the schedule's first identity check."""
    try:
        async with asyncio.timeout(settings.call_timeout):
            frame = await read_frame(
                s3, settings.names.frames_bucket, event.exam_id, event.student_id
            )
    except TimeoutError:
        _log.warning("enrolment frame unreadable", error="TimeoutError")
        return None
    if frame is None:
        return None
    try:
        return await engine.describe(frame)
    except ImageError as exc:
        _log.warning("enrolment frame unusable", reason=exc.reason)
        return None
