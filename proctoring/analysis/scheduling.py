"""Cost-aware scheduling: pay only for what can have changed.

Per student and source, before a frame is analysed, :func:`decide` looks at
the schedule's state and the frame's thumbnail and answers with a
:class:`Decision`:

- **repeat**: the frame is nearly identical to the last analysed one (no 4x4
  cell of their 32x32 grey thumbnails differs by ``similar_below`` grey levels
  or more on average): nothing is analysed and the last analysis is carried
  over - at most ``max_repeats`` chunks in a row, and never on the chunk that would
  raise a LOOKING_AWAY alert (``due``, :data:`_FRESH_RULES`): a look is confirmed on a
  frame of its own, so its alert rests on two analysed frames at least (its first
  chunk's and its last), never on one frame carried over;
- otherwise faces are analysed, and Rekognition's **DetectFaces** is paid for
  only when the local detector's view of the faces (:data:`Signature`: count,
  boxes, looking away, clear) changed since the last frame DetectFaces saw,
  every ``faces_every``-th chunk, or while a face rule is pending, i.e. before
  its alert is raised (the plan's ``confirm``; the local engine counts what it
  would have paid);
- **identity** is checked on the first analysed chunk (unless the schedule starts
  from the registration's camera frame, :meth:`ScheduleState.enrolled`: then the first
  chunk is compared with that frame's face as with a checked one), every
  ``identity_every``-th chunk, while a FACE_MISMATCH or FACE_NOT_CLEAR streak
  is pending (not yet alerted), and whenever the faces changed since the last
  identity check (the plan's ``if_changed``, decided by the engine once it has
  found the faces, :func:`identity_wanted`): in count, place or size, or in
  *content* - a face's crop (``likeness.face_thumbnail``: a contrast-normalised grey
  crop and a colour histogram) differs from the one at the last identity check by more
  than ``face_change_above`` (``likeness.face_difference``). Someone
  else taking the seat in the same place changes the content, not the box;
  the threshold is chosen on one half of the people of ``../shared/data``
  (``python -m bench.face_change``, docs/operations.md "Identity re-checks");
- **objects** (and people) are looked for every ``objects_every``-th chunk
  from the session's start, or on every chunk while the student is flagged
  (a MULTIPLE_FACES, LOOKING_AWAY or object rule pending or open).

Everything here is pure: state in, state out. The consumer stores the state
with the student's session.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from proctoring.analysis.base import FaceDetail, Plan, Signature
from proctoring.analysis.likeness import (
    FACE_CHANGE_ABOVE,
    faces_content_changed,
    frame_difference,
)

__all__ = [
    "Cadence",
    "Decision",
    "ScheduleState",
    "advance",
    "decide",
    "faces_changed",
    "identity_wanted",
    "signature",
    "signature_changed",
]

Box = tuple[int, int, int, int]
_IDENTITY_RULES = frozenset({"FACE_MISMATCH", "FACE_NOT_CLEAR"})
_FACE_RULES = frozenset(
    {"NO_FACE", "MULTIPLE_FACES", "FACE_MISMATCH", "LOOKING_AWAY", "FACE_NOT_CLEAR"}
)
_FRESH_RULES = frozenset({"LOOKING_AWAY"})
"""Rules whose alert is never raised on a carried-over analysis: a line of sight near the
limit on one frame (the pose estimate moves ~2° with the face's box) must not fill the
rule's three-chunk tolerance alone by being carried over to the identical chunks after
it. Only the chunk that would raise the alert is analysed again: re-analysing every
pending chunk cost 2.8 % of the naive plan's calls on the people suite (honest photos of
turned faces, held two chunks), the last one nothing there."""
_OBJECT_TRIGGERS = frozenset(
    {"EXTRA_PERSON", "PROHIBITED_OBJECT", "MULTIPLE_FACES", "LOOKING_AWAY"}
)
"""Pending rules that make objects be looked for on every chunk (a second person, a
student looking away - at a phone?)."""


@dataclass(frozen=True)
class Cadence:
    """How often each question is asked (chunks); from the settings."""

    faces_every: int = 12
    identity_every: int = 12
    objects_every: int = 6
    similar_below: float = 3.0
    max_repeats: int = 6
    face_change_above: float = FACE_CHANGE_ABOVE


@dataclass(frozen=True)
class ScheduleState:
    """Where the schedule stands for one student and source."""

    last_sequence: int = -1
    thumb: bytes | None = None
    repeats: int = 0
    analysed_sequence: int = -1
    """The chunk whose analysis a repeat carries over."""
    identity_sequence: int = -1
    objects_sequence: int = -1
    boxes: tuple[Box, ...] | None = None
    faces_sequence: int = -1
    """The last chunk DetectFaces saw (or would have, locally)."""
    confirmed: Signature | None = None
    """The local signature of that chunk."""
    identity_faces: tuple[bytes, ...] | None = None
    """The :func:`face_thumbnail` of each face at the last identity check (box order);
    None: unknown (never checked, or the engine has no local view of the faces)."""

    @classmethod
    def enrolled(cls, boxes: tuple[Box, ...], face_thumbs: tuple[bytes, ...]) -> ScheduleState:
        """The state before the first chunk, seeded with the registration's camera frame.

        Registration compared that face with the photo moments before recording began:
        it stands as the last identity check, with no chunk number of its own
        (``identity_sequence`` stays -1, so the cadence counts from chunk -1).
        """
        return cls(boxes=boxes, identity_faces=face_thumbs)

    @property
    def identity_known(self) -> bool:
        """True once identity was checked on a chunk or seeded by the registration."""
        return self.identity_sequence >= 0 or self.identity_faces is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_sequence": self.last_sequence,
            "thumb": self.thumb,
            "repeats": self.repeats,
            "analysed_sequence": self.analysed_sequence,
            "identity_sequence": self.identity_sequence,
            "objects_sequence": self.objects_sequence,
            "boxes": None if self.boxes is None else [list(b) for b in self.boxes],
            "faces_sequence": self.faces_sequence,
            "confirmed": None
            if self.confirmed is None
            else [[list(box), away, clear] for box, away, clear in self.confirmed],
            "identity_faces": None
            if self.identity_faces is None
            else [bytes(t) for t in self.identity_faces],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ScheduleState:
        if not data:
            return cls()
        boxes = data.get("boxes")
        thumb = data.get("thumb")
        return cls(
            last_sequence=int(data.get("last_sequence", -1)),
            thumb=bytes(thumb) if thumb is not None else None,
            repeats=int(data.get("repeats", 0)),
            analysed_sequence=int(data.get("analysed_sequence", -1)),
            identity_sequence=int(data.get("identity_sequence", -1)),
            objects_sequence=int(data.get("objects_sequence", -1)),
            boxes=None if boxes is None else tuple(_box(b) for b in boxes),
            faces_sequence=int(data.get("faces_sequence", -1)),
            confirmed=None
            if data.get("confirmed") is None
            else tuple((_box(b), a, c) for b, a, c in data["confirmed"]),
            identity_faces=None
            if data.get("identity_faces") is None
            else tuple(bytes(t) for t in data["identity_faces"]),
        )


def _box(values: Any) -> Box:
    left, top, width, height = (int(v) for v in values)
    return (left, top, width, height)


@dataclass(frozen=True)
class Decision:
    repeat: bool
    plan: Plan = field(default_factory=Plan)
    difference: float | None = None


def identity_wanted(
    plan: Plan, boxes: tuple[Box, ...], face_thumbs: tuple[bytes, ...] | None
) -> bool:
    """Whether a frame whose faces are ``boxes`` (crops ``face_thumbs``) needs identity checked.

    ``if_changed``: when the faces moved, resized or changed in number since the last
    analysed frame, or a face's content changed since the last identity check.
    """
    if plan.identity != "if_changed":
        return plan.identity == "yes"
    return faces_changed(plan.previous_faces, boxes) or faces_content_changed(
        plan.identity_faces, face_thumbs, plan.face_change_above
    )


_PYRAMID_STEP = 6 / 5
"""dlib's HOG detector scans an image pyramid whose levels shrink by 5/6: the box of one
face still in one place jumps between sizes 1.2 apart (187, 224 and 269 px on one talking
head), by the detector's arithmetic, not by anything the student did."""
_RESIZED = _PYRAMID_STEP**2 * 1.04
"""A face resized by more than two pyramid levels (1.5x) moved towards or away from the
camera; within them, the box's jitter is no change (the face's content is still compared,
:func:`faces_content_changed`)."""


def faces_changed(previous: tuple[Box, ...] | None, boxes: tuple[Box, ...]) -> bool:
    """True when the faces differ: unknown before, another count, moved by more than half
    a face (the larger of the two boxes), or resized beyond the detector's jitter
    (:data:`_RESIZED`)."""
    if previous is None or len(previous) != len(boxes):
        return True
    for old, new in zip(sorted(previous), sorted(boxes), strict=True):
        old_side, new_side = max(old[2], old[3], 1), max(new[2], new[3], 1)
        shift = abs((old[0] + old[2] / 2) - (new[0] + new[2] / 2)) + abs(
            (old[1] + old[3] / 2) - (new[1] + new[3] / 2)
        )
        size = new_side / old_side
        if shift > 0.5 * max(old_side, new_side) or not 1 / _RESIZED <= size <= _RESIZED:
            return True
    return False


def signature(faces: tuple[FaceDetail, ...]) -> Signature:
    """The cost gate's view of the faces (default policy thresholds)."""
    from proctoring.rules import Policy, face_clear, looking_away  # rules import analysis

    policy = Policy()
    return tuple((f.box, looking_away(f, policy), face_clear(f, policy)) for f in faces)


def signature_changed(previous: Signature | None, current: Signature) -> bool:
    """True when the faces differ in count, place, size, gaze or clarity."""
    if previous is None or len(previous) != len(current):
        return True
    if faces_changed(tuple(b for b, _, _ in previous), tuple(b for b, _, _ in current)):
        return True
    return _flags(previous) != _flags(current)


def _flags(sig: Signature) -> list[tuple[bool | None, bool | None]]:
    return [(a, c) for _, a, c in sorted(sig, key=lambda item: item[0])]


def decide(
    state: ScheduleState,
    sequence: int,
    thumb: bytes | None,
    *,
    flagged: Collection[str] = (),
    pending: Collection[str] | None = None,
    cadence: Cadence = Cadence(),
    objects_wanted: bool = True,
    due: Collection[str] = (),
) -> Decision:
    """What to analyse for chunk ``sequence`` (see the module docstring).

    ``flagged`` names the rules with a pending streak or an open incident (objects are
    looked for on every chunk then); ``pending`` those not alerted yet (default: the
    flagged ones): their condition is confirmed on every chunk before an alert is
    raised, while an alert already raised is followed on the normal cadence and on
    change. ``objects_wanted`` is False when no enabled rule needs objects or people.
    ``due`` names the rules this chunk would raise an alert for if their condition holds
    (a pending streak one chunk short of its tolerance): for :data:`_FRESH_RULES` the
    chunk is analysed, not carried over.
    """
    pending = set(flagged if pending is None else pending)
    difference = None
    if state.thumb is not None and thumb is not None:
        difference = round(frame_difference(state.thumb, thumb), 2)
        if (
            difference < cadence.similar_below
            and state.repeats < cadence.max_repeats
            and state.analysed_sequence >= 0
            and not _FRESH_RULES & set(due)
        ):
            return Decision(repeat=True, difference=difference)
    if (
        not state.identity_known
        or sequence - state.identity_sequence >= cadence.identity_every
        or _IDENTITY_RULES & pending
    ):
        identity = "yes"
    else:
        identity = "if_changed"
    # One cadence from the session's start (its first look at chunk objects_every - 1):
    # the first minute is no likelier to show a phone than any other.
    objects = objects_wanted and (
        sequence - state.objects_sequence >= cadence.objects_every
        or bool(_OBJECT_TRIGGERS & set(flagged))
    )
    confirm = (
        "always"
        if state.faces_sequence < 0
        or sequence - state.faces_sequence >= cadence.faces_every
        or _FACE_RULES & pending
        else "if_changed"
    )
    plan = Plan(
        faces=True,
        confirm=confirm,  # type: ignore[arg-type]
        confirmed=state.confirmed,
        identity=identity,  # type: ignore[arg-type]
        objects=objects,
        previous_faces=state.boxes,
        identity_faces=state.identity_faces,
        face_change_above=cadence.face_change_above,
    )
    return Decision(repeat=False, plan=plan, difference=difference)


def advance(
    state: ScheduleState,
    sequence: int,
    thumb: bytes | None,
    decision: Decision,
    *,
    boxes: tuple[Box, ...] | None = None,
    identity_checked: bool = False,
    objects_checked: bool = False,
    faces_confirmed: bool = False,
    sig: Signature | None = None,
    face_thumbs: tuple[bytes, ...] | None = None,
) -> ScheduleState:
    """The state after chunk ``sequence`` was handled as ``decision`` said."""
    if sequence <= state.last_sequence:
        return state
    if decision.repeat:
        return replace(state, last_sequence=sequence, repeats=state.repeats + 1)
    return ScheduleState(
        last_sequence=sequence,
        thumb=thumb,
        repeats=0,
        analysed_sequence=sequence,
        identity_sequence=sequence if identity_checked else state.identity_sequence,
        objects_sequence=sequence if objects_checked else state.objects_sequence,
        boxes=boxes,
        faces_sequence=sequence if faces_confirmed else state.faces_sequence,
        confirmed=sig if faces_confirmed else state.confirmed,
        identity_faces=face_thumbs if identity_checked else state.identity_faces,
    )
