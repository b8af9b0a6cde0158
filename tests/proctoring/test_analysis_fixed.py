"""The load-test engine: a fixed answer after the configured latency, priced like a real plan."""

from __future__ import annotations

import asyncio
import time

import pytest

from proctoring.analysis.base import Plan
from proctoring.analysis.engine import open_engine
from proctoring.analysis.fixed import FixedLatencyEngine
from proctoring.settings import Settings


def test_answers_one_matching_face_after_its_latency() -> None:
    engine = FixedLatencyEngine(latency=0.05)
    started = time.perf_counter()
    analysis = asyncio.run(engine.analyse("e", "s", b"jpeg", Plan()))
    assert time.perf_counter() - started >= 0.05
    assert len(analysis.faces) == 1 and analysis.identity == "match"
    assert analysis.calls == {"DetectFaces": 1, "SearchFacesByImage": 1, "DetectLabels": 1}
    quiet = asyncio.run(engine.analyse("e", "s", b"", Plan(identity="no", objects=False)))
    assert quiet.identity == "unchecked" and quiet.objects_status == "skipped"
    assert quiet.calls["SearchFacesByImage"] == 0 and quiet.calls["DetectLabels"] == 0


def test_the_engine_setting_opens_it() -> None:
    async def opened() -> object:
        settings = Settings(engine="fixed", fixed_latency=0.2)
        async with open_engine(settings, tables=None, executor=None) as engine:  # type: ignore[arg-type]
            return engine

    engine = asyncio.run(opened())
    assert isinstance(engine, FixedLatencyEngine) and engine.latency == 0.2
    with pytest.raises(ValueError, match="negative"):
        FixedLatencyEngine(latency=-1)
