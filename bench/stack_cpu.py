"""CPU seconds of every process of the local stack, and the emulator's requests by operation.

On a shared machine wall-clock latency moves with everybody's load; CPU time does not.
:class:`StackCpu` takes a snapshot of the CPU time (user + system) of each process of the
stack - ``proctor up`` (the consumer's event loop), its process pool, the chunk router
(``proctor route``) and the emulators it started - and of the load generator (this
process), and of the emulator's own per-operation counts
(``infrastructure.moto_server.STATS_PATH``); :meth:`StackCpu.since` turns two snapshots into
CPU milliseconds per chunk for each, the budget the whole stack has to fit: at 40 chunks a
second (200 students) two cores give 50 ms per chunk, all processes together.

Processes are told apart by their command lines: ``infrastructure.moto_server`` (moto's
server), ``kinesis-local`` / ``node``, ``multiprocessing`` (the frame pool's workers),
``-m cli route`` (the chunk router); the root is ``proctor up`` itself. A process that
ended between two snapshots loses the CPU it spent since the first (the pool's workers live
as long as the stack).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psutil

__all__ = ["Snapshot", "StackCpu", "role"]

_STATS_PATH = "/moto-api/proctor/requests"  # infrastructure.moto_server.STATS_PATH


def role(process: psutil.Process, names: dict[str, str]) -> str:
    command = " ".join(process.cmdline())
    if "infrastructure.moto_server" in command or "moto.server" in command:
        port = command.rsplit("-p ", 1)[-1].split()[0] if "-p " in command else "?"
        return names.get(port, f"emulator:{port}")
    if "kinesis-local" in command or "main.js" in command:
        return "kinesis-local"
    if "-m cli route" in command:
        return "chunk router"
    if "resource_tracker" in command:
        return "resource tracker"
    if "multiprocessing" in command:
        return "pool workers"
    return "other children"


@dataclass
class Snapshot:
    """CPU seconds by role at one moment, and the emulators' per-operation counts."""

    at: float
    cpu_s: dict[str, float]
    operations: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


class StackCpu:
    """Snapshots of the stack rooted at ``root_pid`` (see the module docstring);
    ``emulators`` maps the endpoint URLs whose request counts to read to their names."""

    def __init__(self, root_pid: int, emulators: dict[str, str] | None = None) -> None:
        self._root = psutil.Process(root_pid)
        self._me = psutil.Process(os.getpid())
        self._emulators = dict(emulators or {})
        self._names = {url.rsplit(":", 1)[-1]: name for url, name in self._emulators.items()}

    def snapshot(self) -> Snapshot:
        cpu: dict[str, float] = {}

        def add(role: str, process: psutil.Process) -> None:
            times = process.cpu_times()
            cpu[role] = cpu.get(role, 0.0) + times.user + times.system

        add("load generator", self._me)
        with _gone_is_zero():
            add("proctor up (consumer loop)", self._root)
        for child in self._root.children(recursive=True):
            with _gone_is_zero():
                add(role(child, self._names), child)
        return Snapshot(
            at=time.monotonic(),
            cpu_s=cpu,
            operations={name: _operations(url) for url, name in self._emulators.items()},
        )

    @staticmethod
    def since(before: Snapshot, after: Snapshot, chunks: int) -> dict[str, Any]:
        """CPU ms per chunk and cores used, by process role; the emulators' requests and
        CPU ms per chunk by operation (their thread's time answering it). With no chunks
        (an idle window) the "per chunk" figures are the window's totals."""
        per = max(chunks, 1)
        seconds = max(after.at - before.at, 1e-9)
        spent = {
            role: after.cpu_s[role] - before.cpu_s.get(role, 0.0) for role in sorted(after.cpu_s)
        }
        total = sum(spent.values())
        operations: dict[str, Any] = {}
        for url, ops in after.operations.items():
            earlier = before.operations.get(url, {})
            rows = {}
            for name, row in ops.items():
                count = row["count"] - earlier.get(name, {}).get("count", 0)
                cpu_s = row["cpu_s"] - earlier.get(name, {}).get("cpu_s", 0.0)
                if count:
                    rows[name] = {
                        "requests_per_chunk": round(count / per, 2),
                        "cpu_ms_per_chunk": round(cpu_s * 1000 / per, 2),
                        "cpu_ms_per_request": round(cpu_s * 1000 / count, 2),
                    }
            operations[url] = dict(sorted(rows.items(), key=lambda kv: -kv[1]["cpu_ms_per_chunk"]))
        return {
            "chunks": chunks,
            "seconds": round(seconds, 1),
            "cpu_ms_per_chunk": {role: round(s * 1000 / per, 2) for role, s in spent.items()},
            "cpu_ms_per_chunk_total": round(total * 1000 / per, 2),
            "cores": {role: round(s / seconds, 3) for role, s in spent.items()},
            "cores_total": round(total / seconds, 3),
            "emulator_operations": operations,
        }


class _gone_is_zero:
    """A process that ended meanwhile counts as nothing (see the module docstring)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, psutil.Error)


def _operations(url: str) -> dict[str, dict[str, float]]:
    try:
        with urllib.request.urlopen(f"{url}{_STATS_PATH}", timeout=5) as answer:
            data: dict[str, dict[str, float]] = json.loads(answer.read())
            return data
    except (urllib.error.URLError, ValueError, OSError):
        return {}  # an emulator without the counts (kinesis-local)
