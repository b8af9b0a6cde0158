"""What every benchmark reports, and the one file they all land in.

A :class:`Figure` is one measured value beside its baseline measured in the
same run; ``ratio`` says how the two compare (``ratio_means`` says which way
is better) and ``met`` whether the issue's goal holds. ``write`` puts them
in ``bench/results/latest.json`` with the machine they ran on.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from proctoring.pool import RenewingPool

__all__ = ["RESULTS", "Figure", "Size", "machine", "median_ms", "pool_cpu", "write"]

RESULTS = Path(__file__).resolve().parent / "results"
Size = Literal["full", "tiny"]


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    baseline: float | None
    baseline_is: str
    ratio: float | None
    ratio_means: str
    goal: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        ratio = "-" if self.ratio is None else f"{self.ratio:.3g}"
        met = {True: "met", False: "MISSED", None: "n/a"}[self.met]
        return (
            f"{self.name}: {self.value} {self.unit} | baseline {self.baseline} "
            f"({self.baseline_is}) | ratio {ratio} ({self.ratio_means}) | goal {self.goal}: {met}"
        )


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` in milliseconds (after one warm-up call)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def pool_cpu(pool: RenewingPool) -> float:
    """CPU seconds (user + system) used so far by a process pool's worker processes."""
    import psutil

    total = 0.0
    for pid in pool.pids():
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": commit,
    }


def write(figures: list[Figure], path: Path, *, size: Size, started: float) -> dict[str, Any]:
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "benchmarks": {f.name: asdict(f) for f in figures},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return document
