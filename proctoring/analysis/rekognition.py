"""The Rekognition engine: the same questions as the local engine, asked of AWS.

- faces: ``DetectFaces`` with ``Attributes=["ALL"]`` - box, pose, ``EyeDirection``,
  eyes and mouth open, sunglasses, quality;
- identity: ``SearchFacesByImage`` against the collection; the student's
  FaceIds (from ``IndexFaces`` at registration: the photo's, and those of the camera
  frames enrolled beside it, see ``analysis.collection``) are kept in the faces
  table, and the frame matches when any of them is among the matches at or above
  the similarity threshold (the best similarity is reported). Rekognition searches
  with the largest face of the frame;
- objects and people: ``DetectLabels``; ``Person`` instances are the people in
  view, face or not; every other label is kept with its confidence and the
  rules pick the prohibited ones.

Every call goes through the worker's :class:`~proctoring.analysis.budget.Budget`
(per-API concurrency, a share of the account's requests per second, backoff on
throttling). With a ``gate`` (the local engine's face description, free but for
CPU), DetectFaces is skipped when the plan allows it and the local view of the faces
has not changed since the last frame DetectFaces saw.

Gaze comes from ``EyeDirection``: beyond ``eye_limit`` degrees of yaw it is
``left``/``right`` (negative yaw is taken as the image's left, like head yaw), of
pitch ``up``/``down``.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image

from proctoring.analysis.base import (
    NAIVE,
    DetectedObject,
    FaceDetail,
    FrameAnalysis,
    Gaze,
    Identity,
    Plan,
    RegisteredFace,
)
from proctoring.analysis.budget import Budget
from proctoring.analysis.collection import FaceCollection, face_ids
from proctoring.analysis.faces import check_frame_count
from proctoring.analysis.scheduling import identity_wanted, signature, signature_changed
from proctoring.storage import Tables

__all__ = ["RekognitionEngine", "face_detail"]

Box = tuple[int, int, int, int]


def _box(box: Mapping[str, float], width: int, height: int) -> tuple[Box, bool]:
    """A Rekognition BoundingBox (ratios) as clipped pixels, and whether it was cut."""
    left, top = float(box.get("Left", 0.0)), float(box.get("Top", 0.0))
    right = left + float(box.get("Width", 0.0))
    bottom = top + float(box.get("Height", 0.0))
    partial = left < 0 or top < 0 or right > 1 or bottom > 1
    x0, y0 = max(left, 0.0) * width, max(top, 0.0) * height
    x1, y1 = min(right, 1.0) * width, min(bottom, 1.0) * height
    return (round(x0), round(y0), round(max(x1 - x0, 0)), round(max(y1 - y0, 0))), partial


def _flag(detail: Mapping[str, Any], name: str) -> bool | None:
    value = detail.get(name)
    return None if value is None else bool(value.get("Value"))


def _gaze(direction: Mapping[str, Any] | None, limit: float) -> Gaze | None:
    if not direction:
        return None
    yaw, pitch = float(direction.get("Yaw", 0.0)), float(direction.get("Pitch", 0.0))
    if abs(yaw) >= abs(pitch) and abs(yaw) > limit:
        return "left" if yaw < 0 else "right"
    if abs(pitch) > limit:
        return "up" if pitch > 0 else "down"
    return "center"


def face_detail(detail: Mapping[str, Any], width: int, height: int, eye_limit: float) -> FaceDetail:
    """One element of DetectFaces' ``FaceDetails`` as a :class:`FaceDetail`."""
    box, partial = _box(detail.get("BoundingBox", {}), width, height)
    pose = detail.get("Pose", {})
    quality = detail.get("Quality", {})
    return FaceDetail(
        box=box,
        confidence=detail.get("Confidence"),
        yaw=pose.get("Yaw"),
        pitch=pose.get("Pitch"),
        roll=pose.get("Roll"),
        gaze=_gaze(detail.get("EyeDirection"), eye_limit),
        eyes_open=_flag(detail, "EyesOpen"),
        mouth_open=_flag(detail, "MouthOpen"),
        sunglasses=_flag(detail, "Sunglasses"),
        brightness=quality.get("Brightness"),
        sharpness=quality.get("Sharpness"),
        partial=partial,
    )


class RekognitionEngine:
    """See the module docstring. ``client`` is an aiobotocore Rekognition client."""

    name = "rekognition"
    objects_available = True

    def __init__(
        self,
        client: Any,
        tables: Tables,
        budget: Budget,
        *,
        collection_id: str,
        similarity: float = 90.0,
        eye_limit: float = 15.0,
        min_confidence: float = 60.0,
        gate: Callable[[bytes], Awaitable[FrameAnalysis]] | None = None,
    ) -> None:
        self._client = client
        self._tables = tables
        self._budget = budget
        self._collection = collection_id
        self._similarity = similarity
        self._eye_limit = eye_limit
        self._min_confidence = min_confidence
        self._gate = gate
        self._faces = FaceCollection(client, budget, collection_id, similarity)

    async def register(
        self, exam_id: str, student_id: str, photo: bytes, frames: Sequence[bytes] = ()
    ) -> RegisteredFace:
        """IndexFaces the photo (exactly one face) and the camera ``frames`` that show the
        photo's person (``analysis.collection``); keep their FaceIds with the student and
        delete those of an earlier registration. RegistrationError as the local engine's
        (``no_face``, ``frames_mismatch``, ...), with nothing left in the collection."""
        check_frame_count(frames)
        enrolment = await self._faces.enrol(f"{exam_id}:{student_id}", photo, frames)
        face = enrolment.photo
        item: dict[str, Any] = {
            "exam_id": exam_id,
            "student_id": student_id,
            "face_id": face["FaceId"],
            "engine": self.name,
            "collection_id": self._collection,
            "registered_at": datetime.now(UTC).isoformat(),
        }
        if enrolment.frame_face_ids:
            item["frame_face_ids"] = list(enrolment.frame_face_ids)
        try:
            previous = await self._tables.get_face(exam_id, student_id)
            await self._tables.put_face(item)
        except BaseException:
            await self._faces.delete(enrolment.face_ids)  # not stored: not kept either
            raise
        await self._faces.delete([f for f in face_ids(previous) if f not in enrolment.face_ids])
        width, height = _size(photo)
        box, _ = _box(face.get("BoundingBox", {}), width, height)
        return RegisteredFace(
            box=box, face_id=face["FaceId"], frames_enrolled=len(enrolment.frame_face_ids)
        )

    async def describe(self, jpeg: bytes) -> FrameAnalysis | None:
        """The local gate's view of the faces; None without a gate."""
        return None if self._gate is None else await self._gate(jpeg)

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        width, height = _size(jpeg)
        faces: tuple[FaceDetail, ...] = ()
        calls = {"DetectFaces": 0, "SearchFacesByImage": 0, "DetectLabels": 0}
        sig = None
        thumbs = None
        confirm = plan.faces
        if plan.faces and self._gate is not None:
            local = await self._gate(jpeg)
            sig = signature(local.faces)
            thumbs = local.face_thumbs
            if plan.confirm == "if_changed" and not signature_changed(plan.confirmed, sig):
                faces, confirm = local.faces, False  # nothing DetectFaces could add
        if confirm:
            response = await self._budget.call(
                "DetectFaces",
                lambda: self._client.detect_faces(Image={"Bytes": jpeg}, Attributes=["ALL"]),
            )
            calls["DetectFaces"] += 1
            faces = tuple(
                face_detail(d, width, height, self._eye_limit)
                for d in response.get("FaceDetails", [])
            )
        boxes = tuple(b for b, _, _ in sig) if sig is not None else tuple(f.box for f in faces)
        wanted = identity_wanted(plan, boxes, thumbs)
        identity: Identity = "unchecked"
        similarity: float | None = None
        if wanted:
            reference = await self._tables.get_face(exam_id, student_id)
            if reference is None or not reference.get("face_id"):
                identity = "unregistered"
            elif not faces:
                identity = "unknown"
            else:
                calls["SearchFacesByImage"] += 1
                enrolled = {str(reference["face_id"]), *(reference.get("frame_face_ids") or ())}
                identity, similarity = await self._search(jpeg, enrolled)
        persons: int | None = None
        objects: tuple[DetectedObject, ...] = ()
        if plan.objects:
            calls["DetectLabels"] += 1
            persons, objects = await self._labels(jpeg, width, height)
        return FrameAnalysis(
            faces=faces,
            identity=identity,
            width=width,
            height=height,
            similarity=similarity,
            persons=persons,
            objects=objects,
            objects_status="checked" if plan.objects else "skipped",
            calls=calls,
            signature=sig,
            face_thumbs=thumbs,
        )

    async def _search(self, jpeg: bytes, enrolled: set[str]) -> tuple[Identity, float | None]:
        """A match when any of the student's FaceIds (photo, frames) is among the matches;
        the best of their similarities."""
        try:
            response = await self._budget.call(
                "SearchFacesByImage",
                lambda: self._client.search_faces_by_image(
                    CollectionId=self._collection,
                    Image={"Bytes": jpeg},
                    MaxFaces=10,
                    FaceMatchThreshold=self._similarity,
                    QualityFilter="NONE",
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidParameterException":
                return "unknown", None  # no face Rekognition can search with
            raise
        similarities = [
            float(match.get("Similarity", 0.0))
            for match in response.get("FaceMatches", [])
            if match.get("Face", {}).get("FaceId") in enrolled
        ]
        return ("match", max(similarities)) if similarities else ("mismatch", None)

    async def _labels(
        self, jpeg: bytes, width: int, height: int
    ) -> tuple[int, tuple[DetectedObject, ...]]:
        response = await self._budget.call(
            "DetectLabels",
            lambda: self._client.detect_labels(
                Image={"Bytes": jpeg}, MaxLabels=50, MinConfidence=self._min_confidence
            ),
        )
        persons = 0
        objects: list[DetectedObject] = []
        for label in response.get("Labels", []):
            name = label.get("Name", "")
            instances = [
                i
                for i in label.get("Instances", [])
                if float(i.get("Confidence", 0.0)) >= self._min_confidence
            ]
            if name == "Person":
                persons = len(instances)
                continue
            if instances:
                objects.extend(
                    DetectedObject(
                        name,
                        float(i.get("Confidence", 0.0)),
                        _box(i.get("BoundingBox", {}), width, height)[0],
                    )
                    for i in instances
                )
            else:
                objects.append(DetectedObject(name, float(label.get("Confidence", 0.0))))
        return persons, tuple(objects)


def _size(image: bytes) -> tuple[int, int]:
    """Width and height from the image header (nothing decoded)."""
    with Image.open(io.BytesIO(image)) as opened:
        return opened.size
