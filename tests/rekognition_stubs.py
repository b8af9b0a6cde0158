"""Rekognition for contract tests: a real aiobotocore client under botocore's Stubber.

There is no local Rekognition. The Stubber checks every request against the expected
parameters and, by botocore itself, against Rekognition's service model (shapes,
types, ranges); every stubbed answer is checked against the model's output shape
when it is added. The answers here are shaped like the examples of the Rekognition
API reference. Used by the engine's tests and by the API's erasure tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.session import get_session
from botocore.stub import ANY, Stubber

from proctoring.analysis.budget import Budget
from proctoring.analysis.rekognition import RekognitionEngine
from proctoring.aws import async_clients
from proctoring.ratelimit import RateLimiter
from proctoring.settings import Settings
from proctoring.storage import Tables

COLLECTION = "proctor-faces"
BOX = {"Width": 0.2, "Height": 0.3, "Left": 0.4, "Top": 0.2}


def face_detail(**overrides: Any) -> dict[str, Any]:
    """A FaceDetails element as in the DetectFaces example of the API reference."""
    detail: dict[str, Any] = {
        "BoundingBox": BOX,
        "AgeRange": {"Low": 25, "High": 35},
        "Smile": {"Value": False, "Confidence": 98.0},
        "Eyeglasses": {"Value": False, "Confidence": 99.0},
        "Sunglasses": {"Value": False, "Confidence": 99.5},
        "Gender": {"Value": "Male", "Confidence": 99.0},
        "EyesOpen": {"Value": True, "Confidence": 97.0},
        "MouthOpen": {"Value": False, "Confidence": 95.0},
        "Emotions": [{"Type": "CALM", "Confidence": 90.0}],
        "Landmarks": [{"Type": "eyeLeft", "X": 0.45, "Y": 0.3}],
        "Pose": {"Roll": -2.1, "Yaw": 3.5, "Pitch": 6.0},
        "Quality": {"Brightness": 61.0, "Sharpness": 86.9},
        "Confidence": 99.9,
        "FaceOccluded": {"Value": False, "Confidence": 99.0},
        "EyeDirection": {"Yaw": 1.5, "Pitch": -3.0, "Confidence": 98.0},
    }
    detail.update(overrides)
    return detail


def match(face_id: str, similarity: float) -> dict[str, Any]:
    """A FaceMatches element of SearchFaces / SearchFacesByImage."""
    return {
        "Similarity": similarity,
        "Face": {
            "FaceId": face_id,
            "BoundingBox": BOX,
            "ImageId": "f0a2f5a1-0000-0000-0000-000000000000",
            "ExternalImageId": "exam:student",
            "Confidence": 99.9,
        },
    }


def image() -> dict[str, Any]:
    return {"Bytes": ANY}


def index_request(external_id: str) -> dict[str, Any]:
    """The IndexFaces request registration sends for a photo or a camera frame."""
    return {
        "CollectionId": COLLECTION,
        "Image": image(),
        "ExternalImageId": external_id,
        "MaxFaces": 1,
        "QualityFilter": "AUTO",
        "DetectionAttributes": ["DEFAULT"],
    }


def indexed(face_id: str | None, *unindexed: str) -> dict[str, Any]:
    """An IndexFaces answer: ``face_id`` indexed (None: no face), and one unindexed face
    per reason given (``EXCEEDS_MAX_FACES``: a second face; ``LOW_SHARPNESS``: a blur)."""
    records = []
    if face_id is not None:
        records.append(
            {
                "Face": {"FaceId": face_id, "BoundingBox": BOX, "Confidence": 99.9},
                "FaceDetail": face_detail(),
            }
        )
    return {
        "FaceRecords": records,
        "FaceModelVersion": "7.0",
        "UnindexedFaces": [{"Reasons": [r], "FaceDetail": face_detail()} for r in unindexed],
    }


Stub = tuple[str, dict[str, Any], dict[str, Any]]
"""An operation, its answer and the request expected: ``stubber.add_response(*stub)``."""


def searched(face_id: str, *found: str) -> Stub:
    """SearchFaces by an indexed frame's FaceId at enrolment, answered with ``found``
    (best first)."""
    return (
        "search_faces",
        {
            "SearchedFaceId": face_id,
            "FaceMatches": [match(f, 99.0 - i) for i, f in enumerate(found)],
            "FaceModelVersion": "7.0",
        },
        {
            "CollectionId": COLLECTION,
            "FaceId": face_id,
            "MaxFaces": 100,
            "FaceMatchThreshold": 90.0,
        },
    )


def deleted(*face_ids: str, collection: str = COLLECTION, missing: tuple[str, ...] = ()) -> Stub:
    """DeleteFaces of ``face_ids``; those in ``missing`` were no longer in the collection."""
    return (
        "delete_faces",
        {
            "DeletedFaces": [f for f in face_ids if f not in missing],
            "UnsuccessfulFaceDeletions": [
                {"FaceId": f, "Reasons": ["FACE_NOT_FOUND"]} for f in missing
            ],
        },
        {"CollectionId": collection, "FaceIds": list(face_ids)},
    )


async def _no_sleep(seconds: float) -> None:
    return None


@asynccontextmanager
async def stubbed_engine(
    settings: Settings, gate: Callable[[bytes], Any] | None = None
) -> AsyncIterator[tuple[RekognitionEngine, Stubber, Tables]]:
    """The engine on a stubbed client, the faces table the emulator's; every stubbed
    answer must have been asked for by the end of the block."""
    async with (
        get_session().create_client(
            "rekognition",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ) as client,
        async_clients(settings) as clients,
    ):
        tables = Tables(clients.dynamodb, settings.names)
        budget = Budget(RateLimiter(1000.0, burst="second"), sleep=_no_sleep)
        engine = RekognitionEngine(client, tables, budget, collection_id=COLLECTION, gate=gate)
        with Stubber(client) as stubber:
            yield engine, stubber, tables
            stubber.assert_no_pending_responses()
