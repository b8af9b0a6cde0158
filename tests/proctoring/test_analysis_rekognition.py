"""Contract tests of the Rekognition engine.

There is no local Rekognition, so botocore's Stubber stands in for the service on a real
aiobotocore client (``tests.rekognition_stubs``): every request is checked against the
expected parameters and, by botocore itself, against Rekognition's service model
(shapes, types, ranges) before the stubbed answer is returned; every stubbed answer is
checked against the model's output shape when it is added. The faces table is the
emulator's, over HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from proctoring.analysis.base import FaceDetail, FrameAnalysis, Plan
from proctoring.analysis.faces import RegistrationError
from proctoring.settings import Settings
from tests.conftest import DATA, needs_data
from tests.rekognition_stubs import (
    BOX,
    COLLECTION,
    deleted,
    face_detail,
    image,
    index_request,
    indexed,
    match,
    searched,
    stubbed_engine,
)

pytestmark = needs_data
FACE_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return (DATA / "faces" / "obama.jpg").read_bytes()


def test_registration_indexes_one_face_and_keeps_its_face_id(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> tuple[Any, Any]:
        async with stubbed_engine(settings) as (engine, stubber, tables):
            stubber.add_response(
                "create_collection",
                {
                    "StatusCode": 200,
                    "CollectionArn": "arn:aws:rekognition:x",
                    "FaceModelVersion": "7.0",
                },
                {"CollectionId": COLLECTION},
            )
            stubber.add_response("index_faces", indexed(FACE_ID), index_request("exam-1:student-1"))
            registered = await engine.register("exam-1", "student-1", jpeg)
            return registered, await tables.get_face("exam-1", "student-1")

    registered, stored = asyncio.run(run())
    assert registered.face_id == FACE_ID
    assert registered.box[2] > 0
    assert stored is not None and stored["face_id"] == FACE_ID
    assert "embedding" not in stored
    assert registered.frames_enrolled == 0 and "frame_face_ids" not in stored


def test_a_photo_with_two_faces_is_refused(settings: Settings, jpeg: bytes) -> None:
    async def run() -> None:
        async with stubbed_engine(settings) as (engine, stubber, _):
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response(
                "index_faces",
                {
                    "FaceRecords": [{"Face": {"FaceId": FACE_ID, "BoundingBox": BOX}}],
                    "UnindexedFaces": [
                        {"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": face_detail()}
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


PHOTO, F1, F3, F4, F5 = "photo-0", "frame-1", "frame-3", "frame-4", "frame-5"


def test_camera_frames_of_the_photos_person_are_indexed_and_kept(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> tuple[Any, Any]:
        async with stubbed_engine(settings) as (engine, stubber, tables):
            request = index_request("exam-1:frames")
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response("index_faces", indexed(PHOTO), request)
            stubber.add_response("index_faces", indexed(F1), request)
            stubber.add_response("index_faces", indexed(None, "LOW_SHARPNESS"), request)
            stubber.add_response("index_faces", indexed(F3, "EXCEEDS_MAX_FACES"), request)
            stubber.add_response("index_faces", indexed(F4), request)
            stubber.add_response("index_faces", indexed(F5), request)
            stubber.add_response(*searched(F1, F4, PHOTO))  # its sibling may rank first
            stubber.add_response(*searched(F4, PHOTO, F1))
            stubber.add_response(*searched(F5, "someone-else"))
            stubber.add_response(*deleted(F3, F5))  # the frame with two faces, the outlier
            registered = await engine.register("exam-1", "frames", jpeg, [jpeg] * 5)
            return registered, await tables.get_face("exam-1", "frames")

    registered, stored = asyncio.run(run())
    assert registered.face_id == PHOTO
    assert registered.frames_enrolled == 2
    assert stored["face_id"] == PHOTO and stored["frame_face_ids"] == [F1, F4]


def test_frames_of_someone_else_are_refused_and_nothing_indexed_stays(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> Any:
        async with stubbed_engine(settings) as (engine, stubber, tables):
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response("index_faces", indexed(PHOTO))
            stubber.add_response("index_faces", indexed(F1))
            stubber.add_response("index_faces", indexed(F4))
            stubber.add_response("index_faces", indexed(F5))
            stubber.add_response(*searched(F1, F4, F5))  # each other, not the photo
            stubber.add_response(*searched(F4, F1, PHOTO))  # one frame looks like both
            stubber.add_response(*searched(F5, F1, F4))
            stubber.add_response(*deleted(PHOTO, F1, F4, F5))
            with pytest.raises(RegistrationError) as refused:
                await engine.register("exam-1", "impostor", jpeg, [jpeg] * 3)
            assert refused.value.reason == "frames_mismatch"
            assert "does not look like the registration photo" in str(refused.value)
            return await tables.get_face("exam-1", "impostor")

    assert asyncio.run(run()) is None, "a refused registration stores nothing"


def test_frames_without_a_face_or_unreadable_leave_nothing_indexed(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> list[RegistrationError]:
        refusals = []
        async with stubbed_engine(settings) as (engine, stubber, _):
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response("index_faces", indexed(PHOTO))
            stubber.add_response("index_faces", indexed(None))
            stubber.add_response("index_faces", indexed(F1, "EXCEEDS_MAX_FACES"))
            stubber.add_response(*deleted(PHOTO, F1))
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response("index_faces", indexed(PHOTO))
            stubber.add_response("index_faces", indexed(F1))
            stubber.add_client_error("index_faces", "InvalidImageFormatException")
            stubber.add_response(*deleted(PHOTO, F1))
            for _ in range(2):
                with pytest.raises(RegistrationError) as refused:
                    await engine.register("exam-1", "s", jpeg, [jpeg, jpeg])
                refusals.append(refused.value)
        return refusals

    no_face, unreadable = asyncio.run(run())
    assert no_face.reason == "no_face" and "none of the 2 camera frames" in str(no_face)
    assert unreadable.reason == "not_an_image"


def test_re_registration_deletes_the_previous_photo_and_frame_face_ids(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> Any:
        async with stubbed_engine(settings) as (engine, stubber, tables):
            await tables.put_face(
                {"exam_id": "e", "student_id": "s", "face_id": "old", "frame_face_ids": ["o1"]}
            )
            stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
            stubber.add_response("index_faces", indexed(PHOTO))
            stubber.add_response(*deleted("old", "o1"))
            registered = await engine.register("e", "s", jpeg)
            assert registered.frames_enrolled == 0
            return await tables.get_face("e", "s")

    stored = asyncio.run(run())
    assert stored["face_id"] == PHOTO and "frame_face_ids" not in stored


def test_a_frame_matches_through_an_enrolled_camera_frame(settings: Settings, jpeg: bytes) -> None:
    async def run() -> FrameAnalysis:
        async with stubbed_engine(settings) as (engine, stubber, tables):
            await tables.put_face(
                {"exam_id": "e", "student_id": "s", "face_id": PHOTO, "frame_face_ids": [F1, F4]}
            )
            stubber.add_response("detect_faces", {"FaceDetails": [face_detail()]})
            stubber.add_response(
                "search_faces_by_image",
                {"FaceMatches": [match("someone-else", 99.5), match(F4, 97.0), match(F1, 93.5)]},
            )
            return await engine.analyse("e", "s", jpeg, Plan(objects=False))

    analysis = asyncio.run(run())
    assert (analysis.identity, analysis.similarity) == ("match", 97.0), "the photo missed"


def test_analysis_asks_all_three_apis_and_parses_their_answers(
    settings: Settings, jpeg: bytes
) -> None:
    async def run() -> FrameAnalysis:
        async with stubbed_engine(settings) as (engine, stubber, tables):
            await tables.put_face({"exam_id": "e", "student_id": "s", "face_id": FACE_ID})
            stubber.add_response(
                "detect_faces",
                {
                    "FaceDetails": [
                        face_detail(),
                        face_detail(
                            BoundingBox={"Width": 0.2, "Height": 0.3, "Left": -0.05, "Top": 0.5},
                            Pose={"Roll": 1.0, "Yaw": -48.0, "Pitch": 2.0},
                            EyeDirection={"Yaw": -25.0, "Pitch": 0.0, "Confidence": 90.0},
                            Quality={"Brightness": 12.0, "Sharpness": 40.0},
                        ),
                    ],
                    "OrientationCorrection": "ROTATE_0",
                },
                {"Image": image(), "Attributes": ["ALL"]},
            )
            stubber.add_response(
                "search_faces_by_image",
                {
                    "SearchedFaceBoundingBox": BOX,
                    "SearchedFaceConfidence": 99.9,
                    "FaceMatches": [match("someone-else", 93.0), match(FACE_ID, 97.25)],
                    "FaceModelVersion": "7.0",
                },
                {
                    "CollectionId": COLLECTION,
                    "Image": image(),
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
                {"Image": image(), "MaxLabels": 50, "MinConfidence": 60.0},
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
        async with stubbed_engine(settings) as (engine, stubber, tables):
            await tables.put_face({"exam_id": "e", "student_id": "s", "face_id": FACE_ID})
            stubber.add_response("detect_faces", {"FaceDetails": [face_detail()]})
            stubber.add_response(
                "search_faces_by_image", {"FaceMatches": [match("someone-else", 99.0)]}
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
        async with stubbed_engine(settings, gate=gate) as (engine, stubber, _):
            stubber.add_response("detect_faces", {"FaceDetails": [face_detail()]})
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
        async with stubbed_engine(settings) as (engine, stubber, _):
            client = engine._client
            stubber.add_response("search_faces_by_image", {"FaceMatches": []})
            with pytest.raises(ParamValidationError, match="MaxFaces"):
                await client.search_faces_by_image(
                    CollectionId=COLLECTION, Image={"Bytes": b"x"}, MaxFaces=0
                )
            # the refused request never reached the stub: a valid one takes its answer
            await client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": b"x"})

    asyncio.run(run())
