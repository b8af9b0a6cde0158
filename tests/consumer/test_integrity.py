"""Integrity events on the chunk stream, through the running pipeline: judged into alerts,
each written once, bad and late ones recorded in the errors table, nothing else lost."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from proctoring.integrity import IntegrityEvent
from proctoring.settings import Settings
from tests.conftest import eventually
from tests.pipeline import running_pipeline

pytestmark = pytest.mark.slow

EXAM = "integrity-stream"
STUDENT = "s1"
T0 = datetime.now(UTC) - timedelta(minutes=10)


def _event(seq: int, kind: str, *, event_id: str | None = None, at_s: float = 0) -> bytes:
    return IntegrityEvent(
        exam_id=EXAM,
        student_id=STUDENT,
        event_id=event_id or f"ev-stream-{seq:04d}",
        seq=seq,
        kind=kind,  # type: ignore[arg-type]
        at=T0 + timedelta(seconds=at_s),
        duration_ms=0,
        received_at=datetime.now(UTC),
    ).to_bytes()


def test_bad_duplicated_and_late_events_are_recorded_and_the_rest_judged(
    settings: Settings, pool: Executor
) -> None:
    good = json.loads(_event(9, "copy"))
    records = [
        _event(1, "paste", at_s=1),
        _event(1, "paste", at_s=1),  # the same event again (a resent batch)
        json.dumps({**good, "kind": "teleport"}).encode(),  # malformed
        json.dumps({**good, "type": "speech"}).encode(),  # a type nobody knows
        _event(2, "camera_ended", at_s=2),
    ]
    late = _event(0, "fullscreen_exit", at_s=0)  # seq 0, after 2 was judged

    async def run() -> dict[str, Any]:
        async with running_pipeline(settings, pool) as pipeline:
            kinesis = pipeline.clients.kinesis
            for data in records:
                await kinesis.put_record(
                    StreamName=settings.names.stream, Data=data, PartitionKey=f"{EXAM}#{STUDENT}"
                )
            alerts = await eventually(
                lambda: pipeline.tables.alerts(EXAM), lambda rows: len(rows) >= 2
            )
            await kinesis.put_record(
                StreamName=settings.names.stream, Data=late, PartitionKey=f"{EXAM}#{STUDENT}"
            )
            alerts = await eventually(
                lambda: pipeline.tables.alerts(EXAM), lambda rows: len(rows) >= 3
            )
            errors = await eventually(
                lambda: pipeline.tables.errors(EXAM), lambda rows: len(rows) >= 4
            )
            rows = await pipeline.tables.results(f"{EXAM}#{STUDENT}")
            session = await pipeline.tables.get_session(EXAM, STUDENT)
            return {"alerts": alerts, "errors": errors, "rows": rows, "session": session}

    outcome = asyncio.run(run())
    assert sorted(a["type"] for a in outcome["alerts"]) == ["CAMERA_OFF", "FULLSCREEN_EXIT",
                                                             "PASTE"]  # fmt: skip
    assert sorted(r["sequence"] for r in outcome["rows"]) == [0, 1, 2], "each event once"
    assert sorted(r["reason"] for r in outcome["errors"]) == [
        "bad_type", "duplicate_event", "invalid_integrity", "out_of_order",
    ]  # fmt: skip
    assert all(r["message"] for r in outcome["errors"])
    # PASTE medium 4 + CAMERA_OFF high 10 + FULLSCREEN_EXIT low 1
    assert float(outcome["session"]["risk"]) == 15.0
