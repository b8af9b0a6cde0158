"""The local analysis engine: dlib faces in a process pool, a face collection in DynamoDB.

It stands where Rekognition stands in AWS (``DetectFaces`` +
``SearchFacesByImage`` / ``IndexFaces``) and answers the same questions for
the rules: how many faces, and does one of them belong to the registered
student. CPU work (decoding, detection, embeddings) runs in the executor it
is given, never on the event loop. Embeddings are biometric data: they are
stored in the faces table only and never logged.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from proctoring.analysis.faces import Face, detect_faces, face_distance, registration_face
from proctoring.rules import Identity
from proctoring.storage import Tables

__all__ = ["Analysis", "LocalEngine"]


@dataclass(frozen=True)
class Analysis:
    """What the rules need from one frame."""

    faces: tuple[Face, ...]
    identity: Identity
    distance: float | None  # best (smallest) distance to the registered face
    width: int
    height: int

    def summary(self) -> dict[str, Any]:
        """Result-row fields: counts, boxes and the distance; never the embeddings."""
        return {
            "faces": len(self.faces),
            "boxes": [list(f.box) for f in self.faces],
            "identity": self.identity,
            "distance": None if self.distance is None else round(self.distance, 4),
            "frame_width": self.width,
            "frame_height": self.height,
        }


def _encode(embedding: tuple[float, ...]) -> bytes:
    return np.asarray(embedding, dtype=np.float32).tobytes()


def _decode(blob: bytes) -> tuple[float, ...]:
    return tuple(float(x) for x in np.frombuffer(blob, dtype=np.float32))


class LocalEngine:
    """Face detection and identity against the registered face of each student."""

    name = "local"

    def __init__(
        self,
        tables: Tables,
        executor: Executor,
        *,
        threshold: float = 0.6,
        upsample: int = 1,
    ) -> None:
        self._tables = tables
        self._executor = executor
        self._threshold = threshold
        self._upsample = upsample

    async def register(self, exam_id: str, student_id: str, photo: bytes) -> Face:
        """Store the student's face; RegistrationError when the photo has not exactly one face."""
        loop = asyncio.get_running_loop()
        face: Face = await loop.run_in_executor(self._executor, registration_face, photo)
        await self._tables.put_face(
            {
                "exam_id": exam_id,
                "student_id": student_id,
                "embedding": _encode(face.embedding),
                "engine": self.name,
                "registered_at": datetime.now(UTC).isoformat(),
            }
        )
        return face

    async def analyse(self, exam_id: str, student_id: str, jpeg: bytes) -> Analysis:
        loop = asyncio.get_running_loop()
        found, reference = await asyncio.gather(
            loop.run_in_executor(self._executor, _detect, jpeg, self._upsample),
            self._tables.get_face(exam_id, student_id),
        )
        identity: Identity
        distance: float | None = None
        if reference is None:
            identity = "unregistered"
        elif not found.faces:
            identity = "unknown"
        else:
            registered = _decode(bytes(reference["embedding"]))
            distance = min(face_distance(f.embedding, registered) for f in found.faces)
            identity = "match" if distance <= self._threshold else "mismatch"
        return Analysis(found.faces, identity, distance, found.width, found.height)


def _detect(jpeg: bytes, upsample: int) -> Any:
    return detect_faces(jpeg, upsample=upsample)
