"""Choosing the analysis engine: one setting, ``PROCTOR_ENGINE`` (``local``, ``rekognition``, or
``fixed`` for load tests).

:func:`open_engine` builds the engine the settings name, with what it needs
(the process pool and an optional ONNX detector for the local engine; an
aiobotocore client and a request budget for Rekognition), and closes what it
opened on exit. The Rekognition engine gets the local engine's face description
as its cost gate when dlib is installed (``PROCTOR_REKOGNITION_GATE``).
``live_workers`` is how many consumer workers share the Rekognition budget (the
lease coordinator knows; default 1).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager

from proctoring.analysis.base import Engine, FrameAnalysis
from proctoring.analysis.budget import Budget
from proctoring.analysis.fixed import FixedLatencyEngine
from proctoring.analysis.local import LocalEngine
from proctoring.analysis.objects import DetectorConfig, check_model, load_labels
from proctoring.analysis.rekognition import RekognitionEngine
from proctoring.aws import rekognition_client
from proctoring.ratelimit import RateLimiter
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = [
    "Analysis",
    "Engine",
    "FixedLatencyEngine",
    "LocalEngine",
    "RekognitionEngine",
    "detector",
    "open_engine",
]

Analysis = FrameAnalysis
"""The former name of :class:`~proctoring.analysis.base.FrameAnalysis`."""


def detector(settings: Settings) -> DetectorConfig | None:
    """The local ONNX detector the settings point to, or None."""
    if settings.object_model is None:
        return None
    config = DetectorConfig(
        model=str(settings.object_model),
        labels=load_labels(settings.object_labels),
        min_confidence=settings.object_min_confidence,
    )
    check_model(config)  # a wrong path or model fails now, not chunk after chunk
    return config


def local_engine(settings: Settings, tables: Tables, executor: Executor) -> LocalEngine:
    return LocalEngine(
        tables,
        executor,
        threshold=settings.match_threshold,
        enrol_threshold=settings.enrol_threshold,
        upsample=settings.detect_upsample,
        detection=settings.detect_strategy,
        gaze_offset=settings.gaze_offset,
        detector=detector(settings),
    )


@asynccontextmanager
async def open_engine(
    settings: Settings,
    tables: Tables,
    executor: Executor,
    *,
    live_workers: Callable[[], int] = lambda: 1,
) -> AsyncIterator[Engine]:
    """The engine ``settings.engine`` names, open for the duration of the block."""
    if settings.engine == "local":
        yield local_engine(settings, tables, executor)
        return
    if settings.engine == "fixed":
        yield FixedLatencyEngine(settings.fixed_latency)
        return
    gate = None
    if settings.rekognition_gate and importlib.util.find_spec("dlib") is not None:
        gate = local_engine(settings, tables, executor).describe
    async with rekognition_client(settings) as client:
        budget = Budget(
            RateLimiter(settings.rekognition_rps, burst="second", workers=live_workers),
            concurrency=settings.rekognition_concurrency,
            timeout=settings.call_timeout,
        )
        yield RekognitionEngine(
            client,
            tables,
            budget,
            collection_id=settings.collection_id,
            similarity=settings.match_similarity,
            eye_limit=settings.eye_direction_limit,
            min_confidence=settings.object_min_confidence,
            gate=gate,
        )
