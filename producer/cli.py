"""``proctor replay``: one recording or scenario uploaded as one student's chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from proctoring.aws import async_clients
from proctoring.errors import ProctoringError
from proctoring.settings import Settings
from producer.replay import Uploaded, replay
from producer.scenario import load_scenario, render_chunks, scenario_for_recording

__all__ = ["replay_source"]

_SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


async def replay_source(
    settings: Settings,
    source: Path,
    *,
    exam_id: str,
    student_id: str | None,
    speed: float | None,
    do_register: bool,
) -> list[Uploaded]:
    """Render ``source`` (a video or a scenario file) and upload it in (scaled) real time."""
    if source.suffix.lower() in _SCENARIO_SUFFIXES:
        scenario = load_scenario(source, data_dir=settings.data_dir)
    else:
        scenario = scenario_for_recording(source)
    student = student_id or scenario.student or scenario.name
    chunks = await asyncio.to_thread(
        lambda: list(render_chunks(scenario, seconds=settings.chunk_seconds))
    )
    if do_register and scenario.register is not None:
        from lambdas.register import register_photo

        await register_photo(settings, exam_id, student, scenario.register.read_bytes())
    elif do_register and source.suffix.lower() in _SCENARIO_SUFFIXES:
        raise ProctoringError(f"{source} names no photo to register; pass --no-register")
    async with async_clients(settings) as clients:
        return await replay(
            chunks,
            s3=clients.s3,
            bucket=settings.names.chunks_bucket,
            exam_id=exam_id,
            student_id=student,
            speed=speed,
        )
