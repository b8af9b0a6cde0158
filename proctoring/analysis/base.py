"""The analysis interface: what an engine is asked, what it answers, what it costs.

Two engines implement :class:`Engine`: the local one (dlib in a process pool,
``analysis.local``) and Rekognition (``analysis.rekognition``). The consumer
only sees this module's types, so switching engine is one setting
(``PROCTOR_ENGINE``).

A :class:`Plan` says which of the three questions to answer for a frame -
faces (with pose, eyes, mouth, quality), identity, objects and people - and
:func:`Plan.calls` prices it in Rekognition API calls, whichever engine runs
it: the cost of the schedule is measured the same way in both modes.

Errors::

    ProctoringError
     └── AnalysisError        an engine could not analyse a frame (after retries)
          └── Throttled       Rekognition kept throttling past the retry budget
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from proctoring.errors import ProctoringError

__all__ = [
    "API_NAMES",
    "NAIVE",
    "AnalysisError",
    "DetectedObject",
    "Engine",
    "FaceDetail",
    "FrameAnalysis",
    "Gaze",
    "Identity",
    "ObjectsStatus",
    "Plan",
    "Registered",
    "RegisteredFace",
    "Signature",
    "Throttled",
]

Identity = Literal["match", "mismatch", "unknown", "unregistered", "unchecked"]
"""``unknown``: no face to compare; ``unchecked``: the plan did not ask."""
Gaze = Literal["center", "left", "right", "up", "down"]
ObjectsStatus = Literal["checked", "skipped", "unavailable"]
"""``skipped``: the plan did not ask; ``unavailable``: the engine cannot (no detector)."""

API_NAMES = ("DetectFaces", "SearchFacesByImage", "DetectLabels")
"""The Rekognition calls one frame can cost; the naive plan makes all three per chunk."""


class AnalysisError(ProctoringError):
    """An engine could not analyse a frame after its retries."""


class Throttled(AnalysisError):
    """Rekognition kept answering ThrottlingException / ProvisionedThroughputExceeded."""


Signature = tuple[tuple[tuple[int, int, int, int], bool | None, bool | None], ...]
"""Per face, as the local detector sees it: (box, looking away, clear). Two frames with the
same signature (same count, boxes within ``faces_changed``'s tolerance, same flags) cannot
change what the face rules conclude."""


@dataclass(frozen=True)
class Plan:
    """Which analyses to run on one frame.

    ``confirm`` is ``"always"`` (pay for DetectFaces) or ``"if_changed"``: only when the
    local detector's :data:`Signature` differs from ``confirmed`` (the signature of the
    last frame DetectFaces saw); otherwise the local faces stand. ``identity`` is
    ``"yes"``, ``"no"`` or ``"if_changed"``: compare with the registered face only when
    the faces differ from ``previous_faces`` (count, place or size) or a face's content
    differs from ``identity_faces`` (its crop at the last identity check) by more than
    ``face_change_above`` (``scheduling.identity_wanted``). ``objects``: look
    for objects and count people.
    """

    faces: bool = True
    confirm: Literal["always", "if_changed"] = "always"
    confirmed: Signature | None = None
    identity: Literal["yes", "no", "if_changed"] = "yes"
    objects: bool = True
    previous_faces: tuple[tuple[int, int, int, int], ...] | None = None
    identity_faces: tuple[bytes, ...] | None = None
    face_change_above: float = 0.0

    def calls(self, faces_found: int, identity_checked: bool, confirmed: bool) -> dict[str, int]:
        """Rekognition calls this plan costs, given what the frame showed."""
        return {
            "DetectFaces": int(self.faces and confirmed),
            "SearchFacesByImage": int(identity_checked and faces_found > 0),
            "DetectLabels": int(self.objects),
        }


NAIVE = Plan()


@dataclass(frozen=True)
class FaceDetail:
    """One face: where it is, where it looks, how clear it is."""

    box: tuple[int, int, int, int]
    """Left, top, width, height in pixels of the analysed image."""
    confidence: float | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    gaze: Gaze | None = None
    gaze_ratio: float | None = None
    """Local engine: horizontal pupil position, 0 image-left .. 1 image-right."""
    eyes_open: bool | None = None
    mouth_open: bool | None = None
    sunglasses: bool | None = None
    brightness: float | None = None
    """0-100 (Rekognition's Quality scale)."""
    sharpness: float | None = None
    partial: bool = False
    """The face is cut by the frame's border."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            **{
                name: getattr(self, name)
                for name in (
                    "confidence",
                    "yaw",
                    "pitch",
                    "roll",
                    "gaze",
                    "gaze_ratio",
                    "eyes_open",
                    "mouth_open",
                    "sunglasses",
                    "brightness",
                    "sharpness",
                    "partial",
                )
                if getattr(self, name) is not None
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceDetail:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["box"] = tuple(int(v) for v in data["box"])
        return cls(**values)


@dataclass(frozen=True)
class DetectedObject:
    """An object of interest, named as Rekognition's DetectLabels names it."""

    label: str
    confidence: float
    """0-100."""
    box: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label, "confidence": round(self.confidence, 1)}
        if self.box is not None:
            data["box"] = list(self.box)
        return data


@dataclass(frozen=True)
class FrameAnalysis:
    """What one frame showed, and what it cost."""

    faces: tuple[FaceDetail, ...]
    identity: Identity
    width: int
    height: int
    distance: float | None = None
    """Local engine: embedding distance to the registered face (< threshold = match)."""
    threshold: float | None = None
    """Local engine: the distance above which the face is someone else's (with ``distance``)."""
    similarity: float | None = None
    """Rekognition: similarity (0-100) of the registered face, when it matched."""
    persons: int | None = None
    """People in view counted by the object detector (faces or not); None: not counted."""
    objects: tuple[DetectedObject, ...] = ()
    objects_status: ObjectsStatus = "skipped"
    calls: dict[str, int] = field(default_factory=dict)
    """Rekognition calls made (AWS) or that the same plan would make (local)."""
    signature: Signature | None = None
    """The local detector's view of the faces (the cost gate's); None without one."""
    face_thumbs: tuple[bytes, ...] | None = None
    """Per face, in box order, the local crop the schedule compares (``face_thumbnail``);
    None without a local view of the faces. Not in :meth:`summary`: the schedule keeps it."""

    @property
    def margin(self) -> float | None:
        """How far the distance lies from the threshold: positive on the mismatch side."""
        if self.distance is None or self.threshold is None:
            return None
        return round(float(self.distance) - float(self.threshold), 4)

    def summary(self) -> dict[str, Any]:
        """Result-row fields; never embeddings."""
        return {
            "faces": len(self.faces),
            "boxes": [list(f.box) for f in self.faces],
            "face_details": [f.to_dict() for f in self.faces],
            "identity": self.identity,
            "distance": None if self.distance is None else round(self.distance, 4),
            "threshold": self.threshold if self.distance is not None else None,
            "margin": self.margin,
            "similarity": None if self.similarity is None else round(self.similarity, 2),
            "persons": self.persons,
            "objects": [o.to_dict() for o in self.objects],
            "objects_status": self.objects_status,
            "frame_width": self.width,
            "frame_height": self.height,
            "calls": dict(self.calls),
        }

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> FrameAnalysis:
        """Rebuild from :meth:`summary` (a stored result, carried to a repeated frame)."""
        return cls(
            faces=tuple(FaceDetail.from_dict(f) for f in data.get("face_details", [])),
            identity=data.get("identity", "unchecked"),
            width=int(data.get("frame_width", 0)),
            height=int(data.get("frame_height", 0)),
            distance=data.get("distance"),
            threshold=data.get("threshold"),
            similarity=data.get("similarity"),
            persons=data.get("persons"),
            objects=tuple(
                DetectedObject(
                    o["label"],
                    float(o["confidence"]),
                    _box(o["box"]) if o.get("box") else None,
                )
                for o in data.get("objects", [])
            ),
            objects_status=data.get("objects_status", "skipped"),
            calls={},
        )


def _box(values: Any) -> tuple[int, int, int, int]:
    left, top, width, height = (int(v) for v in values)
    return (left, top, width, height)


@dataclass(frozen=True)
class RegisteredFace:
    """The face a registration photo gave."""

    box: tuple[int, int, int, int]
    face_id: str | None = None
    """Rekognition's FaceId of the photo in the collection; None for the local engine."""
    frames_enrolled: int = 0
    """Camera frames kept beside the photo (identity = the closest, or any match)."""


class Registered(Protocol):
    """What registration answers: at least where the face is in the photo."""

    @property
    def box(self) -> tuple[int, int, int, int]: ...

    @property
    def frames_enrolled(self) -> int: ...


class Engine(Protocol):
    """An analysis engine (see the module docstring)."""

    name: str

    @property
    def objects_available(self) -> bool:
        """True when the engine can look for objects and count people."""
        ...

    async def register(
        self, exam_id: str, student_id: str, photo: bytes, frames: Sequence[bytes] = ()
    ) -> Registered:
        """Store the student's face; RegistrationError when the photo is unusable.

        ``frames``: camera frames taken at exam start, kept beside the photo when they
        show the photo's person (``frames_enrolled`` says how many were kept)."""
        ...

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        """Analyse one upright JPEG frame as the plan says."""
        ...

    async def describe(self, jpeg: bytes) -> FrameAnalysis | None:
        """The local detector's view of a frame's faces (boxes, the schedule's crops), at no
        call's cost; None when the engine has no local view. ImageError for bytes that are
        not an image."""
        ...
