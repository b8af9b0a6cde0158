"""Erasure reaches every copy of the student's video, the Chime capture pipeline's
included, and every FaceId of the student in the Rekognition collection."""

from __future__ import annotations

import asyncio

from botocore.stub import Stubber

from proctoring.aws import async_clients, sync_client
from proctoring.exams import ExamStore
from tests.conftest import DATA, needs_data
from tests.lambdas.api.conftest import Service, rekognition_client
from tests.rekognition_stubs import deleted, indexed, searched, stubbed_engine


def test_erasing_a_student_deletes_their_capture_video_and_only_theirs(service: Service) -> None:
    settings = service.settings
    exam_id = service.exam()
    student = service.enrol(exam_id)
    other = service.enrol(exam_id, "other_student")

    async def attendees() -> None:  # what the API records when it creates their attendees
        async with async_clients(settings) as clients:
            store = ExamStore(clients.dynamodb, settings.names)
            await store.put_attendee(exam_id, "a-student-0001", student, "student")
            await store.put_attendee(exam_id, "a-other-0002", other, "student")

    asyncio.run(attendees())
    s3, bucket = sync_client(settings, "s3"), settings.names.chunks_bucket
    video = f"capture/{exam_id}/video"
    theirs = [
        f"{video}/2026-12-06-10-00-00-000-a-student-0001.mp4",
        f"{video}/2026-12-06-10-00-05-000-a-student-0001.mp4",
        f"{video}/2026-12-06-10-00-05-000-a-student-0001#content.mp4",
    ]
    kept = [
        f"{video}/2026-12-06-10-00-00-000-a-other-0002.mp4",
        f"capture/{exam_id}/meeting-events/2026-12-06-10-00-00-000.txt",
    ]
    for key in theirs + kept:
        s3.put_object(Bucket=bucket, Key=key, Body=b"\0" * 16)

    erased = service.call("DELETE", f"/exams/{exam_id}/students/{student}", "proctor")

    assert erased.status_code == 200, erased.text
    assert erased.json()["deleted"]["capture"] == len(theirs)
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="capture/")["Contents"]}
    assert left == set(kept), "the student's video is gone; another student's is not"
    history = s3.list_object_versions(Bucket=bucket, Prefix="capture/")
    versions = {v["Key"] for v in history.get("Versions", []) + history.get("DeleteMarkers", [])}
    assert versions == set(kept), "no earlier version of it either (the bucket is versioned)"
    again = service.call("DELETE", f"/exams/{exam_id}/students/{student}", "proctor")
    assert again.json()["deleted"]["capture"] == 0


@needs_data
def test_erasure_deletes_every_face_id_the_student_ever_enrolled(
    rekognition_service: Service,
) -> None:
    service = rekognition_service
    settings = service.settings
    exam_id = service.exam()
    student = service.enrol(exam_id)
    photo = (DATA / "faces" / "obama.jpg").read_bytes()

    async def enrol() -> None:  # registration, then a proctor's re-registration keeping it
        async with stubbed_engine(settings) as (engine, stubber, tables):
            for face, frame, previous in (("p1", "f1", ()), ("p2", "f2", ("p1", "f1"))):
                stubber.add_client_error("create_collection", "ResourceAlreadyExistsException")
                stubber.add_response("index_faces", indexed(face))
                stubber.add_response("index_faces", indexed(frame))
                stubber.add_response(*searched(frame, face))
                if previous:
                    stubber.add_response(*deleted(*previous))
                replaced = await tables.get_face(exam_id, student)
                registered = await engine.register(exam_id, student, photo, [photo])
                assert registered.frames_enrolled == 1
            assert replaced is not None
            await tables.keep_superseded_face(exam_id, student, replaced)

    asyncio.run(enrol())
    url = f"/exams/{exam_id}/students/{student}"
    with Stubber(rekognition_client(service)) as rekognition:
        # the superseded enrolment's FaceIds went at re-registration; erasure asks again
        rekognition.add_response(
            *deleted(
                "p2", "f2", "p1", "f1", collection=settings.collection_id, missing=("p1", "f1")
            )
        )
        erased = service.call("DELETE", url, "proctor")
        again = service.call("DELETE", url, "proctor")  # no FaceId left: no call (unstubbed)
        rekognition.assert_no_pending_responses()

    assert erased.status_code == 200, erased.text
    assert (erased.json()["deleted"]["faces"], erased.json()["deleted"]["face_ids"]) == (1, 4)
    assert again.status_code == 200, again.text
    assert (again.json()["deleted"]["faces"], again.json()["deleted"]["face_ids"]) == (0, 0)
