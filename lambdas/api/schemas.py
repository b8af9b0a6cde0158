"""JSON Schemas of the API's answers (the OpenAPI document's ``responses``), the base of every
request body, and id checks.

The answer schemas say what a client can rely on: required fields and their types;
further fields may appear. The fuzz test checks every answer against them.

Request bodies derive from ``Body``: no unknown field, and strict types - an integer is a
JSON integer, never ``"12"``, ``12.0`` or ``true``; a boolean is ``true`` or ``false``. Text
a person must read (a title, a chat message, a note, a reason) is ``Visible``: at least one
character that shows, so whitespace alone or zero-width characters alone (U+200B..U+200D,
U+2060, U+FEFF, ...) are refused like an empty string.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from lambdas.api.http import BadRequest

__all__ = [
    "ERROR",
    "EXAM",
    "EXAM_LIST",
    "Body",
    "JsonTrue",
    "OptionalVisible",
    "Visible",
    "check_id",
    "is_visible",
    "listing",
    "obj",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ALERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Letters, digits, punctuation and symbols show; these few of them are drawn as nothing.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_visible(text: str) -> bool:
    """Whether ``text`` has a character a reader sees (not only spaces, controls, format
    characters such as zero-width spaces, or lone combining marks)."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK_GLYPHS for c in text)


def _visible(value: str) -> str:
    if not is_visible(value):
        raise ValueError("must have a visible character (not only spaces or invisible ones)")
    return value


def _empty_or_visible(value: str) -> str:
    return _visible(value) if value else value


Visible = Annotated[str, AfterValidator(_visible)]
"""Text that must show: at least one visible character."""
OptionalVisible = Annotated[str, AfterValidator(_empty_or_visible)]
"""Text that may be left out (``""``), but not given as blanks."""


def _json_true(value: Any) -> Any:
    if value is not True:  # Literal[True] alone takes 1, which equals True in Python
        raise ValueError("must be true")
    return value


JsonTrue = Annotated[Literal[True], BeforeValidator(_json_true)]
"""JSON ``true`` and nothing else."""


class Body(BaseModel):
    """A request body: unknown fields refused, JSON types taken strictly."""

    model_config = ConfigDict(extra="forbid", strict=True)


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
        "audio": BOOL,
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
        "rules": {"type": "array", "items": STR},
        "privacy": obj({"retention_days": INT, "contact": STR}),
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
VERIFICATION = obj(
    {"verified": BOOL, "records": INT},
    {
        "head": {"type": ["string", "null"]},
        "chains": {"type": "object", "additionalProperties": STR},
        "problem": {"type": ["string", "null"]},
    },
)
REPORT = obj(
    {
        "exam": EXAM,
        "students": {"type": "array", "items": {"type": "object"}},
        "audit": VERIFICATION,
    }
)
ERASURE = obj({"exam_id": STR, "student_id": STR, "deleted": {"type": "object"}, "audit_id": STR})
AUDIT = obj(
    {
        "records": {
            "type": "array",
            "items": obj(
                {"audit_id": STR, "action": STR, "at": STR},
                {"chain": STR, "seq": INT, "prev": STR, "hash": STR},
            ),
        },
        "verification": VERIFICATION,
    }
)
EVIDENCE = obj({"expires_in": INT}, {"url": STR, "chunk_url": STR})
"""``url``: the evidence frame, absent when none was kept (a CHUNK_REPLACED alert whose first
chunk's frame the policy's ``frame_every`` left out): the chunk (``chunk_url``) is then the
evidence."""


def check_id(value: str, name: str, *, alert: bool = False) -> str:
    """An id from the path: the chunk-key alphabet, or BadRequest."""
    pattern = _ALERT_ID if alert else _ID
    if not pattern.match(value) or ".." in value:
        raise BadRequest(
            f"{name} must be 1-64 letters, digits, '.', '_' or '-' (got {value[:70]!r})",
            reason="bad_id",
        )
    return value
