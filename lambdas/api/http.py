"""Requests, responses and errors of the exam service, independent of who serves them.

API Gateway (HTTP API, payload format 2.0) and the local server both turn
what they receive into a ``Request`` and send back a ``Response``. Responses
are JSON (``application/json``, ``nosniff``): text a user typed - a chat
message, a review note, an exam title - travels as a JSON string and is never
markup. Every refusal is an ``ApiError`` with a status, a stable ``reason``
and a message a person can act on.

Errors::

    ProctoringError
     └── ApiError              a request refused with a 4xx status
          ├── BadRequest         400 malformed body, parameter or id
          ├── Unauthorized       401 no token, or a token that does not verify
          ├── Forbidden          403 a valid caller who may not do this
          ├── NotFound           404 no such route, exam, student or alert
          ├── Conflict           409 the exam or enrolment is in the wrong state
          ├── PayloadTooLarge    413 a body over the limit
          └── Unprocessable      422 well-formed but unusable (a photo without a face)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from proctoring.errors import ReasonError

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "Request",
    "Response",
    "Unauthorized",
    "Unprocessable",
    "from_lambda_event",
    "to_lambda_response",
]

M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 8 * 1024 * 1024  # a base64 photo of 5 MB, with room; API Gateway's limit is 10 MB
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class ApiError(ReasonError):
    status = 400
    default_reason = "bad_request"


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class Unprocessable(ApiError):
    status = 422


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def json(self, model: type[M]) -> M:
        """The body as ``model``, types taken strictly (no ``"12"`` or ``true`` for an
        integer), or BadRequest naming every wrong field."""
        if len(self.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the body is over {MAX_BODY_BYTES // 1024} KB", reason="too_large"
            )
        try:
            return model.model_validate_json(self.body or b"{}", strict=True)
        except ValidationError as exc:
            raise BadRequest(describe(exc), reason="invalid_body") from exc

    def param(self, name: str) -> str:
        return self.path_params.get(name, "")


def describe(exc: ValidationError) -> str:
    """One line naming every bad field."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {'missing' if error['type'] == 'missing' else error['msg']}")
    return "; ".join(parts)[:1000]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any) -> Response:
        return cls(
            status,
            json.dumps(value, default=str, separators=(",", ":")).encode(),
            {"Content-Type": "application/json", **_SECURITY_HEADERS},
        )

    @classmethod
    def text(cls, status: int, text: str, content_type: str, **headers: str) -> Response:
        return cls(
            status, text.encode(), {"Content-Type": content_type, **_SECURITY_HEADERS, **headers}
        )

    @classmethod
    def error(cls, exc: ApiError) -> Response:
        return cls.json(exc.status, {"error": str(exc), "reason": exc.reason})


def from_lambda_event(event: Mapping[str, Any]) -> Request:
    """API Gateway's HTTP API event (payload format 2.0) as a Request."""
    http = event.get("requestContext", {}).get("http", {})
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    return Request(
        method=str(http.get("method", "GET")).upper(),
        path=str(http.get("path") or event.get("rawPath") or "/"),
        path_params=dict(event.get("pathParameters") or {}),
        query=dict(event.get("queryStringParameters") or {}),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        body=raw,
    )


def to_lambda_response(response: Response) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": dict(response.headers),
        "body": response.body.decode(),
        "isBase64Encoded": False,
    }
