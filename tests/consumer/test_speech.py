"""Speech through the running pipeline: chunks whose microphone heard JFK raise TALKING with
the seconds that were speech; silent and café chunks, and the same speech in an exam whose
policy does not record the microphone, raise nothing; every chunk keeps its result row."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pytest

from proctoring.aws import sync_client
from proctoring.settings import Settings
from proctoring.speech import RATE, load_pcm
from proctoring.storage import to_item
from producer.audio import loop, with_audio
from producer.chunking import chunk_recording
from tests.conftest import DATA, eventually, require_data
from tests.pipeline import put_chunk, running_pipeline

pytestmark = pytest.mark.slow

EXAM, OFF = "speech-exam", "speech-off"


def _policy(settings: Settings, exam_id: str, policy: dict[str, Any]) -> None:
    sync_client(settings, "dynamodb").put_item(
        TableName=settings.names.sessions_table,
        Item=to_item({"exam_id": exam_id, "student_id": "#policy", "policy": policy}),
    )


def test_talking_is_raised_on_speech_and_never_on_silence_or_cafe_noise(
    settings: Settings, pool: Executor
) -> None:
    require_data()
    video = next(iter(chunk_recording(DATA / "video/center_focus.mp4"))).data
    five = 5 * RATE
    jfk = load_pcm(DATA / "audio/whisper/jfk.flac")
    cafe = loop(load_pcm(DATA / "audio/noisereduce/cafe_short.wav"), five)
    talking = [with_audio(video, jfk[:five]), with_audio(video, jfk[five : 2 * five])]
    quiet = [with_audio(video, np.zeros(five, dtype=np.int16)), with_audio(video, cafe)]
    # 4 s of speech in 30 s allowed: JFK's first chunk (~2.8 s) is under it, the second not
    _policy(settings, EXAM, {"audio": True, "talking_seconds": 4, "talking_window": 30})
    _policy(settings, OFF, {"talking_seconds": 4, "talking_window": 30})  # audio off

    async def run() -> dict[str, Any]:
        async with running_pipeline(settings, pool) as pipeline:
            uploads = [
                (EXAM, "talker", talking),
                (EXAM, "quiet", quiet),
                (OFF, "talker", talking),
            ]
            for exam_id, student, chunks in uploads:
                for sequence, data in enumerate(chunks):
                    await put_chunk(
                        pipeline.clients,
                        settings,
                        exam_id=exam_id,
                        student_id=student,
                        sequence=sequence,
                        data=data,
                    )
            rows = {
                (exam_id, student): await pipeline.wait_for_results(exam_id, student, 2)
                for exam_id, student, _ in uploads
            }
            alerts = await eventually(
                lambda: pipeline.alerts(EXAM),
                lambda found: any(a["type"] == "TALKING" for a in found),
            )
            # the session item is saved after the batch's rows and alerts: its risk, eventually
            session = await eventually(
                lambda: pipeline.tables.get_session(EXAM, "talker"),
                lambda found: found is not None and found.get("risk", 0) >= 4,
            )
            return {"rows": rows, "alerts": alerts + await pipeline.alerts(OFF), "session": session}

    outcome = asyncio.run(run())
    talking_alerts = [a for a in outcome["alerts"] if a["type"] == "TALKING"]
    assert [(a["exam_id"], a["student_id"], a["sequence"]) for a in talking_alerts] == [
        (EXAM, "talker", 1)
    ]
    alert = talking_alerts[0]
    assert alert["speech_s"] > 4 and alert["window_s"] == 30
    assert alert["chunk_key"].endswith(".mp4") and alert["chunk_sha256"]  # the clip itself
    assert alert["evidence"]["speech"], "which seconds of the chunk were speech"
    assert all(0 <= a < b <= 5.1 for a, b in alert["evidence"]["speech"])
    talker = outcome["rows"][(EXAM, "talker")]
    assert [r["status"] for r in talker] == ["ok", "ok"]
    assert all(r["speech_s"] > 2 for r in talker)
    quiet_rows = outcome["rows"][(EXAM, "quiet")]
    assert [r["speech_s"] for r in quiet_rows] == [0, 0]
    assert quiet_rows[0].get("audio_dbfs") is None  # digital silence
    assert all("speech_s" not in r for r in outcome["rows"][(OFF, "talker")])
    assert outcome["session"]["risk"] >= 4  # a medium incident counts in the risk


def test_an_unreadable_audio_track_is_an_errors_row_and_no_audio_is_nothing() -> None:
    from datetime import UTC, datetime

    from consumer.outlet import Outlet
    from consumer.speech import StudentSpeech
    from proctoring.events import ChunkEvent
    from proctoring.metrics import Metrics
    from proctoring.rules import Policy
    from proctoring.rules.speech import SpeechState
    from proctoring.speech import SpeechError

    recorded: list[dict[str, Any]] = []
    delivered: list[dict[str, Any]] = []

    async def record_error(**fields: Any) -> None:
        recorded.append(fields)

    async def deliver(alert: dict[str, Any]) -> bool:
        delivered.append(alert)
        return True

    now = datetime(2026, 12, 6, tzinfo=UTC)
    speech = StudentSpeech(
        state=SpeechState(),
        policy=Policy(audio=True),
        outlet=Outlet(
            Metrics("test", "consumer", lambda _: None),
            deliver,
            record_error,
            now=lambda: now,
            expiry=lambda _: 0,
        ),
    )
    event = ChunkEvent.from_key(
        "bucket-x", f"chunks/{EXAM}/s1/camera/000003_1795000015000.webm", size=10, uploaded_at=now
    )
    broken = SpeechError("the audio track cannot be decoded: cut", reason="truncated")

    async def run() -> list[int]:
        return [
            await speech.judge(event, broken, sequence_number="49", evidence={}),
            await speech.judge(event, None, sequence_number="50", evidence={}),
        ]

    assert asyncio.run(run()) == [0, 0]
    assert delivered == [] and speech.state == SpeechState()
    assert [(r["stage"], r["reason"], r["chunk_key"]) for r in recorded] == [
        ("audio", "audio_truncated", event.key)
    ]
    assert "its video was" in recorded[0]["message"]
