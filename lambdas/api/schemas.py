"""JSON Schemas of the API's answers (the OpenAPI document's ``responses``) and id checks.

The schemas say what a client can rely on: required fields and their types;
further fields may appear. The fuzz test checks every answer against them.
"""

from __future__ import annotations

import re
from typing import Any

from lambdas.api.http import BadRequest

__all__ = ["ERROR", "EXAM", "EXAM_LIST", "check_id", "listing", "obj"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ALERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def listing(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return obj({name: {"type": "array", "items": item}})


ERROR = obj({"error": STR, "reason": STR})
EXAM = obj(
    {
        "exam_id": STR,
        "title": STR,
        "status": {"type": "string", "enum": ["created", "started", "stopped"]},
    },
    {
        "proctor_id": STR,
        "student_alerts": BOOL,
        "screen": BOOL,
        "created_at": STR,
        "started_at": STR,
        "stopped_at": STR,
    },
)
EXAM_LIST = listing("exams", EXAM)
ENROLMENT = obj(
    {"exam_id": STR, "student_id": STR, "joined_at": STR},
    {
        "name": STR,
        "consent": obj({"version": STR, "at": STR}),
        "registered_at": STR,
        "consent_version": STR,
        "meeting": {"type": "object"},
    },
)
RESULT = obj({"session_id": STR, "chunk_id": STR, "status": STR}, {"sequence": INT})
ALERT = obj(
    {"exam_id": STR, "alert_id": STR, "student_id": STR, "type": STR, "status": STR},
    {"severity": STR, "sequence": INT, "first_sequence": INT, "reviews": {"type": "array"}},
)
MESSAGE = obj(
    {"message_id": STR, "kind": STR, "student_id": STR, "sender_id": STR, "created_at": STR},
    {"text": STR, "alert": {"type": "object"}},
)
UPLOAD = obj({"sequence": INT, "key": STR, "url": STR, "fields": {"type": "object"}})
UPLOADS = obj({"uploads": {"type": "array", "items": UPLOAD}, "max_bytes": INT, "expires_in": INT})
REPORT = obj({"exam": EXAM, "students": {"type": "array", "items": {"type": "object"}}})
ERASURE = obj({"exam_id": STR, "student_id": STR, "deleted": {"type": "object"}, "audit_id": STR})
AUDIT = listing("records", obj({"audit_id": STR, "action": STR, "at": STR}))
EVIDENCE = obj({"url": STR, "expires_in": INT}, {"chunk_url": STR})


def check_id(value: str, name: str, *, alert: bool = False) -> str:
    """An id from the path: the chunk-key alphabet, or BadRequest."""
    pattern = _ALERT_ID if alert else _ID
    if not pattern.match(value) or ".." in value:
        raise BadRequest(
            f"{name} must be 1-64 letters, digits, '.', '_' or '-' (got {value[:70]!r})",
            reason="bad_id",
        )
    return value
