"""CloudFormation custom resource ``Custom::RekognitionCollection``: the stack's face collection.

CloudFormation has no resource type for a Rekognition collection, so the
template declares one backed by this Lambda. CloudFormation invokes it
asynchronously with a ``Create``, ``Update`` or ``Delete`` request and waits
for the answer PUT to the request's presigned ``ResponseURL``:

- ``Create``: ``CreateCollection`` (with the resource's ``Tags``); the physical
  id is the collection id, ``Arn`` and ``CollectionId`` are returned for
  ``!GetAtt``.
- ``Update``: a changed ``CollectionId`` creates the new collection and
  answers with its id, so CloudFormation deletes the old one afterwards; an
  unchanged id changes nothing.
- ``Delete``: ``DeleteCollection``. Indexed faces are biometric data and go
  with the stack; a collection that is already gone is a success.

Two rules keep faces the stack did not create safe. A collection that already
exists at ``Create`` is refused, never adopted (deleting the stack would delete
it). A failed ``Create`` answers with a physical id that is not a collection id
(``failed-<request>``), so the rollback's ``Delete`` touches nothing.

Every request gets an answer, whatever fails: an unanswered request leaves the
stack waiting for an hour. The response URL is a credential for the answer and
is never logged.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from proctoring.aws import sync_client
from proctoring.logs import configure_logging
from proctoring.settings import Settings

__all__ = ["handler", "respond", "send_response"]

_log = structlog.get_logger(__name__)
_FAILED_PREFIX = "failed-"
_MAX_REASON = 1000  # the whole response must stay under 4 KB


class _Refused(Exception):
    """The request cannot be carried out safely; the reason goes back to CloudFormation."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _collection_arn(stack_id: str, collection_id: str) -> str:
    """The collection's IAM ARN, in the stack's partition, region and account.

    Built rather than taken from ``CreateCollection``, whose ``CollectionArn``
    lacks the ``arn:`` prefix IAM policies need.
    """
    _, partition, _, region, account, _ = stack_id.split(":", 5)
    return f"arn:{partition}:rekognition:{region}:{account}:collection/{collection_id}"


def _create(rekognition: Any, collection_id: str, tags: Mapping[str, str]) -> None:
    kwargs: dict[str, Any] = {"CollectionId": collection_id}
    if tags:
        kwargs["Tags"] = dict(tags)
    try:
        rekognition.create_collection(**kwargs)
    except ClientError as exc:
        if _error_code(exc) == "ResourceAlreadyExistsException":
            raise _Refused(
                f"collection {collection_id} already exists and was not created by this stack; "
                "delete it or choose another Prefix"
            ) from exc
        raise


def _delete(rekognition: Any, collection_id: str) -> None:
    try:
        rekognition.delete_collection(CollectionId=collection_id)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        _log.info("collection already gone", collection_id=collection_id)


def respond(event: Mapping[str, Any], rekognition: Any) -> dict[str, Any]:
    """Carry out one CloudFormation request; the response body to send back."""
    request_type = event["RequestType"]
    properties = event.get("ResourceProperties", {})
    collection_id = str(properties.get("CollectionId", ""))
    tags = properties.get("Tags") or {}
    physical_id = str(event.get("PhysicalResourceId", ""))
    body: dict[str, Any] = {
        "Status": "SUCCESS",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    log = _log.bind(request=request_type, collection_id=collection_id or physical_id)
    try:
        if request_type == "Delete":
            if physical_id and not physical_id.startswith(_FAILED_PREFIX):
                _delete(rekognition, physical_id)
        else:
            if not collection_id:
                raise _Refused("the CollectionId property is required")
            if request_type == "Create" or collection_id != physical_id:
                _create(rekognition, collection_id, tags)
            physical_id = collection_id
            body["Data"] = {
                "CollectionId": collection_id,
                "Arn": _collection_arn(event["StackId"], collection_id),
            }
        body["PhysicalResourceId"] = physical_id
        log.info("custom resource request done")
    except (_Refused, ClientError, BotoCoreError) as exc:
        log.error("custom resource request failed", error=str(exc))
        body.update(
            Status="FAILED",
            Reason=str(exc)[:_MAX_REASON],
            PhysicalResourceId=(
                physical_id if request_type != "Create" else f"{_FAILED_PREFIX}{event['RequestId']}"
            ),
        )
        body.pop("Data", None)
    return body


def send_response(response_url: str, body: Mapping[str, Any], *, timeout: float) -> int:
    """PUT the response where CloudFormation waits for it; the HTTP status."""
    if not response_url.startswith("https://") and not response_url.startswith("http://127."):
        raise ValueError("the response URL must be https (or loopback in tests)")
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        response_url,
        data=data,
        method="PUT",
        # The presigned URL signs no content type: send an empty one.
        headers={"Content-Type": "", "Content-Length": str(len(data))},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
        status: int = answer.status
        return status


def handler(event: dict[str, Any], context: Any = None) -> None:
    """AWS Lambda entry point (invoked by CloudFormation)."""
    settings = Settings()
    configure_logging(settings)
    try:
        body = respond(event, sync_client(settings, "rekognition"))
    except Exception as exc:  # CloudFormation must get an answer, whatever failed
        _log.exception("custom resource handler crashed")
        body = {
            "Status": "FAILED",
            "Reason": f"handler crashed: {exc}"[:_MAX_REASON],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or f"{_FAILED_PREFIX}{event.get('RequestId', 'unknown')}",
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
        }
    send_response(event["ResponseURL"], body, timeout=settings.call_timeout)
