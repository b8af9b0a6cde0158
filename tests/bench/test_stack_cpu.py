"""bench.stack_cpu: the CPU each process of the stack spent, per chunk, and the emulator's
requests by operation."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from bench.stack_cpu import Snapshot, StackCpu
from infrastructure.emulator import Emulator
from proctoring.aws import sync_client
from proctoring.settings import Settings


def test_per_chunk_figures_are_each_process_and_operations_share() -> None:
    before = Snapshot(
        at=0.0,
        cpu_s={"emulator": 1.0, "load generator": 0.5},
        operations={"emulator": {"s3.PUT object": {"count": 10, "cpu_s": 0.05}}},
    )
    after = Snapshot(
        at=10.0,
        cpu_s={"emulator": 2.0, "load generator": 0.7, "pool workers": 0.3},
        operations={
            "emulator": {
                "s3.PUT object": {"count": 110, "cpu_s": 0.45},
                "sqs.ReceiveMessage": {"count": 50, "cpu_s": 0.1},
            }
        },
    )
    budget = StackCpu.since(before, after, chunks=100)
    assert budget["cpu_ms_per_chunk"] == {
        "emulator": 10.0,
        "load generator": 2.0,
        "pool workers": 3.0,  # started after the first snapshot: all of its time
    }
    assert budget["cpu_ms_per_chunk_total"] == 15.0
    assert budget["cores_total"] == 0.15
    put, receive = budget["emulator_operations"]["emulator"].values()  # most CPU first
    assert put == {"requests_per_chunk": 1.0, "cpu_ms_per_chunk": 4.0, "cpu_ms_per_request": 4.0}
    assert receive["requests_per_chunk"] == 0.5


def test_a_snapshot_tells_the_stacks_processes_apart(emulator: Emulator) -> None:
    """The root (proctor up), an emulator child by its port's name, a pool worker by its
    command line; each emulator's request counts read over HTTP (none from one that has no
    counts, as kinesis-local)."""
    sleeper = "import time; time.sleep(60)"
    root = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', {sleeper!r}, "
            "'infrastructure.moto_server', '-H', '127.0.0.1', '-p', '4567'])\n"
            f"subprocess.Popen([sys.executable, '-c', {sleeper!r}, 'multiprocessing.spawn'])\n"
            "time.sleep(60)",
        ]
    )
    try:
        sync_client(Settings(endpoint_url=emulator.endpoint_url), "sqs").list_queues()
        cpu = StackCpu(
            root.pid,
            {emulator.endpoint_url: "emulator", "http://127.0.0.1:4567": "emulator: kinesis"},
        )
        deadline = time.monotonic() + 30
        while len(psutil.Process(root.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the children to start, bounded
        snapshot = cpu.snapshot()
        assert set(snapshot.cpu_s) == {
            "load generator",
            "proctor up (consumer loop)",
            "emulator: kinesis",
            "pool workers",
        }
        assert snapshot.operations["emulator"]["sqs.ListQueues"]["count"] >= 1
        assert snapshot.operations["emulator: kinesis"] == {}  # nothing answers there
    finally:
        for child in psutil.Process(root.pid).children(recursive=True):
            child.kill()
        root.kill()
        root.wait()
