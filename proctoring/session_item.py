"""How a student's session is stored: what others read as attributes, the worker's own state
as one compressed attribute.

The session item (``proctoring.storage``) holds two kinds of fields:

- what the console, the API and operators read: ``risk`` (the roster's index), ``latest``
  (the tile), the call counts, ``unavailable_rules``, ``updated_at``, ``version`` and
  anything an operator set. These stay DynamoDB attributes, as before.
- what only the worker that holds the student's lease reads back: the rule state, the
  schedule, the last analysis, the speech and integrity state, the moments of
  ``sources: both``, the newest kept frames and the rows written (``PRIVATE``). These
  travel as one binary attribute, ``state``: compact JSON, zlib-compressed.

Why: the consumer writes every student's session once per batch. As nested DynamoDB maps
the private state was ~200 typed attribute values per write; boto3's type serializer, the
deserializer and botocore's request serializer walked them in Python, about 2.5 ms of the
consumer's event loop per chunk (docs/benchmarks.md), and DynamoDB bills the map's
uncompressed size (~6 KB, six write units a save). As one attribute, JSON and zlib do the
walk in C and the item is a third of the size.

Reading is the inverse (:func:`decode`): the private fields come back as plain Python
values (numbers as ``int``/``float``, binaries as ``bytes``, no ``None`` in maps), the same
values a read of the old attribute form gave (``proctoring.dynamo.from_item``), so a
session kept in memory and one read afresh behave alike. An item without ``state`` (written
before this encoding, or by hand) is read as it is.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["PRIVATE", "STATE", "decode", "encode"]

STATE = "state"
"""The attribute that carries the private fields."""

PRIVATE = frozenset(
    {
        "rules",
        "schedule",
        "last_analysis",
        "speech",
        "integrity",
        "moments",
        "frames",
        "results_through",
    }
)
"""The fields only the lease holder reads back (module docstring)."""

_BYTES = "$b"  # a binary value in the JSON: {"$b": base64}
_LEVEL = 6  # zlib's default: ~0.05 ms for a 6 KB state


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, Decimal):  # a field read from the attribute form
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3's Binary
        return {_BYTES: base64.b64encode(value.value).decode("ascii")}
    raise TypeError(f"a session field of type {type(value).__name__} cannot be stored")


def _object(pairs: list[tuple[str, Any]]) -> Any:
    if len(pairs) == 1 and pairs[0][0] == _BYTES:
        return base64.b64decode(pairs[0][1])
    return {k: v for k, v in pairs if v is not None}  # as DynamoDB maps drop None


def encode(session: Mapping[str, Any]) -> dict[str, Any]:
    """The session as stored: its public fields, and the private ones in ``state``."""
    public = {k: v for k, v in session.items() if k not in PRIVATE}
    private = {k: v for k, v in session.items() if k in PRIVATE and v is not None}
    if private:
        text = json.dumps(private, default=_default, separators=(",", ":"), allow_nan=False)
        public[STATE] = zlib.compress(text.encode(), _LEVEL)
    return public


def decode(item: Mapping[str, Any]) -> dict[str, Any]:
    """The session as the worker uses it: ``state`` opened into its fields (module
    docstring). ``item`` holds Python values (``proctoring.dynamo.from_item``)."""
    if STATE not in item:
        return dict(item)
    session = {k: v for k, v in item.items() if k != STATE}
    stored = item[STATE]
    session.update(json.loads(zlib.decompress(bytes(stored)), object_pairs_hook=_object))
    return session
