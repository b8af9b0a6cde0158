"""Local engine throughput: analysed frames per second on this machine's cores.

Middle frames of every chunk of ``../shared/data/video`` go through the local
engine's CPU side (``describe_frame``: dlib HOG upsample 1 with the ``regions``
detection, 68 landmarks, pose, gaze, quality) in the service's process pool (one
worker per core), many at once; the rate is the cores' (CPU time per frame, counted
in the pool's processes), so other work on a shared machine lowers it far less than the
clock's rate (kept beside it) - but it does lower it: on this 2-vCPU machine a frame's
CPU time grows by up to ~15 % while other work runs. Value: the plan most chunks get
(faces, no identity); baseline: the naive plan (the 128-d embedding on every frame as
well).
For the record: the rate at upsample 0 (faces from ~80 px only) shows what bounds
it, and the rate with the ``full`` detection (the whole frame upsampled: the engine
before issue 18) what ``regions`` saves (``python -m bench.detect_agreement``
shows both find the same faces), and ``empty_seat``: the CPU time of the frames without
a face, alone and after a frame without a face (the plan then skips the native pass).

One measurement (the 12 frames, 4 rounds: 48 frames, ~1.3 s of the pool) read +-10 %
from run to run on a shared machine; the value is the median of :data:`REPEATS`
measurements, the plan and the naive plan alternated so a burst of other work weighs on
both alike, and the details keep every measurement and the spread (min, max, and the
relative half-range) so a reader sees how far the figure is to be trusted. Beside it,
``fps_least_disturbed``: the rate from each frame's least CPU time in its worker over all
the rounds, which follows the code rather than the machine (other work only ever adds
to a frame's CPU time).
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from pathlib import Path
from typing import Any, Literal, NamedTuple

from bench.frames import chunks
from bench.harness import Figure, Size, pool_cpu
from consumer.wiring import cpu_pool
from proctoring.analysis.describe import describe_frame
from proctoring.analysis.faces import Detection
from proctoring.frames import extract_frame
from proctoring.pool import RenewingPool
from proctoring.settings import Settings

__all__ = ["REPEATS", "run"]

REPEATS = 5
"""Measurements of the plan and of the naive plan, alternated; the figures are their medians."""


class _Measured(NamedTuple):
    rate: float
    """Frames/s the pool's cores give, from the CPU time of the pool's processes."""
    clock_rate: float
    """Frames/s by the clock here (on a shared machine, less)."""
    cpu: list[list[float]]
    """Per round, per frame: the CPU seconds ``describe_frame`` took in its worker."""


def _timed(image: bytes, **options: Any) -> float:
    """Process-pool job: the CPU seconds one ``describe_frame`` takes in this worker."""
    started = time.process_time()
    describe_frame(image, **options)
    return time.process_time() - started


def _face_count(image: bytes) -> int:
    """Process-pool job: the faces the plan finds in a frame."""
    return len(describe_frame(image, identity="no", detection="regions").faces)


def _empty_seat(pool: RenewingPool, frames: list[bytes], rounds: int) -> dict[str, Any]:
    """CPU ms of a frame without a face, first and after a frame without a face.

    After an empty frame the plan skips the native pass (``faces.find_faces``,
    ``empty_before``): the median over the empty frames of each one's least CPU time.
    """
    empty = [f for f, n in zip(frames, pool.map(_face_count, frames), strict=True) if n == 0]
    if not empty:
        return {"frames": 0}

    def least_ms(previous: tuple[()] | None) -> float:
        job = functools.partial(_timed, identity="no", detection="regions", previous_faces=previous)
        rounds_cpu = [list(pool.map(job, empty)) for _ in range(rounds)]
        return round(1000 * statistics.median(min(c) for c in zip(*rounds_cpu, strict=True)), 1)

    return {
        "frames": len(empty),
        "cpu_ms_first": least_ms(None),
        "cpu_ms_after_an_empty_frame": least_ms(()),
    }


def _rates(
    pool: RenewingPool,
    frames: list[bytes],
    identity: Literal["yes", "no"],
    rounds: int,
    upsample: int = 1,
    detection: Detection = "regions",
) -> _Measured:
    """The pool's rate on ``frames``, ``rounds`` times over (see :class:`_Measured`).

    The rate is what the cores can do whoever else uses the machine, as far as others do
    not slow the instructions themselves: on this 2-vCPU machine they do (a run beside
    other work reads up to ~15 % lower), hence also each frame's CPU time in its worker.
    """
    job = functools.partial(_timed, identity=identity, upsample=upsample, detection=detection)
    workers = len(pool.pids()) or 1
    cpu_before = pool_cpu(pool)
    started = time.perf_counter()
    per_round = [list(pool.map(job, frames)) for _ in range(rounds)]
    wall = time.perf_counter() - started
    cpu = pool_cpu(pool) - cpu_before
    count = len(frames) * rounds
    return _Measured(workers * count / cpu, count / wall, per_round)


def _least_disturbed(measured: list[_Measured], workers: int) -> float:
    """Frames/s on ``workers`` cores from each frame's least CPU time over every round.

    Other work only ever adds to a frame's CPU time, so its least is the nearest to the
    code's own cost: this reading follows the code, the median follows the machine too.
    """
    rounds = [times for m in measured for times in m.cpu]
    least = [min(column) for column in zip(*rounds, strict=True)]
    return workers * len(least) / sum(least)


def _spread(rates: list[float]) -> dict[str, float]:
    """Min, max and half the range over the median (the +- of the figure, in %)."""
    middle = statistics.median(rates)
    return {
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "half_range_percent": round(50 * (max(rates) - min(rates)) / middle, 1),
    }


def run(data_dir: Path, size: Size) -> list[Figure]:
    cut = chunks(data_dir, limit=2 if size == "tiny" else None)
    frames = [extract_frame(data, position="middle").jpeg for _, data in cut]
    rounds, repeats = (1, 1) if size == "tiny" else (4, REPEATS)
    workers = os.cpu_count() or 1
    plan: list[_Measured] = []
    naive: list[_Measured] = []
    with cpu_pool(Settings(cpu_workers=workers)) as pool:
        # warm up: the models, and this module imported in the workers (for _timed)
        list(pool.map(functools.partial(_timed, identity="yes"), frames * 2))
        for _ in range(repeats):  # alternated: a burst of other work weighs on both alike
            plan.append(_rates(pool, frames, "no", rounds))
            naive.append(_rates(pool, frames, "yes", rounds))
        # what bounds it: dlib's HOG detector on the 2x upsampled frame (faces down to ~40 px)
        coarse = _rates(pool, frames, "no", rounds, upsample=0).rate
        whole = _rates(pool, frames, "no", rounds, detection="full").rate
        empty_seat = _empty_seat(pool, frames, rounds)
    faces = statistics.median(m.rate for m in plan)
    naive_rate = statistics.median(m.rate for m in naive)
    least = _least_disturbed(plan, workers)
    return [
        Figure(
            name="local_engine_fps",
            value=round(faces, 1),
            unit=f"frames/s on {workers} cores, from CPU time per frame (faces, pose, gaze)",
            baseline=round(naive_rate, 1),
            baseline_is="naive plan: the same plus the identity embedding on every frame",
            ratio=round(faces / naive_rate, 2),
            ratio_means="times the naive plan's rate",
            goal=">= 40 frames/s (issue 18), the same faces",
            met=round(faces, 1) >= 40,  # as shown: a 40.0 reads as met
            details={
                "frames": len(frames) * rounds,
                "measurements": repeats,
                "value_is": f"median of {repeats} measurements of {len(frames) * rounds} frames",
                "spread": _spread([m.rate for m in plan]),
                "naive_spread": _spread([m.rate for m in naive]),
                "fps_each_measurement": [round(m.rate, 1) for m in plan],
                "fps_least_disturbed": round(least, 1),
                "fps_least_disturbed_is": "from each frame's least CPU time in its worker "
                f"over the {repeats * rounds} rounds (naive: "
                f"{_least_disturbed(naive, workers):.1f})",
                "workers": workers,
                "upsample": 1,
                "detection": "regions",
                "fps_with_upsample_0": round(coarse, 1),
                "fps_with_full_detection": round(whole, 1),
                "fps_by_the_clock_here": round(statistics.median(m.clock_rate for m in plan), 1),
                "naive_fps_by_the_clock_here": round(
                    statistics.median(m.clock_rate for m in naive), 1
                ),
                "cpu_ms_per_frame": round(workers * 1000 / faces, 1),
                "empty_seat": empty_seat,
            },
        )
    ]
