"""Rows of the errors table the consumer writes: bad input, and records parked as poison.

Bad input is recorded, never lost, and the rest of the batch goes on:

- :meth:`ErrorRows.record` is the one way a stage records it (the ``record_error`` of
  ``consumer.outlet.Outlet``): a row a human can inspect (with its expiry), the
  ``ChunkErrors`` metric by reason, a ``bad input`` log line;
- :meth:`ErrorRows.bad_event`: a record that is no event of ours (malformed, a foreign
  bucket), ``stage = event``, with a preview of its bytes;
- :meth:`ErrorRows.bad_chunk`: a chunk that could not be read or decoded,
  ``stage = chunk`` (its result row says ``status = error``).

A record that kept failing (``consumer.poison``) is set aside by :meth:`ErrorRows.park`:
a ``stage = parked`` row with the whole record (``proctor parked replay`` puts it back on
the stream, ``consumer.parked``), the ``RecordsParked`` metric, an error log line and,
for a chunk, a ``status = error`` result row so the student's timeline shows the gap.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.batch import Record
from consumer.frame_stage import Chunk
from consumer.results import result_row
from proctoring.events import ChunkEvent, InvalidEvent
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.storage import StorageError, Tables

__all__ = ["ErrorRows"]

_log = structlog.get_logger(__name__)
_RAW_PREVIEW = 512  # bytes of a bad event kept on its row


class ErrorRows:
    """See the module docstring. One per processor, on the processor's clock."""

    def __init__(
        self,
        *,
        tables: Tables,
        metrics: Metrics,
        now: Callable[[], datetime],
        expiry: Callable[[datetime], int],
    ) -> None:
        self._tables = tables
        self._metrics = metrics
        self._now = now
        self._expiry = expiry

    async def record(self, *, reason: str, message: str, **fields: Any) -> None:
        """Write an errors row (``fields`` name where), count it, log it."""
        await self._put(self._now(), **fields, reason=reason, message=message)
        self._metrics.add(MetricName.ChunkErrors, Reason=reason)
        _log.error("bad input", reason=reason, error=message, stage=fields.get("stage"))

    async def bad_event(self, record: Record, exc: InvalidEvent, shard_id: str) -> None:
        """A record that is not a valid event: filed under the exam its partition key names."""
        exam_id = record.partition_key.split("#", 1)[0] or "_unknown"
        if len(exam_id) > 64 or not exam_id.isprintable():
            exam_id = "_unknown"
        await self.record(
            exam_id=exam_id,
            error_id=f"event#{shard_id}#{record.sequence_number}",
            stage="event",
            reason=exc.reason,
            message=str(exc),
            raw=record.data[:_RAW_PREVIEW].decode("utf-8", "replace"),
            shard_id=shard_id,
            sequence_number=record.sequence_number,
        )

    async def bad_chunk(self, chunk: Chunk) -> None:
        """A chunk whose frame could not be had (``chunk.error``)."""
        assert chunk.error is not None
        event = chunk.event
        await self.record(
            exam_id=event.exam_id,
            error_id=f"chunk#{event.student_id}#{event.source}#{event.sequence:06d}",
            stage="chunk",
            reason=chunk.error.reason,
            message=str(chunk.error),
            student_id=event.student_id,
            chunk_key=event.key,
            sequence_number=chunk.record.sequence_number,
        )

    async def park(
        self, record: Record, *, shard_id: str, error: BaseException, attempts: int
    ) -> None:
        """Set aside a record that kept failing ``attempts`` times (see the module docstring)."""
        try:
            event: ChunkEvent | None = ChunkEvent.from_bytes(record.data)
        except InvalidEvent:
            event = None
        exam_id = event.exam_id if event else "_unknown"
        now = self._now()
        if event is not None:  # best effort: the errors row below is the record that counts
            with contextlib.suppress(StorageError, ClientError):
                await self._tables.put_result(
                    result_row(
                        event,
                        now,
                        self._expiry(now),
                        status="error",
                        error_reason="parked",
                        error=f"processing failed {attempts} times; parked for replay",
                    )
                )
        await self._put(
            now,
            exam_id=exam_id,
            error_id=f"parked#{shard_id}#{record.sequence_number}",
            stage="parked",
            reason="poison",
            message=repr(error)[:2000],
            attempts=attempts,
            shard_id=shard_id,
            sequence_number=record.sequence_number,
            partition_key=record.partition_key,
            data=base64.b64encode(record.data).decode("ascii"),
            student_id=event.student_id if event else None,
            chunk_key=event.key if event else None,
        )
        self._metrics.add(MetricName.RecordsParked)
        _log.error(
            "record parked",
            shard=shard_id,
            sequence_number=record.sequence_number,
            attempts=attempts,
            error=repr(error)[:500],
        )

    async def _put(self, now: datetime, **fields: Any) -> None:
        """Write an errors row made ``now``, with its expiry; a field that is None is left out."""
        await self._tables.put_error(
            {
                **{k: v for k, v in fields.items() if v is not None},
                "created_at": now.isoformat(),
                "expires_at": self._expiry(now),
            }
        )
