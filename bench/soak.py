"""Soak: a steady load on the local stack for minutes; lag and memory must stay flat.

``python -m bench.soak --students 50 --minutes 10`` starts ``proctor up`` as
``bench.e2e`` does (moto's servers, DynamoDB and Kinesis in one of their own unless
``--split ""``, the router, one consumer worker with the ``fixed`` engine: 100 ms per
frame, no CPU), replays that many students in
real time through the full path for that long, and samples every 10 s the
resident memory of the consumer process (worker and router), of its frame
pool and of moto's servers, and the CPU each process spent per chunk
(``bench.stack_cpu``). It writes ``bench/results/soak.json`` and ``soak.png`` and says
whether

- lag stayed flat: the p50 of created -> result written in the last minute
  is within 1.5x (or +500 ms) of the second minute's;
- the consumer's memory stayed flat: its resident size at the end is within
  10 % (or +30 MiB) of its size after the second minute.

Exit status 1 when either does not hold; 3 when the machine is busy (the 1-minute
load average above ``--max-load``, before or, less this run's own share, after:
``bench.harness.LoadGuard``), unless ``--busy-ok``, which writes ``"busy": true``.
Not part of ``make test`` (it runs for minutes); ``make soak`` runs the documented size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.e2e import SPLIT, _Stack, _step
from bench.harness import LoadGuard, MachineBusy, add_load_arguments
from bench.stack_cpu import StackCpu, role
from producer.chunking import chunk_recording

_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_OUT = Path(__file__).resolve().parent / "results"
_MIB = 1024 * 1024


class _MemorySampler(threading.Thread):
    """Resident memory of the stack's processes every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._every = every
        self._halt = threading.Event()
        self.samples: list[dict[str, float]] = []

    def run(self) -> None:
        started = time.time()
        while not self._halt.wait(0 if not self.samples else self._every):
            consumer = pool = emulator = router = 0
            try:
                consumer = self._root.memory_info().rss
                for child in self._root.children(recursive=True):
                    rss = child.memory_info().rss
                    kind = role(child, {})
                    if kind.startswith("emulator") or kind == "kinesis-local":
                        emulator += rss
                    elif kind == "chunk router":
                        router += rss
                    else:  # the pool's workers, multiprocessing's resource tracker
                        pool += rss
            except psutil.NoSuchProcess:
                return
            self.samples.append(
                {
                    "t": round(time.time() - started, 1),
                    "consumer_mib": round(consumer / _MIB, 1),
                    "pool_mib": round(pool / _MIB, 1),
                    "router_mib": round(router / _MIB, 1),
                    "emulator_mib": round(emulator / _MIB, 1),
                }
            )

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _per_minute(at: np.ndarray, latency: np.ndarray) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for minute in range(int(at.max() // 60) + 1 if at.size else 0):
        chosen = latency[(at >= minute * 60) & (at < (minute + 1) * 60)]
        if chosen.size:
            rows.append(
                {
                    "minute": minute + 1,
                    "chunks": int(chosen.size),
                    "p50_ms": round(float(np.percentile(chosen, 50))),
                    "p99_ms": round(float(np.percentile(chosen, 99))),
                }
            )
    return rows


def _plot(
    minutes: list[dict[str, float]], memory: list[dict[str, float]], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5))
    top.plot([m["minute"] for m in minutes], [m["p50_ms"] for m in minutes], "o-", label="p50")
    top.plot([m["minute"] for m in minutes], [m["p99_ms"] for m in minutes], "o-", label="p99")
    top.set_xlabel("minute of the run (chunks created in it)")
    top.set_ylabel("created -> result written (ms)")
    top.legend()
    top.set_title(title)
    t = [s["t"] / 60 for s in memory]
    for key, label in (
        ("consumer_mib", "consumer"),
        ("pool_mib", "frame pool"),
        ("router_mib", "chunk router"),
        ("emulator_mib", "moto server"),
    ):
        bottom.plot(t, [s[key] for s in memory], label=label)
    bottom.set_xlabel("minutes")
    bottom.set_ylabel("resident memory (MiB)")
    bottom.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=_OUT)
    parser.add_argument(
        "--split", default=SPLIT, help="proctor up --split (an empty string: one emulator)"
    )
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    guard = LoadGuard.from_arguments(args)
    try:
        guard.start()
    except MachineBusy as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    chunks = list(chunk_recording(_DATA / "video" / "short_hamilton_clip.mp4"))
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = args.out / "soak-metrics.jsonl"
    metrics.unlink(missing_ok=True)
    stack = _Stack(metrics, args.split)
    sampler = _MemorySampler(stack.process.pid)
    sampler.start()
    try:
        before = stack.cpu.snapshot()
        report = asyncio.run(
            _step(stack.settings, chunks, args.students, args.minutes * 60, speed=1.0)
        )
        cpu = StackCpu.since(before, stack.cpu.snapshot(), len(report.created))
    finally:
        sampler.stop()
        stack.stop()
    try:
        load = guard.finish()
    except MachineBusy as exc:
        print(f"refused: {exc}; nothing written", file=sys.stderr)
        return 3
    at, latency = report.latencies()
    minutes = _per_minute(at, latency)
    memory = sampler.samples
    summary = report.to_dict()
    second, last = minutes[1]["p50_ms"], minutes[-1]["p50_ms"]
    lag_flat = last <= max(1.5 * second, second + 500)
    settled = next((s for s in memory if s["t"] >= 120), memory[0])
    end = memory[-1]
    memory_flat = end["consumer_mib"] <= max(
        1.1 * settled["consumer_mib"], settled["consumer_mib"] + 30
    )
    result: dict[str, Any] = {
        "students": args.students,
        "minutes": args.minutes,
        "engine": "fixed, 100 ms",
        "busy": load["busy"],
        "load": load,
        "chunks": summary["chunks"],
        "latency_ms": summary["latency_ms"],
        "breakdown": summary["breakdown"],  # where the time went, stage by stage
        "lag_flat": lag_flat,
        "memory_flat": memory_flat,
        "per_minute": minutes,
        "memory": memory,
        "consumer_mib": {"after_2_min": settled["consumer_mib"], "end": end["consumer_mib"]},
        "cpu": cpu,  # CPU ms per chunk of every process of the stack (bench.stack_cpu)
    }
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(
        minutes,
        memory,
        args.out / "soak.png",
        f"soak: {args.students} students, {args.minutes:g} min, full path, 100 ms analysis",
    )
    print(
        f"{args.students} students for {args.minutes:g} min: "
        f"{summary['chunks']['results']} chunks, p50 minute 2 {second} ms -> last {last} ms "
        f"(flat: {lag_flat}); consumer memory {settled['consumer_mib']} MiB after 2 min -> "
        f"{end['consumer_mib']} MiB (flat: {memory_flat}); missing {summary['chunks']['missing']}"
    )
    return 0 if lag_flat and memory_flat and not summary["chunks"]["missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
