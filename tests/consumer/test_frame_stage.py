"""Evidence frames are stored when needed (``consumer.frame_stage.KeptFrames``): the first
chunk, a chunk a rule fires on, and every ``frame_every`` chunks; the console's tile shows
the newest stored frame (``consumer.latest``), and every alert names its own."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import replace
from itertools import islice
from typing import Any

from consumer.processor import Record
from consumer.wiring import build_processor
from proctoring.analysis.base import NAIVE, FrameAnalysis, Plan
from proctoring.analysis.fixed import FixedLatencyEngine
from proctoring.aws import async_clients
from proctoring.dynamo import to_item
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data
from tests.pipeline import upload_chunk

EXAM, STUDENT, CHUNKS, EVERY = "frames-kept", "s1", 10, 3


class _LeavesAfter(FixedLatencyEngine):
    """The fixed engine's student, in front of the camera for ``present`` analyses, then gone."""

    def __init__(self, present: int) -> None:
        super().__init__(0.0)
        self._left = present

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        answer = await super().analyse(exam_id, student_id, jpeg, plan)
        self._left -= 1
        return answer if self._left >= 0 else replace(answer, faces=(), signature=())


@needs_data
def test_frames_are_kept_for_the_first_chunk_alerts_and_every_few_chunks(
    settings: Settings, pool: Executor
) -> None:
    videos = [c.data for c in islice(chunk_recording(DATA / "video/center_focus.mp4"), 3)]
    settings = settings.model_copy(update={"max_repeats": 0})  # every chunk analysed

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str], Any]:
        async with async_clients(settings) as clients:
            await clients.dynamodb.put_item(
                TableName=settings.names.sessions_table,
                Item=to_item(
                    {"exam_id": EXAM, "student_id": "#policy", "policy": {"frame_every": EVERY}}
                ),
            )
            tables = Tables(clients.dynamodb, settings.names)
            processor = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda _: None),
                _LeavesAfter(present=4),
            )  # fmt: skip
            for sequence in range(CHUNKS):
                data = videos[sequence % len(videos)]
                event = await upload_chunk(
                    clients, settings, exam_id=EXAM, student_id=STUDENT, sequence=sequence,
                    data=data,
                )  # fmt: skip
                record = Record(str(sequence), event.to_bytes(), event.partition_key)
                await processor.process([record], shard_id="shard-0")
            rows = await tables.results(f"{EXAM}#{STUDENT}")
            alerts = await tables.alerts(EXAM)
            listing = await clients.s3.list_objects_v2(Bucket=settings.names.frames_bucket)
            session = await tables.get_session(EXAM, STUDENT) or {}
        return rows, alerts, {o["Key"] for o in listing.get("Contents", [])}, session["latest"]

    rows, alerts, stored, latest = asyncio.run(run())
    assert len(rows) == CHUNKS and all(r["status"] == "ok" for r in rows), "nothing lost"
    kept = {r["sequence"] for r in rows if r.get("frame_key")}
    assert {r["frame_key"] for r in rows if r.get("frame_key")} == stored
    (alert,) = alerts  # NO_FACE, raised once the student was gone for two chunks
    assert alert["type"] == "NO_FACE" and alert["frame_key"] in stored, "evidence kept"
    raised_on = next(r["sequence"] for r in rows if r.get("frame_key") == alert["frame_key"])
    assert raised_on == 5  # the 2nd chunk without a face (tolerance 2) keeps its frame
    assert kept == {0, 3, 5, 8}  # the first chunk, every 3rd since the newest, the alert's
    assert len(stored) < CHUNKS
    for row in rows:  # after every chunk, the newest stored frame is less than 3 chunks old
        assert 0 <= row["sequence"] - max(k for k in kept if k <= row["sequence"]) < EVERY
    assert latest["sequence"] == CHUNKS - 1  # the console's tile: the newest chunk...
    assert latest["frame_key"].endswith("000008.jpg") and latest["frame_key"] in stored
