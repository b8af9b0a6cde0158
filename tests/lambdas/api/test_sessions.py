"""A student's session: join, consent first, register a real photo, upload by presigned POST."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from proctoring.aws import sync_client
from proctoring.enrolment import frame_key
from proctoring.events import ChunkKey
from tests.conftest import DATA, needs_data
from tests.lambdas.api.conftest import Service


def _photo(name: str) -> str:
    return base64.b64encode((DATA / "faces" / name).read_bytes()).decode()


def test_without_consent_registration_and_uploads_are_refused(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id, consent=False)
    base = f"/exams/{exam_id}/students/{student}"
    registration = service.call("POST", f"{base}/registration", "student", json={"photo": "AAAA"})
    assert registration.status_code == 409 and registration.json()["reason"] == "consent_required"
    uploads = service.call("POST", f"{base}/uploads", "student", json={"first_sequence": 0})
    assert uploads.status_code == 409 and uploads.json()["reason"] == "consent_required"

    stale = service.call(
        "PUT", f"{base}/consent", "student", json={"policy_version": "2001-01", "accepted": True}
    )
    assert stale.status_code == 409 and stale.json()["reason"] == "stale_policy"
    refused = service.call(
        "PUT",
        f"{base}/consent",
        "student",
        json={"policy_version": service.settings.consent_version, "accepted": False},
    )
    assert refused.status_code == 400 and "accepted" in refused.json()["error"]
    given = service.call(
        "PUT",
        f"{base}/consent",
        "student",
        json={"policy_version": service.settings.consent_version, "accepted": True},
    ).json()
    assert given["consent"]["version"] == service.settings.consent_version
    assert given["consent"]["at"].endswith("Z")


def test_a_student_must_join_before_acting_and_only_for_themselves(service: Service) -> None:
    exam_id = service.exam(start=True)
    student = service.ids["student"]
    consent = {"policy_version": service.settings.consent_version, "accepted": True}
    not_joined = service.call(
        "PUT", f"/exams/{exam_id}/students/{student}/consent", "student", json=consent
    )
    assert not_joined.status_code == 409 and not_joined.json()["reason"] == "not_joined"
    service.enrol(exam_id)
    someone_else = service.call(
        "PUT", f"/exams/{exam_id}/students/{student}/consent", "other_student", json=consent
    )
    assert someone_else.status_code == 403
    assert service.call("POST", "/exams/ex-unknown/join", "student").status_code == 404


@needs_data
def test_registration_takes_one_face_and_refuses_two(service: Service) -> None:
    exam_id = service.exam()
    student = service.enrol(exam_id)
    url = f"/exams/{exam_id}/students/{student}/registration"
    two = service.call("POST", url, "student", json={"photo": _photo("two_people.jpg")})
    assert two.status_code == 422 and two.json()["reason"] == "several_faces"
    one = service.call("POST", url, "student", json={"photo": _photo("obama.jpg")})
    assert one.status_code == 201, one.text
    assert service.call("GET", f"/exams/{exam_id}/students/{student}", "student").json()[
        "registered_at"
    ]
    not_base64 = service.call("POST", url, "student", json={"photo": "***"})
    assert not_base64.status_code == 400


@needs_data
def test_a_registered_face_cannot_be_replaced_once_the_exam_runs(service: Service) -> None:
    """The attacker is whoever took over the student's seat and session: registering their
    own face mid-exam would make every later chunk match."""
    exam_id = service.exam()
    student = service.enrol(exam_id)
    url = f"/exams/{exam_id}/students/{student}/registration"
    first = service.call("POST", url, "student", json={"photo": _photo("obama.jpg")})
    retake = service.call("POST", url, "student", json={"photo": _photo("obama2.jpg")})
    assert (first.status_code, retake.status_code) == (201, 201), "a retake before the start"
    service.call("POST", f"/exams/{exam_id}/start", "proctor")
    swap = service.call("POST", url, "student", json={"photo": _photo("biden.jpg")})
    assert swap.status_code == 409 and swap.json()["reason"] == "already_registered"


@needs_data
def test_only_the_exams_proctor_replaces_a_face_mid_exam_audited_keeping_both(
    service: Service,
) -> None:
    """Issue 19, finding 2: after the start a new reference face needs the exam's proctor;
    the old enrolment is kept beside the new one, the change is audited, and an open
    identity alert stays open."""
    exam_id = service.exam()
    student = service.enrol(exam_id)
    base = f"/exams/{exam_id}/students/{student}"
    assert service.call(
        "POST", f"{base}/registration", "student", json={"photo": _photo("obama.jpg")}
    ).ok
    service.call("POST", f"/exams/{exam_id}/start", "proctor")
    dynamodb = sync_client(service.settings, "dynamodb")
    names = service.settings.names
    alert = {
        "exam_id": {"S": exam_id}, "alert_id": {"S": "FACE_MISMATCH-00000000000000ab"},
        "student_id": {"S": student}, "type": {"S": "FACE_MISMATCH"}, "status": {"S": "open"},
    }  # fmt: skip
    dynamodb.put_item(TableName=names.alerts_table, Item=alert)

    def face() -> dict[str, Any]:
        key = {"exam_id": {"S": exam_id}, "student_id": {"S": student}}
        item: dict[str, Any] = dynamodb.get_item(TableName=names.faces_table, Key=key)["Item"]
        return item

    old = face()
    body = {"photo": _photo("obama2.jpg"), "reason": "the photo was ten years old"}
    swap = service.call("POST", f"{base}/registration", "student", json={"photo": body["photo"]})
    assert swap.status_code == 409 and swap.json()["reason"] == "already_registered"
    url = f"{base}/reregistration"
    assert service.call("POST", url, "student", json=body).status_code == 403
    assert service.call("POST", url, "other_proctor", json=body).status_code == 403
    no_reason = service.call("POST", url, "proctor", json={"photo": body["photo"]})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]
    done = service.call("POST", url, "proctor", json=body)
    assert done.status_code == 201, done.text

    new = face()
    assert new["embedding"] != old["embedding"]
    (kept,) = new["superseded"]["L"]
    assert kept["M"]["embedding"] == old["embedding"], "the old enrolment is kept"
    audit = service.call("GET", f"/exams/{exam_id}/audit", "proctor").json()
    registration, record = audit["records"]
    assert (registration["action"], registration["by"]) == ("registration", student)
    assert audit["verification"]["verified"] and record["prev"] == registration["hash"]
    assert (record["action"], record["student_id"], record["by"], record["reason"]) == (
        "reregistration", student, service.ids["proctor"], body["reason"],
    )  # fmt: skip
    alerts = service.call("GET", f"/exams/{exam_id}/alerts", "proctor").json()["alerts"]
    assert [(a["type"], a["status"]) for a in alerts] == [("FACE_MISMATCH", "open")]


def test_registration_keeps_camera_frames_of_the_same_face_and_refuses_someone_elses(
    service: Service,
) -> None:
    exam_id = service.exam()
    student = service.enrol(exam_id)
    url = f"/exams/{exam_id}/students/{student}/registration"
    photo = _photo("obama.jpg")
    others = service.call(
        "POST", url, "student", json={"photo": photo, "frames": [_photo("biden.jpg")] * 2}
    )
    assert others.status_code == 422 and others.json()["reason"] == "frames_mismatch"
    too_many = service.call("POST", url, "student", json={"photo": photo, "frames": [photo] * 9})
    assert too_many.status_code == 400
    frames = [_photo("obama2.jpg"), _photo("obama-480p.jpg")]
    enrolled = service.call("POST", url, "student", json={"photo": photo, "frames": frames})
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["frames_enrolled"] == 2


def test_upload_forms_write_exactly_the_students_next_chunks(service: Service) -> None:
    exam_id = service.exam()
    student = service.enrol(exam_id)
    url = f"/exams/{exam_id}/students/{student}/uploads"
    not_started = service.call("POST", url, "student", json={"first_sequence": 0})
    assert not_started.status_code == 409 and not_started.json()["reason"] == "exam_not_started"
    service.call("POST", f"/exams/{exam_id}/start", "proctor")

    answer = service.call(
        "POST", url, "student", json={"first_sequence": 7, "count": 3, "ext": "mp4",
                                      "content_type": "video/mp4"}
    ).json()  # fmt: skip
    assert answer["max_bytes"] == service.settings.max_chunk_bytes
    forms = answer["uploads"]
    assert [f["sequence"] for f in forms] == [7, 8, 9]
    for form in forms:
        key = ChunkKey.parse(form["key"])  # the server fixed a valid chunk key
        assert (key.exam_id, key.student_id, key.source, key.ext) == (
            exam_id, student, "camera", "mp4",
        )  # fmt: skip
        assert form["fields"]["key"] == form["key"]
        assert form["fields"]["Content-Type"] == "video/mp4"
    form = forms[0]
    posted = requests.post(
        form["url"],
        data=form["fields"],
        files={"file": ("chunk.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")},
        timeout=30,
    )
    assert posted.status_code in (200, 204), posted.text
    s3 = sync_client(service.settings, "s3")
    listed = s3.list_objects_v2(Bucket=service.settings.names.chunks_bucket)["Contents"]
    assert [o["Key"] for o in listed] == [form["key"]]

    # moto accepts any form field (it checks no POST policy); S3 enforces the signed policy, so
    # the policy itself is what binds the upload: one exact key, a video type, the size limit.
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": form["key"]} in conditions
    assert {"bucket": service.settings.names.chunks_bucket} in conditions
    assert ["starts-with", "$Content-Type", "video/"] in conditions
    assert ["content-length-range", 1, service.settings.max_chunk_bytes] in conditions
    assert not any(
        c[0] == "starts-with" and c[1] == "$key" for c in conditions if isinstance(c, list)
    )
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) <= timedelta(seconds=service.settings.upload_url_seconds)

    too_many = service.call("POST", url, "student", json={"first_sequence": 0, "count": 500})
    assert too_many.status_code == 400
    not_video = service.call(
        "POST", url, "student", json={"first_sequence": 0, "content_type": "text/html"}
    )
    assert not_video.status_code == 400 and "content_type" in not_video.json()["error"]


def test_joining_names_the_rules_that_watch_the_student_after_accommodations(
    service: Service,
) -> None:
    from proctoring.storage import to_item

    exam_id = service.exam(start=True)
    everything = service.call("POST", f"/exams/{exam_id}/join", "other_student").json()
    assert "FACE_MISMATCH" in everything["rules"] and "PASTE" in everything["rules"]  # defaults
    table = service.settings.names.sessions_table
    db = sync_client(service.settings, "dynamodb")
    policy = {"enabled_rules": ["NO_FACE", "FACE_MISMATCH", "LEFT_EXAM"]}
    db.put_item(
        TableName=table,
        Item=to_item({"exam_id": exam_id, "student_id": "#policy", "policy": policy}),
    )
    student = service.ids["student"]
    db.put_item(
        TableName=table,
        Item=to_item(
            {"exam_id": exam_id, "student_id": student, "accommodations": {"face_checks": False}}
        ),
    )
    joined = service.call("POST", f"/exams/{exam_id}/join", "student").json()
    assert joined["rules"] == ["NO_FACE", "LEFT_EXAM"]  # the policy's, less the face checks


def test_the_speed_check_counts_the_bytes_and_keeps_none(service: Service) -> None:
    exam_id = service.exam()  # not started: the check comes before the exam
    student = service.enrol(exam_id)
    url = f"/exams/{exam_id}/students/{student}/speed-check"
    payload = bytes(range(256)) * 1024  # the page's 256 KiB
    answer = service.call("POST", url, "student", data=payload)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received_bytes": len(payload)}
    too_big = service.call("POST", url, "student", data=b"\0" * (1024 * 1024 + 1))
    assert too_big.status_code == 413 and too_big.json()["reason"] == "too_large"
    s3 = sync_client(service.settings, "s3")
    for bucket in (service.settings.names.chunks_bucket, service.settings.names.frames_bucket):
        assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []


@needs_data
def test_the_registered_photo_is_shown_to_the_exams_proctor_only_and_erased_with_the_frame(
    service: Service,
) -> None:
    exam_id = service.exam()
    student = service.enrol(exam_id)
    photo = (DATA / "faces/obama.jpg").read_bytes()
    frame = (DATA / "faces/obama2.jpg").read_bytes()  # the camera at exam start
    registered = service.call(
        "POST",
        f"/exams/{exam_id}/students/{student}/registration",
        "student",
        json={
            "photo": base64.b64encode(photo).decode(),
            "frames": [base64.b64encode(frame).decode()],
        },
    )
    assert registered.status_code == 201, registered.text
    s3, bucket = sync_client(service.settings, "s3"), service.settings.names.frames_bucket
    enrolment_frame = frame_key(exam_id, student)  # kept to seed the identity schedule
    assert s3.get_object(Bucket=bucket, Key=enrolment_frame)["Body"].read() == frame
    url = f"/exams/{exam_id}/students/{student}/photo"
    link = service.call("GET", url, "proctor")
    assert link.status_code == 200, link.text
    fetched = requests.get(link.json()["url"], timeout=30)
    assert fetched.content == photo
    assert fetched.headers["Content-Type"] == "image/jpeg"
    for who in ("student", "other_proctor"):  # the student themself, another exam's proctor
        refused = service.call("GET", url, who)
        assert refused.status_code == 403, (who, refused.text)
    erased = service.call("DELETE", f"/exams/{exam_id}/students/{student}", "proctor")
    assert erased.status_code == 200, erased.text
    assert requests.get(link.json()["url"], timeout=30).status_code == 404  # the object is gone
    assert service.call("GET", url, "proctor").status_code == 404
    assert s3.list_objects_v2(Bucket=bucket, Prefix=enrolment_frame)["KeyCount"] == 0
