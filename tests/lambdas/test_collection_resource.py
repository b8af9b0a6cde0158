"""The face-collection custom resource, as CloudFormation drives it.

Rekognition has no local emulator: its requests go to a botocore Stubber,
which checks each one against the service model. CloudFormation's side is
real HTTP: the handler PUTs its answer to a server on loopback, as it does to
the presigned response URL in AWS.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas import collection_resource
from lambdas.collection_resource import respond, send_response

STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/proctor/0a1b2c3d-guid"
ARN = "arn:aws:rekognition:eu-west-1:123456789012:collection/proctor-faces"


def _event(request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "FaceCollection",
        "ResourceType": "Custom::RekognitionCollection",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/presigned",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:x",
            "CollectionId": "proctor-faces",
            "Tags": {"Prefix": "proctor"},
        },
        **extra,
    }


@pytest.fixture
def rekognition() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.session.Session().client(
        "rekognition",
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


class _Receiver:
    """CloudFormation's end of the response URL: an HTTP server on loopback."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/presigned?X-Amz-Signature=s"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    with _Receiver() as running:
        yield running


def test_create_makes_the_collection_and_returns_its_iam_arn(rekognition: Any) -> None:
    client, stubber = rekognition
    stubber.add_response(
        "create_collection",
        {
            "StatusCode": 200,
            "CollectionArn": "aws:rekognition:eu-west-1:123456789012:collection/proctor-faces",
            "FaceModelVersion": "7.0",
        },
        {"CollectionId": "proctor-faces", "Tags": {"Prefix": "proctor"}},
    )
    body = respond(_event("Create"), client)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "proctor-faces"
    assert body["Data"] == {"CollectionId": "proctor-faces", "Arn": ARN}
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        STACK_ID,
        "req-1",
        "FaceCollection",
    )


def test_an_existing_collection_is_refused_and_never_adopted(rekognition: Any) -> None:
    client, stubber = rekognition
    stubber.add_client_error(
        "create_collection",
        service_error_code="ResourceAlreadyExistsException",
        expected_params={"CollectionId": "proctor-faces", "Tags": {"Prefix": "proctor"}},
    )
    body = respond(_event("Create"), client)
    assert body["Status"] == "FAILED"
    assert "already exists" in body["Reason"]
    # The rollback's Delete carries this id: it must not name the existing collection.
    assert body["PhysicalResourceId"] == "failed-req-1"
    assert "Data" not in body


def test_the_rollback_delete_after_a_failed_create_touches_nothing(rekognition: Any) -> None:
    client, _ = rekognition  # no stubbed response: any Rekognition call would fail the test
    body = respond(_event("Delete", PhysicalResourceId="failed-req-1"), client)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "failed-req-1"


def test_delete_removes_the_collection_and_its_faces(rekognition: Any) -> None:
    client, stubber = rekognition
    stubber.add_response(
        "delete_collection", {"StatusCode": 200}, {"CollectionId": "proctor-faces"}
    )
    body = respond(_event("Delete", PhysicalResourceId="proctor-faces"), client)
    assert body["Status"] == "SUCCESS"


def test_deleting_a_collection_that_is_gone_succeeds(rekognition: Any) -> None:
    client, stubber = rekognition
    stubber.add_client_error(
        "delete_collection",
        service_error_code="ResourceNotFoundException",
        expected_params={"CollectionId": "proctor-faces"},
    )
    body = respond(_event("Delete", PhysicalResourceId="proctor-faces"), client)
    assert body["Status"] == "SUCCESS"


def test_a_delete_that_fails_is_reported_with_the_reason(rekognition: Any) -> None:
    client, stubber = rekognition
    stubber.add_client_error(
        "delete_collection",
        service_error_code="AccessDeniedException",
        service_message="not allowed",
        expected_params={"CollectionId": "proctor-faces"},
    )
    body = respond(_event("Delete", PhysicalResourceId="proctor-faces"), client)
    assert body["Status"] == "FAILED"
    assert "not allowed" in body["Reason"]
    assert body["PhysicalResourceId"] == "proctor-faces"


def test_an_update_with_the_same_id_changes_nothing(rekognition: Any) -> None:
    client, _ = rekognition
    body = respond(_event("Update", PhysicalResourceId="proctor-faces"), client)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "proctor-faces"
    assert body["Data"]["Arn"] == ARN


def test_an_update_with_a_new_id_creates_the_new_collection(rekognition: Any) -> None:
    client, stubber = rekognition
    stubber.add_response(
        "create_collection",
        {"StatusCode": 200, "CollectionArn": "x", "FaceModelVersion": "7.0"},
        {"CollectionId": "proctor-faces-v2", "Tags": {"Prefix": "proctor"}},
    )
    event = _event("Update", PhysicalResourceId="proctor-faces")
    event["ResourceProperties"]["CollectionId"] = "proctor-faces-v2"
    body = respond(event, client)
    # A new physical id: CloudFormation then sends Delete for proctor-faces.
    assert body["PhysicalResourceId"] == "proctor-faces-v2"
    assert body["Data"]["Arn"].endswith(":collection/proctor-faces-v2")


def test_a_missing_collection_id_fails_without_calling_rekognition(rekognition: Any) -> None:
    client, _ = rekognition
    event = _event("Create")
    del event["ResourceProperties"]["CollectionId"]
    body = respond(event, client)
    assert body["Status"] == "FAILED"
    assert "CollectionId" in body["Reason"]


def test_the_answer_reaches_the_response_url(receiver: _Receiver) -> None:
    status = send_response(receiver.url, {"Status": "SUCCESS", "Data": {}}, timeout=5)
    assert status == 200
    [request] = receiver.requests
    assert request["path"] == "/presigned?X-Amz-Signature=s"
    assert request["content_type"] == ""  # the presigned URL signs no content type
    assert request["body"] == {"Status": "SUCCESS", "Data": {}}


def test_the_response_url_must_be_https() -> None:
    with pytest.raises(ValueError, match="https"):
        send_response("http://example.com/x", {}, timeout=1)


def test_the_handler_answers_even_when_it_crashes(
    receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_client(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no credentials")

    monkeypatch.setattr(collection_resource, "sync_client", broken_client)
    monkeypatch.setenv("PROCTOR_LOG_FORMAT", "console")
    collection_resource.handler(_event("Create", ResponseURL=receiver.url))
    [request] = receiver.requests
    assert request["body"]["Status"] == "FAILED"
    assert "no credentials" in request["body"]["Reason"]
    assert request["body"]["PhysicalResourceId"] == "failed-req-1"


def test_the_handler_carries_out_the_request_and_answers(
    receiver: _Receiver, rekognition: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = rekognition
    stubber.add_response(
        "delete_collection", {"StatusCode": 200}, {"CollectionId": "proctor-faces"}
    )
    monkeypatch.setattr(collection_resource, "sync_client", lambda settings, name: client)
    monkeypatch.setenv("PROCTOR_LOG_FORMAT", "console")
    event = _event("Delete", PhysicalResourceId="proctor-faces", ResponseURL=receiver.url)
    collection_resource.handler(event)
    [request] = receiver.requests
    assert request["body"]["Status"] == "SUCCESS"
    assert request["body"]["PhysicalResourceId"] == "proctor-faces"
