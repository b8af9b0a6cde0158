"""What a chunk leaves behind: its result row, the alerts it raises, a second object flagged.

Evidence is written once. A chunk's result row (:meth:`Results.write`) is written only if
absent and carries the SHA-256 of the bytes analysed (``chunk_sha256``) and the S3
version read, with the frame's key, hash and version (``consumer.frame_stage``); every
alert raised from it (:meth:`Results.raise_alert`) names the same evidence and what the
proctor sees beside it (``evidence``). A re-delivery of the same chunk (at-least-once: a
worker died mid-batch) finds the same bytes and changes nothing.

A *different* object for a sequence that already has a result row - another key, or other
bytes under the same key - is never analysed (:meth:`Results.second_object`): of a
student's own sources (camera, screen) it is recorded as tampering (a high-severity
``CHUNK_REPLACED`` alert pointing at the first evidence, an errors row with
``reason = second_object``, the ``ChunksReplaced`` metric) and the first row, frame and
alert stay as they were. Two ``chime`` objects on one moment are the capture pipeline's,
not a student's: the second is skipped, unflagged.

A chunk that is recorded and not analysed (a stopped exam, a source the policy leaves
out, a moment the other source covered) gets a ``not_analysed`` row with the reason
(:meth:`Results.not_analysed`), the ``ChunksNotAnalysed`` metric and a log line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from consumer.frame_stage import Chunk
from consumer.outlet import Outlet
from consumer.speech import speech_fields
from proctoring.events import ChunkEvent
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.rules import Finding
from proctoring.storage import Tables

__all__ = ["REPLACED", "Results", "result_row", "stage_times"]

_log = structlog.get_logger(__name__)
REPLACED = "CHUNK_REPLACED"
"""The alert type of a second object uploaded for a sequence that has its result."""


def result_row(event: ChunkEvent, now: datetime, expires_at: int, **fields: Any) -> dict[str, Any]:
    """A chunk's result row: where the chunk is and when it came, then ``fields``.

    The router's timings (``notified_at``, ``routed_at``) are kept when the event has them:
    with the consumer's (:func:`stage_times`) they are the per-stage latency breakdown.
    """
    routed: dict[str, str] = {k: when.isoformat() for k, when in (event.timings or {}).items()}
    return {
        "session_id": event.session_id,
        "chunk_id": f"{event.source}#{event.sequence:06d}",
        "exam_id": event.exam_id,
        "student_id": event.student_id,
        "source": event.source,
        "sequence": event.sequence,
        "chunk_key": event.key,
        "captured_at": event.captured_at.isoformat(),
        "uploaded_at": event.uploaded_at.isoformat(),
        "processed_at": now.isoformat(),
        "expires_at": expires_at,
        **routed,
        **fields,
    }


def stage_times(chunk: Chunk) -> dict[str, str]:
    """When the chunk reached Kinesis, was read, had its frame stored and was analysed (ISO
    times, those known): the consumer's part of the per-stage latency breakdown."""
    marks = {
        "arrived_at": chunk.record.arrived_at,
        "read_at": chunk.record.read_at,
        "extracted_at": chunk.extracted_at,
        "analysed_at": chunk.analysed_at,
    }
    return {
        name: datetime.fromtimestamp(when, tz=UTC).isoformat()
        for name, when in marks.items()
        if when is not None
    }


class Results:
    """See the module docstring. One per processor; alerts and errors go through ``outlet``."""

    def __init__(self, *, tables: Tables, metrics: Metrics, outlet: Outlet) -> None:
        self._tables = tables
        self._metrics = metrics
        self._outlet = outlet

    def row(self, event: ChunkEvent, now: datetime, **fields: Any) -> dict[str, Any]:
        """The chunk's result row written ``now``, with its expiry (see ``result_row``)."""
        return result_row(event, now, self._outlet.expiry(now), **fields)

    async def not_analysed(self, event: ChunkEvent, reason: str, **fields: Any) -> None:
        """Record a chunk that is not analysed, and why: a row, a metric, a log line."""
        await self._tables.put_result(
            self.row(event, self._outlet.now(), status="not_analysed", reason=reason, **fields)
        )
        self._metrics.add(MetricName.ChunksNotAnalysed, Reason=reason)
        _log.info(
            "chunk recorded, not analysed",
            exam=event.exam_id,
            student=event.student_id,
            source=event.source,
            seq=event.sequence,
            reason=reason,
            **fields,
        )

    async def write(self, chunk: Chunk) -> dict[str, Any] | None:
        """Write the chunk's result row unless it has one; the row that was there, if any."""
        row = self.build(chunk)
        first = await self._tables.put_result(row)
        if first is not None:  # processed again (at least once), or a second object
            self._metrics.add(MetricName.ChunksRedelivered)
            _log.info(
                "chunk processed",
                status=first.get("status"),
                kept=True,  # the row written first stays as it was
                latency_ms=row["latency_ms"],
            )
            return first
        self.written(row)
        return None

    def build(self, chunk: Chunk) -> dict[str, Any]:
        """The chunk's result row, as :meth:`write` writes it (or the session's save does)."""
        event = chunk.event
        now = self._outlet.now()
        row = self.row(
            event, now, latency_ms=round((now - event.uploaded_at).total_seconds() * 1000)
        )
        row.update(chunk_sha256=chunk.digest, chunk_version=chunk.version)
        row.update(stage_times(chunk))
        if chunk.error is not None:
            row.update(status="error", error_reason=chunk.error.reason, error=str(chunk.error))
        else:
            assert chunk.frame is not None
            row.update(status="ok", frame_key=chunk.frame_key, rotation=chunk.frame.rotation)
            row.update(frame_sha256=chunk.frame_digest, frame_version=chunk.frame_version)
            row["frame_time"] = round(chunk.frame.time, 3)
            if chunk.analysed is not None:
                row.update(chunk.analysed.row)
            if chunk.heard is not None and not isinstance(chunk.heard, Exception):
                row.update(speech_fields(chunk.heard))
        return row

    def written(self, row: dict[str, Any]) -> None:
        """A new row is durable: its metrics and log line."""
        self._metrics.add(MetricName.ChunksProcessed)
        self._metrics.add(MetricName.ChunkLatencyMs, row["latency_ms"], "Milliseconds")
        _log.info(
            "chunk processed",
            exam=row["exam_id"],
            student=row["student_id"],
            source=row["source"],
            seq=row["sequence"],
            status=row["status"],
            faces=row.get("faces"),
            identity=row.get("identity"),
            latency_ms=row["latency_ms"],
        )

    async def raise_alert(self, chunk: Chunk, finding: Finding) -> None:
        """Raise a finding of the chunk's analysis as an alert naming the chunk's evidence."""
        event = chunk.event
        analysis = chunk.analysed.analysis if chunk.analysed else None
        alert = self._outlet.alert(
            event.exam_id,
            event.student_id,
            event.source,
            finding,
            frame_key=chunk.frame_key,
            frame_sha256=chunk.frame_digest,
            frame_version=chunk.frame_version,
            chunk_key=event.key,
            chunk_sha256=chunk.digest,
            chunk_version=chunk.version,
            faces=len(analysis.faces) if analysis else None,
            distance=None
            if analysis is None or analysis.distance is None
            else round(analysis.distance, 4),
            evidence=_evidence(chunk.analysed.row) if chunk.analysed else None,
            frame_time=round(chunk.frame.time, 3) if chunk.frame else None,
            risk=chunk.analysed.row.get("risk") if chunk.analysed else None,
        )
        if await self._outlet.raise_alert(alert, first=finding.first_sequence):
            self._metrics.add(  # S3 ObjectCreated of the raising chunk -> alert published
                MetricName.AlertLatencyMs,
                (self._outlet.now() - event.uploaded_at).total_seconds() * 1000,
                "Milliseconds",
            )

    async def second_object(self, chunk: Chunk, first: dict[str, Any]) -> bool:
        """Record a second object for a sequence; True when it was flagged as tampering.

        Only what students write (``camera``, ``screen``: presigned forms) can be tampering.
        The Chime capture pipeline writes ``chime`` objects itself, and two of them may fall
        on one 5 s moment (a re-joined attendee, a chunk boundary): the first stays, the
        second is left unanalysed with a log line and ``ChunksNotAnalysed``, no alert.
        """
        if chunk.event.source == "chime":
            self._metrics.add(MetricName.ChunksNotAnalysed, Reason="moment_taken")
            _log.info(
                "chunk recorded, not analysed",
                reason="moment_taken",
                key=chunk.event.key,
                first=first.get("chunk_key"),
            )
            return False
        await self._record_replacement(chunk, first)
        return True

    async def _record_replacement(self, chunk: Chunk, first: dict[str, Any]) -> None:
        """A second object for a sequence: an alert pointing at the first evidence, an errors
        row naming both objects, the ``ChunksReplaced`` metric. Nothing is analysed."""
        event = chunk.event
        finding = Finding(REPLACED, "high", event.sequence, event.sequence, 1)
        what = (
            f"a second object for {event.source} chunk {event.sequence}: "
            f"{event.key} after {first.get('chunk_key')}"
        )
        alert = self._outlet.alert(
            event.exam_id,
            event.student_id,
            event.source,
            finding,
            # the evidence stays the first object's; the second is named beside it
            frame_key=first.get("frame_key"),
            frame_sha256=first.get("frame_sha256"),
            frame_version=first.get("frame_version"),
            chunk_key=first.get("chunk_key"),
            chunk_sha256=first.get("chunk_sha256"),
            chunk_version=first.get("chunk_version"),
            replaced_by={
                "chunk_key": event.key,
                "chunk_sha256": chunk.digest,
                "chunk_version": chunk.version,
                "size": event.size,
            },
            evidence={"message": what},
        )
        await self._outlet.record_error(
            exam_id=event.exam_id,
            error_id=f"replaced#{event.student_id}#{event.source}#{event.sequence:06d}#"
            f"{(chunk.digest or event.key)[-16:]}",
            stage="chunk",
            reason="second_object",
            message=what,
            student_id=event.student_id,
            chunk_key=event.key,
            first_chunk_key=first.get("chunk_key"),
            sequence_number=chunk.record.sequence_number,
        )
        self._metrics.add(MetricName.ChunksReplaced)
        if not await self._outlet.deliver(alert):
            return
        self._metrics.add(MetricName.AlertsRaised, Rule=REPLACED)
        _log.warning("second object for a chunk", alert=alert["alert_id"], key=event.key)


def _evidence(row: dict[str, Any]) -> dict[str, Any]:
    """What the proctor sees beside the frame: the face details, identity (with the distance
    to the registered face, the threshold and the margin between them), people, objects,
    and which frame decided the chunk (``analysed``: its middle frame, its first frame where
    the middle one was in doubt, or a repeat of chunk ``repeat_of``)."""
    return {
        key: row[key]
        for key in (
            "analysed",
            "repeat_of",
            "face_details",
            "identity",
            "distance",
            "threshold",
            "margin",
            "persons",
            "objects",
            "similarity",
        )
        if row.get(key) not in (None, [], {})
    }
