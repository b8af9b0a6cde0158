"""End-to-end latency and the largest load the local stack sustains with flat lag.

Starts ``proctor up`` (moto's servers: DynamoDB and Kinesis in one of their own,
``--split``; the template provisioned, the chunk router and one consumer worker
with the ``fixed`` engine: 100 ms per frame, no CPU) as a child process, then
replays students through the full path (S3 PUT -> notification -> SQS -> router ->
Kinesis -> consumer -> DynamoDB) with ``producer.load``, in real time, in steps of
more students. A step is
sustained when its lag stays flat (the last third of its chunks within 1.5x,
or +500 ms, of the first third) and every chunk has its result. The first
step that is not sustained ends the ramp.

Baseline: the same measurement at a light load (20 students) in the same run.

Every step also reports the CPU each process of the stack spent per chunk
(``bench.stack_cpu``: ``proctor up``'s consumer loop, its frame pool, the chunk router,
the emulator, the load generator) and the emulator's requests and CPU per chunk by operation,
under ``cpu``; CPU time, unlike latency, does not move with the machine's other load.
After the light step, ``idle`` is the same for 10 s with no students (what the stack
spends polling). ``python -m bench.e2e --steps 50 --seconds 60`` runs chosen steps alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Figure, Size
from bench.stack_cpu import StackCpu
from proctoring.aws import async_clients
from proctoring.lifetime import tied
from proctoring.metrics_view import aggregate
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from producer.load import LoadPlan, LoadReport, plot_report, run_load

__all__ = ["run"]

_HERE = Path(__file__).resolve().parent
_LATENCY = 0.1
_GOAL_STUDENTS = 200


SPLIT = "dynamodb,kinesis"
"""What the benchmark's ``proctor up`` serves from a second emulator process (``--split``):
one moto process answers on one core at most, and at 200 students the emulator needs more
(docs/benchmarks.md, "The local stack's CPU per chunk")."""


class _Stack:
    """``proctor up`` as a child process; its settings once it printed them."""

    def __init__(self, metrics_file: Path, split: str = SPLIT) -> None:
        env = {
            **os.environ,
            "PROCTOR_ENGINE": "fixed",
            "PROCTOR_FIXED_LATENCY": str(_LATENCY),
            "PROCTOR_LOG_LEVEL": "WARNING",
            "PROCTOR_LOG_FORMAT": "json",
            # real-time students: a student's chunks are 5 s apart, five pollers cannot
            # reorder them, and one falls behind at ~100 students (docs/benchmarks.md)
            "PROCTOR_ROUTER_POLLERS": "5",
        }
        command = [sys.executable, "-m", "cli", "up", "--prefix", "bench-e2e"]
        command += ["--metrics-file", str(metrics_file)]
        command += ["--split", split] if split else []
        self.process = subprocess.Popen(
            tied(command),  # a killed benchmark takes the stack along
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        exports: dict[str, str] = {}
        assert self.process.stdout is not None
        while len(exports) < (4 if split else 3):  # the export lines come once it is up
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"proctor up exited with {self.process.wait()}")
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = shlex.split(value)[0]
        endpoints = json.loads(exports.get("PROCTOR_ENDPOINT_URLS", "{}"))
        self.settings = Settings(
            endpoint_url=exports["PROCTOR_ENDPOINT_URL"],
            endpoint_urls=endpoints,
            prefix=exports["PROCTOR_PREFIX"],
            alerts_topic_arn=exports["PROCTOR_ALERTS_TOPIC_ARN"],
            log_level="WARNING",
        )
        emulators = {exports["PROCTOR_ENDPOINT_URL"]: "emulator"}
        for service, url in sorted(endpoints.items()):  # named by the services each serves
            emulators[url] = emulators.get(url, "emulator:") + f" {service}"
        self.cpu = StackCpu(self.process.pid, emulators)

    def idle(self, seconds: float) -> dict[str, Any]:
        """The stack's CPU over ``seconds`` with nothing to do (per second, not per chunk)."""
        before = self.cpu.snapshot()
        time.sleep(seconds)  # measuring a span of time, not waiting for anything
        return StackCpu.since(before, self.cpu.snapshot(), chunks=0)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def _step(
    settings: Settings, chunks: list[Any], students: int, seconds: float, speed: float | None
) -> LoadReport:
    """One step of ``students`` for ``seconds``, its results followed until all are in."""
    plan = LoadPlan(
        chunks=chunks,
        students=students,
        exam_id=f"e2e-{students}",
        speed=speed,
        duration=seconds,
        mode="full",
    )
    async with async_clients(settings) as clients:
        tables = Tables(clients.dynamodb, settings.names)
        return await run_load(
            plan, settings=settings, clients=clients, tables=tables, within=90.0, poll_rate=10.0
        )


def _measured(
    stack: _Stack, chunks: list[Any], students: int, seconds: float, speed: float | None
) -> tuple[LoadReport, dict[str, Any]]:
    """A step's report as JSON, with the stack's CPU per chunk under ``cpu``."""
    before = stack.cpu.snapshot()
    report = asyncio.run(_step(stack.settings, chunks, students, seconds, speed))
    summary = report.to_dict()
    summary["cpu"] = StackCpu.since(before, stack.cpu.snapshot(), len(report.created))
    return report, summary


def _print_cpu(students: int, cpu: dict[str, Any]) -> None:
    parts = ", ".join(f"{role} {ms}" for role, ms in cpu["cpu_ms_per_chunk"].items())
    print(f"  {students} students, CPU ms per chunk: {cpu['cpu_ms_per_chunk_total']} ({parts})")


def run(
    data_dir: Path,
    size: Size,
    out: Path,
    *,
    steps: list[int] | None = None,
    seconds: float | None = None,
    split: str = SPLIT,
) -> list[Figure]:
    chunks = list(chunk_recording(data_dir / "video" / "short_hamilton_clip.mp4"))
    if size == "tiny":
        light, ramp, step_seconds, speed, idle = 2, [3], 10.0, None, 2.0
    else:
        light, ramp, step_seconds, speed, idle = 20, [50, 100, 200, 300, 400], 30.0, 1.0, 10.0
    steps = steps or ramp
    seconds = seconds or step_seconds
    metrics = out / "e2e-metrics.jsonl"
    metrics.unlink(missing_ok=True)
    stack = _Stack(metrics, split)
    reports: dict[int, dict[str, Any]] = {}
    try:
        _, base = _measured(stack, chunks, light, seconds, speed)
        print(f"  {light} students: p99 {base['latency_ms']['created_to_result']['p99']} ms")
        _print_cpu(light, base["cpu"])
        idle_cpu = stack.idle(idle)  # after the first step: the pool's start is not idling
        sustained = 0
        for students in steps:
            report, summary = _measured(stack, chunks, students, seconds, speed)
            reports[students] = summary
            result = summary["latency_ms"]["created_to_result"]
            print(
                f"  {students} students: p50 {result['p50']} ms, p99 {result['p99']} ms, "
                f"lag flat {summary['lag']['flat']}, missing {summary['chunks']['missing']}"
            )
            _print_cpu(students, summary["cpu"])
            if students <= _GOAL_STUDENTS or size == "tiny":  # the goal's step, or the last below
                plot_report(
                    report,
                    out / "e2e.png",
                    title=f"{students} students, full path, 100 ms analysis, local stack",
                )
            if not summary["lag"]["flat"]:
                break
            sustained = students
    finally:
        stack.stop()
    (out / "e2e.json").write_text(
        json.dumps({"idle": idle_cpu, "light": base, "steps": reports}, indent=2) + "\n"
    )
    # the stack's own side of the whole ramp, from its EMF lines (what `proctor metrics` shows)
    stack_ms = {
        series.name: {k: row[k] for k in ("samples", "p50", "p99")}
        for series in aggregate(metrics.read_text().splitlines())
        if series.unit == "Milliseconds" and (row := series.summary())
    }
    at_goal = reports.get(_GOAL_STUDENTS) or reports[steps[0]]
    goal_students = _GOAL_STUDENTS if _GOAL_STUDENTS in reports else steps[0]
    p99 = at_goal["latency_ms"]["created_to_result"]["p99"]
    base_p99 = base["latency_ms"]["created_to_result"]["p99"]
    return [
        Figure(
            name="e2e_p99_latency",
            value=p99,
            unit=f"ms, chunk created -> result written, {goal_students} students, 100 ms analysis",
            baseline=base_p99,
            baseline_is=f"the same at {light} students",
            ratio=round(p99 / base_p99, 2) if p99 and base_p99 else None,
            ratio_means="times the light-load p99",
            goal="<= 1000 ms at >= 200 students",
            met=p99 is not None and p99 <= 1000 and goal_students >= _GOAL_STUDENTS,
            details={
                "parts_ms": {k: v for k, v in at_goal["latency_ms"].items()},
                # where each chunk's time went (producer.load's per-stage breakdown)
                "stages_ms": at_goal["breakdown"]["percentiles_ms"],
                "stage_means_ms": {
                    k: at_goal["breakdown"].get(k)
                    for k in ("mean_ms", "slowest_5pct_mean_ms", "slowest_1pct_mean_ms")
                },
                "baseline_stage_means_ms": base["breakdown"].get("mean_ms"),
                "lag": at_goal["lag"],
                "throughput": at_goal["throughput"],
                # CPU per chunk of every process of the stack (bench.stack_cpu), at this step
                # and at the light load; what the stack spends idle, per second
                "cpu": at_goal["cpu"],
                "baseline_cpu": base["cpu"],
                "idle_cpu": idle_cpu,
                "stack_metrics_ms_whole_ramp": stack_ms,
            },
        ),
        Figure(
            name="local_stack_sustained_students",
            value=sustained,
            unit="students with flat lag (local stack, full path, real time)",
            baseline=None,
            baseline_is="steps tried: " + ", ".join(map(str, steps)),
            ratio=None,
            ratio_means="-",
            goal=f">= {_GOAL_STUDENTS} students",
            met=sustained >= _GOAL_STUDENTS if size == "full" else None,
            details={
                str(n): {
                    "p99_ms": r["latency_ms"]["created_to_result"]["p99"],
                    "results_per_second": r["throughput"]["results_per_second"],
                    "lag": r["lag"],
                    "missing": r["chunks"]["missing"],
                    "cpu_ms_per_chunk": r["cpu"]["cpu_ms_per_chunk"],
                    "cores": r["cpu"]["cores_total"],
                }
                for n, r in reports.items()
            },
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Chosen steps alone, e.g. one step of 50 students for a minute, into ``--out``."""
    parser = argparse.ArgumentParser(description="end-to-end steps on the local stack")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="students per step")
    parser.add_argument("--seconds", type=float, default=60.0, help="of each step")
    parser.add_argument("--out", type=Path, default=_HERE / "results" / "e2e-steps")
    parser.add_argument("--data", type=Path, default=_HERE.parents[1] / "shared" / "data")
    parser.add_argument(
        "--split", default=SPLIT, help="proctor up --split (an empty string: one emulator)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    run(args.data, "full", args.out, steps=args.steps, seconds=args.seconds, split=args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
