"""Parked records: what operators inspect and put back on the stream.

``consumer.poison`` parks a record that kept failing as a row of the errors
table (``stage = parked``) holding the whole record. Once the cause is fixed
(a new release, a restored permission), ``proctor parked replay`` puts the
records back on the stream with their partition keys; processing is
idempotent, so a record replayed twice, or one that was processed after all,
changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog

from proctoring.storage import Tables

__all__ = ["replay_parked"]

_log = structlog.get_logger(__name__)


async def replay_parked(
    tables: Tables,
    kinesis: Any,
    stream: str,
    *,
    error_ids: Iterable[str] = (),
    include_replayed: bool = False,
) -> list[dict[str, Any]]:
    """Put parked records back on the stream; return the rows replayed.

    With no ``error_ids``, every parked record not replayed yet (or every one,
    with ``include_replayed``).
    """
    wanted = set(error_ids)
    rows = await tables.parked()
    unknown = wanted - {r["error_id"] for r in rows}
    if unknown:
        raise LookupError(f"no parked record {', '.join(sorted(unknown))}")
    chosen = [
        r
        for r in rows
        if (r["error_id"] in wanted)
        or (not wanted and (include_replayed or "replayed_at" not in r))
    ]
    for row in chosen:
        response = await kinesis.put_record(
            StreamName=stream,
            Data=base64.b64decode(row["data"]),
            PartitionKey=row["partition_key"] or row["exam_id"],
        )
        await tables.mark_replayed(
            row["exam_id"],
            row["error_id"],
            at=datetime.now(UTC).isoformat(),
            sequence_number=response["SequenceNumber"],
        )
        _log.info("parked record replayed", error_id=row["error_id"], exam=row["exam_id"])
    return chosen
