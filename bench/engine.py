"""Local engine throughput: analysed frames per second on this machine's cores.

Middle frames of every chunk of ``../shared/data/video`` go through the local
engine's CPU side (``describe_frame``: dlib HOG upsample 1, 68 landmarks, pose,
gaze, quality) in the service's process pool (one worker per core), many at
once. Value: the plan most chunks get (faces, no identity); baseline: the naive
plan (the 128-d embedding on every frame as well). For the record, the rate at
upsample 0 (finds faces from ~80 px only) shows what bounds it.
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Literal

from bench.frames import chunks
from bench.harness import Figure, Size
from proctoring.analysis.describe import describe_frame
from proctoring.cli.services import cpu_pool
from proctoring.frames import extract_frame
from proctoring.settings import Settings

__all__ = ["run"]


def _fps(
    pool: Executor,
    frames: list[bytes],
    identity: Literal["yes", "no"],
    rounds: int,
    upsample: int = 1,
) -> float:
    job = functools.partial(describe_frame, identity=identity, upsample=upsample)
    started = time.perf_counter()
    count = 0
    for _ in range(rounds):
        count += len(list(pool.map(job, frames)))
    return count / (time.perf_counter() - started)


def run(data_dir: Path, size: Size) -> list[Figure]:
    cut = chunks(data_dir, limit=2 if size == "tiny" else None)
    frames = [extract_frame(data, position="middle").jpeg for _, data in cut]
    rounds = 1 if size == "tiny" else 4
    workers = os.cpu_count() or 1
    with cpu_pool(Settings(cpu_workers=workers)) as pool:
        list(pool.map(functools.partial(describe_frame, identity="yes"), frames))  # warm up
        faces = _fps(pool, frames, "no", rounds)
        naive = _fps(pool, frames, "yes", rounds)
        # what bounds it: dlib's HOG detector on the 2x upsampled frame (faces down to ~40 px)
        coarse = _fps(pool, frames, "no", rounds, upsample=0)
    return [
        Figure(
            name="local_engine_fps",
            value=round(faces, 1),
            unit=f"frames/s on {workers} cores (faces, pose, gaze, quality)",
            baseline=round(naive, 1),
            baseline_is="naive plan: the same plus the identity embedding on every frame",
            ratio=round(faces / naive, 2),
            ratio_means="times the naive plan's rate",
            goal=">= 20 frames/s",
            met=faces >= 20,
            details={
                "frames": len(frames) * rounds,
                "workers": workers,
                "upsample": 1,
                "fps_with_upsample_0": round(coarse, 1),
            },
        )
    ]
