"""Contract tests of the Rekognition engine.

There is no local Rekognition, so botocore's Stubber stands in for the service on a real
aiobotocore client: every request is checked against the expected parameters and, by
botocore itself, against Rekognition's service model (shapes, types, ranges) before the
stubbed answer is returned; every stubbed answer is checked against the model's output
shape when it is added. The answers are shaped like the examples of the Rekognition
API reference. The faces table is the emulator's, over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ParamValidationError
from botocore.stub import ANY, Stubber

from proctoring.analysis.base import FaceDetail, FrameAnalysis, Plan
from proctoring.analysis.budget import Budget, RateLimiter
from proctoring.analysis.faces import RegistrationError
from proctoring.analysis.rekognition import RekognitionEngine
from proctoring.aws import async_clients
from proctoring.settings import Settings
from proctoring.storage import Tables
from tests.conftest import DATA, needs_data

pytestmark = needs_data
COLLECTION = "proctor-faces"
FACE_ID = "11111111-2222-3333-4444-555555555555"
BOX = {"Width": 0.2, "Height": 0.3, "Left": 0.4, "Top": 0.2}


def _face_detail(**overrides: Any) -> dict[str, Any]:
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


def _match(face_id: str, similarity: float) -> dict[str, Any]:
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


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return (DATA / "faces" / "obama.jpg").read_bytes()


@asynccontextmanager
async def _engine(
    settings: Settings, gate: Callable[[bytes], Any] | None = None
) -> AsyncIterator[tuple[RekognitionEngine, Stubber, Tables]]:
    session = get_session()
    async with (
        session.create_client(
            "rekognition",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ) as client,
        async_clients(settings) as clients,
    ):
        tables = Tables(clients.dynamodb, settings.names)
        budget = Budget(RateLimiter(1000.0), sleep=_no_sleep)
        engine = RekognitionEngine(client, tables, budget, collection_id=COLLECTION, gate=gate)
        with Stubber(client) as stubber:
            yield engine, stubber, tables
            stubber.assert_no_pending_responses()


async def _no_sleep(seconds: float) -> None:
    return None


def _image() -> dict[str, Any]:
    return {"Bytes": ANY}


def test_registration_indexes_one_face_and_keeps_its_face_id(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> tuple[Any, Any]:
        async with _engine(settings) as (engine, stubber, tables):
            stubber.add_response(
                "create_collection",
                {
                    "StatusCode": 200,
                    "CollectionArn": "arn:aws:rekognition:x",
                    "FaceModelVersion": "7.0",
                },
                {"CollectionId": COLLECTION},
            )
            stubber.add_response(
                "index_faces",
                {
                    "FaceRecords": [
                        {
                            "Face": {"FaceId": FACE_ID, "BoundingBox": BOX, "Confidence": 99.9},
                            "FaceDetail": _face_detail(),
                        }
                    ],
                    "FaceModelVersion": "7.0",
                    "UnindexedFaces": [],
                },
                {
                    "CollectionId": COLLECTION,
                    "Image": _image(),
                    "ExternalImageId": "exam-1:student-1",
                    "MaxFaces": 1,
                    "QualityFilter": "AUTO",
                    "DetectionAttributes": ["DEFAULT"],
                },
            )
            registered = await engine.register("exam-1", "student-1", jpeg)
            return registered, await tables.get_face("exam-1", "student-1")

    registered, stored = asyncio.run(run())
    assert registered.face_id == FACE_ID
    assert registered.box[2] > 0
    assert stored is not None and stored["face_id"] == FACE_ID
    assert "embedding" not in stored


def test_a_photo_with_two_faces_is_refused(settings: Settings, jpeg: bytes) -> None:
    async def run() -> None:
        async with _engine(settings) as (engine, stubber, _):
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response(
                "index_faces",
                {
                    "FaceRecords": [{"Face": {"FaceId": FACE_ID, "BoundingBox": BOX}}],
                    "UnindexedFaces": [
                        {"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": _face_detail()}
                    ],
                },
            )
            stubber.add_response(
                "delete_faces",
                {"DeletedFaces": [FACE_ID]},
                {"CollectionId": COLLECTION, "FaceIds": [FACE_ID]},
            )
            await engine.register("exam-1", "crowd", jpeg)

    with pytest.raises(RegistrationError) as caught:
        asyncio.run(run())
    assert caught.value.reason == "several_faces"


def test_analysis_asks_all_three_apis_and_parses_their_answers(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> FrameAnalysis:
        async with _engine(settings) as (engine, stubber, tables):
            await tables.put_face({"exam_id": "e", "student_id": "s", "face_id": FACE_ID})
            stubber.add_response(
                "detect_faces",
                {
                    "FaceDetails": [
                        _face_detail(),
                        _face_detail(
                            BoundingBox={"Width": 0.2, "Height": 0.3, "Left": -0.05, "Top": 0.5},
                            Pose={"Roll": 1.0, "Yaw": -48.0, "Pitch": 2.0},
                            EyeDirection={"Yaw": -25.0, "Pitch": 0.0, "Confidence": 90.0},
                            Quality={"Brightness": 12.0, "Sharpness": 40.0},
                        ),
                    ],
                    "OrientationCorrection": "ROTATE_0",
                },
                {"Image": _image(), "Attributes": ["ALL"]},
            )
            stubber.add_response(
                "search_faces_by_image",
                {
                    "SearchedFaceBoundingBox": BOX,
                    "SearchedFaceConfidence": 99.9,
                    "FaceMatches": [_match("someone-else", 93.0), _match(FACE_ID, 97.25)],
                    "FaceModelVersion": "7.0",
                },
                {
                    "CollectionId": COLLECTION,
                    "Image": _image(),
                    "MaxFaces": 10,
                    "FaceMatchThreshold": 90.0,
                    "QualityFilter": "NONE",
                },
            )
            stubber.add_response(
                "detect_labels",
                {
                    "Labels": [
                        {
                            "Name": "Person",
                            "Confidence": 99.0,
                            "Instances": [
                                {"BoundingBox": BOX, "Confidence": 99.0},
                                {"BoundingBox": BOX, "Confidence": 91.0},
                                {"BoundingBox": BOX, "Confidence": 30.0},
                            ],
                            "Parents": [],
                        },
                        {
                            "Name": "Mobile Phone",
                            "Confidence": 88.0,
                            "Instances": [{"BoundingBox": BOX, "Confidence": 88.0}],
                            "Parents": [{"Name": "Electronics"}, {"Name": "Phone"}],
                        },
                        {"Name": "Indoors", "Confidence": 80.0, "Instances": [], "Parents": []},
                    ],
                    "LabelModelVersion": "3.0",
                },
                {"Image": _image(), "MaxLabels": 50, "MinConfidence": 60.0},
            )
            return await engine.analyse("e", "s", jpeg, Plan())

    analysis = asyncio.run(run())
    assert analysis.calls == {"DetectFaces": 1, "SearchFacesByImage": 1, "DetectLabels": 1}
    first, second = analysis.faces
    assert (first.yaw, first.pitch, first.roll, first.gaze) == (3.5, 6.0, -2.1, "center")
    assert (first.eyes_open, first.mouth_open, first.sunglasses) == (True, False, False)
    assert (first.brightness, first.sharpness, first.partial) == (61.0, 86.9, False)
    assert second.partial, "a box running off the frame is a cut face"
    assert second.gaze == "left"
    assert (analysis.identity, analysis.similarity) == ("match", 97.25)
    assert analysis.persons == 2, "people counted by Person instances above the confidence"
    assert [(o.label, o.confidence) for o in analysis.objects] == [
        ("Mobile Phone", 88.0),
        ("Indoors", 80.0),
    ]
    assert analysis.objects_status == "checked"


def test_another_face_is_a_mismatch_and_no_face_costs_no_search(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> tuple[FrameAnalysis, FrameAnalysis]:
        async with _engine(settings) as (engine, stubber, tables):
            await tables.put_face({"exam_id": "e", "student_id": "s", "face_id": FACE_ID})
            stubber.add_response("detect_faces", {"FaceDetails": [_face_detail()]})
            stubber.add_response(
                "search_faces_by_image", {"FaceMatches": [_match("someone-else", 99.0)]}
            )
            other = await engine.analyse("e", "s", jpeg, Plan(objects=False))
            stubber.add_response("detect_faces", {"FaceDetails": []})
            empty = await engine.analyse("e", "s", jpeg, Plan(objects=False))
            return other, empty

    other, empty = asyncio.run(run())
    assert other.identity == "mismatch"
    assert (empty.identity, empty.calls["SearchFacesByImage"]) == ("unknown", 0)
    assert empty.objects_status == "skipped"


def test_the_local_gate_spares_detect_faces_when_nothing_changed(
    settings: Settings, jpeg: bytes
) -> None:
    local = FrameAnalysis(
        faces=(
            FaceDetail(box=(10, 10, 80, 80), yaw=1.0, gaze="center", brightness=50, sharpness=70),
        ),
        identity="unchecked",
        width=640,
        height=480,
    )

    async def gate(image: bytes) -> FrameAnalysis:
        return local

    async def run() -> tuple[FrameAnalysis, FrameAnalysis]:
        async with _engine(settings, gate=gate) as (engine, stubber, _):
            stubber.add_response("detect_faces", {"FaceDetails": [_face_detail()]})
            first = await engine.analyse(
                "e", "s", jpeg, Plan(identity="no", objects=False, confirm="if_changed")
            )
            same = await engine.analyse(
                "e",
                "s",
                jpeg,
                Plan(identity="no", objects=False, confirm="if_changed", confirmed=first.signature),
            )
            return first, same

    first, same = asyncio.run(run())
    assert first.calls["DetectFaces"] == 1, "no confirmed signature yet"
    assert same.calls["DetectFaces"] == 0
    assert same.faces == local.faces


def test_the_stubbed_client_still_validates_requests_against_the_model(settings: Settings) -> None:
    async def run() -> None:
        async with _engine(settings) as (engine, stubber, _):
            client = engine._client
            stubber.add_response("search_faces_by_image", {"FaceMatches": []})
            with pytest.raises(ParamValidationError, match="MaxFaces"):
                await client.search_faces_by_image(
                    CollectionId=COLLECTION, Image={"Bytes": b"x"}, MaxFaces=0
                )
            # the refused request never reached the stub: a valid one takes its answer
            await client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": b"x"})

    asyncio.run(run())
