"""Registration through the Lambda handler, as API Gateway calls it."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from lambdas.register import handler
from proctoring.aws import sync_client
from proctoring.settings import Settings
from tests.conftest import DATA, require_data


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PROCTOR_ENDPOINT_URL", settings.endpoint_url or "")
    monkeypatch.setenv("PROCTOR_PREFIX", settings.prefix)
    monkeypatch.setenv("PROCTOR_LOG_FORMAT", "console")
    return settings


def _call(photo: bytes | None, student: str = "stu-1", body: str | None = None) -> dict[str, Any]:
    event = {
        "pathParameters": {"exam_id": "exam-1", "student_id": student},
        "body": body
        if body is not None
        else json.dumps({"photo": base64.b64encode(photo or b"").decode()}),
    }
    response = handler(event)
    return {"status": response["statusCode"], **json.loads(response["body"])}


def test_a_photo_with_one_face_is_registered(env: Settings) -> None:
    require_data()
    response = _call((DATA / "faces/obama.jpg").read_bytes())
    assert response["status"] == 201
    item = sync_client(env, "dynamodb").get_item(
        TableName=env.names.faces_table,
        Key={"exam_id": {"S": "exam-1"}, "student_id": {"S": "stu-1"}},
    )["Item"]
    assert len(item["embedding"]["B"]) == 128 * 4


def test_a_photo_with_two_people_is_refused_with_a_clear_message(env: Settings) -> None:
    require_data()
    response = _call((DATA / "faces/two_people.jpg").read_bytes())
    assert response["status"] == 422
    assert response["reason"] == "several_faces"
    assert "2 faces" in response["error"]


def test_a_photo_without_a_face_is_refused(env: Settings) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 90, 90)).save(blank, "JPEG")
    response = _call(blank.getvalue())
    assert (response["status"], response["reason"]) == (422, "no_face")
    assert "no face" in response["error"]


def test_malformed_requests_get_400(env: Settings) -> None:
    assert _call(None, body="{not json")["status"] == 400
    assert _call(None, body=json.dumps({"photo": "***"}))["status"] == 400
    require_data()
    response = _call((DATA / "faces/obama.jpg").read_bytes(), student="../etc")
    assert (response["status"], response["reason"]) == (400, "bad_id")


def test_a_warm_register_lambda_reuses_its_clients(
    env: Settings, monkeypatch: pytest.MonkeyPatch, built_clients: list[str]
) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 90, 90)).save(blank, "JPEG")
    for _ in range(2):
        assert _call(blank.getvalue())["reason"] == "no_face"  # through the engine, twice
    assert sorted(built_clients) == ["dynamodb", "kinesis", "s3", "sns", "sqs"]  # once, not twice
