"""No biometric data in the logs: not the face embedding, not a photo, not a frame.

The whole video path runs at DEBUG with JSON logs - registration, upload,
router, consumer, an impostor alert - and the log text is searched for the
registered embedding's values and for encoded images.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pytest
import structlog

from proctoring.logs import configure_logging
from proctoring.settings import Settings
from tests.conftest import DATA, needs_data
from tests.pipeline import running_pipeline

pytestmark = [pytest.mark.slow, needs_data]

EXAM = "privacy"


def test_logs_carry_no_embedding_photo_or_frame(settings: Settings, pool: Executor) -> None:
    logs = io.StringIO()
    frames: list[bytes] = []
    configure_logging(
        settings.model_copy(update={"log_level": "DEBUG", "log_format": "json"}), stream=logs
    )

    async def run() -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        async with running_pipeline(settings, pool) as pipeline:
            # camera frames enrolled beside the photo are biometric data too
            await pipeline.engine.register(
                EXAM,
                "enrolled",
                (DATA / "faces" / "obama.jpg").read_bytes(),
                [(DATA / "faces" / n).read_bytes() for n in ("obama2.jpg", "obama-480p.jpg")],
            )
            enrolled = await pipeline.tables.get_face(EXAM, "enrolled")
            assert enrolled is not None and len(enrolled["frames"]) == 2
            frames.extend(bytes(blob) for blob in enrolled["frames"])
            uploaded = await pipeline.play(
                EXAM,
                "impostor",
                DATA / "video" / "center_focus.mp4",
                register=DATA / "faces" / "obama.jpg",
            )
            await pipeline.wait_for_results(EXAM, "impostor", len(uploaded))
            return await pipeline.tables.get_face(EXAM, "impostor"), await pipeline.alerts(EXAM)

    try:
        face, alerts = asyncio.run(run())
    finally:
        structlog.reset_defaults()
    text = logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    assert face is not None and [a["type"] for a in alerts] == ["FACE_MISMATCH"]
    assert any(line.get("event") == "chunk processed" for line in lines), "the run was logged"
    assert any(line.get("event") == "alert raised" for line in lines)
    for blob in (bytes(face["embedding"]), *frames):
        embedding = np.frombuffer(blob, dtype=np.float32)
        assert embedding.size == 128
        for value in embedding[:16]:
            for form in (f"{value:.6f}", f"{value:.4f}"[:-1], repr(float(value))[:8]):
                if abs(value) >= 0.01:  # short numbers could appear by chance (times, sizes)
                    # as a number of its own: not the tail of another ("40.0175Z" in a time)
                    logged = re.search(rf"(?<![\d.]){re.escape(form)}", text)
                    assert logged is None, f"an embedding value ({form}) was logged"
    assert "embedding" not in text
    assert "/9j/" not in text, "a base64 JPEG (photo or frame) was logged"
    assert "\\xff\\xd8" not in text, "raw JPEG bytes were logged"
