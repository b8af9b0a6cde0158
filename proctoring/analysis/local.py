"""The local analysis engine: dlib in a process pool, the face collection in DynamoDB.

It stands where Rekognition stands in AWS and answers the same questions:
faces with head pose, gaze, eyes, mouth and quality (``DetectFaces``),
identity against the registered face (``SearchFacesByImage`` /
``IndexFaces``; here the 128-d embedding in the faces table), objects and
people (``DetectLabels``; here an optional ONNX model, see
``analysis.objects``). CPU work runs in the executor it is given, never on
the event loop. Embeddings are biometric data: stored in the faces table
only, never logged.

**Enrolment.** Registration keeps the photo's embedding and, when given,
those of several frames from the student's own camera at exam start (one
faces item: erasing it erases them all). A frame is identity-checked against
the closest enrolled face, so a registration photo unlike today's webcam
image (another year, light, pose) no longer accuses an honest student
(docs/benchmarks.md, "Identity: error rates": photo pairs fail 18 %, frame
pairs 0.75 %). Frames are enrolled only when their median distance to the
photo is within ``enrol_threshold`` (looser than the match threshold: the
development half's threshold for photo pairs), so the person at the camera
cannot enrol themselves over someone else's photo.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from statistics import median

import numpy as np

from proctoring.analysis.base import NAIVE, FrameAnalysis, Identity, Plan, RegisteredFace
from proctoring.analysis.describe import LocalFrame, describe_frame
from proctoring.analysis.faces import (
    Detection,
    Face,
    check_frame_count,
    enrolment_faces,
    face_distance,
    frames_mismatch,
    registration_face,
)
from proctoring.analysis.objects import DetectorConfig
from proctoring.analysis.scheduling import signature, signature_changed
from proctoring.storage import Tables

__all__ = ["LocalEngine"]


def _encode(embedding: tuple[float, ...]) -> bytes:
    return np.asarray(embedding, dtype=np.float32).tobytes()


def _decode(blob: bytes) -> tuple[float, ...]:
    return tuple(float(x) for x in np.frombuffer(blob, dtype=np.float32))


class LocalEngine:
    """Faces, pose, gaze, quality and identity with dlib; objects with an optional ONNX model."""

    name = "local"

    def __init__(
        self,
        tables: Tables,
        executor: Executor,
        *,
        threshold: float = 0.54,
        enrol_threshold: float = 0.62,
        upsample: int = 1,
        detection: Detection = "regions",
        gaze_offset: float = 0.11,
        detector: DetectorConfig | None = None,
    ) -> None:
        self._tables = tables
        self._executor = executor
        self._threshold = threshold
        self._enrol_threshold = enrol_threshold
        self._upsample = upsample
        self._detection: Detection = detection
        self._gaze_offset = gaze_offset
        self._detector = detector

    @property
    def objects_available(self) -> bool:
        return self._detector is not None

    async def register(
        self, exam_id: str, student_id: str, photo: bytes, frames: Sequence[bytes] = ()
    ) -> RegisteredFace:
        """Store the student's face, and of ``frames`` those that show it.

        RegistrationError when the photo has not exactly one face, when frames are given
        but none shows one face (``no_face``), or when the frames' face is not the
        photo's (``frames_mismatch``: median distance above ``enrol_threshold``).
        """
        check_frame_count(frames)
        loop = asyncio.get_running_loop()
        face: Face = await loop.run_in_executor(self._executor, registration_face, photo)
        enrolled: tuple[Face, ...] = ()
        if frames:
            enrolled = await loop.run_in_executor(self._executor, enrolment_faces, tuple(frames))
            if median(face_distance(f.embedding, face.embedding) for f in enrolled) > (
                self._enrol_threshold
            ):
                raise frames_mismatch()
        item = {
            "exam_id": exam_id,
            "student_id": student_id,
            "embedding": _encode(face.embedding),
            "engine": self.name,
            "registered_at": datetime.now(UTC).isoformat(),
        }
        if enrolled:
            item["frames"] = [_encode(f.embedding) for f in enrolled]
        await self._tables.put_face(item)
        return RegisteredFace(box=face.box, frames_enrolled=len(enrolled))

    async def describe(self, jpeg: bytes) -> FrameAnalysis:
        """Faces only (pose, gaze, quality, the schedule's crops), no identity, no objects:
        the cost gate, and the enrolment frame's view (``proctoring.enrolment``)."""
        return await self.analyse("", "", jpeg, Plan(identity="no", objects=False))

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        loop = asyncio.get_running_loop()
        job = functools.partial(
            describe_frame,
            jpeg,
            upsample=self._upsample,
            detection=self._detection,
            identity=plan.identity,
            previous_faces=plan.previous_faces,
            identity_faces=plan.identity_faces,
            face_change_above=plan.face_change_above,
            gaze_offset=self._gaze_offset,
            detector=self._detector if plan.objects else None,
        )
        if plan.identity == "no":
            found: LocalFrame = await loop.run_in_executor(self._executor, job)
            reference = None
        else:
            found, reference = await asyncio.gather(
                loop.run_in_executor(self._executor, job),
                self._tables.get_face(exam_id, student_id),
            )
        identity: Identity
        distance: float | None = None
        checked = found.embeddings is not None
        if not checked:
            identity = "unchecked"
        elif reference is None:
            identity = "unregistered"
        elif not found.faces or not found.embeddings:
            identity = "unknown"
        else:
            enrolled = [_decode(bytes(reference["embedding"]))]
            enrolled += [_decode(bytes(blob)) for blob in reference.get("frames") or ()]
            distance = min(
                face_distance(e, registered) for e in found.embeddings for registered in enrolled
            )
            identity = "match" if distance <= self._threshold else "mismatch"
        if not plan.objects:
            status = "skipped"
        elif self._detector is None:
            status = "unavailable"
        else:
            status = "checked"
        sig = signature(found.faces)
        confirmed = plan.confirm == "always" or signature_changed(plan.confirmed, sig)
        return FrameAnalysis(
            faces=found.faces,
            identity=identity,
            width=found.width,
            height=found.height,
            distance=distance,
            threshold=self._threshold if distance is not None else None,
            persons=found.persons,
            objects=found.objects or (),
            objects_status=status,  # type: ignore[arg-type]
            calls=plan.calls(len(found.faces), checked and reference is not None, confirmed),
            signature=sig,
            face_thumbs=found.face_thumbs,
        )
