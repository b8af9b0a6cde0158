"""A student's faces in the Rekognition collection: enrolment, the FaceIds kept, deletion.

Registration indexes the photo (exactly one face) and each camera frame taken at
exam start (``IndexFaces``, ``MaxFaces=1``, ``QualityFilter=AUTO``, the same
``ExternalImageId`` ``exam:student``). A frame without one indexable face is
skipped, as the local engine skips it: none indexed, or a second face beside the
student (the indexed one is deleted again). Whether the frames show the photo's
person is asked of the collection without sending any image again: ``SearchFaces``
by each frame's FaceId at the engine's similarity threshold; the frame agrees when
the photo's FaceId is among the matches. When most frames do not agree,
registration is refused (``frames_mismatch``): the person at the camera cannot
enrol over someone else's photo. Otherwise the agreeing frames are kept and the
others deleted.

Nothing a refused or failed registration indexed stays in the collection: every
FaceId indexed so far is deleted before the error goes on. :func:`face_ids` lists
every FaceId a faces item names (the photo's, the frames', those of the enrolments
it superseded): what re-registration and erasure delete.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from proctoring.analysis.budget import Budget
from proctoring.analysis.faces import RegistrationError, frames_mismatch, no_face_in_frames

__all__ = ["Enrolment", "FaceCollection", "face_ids"]

SEARCH_LIMIT = 100
"""``MaxFaces`` of SearchFaces at enrolment. The photo must be among the answers, and
the frame's sibling frames (up to 7) and, on re-registration, the previous enrolment's
faces (up to 9, deleted once the new one is stored) may rank above it; the rest of the
collection is other students, rarely above the threshold."""


@dataclass(frozen=True)
class Enrolment:
    """What :meth:`FaceCollection.enrol` indexed and kept."""

    photo: Mapping[str, Any]
    """The photo's ``Face`` record: ``FaceId``, ``BoundingBox``."""
    frame_face_ids: tuple[str, ...] = ()
    """FaceIds of the camera frames that show the photo's person."""

    @property
    def face_ids(self) -> list[str]:
        return [str(self.photo["FaceId"]), *self.frame_face_ids]


def face_ids(item: Mapping[str, Any] | None) -> list[str]:
    """Every FaceId a faces item names: photo and frames, its superseded enrolments' too."""
    found: list[str] = []
    if not item:
        return found
    for entry in (item, *(item.get("superseded") or ())):
        for face_id in (entry.get("face_id"), *(entry.get("frame_face_ids") or ())):
            if face_id and str(face_id) not in found:
                found.append(str(face_id))
    return found


def _several(unindexed: Sequence[Mapping[str, Any]]) -> bool:
    return any("EXCEEDS_MAX_FACES" in u.get("Reasons", []) for u in unindexed)


class FaceCollection:
    """IndexFaces, SearchFaces and DeleteFaces on one collection, within the budget."""

    def __init__(self, client: Any, budget: Budget, collection_id: str, similarity: float) -> None:
        self._client = client
        self._budget = budget
        self._collection = collection_id
        self._similarity = similarity

    async def enrol(self, external_id: str, photo: bytes, frames: Sequence[bytes]) -> Enrolment:
        """Index the photo and the frames; RegistrationError leaves nothing indexed."""
        await self.ensure()
        indexed: list[str] = []
        try:
            records, unindexed = await self._index(
                external_id,
                photo,
                "the file is not a JPEG or PNG photo that can be read; take or upload a photo "
                "of yourself",
                indexed,
            )
            if _several(unindexed):
                raise RegistrationError(
                    f"found {len(records) + len(unindexed)} faces in the photo; it must show "
                    "only the student",
                    reason="several_faces",
                )
            if not records:
                raise RegistrationError(
                    "no usable face found in the photo; use a well-lit photo that shows your "
                    "face from the front",
                    reason="no_face",
                )
            photo_face = records[0]["Face"]
            kept = await self._enrol_frames(external_id, photo_face["FaceId"], frames, indexed)
        except BaseException:
            await self.delete(indexed)
            raise
        return Enrolment(photo_face, kept)

    async def _enrol_frames(
        self, external_id: str, photo_id: str, frames: Sequence[bytes], indexed: list[str]
    ) -> tuple[str, ...]:
        """The FaceIds of the frames that agree with the photo; ``frames_mismatch`` when
        fewer than half of those with one face agree (a tie enrols the agreeing half)."""
        candidates: list[str] = []
        dropped: list[str] = []
        for frame in frames:
            records, unindexed = await self._index(
                external_id,
                frame,
                "a camera frame is not a JPEG or PNG image that can be read",
                indexed,
            )
            ids = [str(r["Face"]["FaceId"]) for r in records]
            if ids and not _several(unindexed):
                candidates.append(ids[0])
            else:
                dropped += ids
        if frames and not candidates:
            raise no_face_in_frames(len(frames))
        agreeing = [c for c in candidates if photo_id in await self.matches(c)]
        if 2 * len(agreeing) < len(candidates):
            raise frames_mismatch()
        await self.delete([*dropped, *(c for c in candidates if c not in agreeing)])
        return tuple(agreeing)

    async def _index(
        self, external_id: str, image: bytes, unreadable: str, indexed: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """IndexFaces one image; its FaceIds are added to ``indexed`` at once."""
        try:
            response = await self._budget.call(
                "IndexFaces",
                lambda: self._client.index_faces(
                    CollectionId=self._collection,
                    Image={"Bytes": image},
                    ExternalImageId=external_id,
                    MaxFaces=1,
                    QualityFilter="AUTO",
                    DetectionAttributes=["DEFAULT"],
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidImageFormatException":
                raise RegistrationError(unreadable, reason="not_an_image") from exc
            raise
        records = list(response.get("FaceRecords", []))
        indexed += [str(r["Face"]["FaceId"]) for r in records]
        return records, list(response.get("UnindexedFaces", []))

    async def matches(self, face_id: str) -> set[str]:
        """The FaceIds SearchFaces finds for an indexed face at the similarity threshold."""
        response = await self._budget.call(
            "SearchFaces",
            lambda: self._client.search_faces(
                CollectionId=self._collection,
                FaceId=face_id,
                MaxFaces=SEARCH_LIMIT,
                FaceMatchThreshold=self._similarity,
            ),
        )
        return {str(m.get("Face", {}).get("FaceId")) for m in response.get("FaceMatches", [])}

    async def ensure(self) -> None:
        """Create the collection unless it exists (or the role may not: the stack made it)."""
        try:
            await self._budget.call(
                "CreateCollection",
                lambda: self._client.create_collection(CollectionId=self._collection),
            )
        except ClientError as exc:
            # The stack creates the collection (a custom resource); a role without
            # CreateCollection finds out from IndexFaces whether it exists.
            if exc.response.get("Error", {}).get("Code") not in (
                "ResourceAlreadyExistsException",
                "AccessDeniedException",
            ):
                raise

    async def delete(self, face_ids: Sequence[str]) -> None:
        """DeleteFaces, in batches of the API's 4,096; nothing to delete, no call."""
        ids = list(face_ids)
        for start in range(0, len(ids), 4096):
            request = functools.partial(
                self._client.delete_faces,
                CollectionId=self._collection,
                FaceIds=ids[start : start + 4096],
            )
            await self._budget.call("DeleteFaces", request)
