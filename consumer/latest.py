"""What the console's tile shows of a student, kept on their session item.

The proctor's roster (``lambdas.api.roster``) polls every few seconds. It used to query each
student's newest result row: 200 queries a poll at 200 students, ~67 a second per console.
The consumer writes each student's session item once per batch anyway, so it keeps there
what the tile needs, and a poll reads the exam's sessions in one query:

``latest``
    the student's newest chunk that has a result row (``ok`` or ``error``): its source,
    sequence, status, faces and identity, when it was captured, reached the bucket
    (``uploaded_at``, the console's "last seen") and was processed, and ``frame_key``: the
    newest frame stored, which a chunk without one (an error, or a frame the policy's
    ``frame_every`` did not keep: ``consumer.frame_stage.KeptFrames``) leaves as it was.

"Newest" is by capture time, then sequence: a late chunk (S3 notifications keep no order)
is judged in its place by the rules and does not move the tile back. A chunk recorded and
not analysed (a stopped exam, a source the policy leaves out) is not a student's newest
chunk: after Stop, the tile keeps the last frame analysed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from consumer.frame_stage import Chunk

__all__ = ["fold_latest"]

_ANALYSED = ("faces", "identity", "risk")


def fold_latest(
    latest: Mapping[str, Any] | None, chunk: Chunk, processed_at: datetime
) -> dict[str, Any] | None:
    """``latest`` with ``chunk`` folded in: the chunk's summary if it is newer, else as it was."""
    event = chunk.event
    captured = event.captured_at.isoformat()
    if latest is not None and _order(latest) >= (captured, event.sequence):
        return dict(latest)
    summary: dict[str, Any] = {
        "source": event.source,
        "sequence": event.sequence,
        "status": "error" if chunk.error is not None else "ok",
        "captured_at": captured,
        "uploaded_at": event.uploaded_at.isoformat(),
        "processed_at": processed_at.isoformat(),
    }
    if chunk.analysed is not None:
        summary.update(
            {k: chunk.analysed.row[k] for k in _ANALYSED if chunk.analysed.row.get(k) is not None}
        )
    frame_key = chunk.frame_key or (latest or {}).get("frame_key")
    if frame_key:
        summary["frame_key"] = frame_key
    return summary


def _order(summary: Mapping[str, Any]) -> tuple[str, int]:
    """Which chunk is newer: capture time (ISO, UTC), then sequence."""
    return str(summary.get("captured_at", "")), int(summary.get("sequence", -1))
