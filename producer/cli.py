"""``proctor replay``: a recording or scenario uploaded as one student's chunks, or as many
students' at once (a load test, ``producer.load``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from proctoring.aws import async_clients
from proctoring.errors import ProctoringError
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk
from producer.load import LoadPlan, LoadReport, Mode, Progress, run_load
from producer.rendering import render_chunks
from producer.replay import Uploaded, replay
from producer.scenario import load_scenario, scenario_for_recording

__all__ = ["load_source", "replay_source", "session_chunks"]

_SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


async def session_chunks(settings: Settings, source: Path) -> tuple[str, list[Chunk]]:
    """A recording or scenario file rendered into 5 s chunks: (its student or name, chunks)."""
    if source.suffix.lower() in _SCENARIO_SUFFIXES:
        scenario = load_scenario(source, data_dir=settings.data_dir)
    else:
        scenario = scenario_for_recording(source)
    chunks = await asyncio.to_thread(
        lambda: list(render_chunks(scenario, seconds=settings.chunk_seconds))
    )
    return scenario.student or scenario.name, chunks


async def load_source(
    settings: Settings,
    source: Path,
    *,
    students: int,
    exam_id: str,
    speed: float | None,
    duration: float | None,
    mode: Mode,
    within: float,
    poll_rate: float,
    on_progress: Callable[[Progress], None] | None = None,
) -> LoadReport:
    """``students`` simulated students replaying ``source`` at once (producer.load)."""
    name, chunks = await session_chunks(settings, source)
    plan = LoadPlan(
        chunks=chunks,
        students=students,
        exam_id=exam_id,
        student_prefix=name[:48],  # + "-<run>-<n>": at most 61 of an id's 64 characters
        speed=speed,
        duration=duration,
        mode=mode,
        chunk_seconds=settings.chunk_seconds,
    )
    async with async_clients(settings) as clients:
        tables = Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout)
        return await run_load(
            plan,
            settings=settings,
            clients=clients,
            tables=tables,
            within=within,
            poll_rate=poll_rate,
            on_progress=on_progress,
        )


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
