"""The chunk router in a process of its own under ``proctor up``, as its Lambda is in AWS.

In AWS the router is a Lambda and the consumer an ECS task: neither spends the other's CPU.
One process for both put the router's SQS and Kinesis calls (~4-5 ms of CPU a chunk) on the
consumer's event loop, where every chunk's stages waited behind them (docs/benchmarks.md).
:func:`router_process` runs ``proctor route`` beside the consumer instead, bound to ``up``
like the emulators (``proctoring.lifetime.tied``: it ends with ``up`` however ``up`` ends),
in its own process group (Ctrl-C reaches ``up``, which stops it with SIGTERM after the
consumer, before the emulators). Should it exit on its own, ``up`` stops too, saying so: a
stack whose router is gone would take chunks and analyse none.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from proctoring.lifetime import tied
from proctoring.settings import Settings

__all__ = ["Child", "router_process", "stack_environment"]

_log = structlog.get_logger(__name__)
STOP_WITHIN = 10.0  # seconds the router has to finish its invocation on SIGTERM


def stack_environment(settings: Settings) -> dict[str, str]:
    """The ``PROCTOR_*`` variables that point a process at the stack ``settings`` describes
    (those ``proctor up`` prints)."""
    env = {
        "PROCTOR_ENDPOINT_URL": settings.endpoint_url or "",
        "PROCTOR_PREFIX": settings.prefix,
        "PROCTOR_ALERTS_TOPIC_ARN": settings.alerts_topic_arn or "",
    }
    if settings.endpoint_urls:
        env["PROCTOR_ENDPOINT_URLS"] = json.dumps(settings.endpoint_urls)
    return {name: value for name, value in env.items() if value}


@dataclass
class Child:
    """A child process of ours: once it exited unasked, its exit code."""

    exited: int | None = None


@contextlib.contextmanager
def router_process(settings: Settings, metrics_file: Path | None) -> Iterator[Child]:
    """``proctor route`` against the stack of ``settings`` while the block runs."""
    command = [sys.executable, "-m", "cli", "route"]
    if metrics_file is not None:
        command += ["--metrics-file", str(metrics_file)]
    process = subprocess.Popen(  # noqa: S603 - a fixed command line of ours
        tied(command),  # ends with us, even when we are killed
        env={**os.environ, **stack_environment(settings)},
        stdin=subprocess.DEVNULL,
        process_group=0,  # not in the terminal's foreground job: stopped by us, in order
    )
    child = Child()
    stopping = threading.Event()
    watcher = threading.Thread(target=_watch, args=(process, child, stopping), daemon=True)
    watcher.start()
    try:
        yield child
    finally:
        stopping.set()
        process.terminate()
        try:
            process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _watch(process: subprocess.Popen[bytes], child: Child, stopping: threading.Event) -> None:
    """Stop this process (SIGTERM: a clean stop) when the router exits unasked."""
    code = process.wait()
    if not stopping.is_set():
        child.exited = code
        _log.error("the chunk router exited; stopping the stack", exit_code=code)
        os.kill(os.getpid(), signal.SIGTERM)
