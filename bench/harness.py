"""What every benchmark reports, and the one file they all land in.

A :class:`Figure` is one measured value beside its baseline measured in the
same run; ``ratio`` says how the two compare (``ratio_means`` says which way
is better) and ``met`` whether the issue's goal holds. ``write`` puts them
in ``bench/results/latest.json`` with the machine they ran on.

A benchmark on a busy machine measures the others as much as itself. :class:`LoadGuard`
reads the 1-minute load average before and after each benchmark and refuses
(:class:`MachineBusy`, a non-zero exit) when it is above ``--max-load`` (default
``BENCH_MAX_LOAD``, else 0.75 per core: 1.5 on 2 cores); with ``--busy-ok`` the figures
are written with ``"busy": true`` instead, which :func:`markdown_table` shows. Before
refusing, it waits up to ``--settle`` seconds for the load to fall: the previous benchmark's
own load takes a minute or two to leave the 1-minute average, and ``make bench`` runs five
in a row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from proctoring.pool import RenewingPool

__all__ = [
    "MAX_LOAD_ENV",
    "RESULTS",
    "Figure",
    "LoadGuard",
    "MachineBusy",
    "Size",
    "add_load_arguments",
    "machine",
    "markdown_table",
    "median_ms",
    "pool_cpu",
    "write",
]

RESULTS = Path(__file__).resolve().parent / "results"
Size = Literal["full", "tiny"]
MAX_LOAD_ENV = "BENCH_MAX_LOAD"
"""The 1-minute load average above which a benchmark refuses (default 0.75 per core)."""


class MachineBusy(Exception):
    """The machine was too busy for the figures to mean anything (and --busy-ok not given)."""


def _load_average() -> float:
    return os.getloadavg()[0]


def _own_cpu() -> float:
    """CPU seconds used so far by this process and its children (live and ended)."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # ended meanwhile: counted in children_* once reaped
            continue
        total += child_times.user + child_times.system
    return total


def _own_runnable() -> int:
    """This process tree's tasks (threads) running or waiting for a core, or in
    uninterruptible sleep: what the kernel's load average counts (Linux ``/proc``; 0
    elsewhere). The calling thread, the sampler, is left out."""
    import psutil

    me = psutil.Process()
    caller = threading.get_native_id()
    count = 0
    for pid in [me.pid, *(child.pid for child in me.children(recursive=True))]:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # ended meanwhile, or no /proc
            continue
        for task in tasks:
            if int(task) == caller:
                continue
            try:
                with open(f"/proc/{pid}/task/{task}/stat", "rb") as stat:
                    line = stat.read()
            except OSError:
                continue
            state = line[line.rfind(b")") + 2 : line.rfind(b")") + 3]
            count += state in (b"R", b"D")
    return count


def default_max_load() -> float:
    raw = os.environ.get(MAX_LOAD_ENV)
    if raw:
        try:
            return float(raw)
        except ValueError:
            raise MachineBusy(f"{MAX_LOAD_ENV}={raw!r} is not a number") from None
    return 0.75 * (os.cpu_count() or 1)


SETTLE_SECONDS = 180.0
"""How long a benchmark waits for the load to fall below ``max_load`` before it is refused:
a benchmark that kept both cores busy leaves the 1-minute average near 2, which decays
below 1.5 in well under a minute once it ends."""
_SETTLE_POLL = 5.0
_LOAD_SAMPLE_SECONDS = 5.0
"""How often the own share of the load is sampled: the kernel updates the average every 5 s."""


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-load`` and ``--busy-ok`` (see :class:`LoadGuard`)."""
    parser.add_argument(
        "--max-load",
        type=float,
        default=None,
        help=f"refuse above this 1-minute load average (default ${MAX_LOAD_ENV}, else 0.75 "
        "per core)",
    )
    parser.add_argument(
        "--busy-ok",
        action="store_true",
        help='on a busy machine write the figures anyway, marked "busy": true',
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_SECONDS,
        help="seconds to wait for the load to fall before a benchmark is refused "
        f"(default {SETTLE_SECONDS:g})",
    )


@dataclass
class LoadGuard:
    """The load on the machine around one benchmark, and whether it was too busy.

    Busy when the 1-minute load average is above ``max_load`` at the start, or at the end
    once this process tree's own share is taken out. The own share is averaged the way the
    kernel averages the load: the cores this tree used in each ``sample_every`` seconds,
    decayed with the same one-minute constant, so a benchmark that ends with its heaviest
    minute (``e2e``'s last step) takes out what it put into the end's average, not its
    mean over the whole run. What it adds at each sample is the larger of the cores it used
    since the last one and its tasks running or waiting for a core at that moment (as the
    kernel counts them): a benchmark that saturates the machine (``e2e``'s 300 students) has
    more runnable tasks than cores, and counting only the cores it got left its waiting
    tasks to "others" (refused on an idle machine). Before refusing at the start it waits
    up to ``settle`` seconds for the load to fall (the previous benchmark's own load leaves
    the 1-minute average slowly). ``load``, ``own_cpu``, ``own_runnable``, ``clock`` and
    ``sleep`` are injectable for tests; ``sample_every=None``
    takes no samples in the background (a test calls :meth:`sample`).
    """

    max_load: float
    busy_ok: bool = False
    settle: float = SETTLE_SECONDS
    load: Callable[[], float] = _load_average
    own_cpu: Callable[[], float] = _own_cpu
    own_runnable: Callable[[], int] = _own_runnable
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    sample_every: float | None = _LOAD_SAMPLE_SECONDS
    _start: tuple[float, float, float] | None = None
    _own_load: float = 0.0
    _last: tuple[float, float] = (0.0, 0.0)
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> LoadGuard:
        max_load = args.max_load if args.max_load is not None else default_max_load()
        return cls(max_load=max_load, busy_ok=args.busy_ok, settle=args.settle)

    def start(self) -> float:
        """Read the load before the benchmark, waiting up to ``settle`` seconds for it to fall
        below ``max_load``; MachineBusy if it stays too high (unless busy_ok)."""
        deadline = self.clock() + self.settle
        load = self.load()
        while load > self.max_load and not self.busy_ok and self.clock() < deadline:
            self.sleep(_SETTLE_POLL)
            load = self.load()
        self._start = (load, self.own_cpu(), self.clock())
        if load > self.max_load and not self.busy_ok:
            raise MachineBusy(self._message(f"{load:.2f} before the benchmark started"))
        self._own_load, self._last = 0.0, self._start[1:]
        if self.sample_every is not None:
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample_until_stopped, daemon=True)
            self._sampler.start()
        return load

    def sample(self) -> float:
        """Fold the cores this tree used since the last sample, or its runnable tasks now
        when more, into its own share of the 1-minute load average (the kernel's decay:
        ``exp(-seconds / 60)``); the share."""
        cpu, now = self.own_cpu(), self.clock()
        last_cpu, last_clock = self._last
        seconds = now - last_clock
        if seconds > 0:
            decay = math.exp(-seconds / 60.0)
            cores = max(cpu - last_cpu, 0.0) / seconds
            load = max(cores, float(self.own_runnable()))
            self._own_load = self._own_load * decay + load * (1.0 - decay)
            self._last = (cpu, now)
        return self._own_load

    def _sample_until_stopped(self) -> None:
        assert self.sample_every is not None
        while not self._stop.wait(self.sample_every):
            self.sample()

    def finish(self) -> dict[str, Any]:
        """The load around the benchmark; MachineBusy if it was too busy (unless busy_ok)."""
        if self._start is None:
            raise RuntimeError("finish() before start()")
        load_start, cpu_start, clock_start = self._start
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None
        load_end = self.load()
        own_load = self.sample()
        seconds = max(self._last[1] - clock_start, 1e-9)
        own = max(self._last[0] - cpu_start, 0.0) / seconds
        others = max(load_end - own_load, 0.0)
        busy = load_start > self.max_load or others > self.max_load
        if busy and not self.busy_ok:
            raise MachineBusy(
                self._message(
                    f"{load_end:.2f} at the end, {others:.2f} of it others' (this benchmark's "
                    f"own share {own_load:.2f})"
                    if others > self.max_load
                    else f"{load_start:.2f} at the start"
                )
            )
        return {
            "load_average_at_start": round(load_start, 2),
            "load_average_at_end": round(load_end, 2),
            "own_cores": round(own, 2),
            "own_load_at_end": round(own_load, 2),
            "others_load_at_end": round(others, 2),
            "max_load": self.max_load,
            "busy": busy,
        }

    def _message(self, what: str) -> str:
        return (
            f"the machine is busy: 1-minute load average {what}, above {self.max_load:g} "
            f"({os.cpu_count()} cores); the figures would measure the other work. Wait for "
            f"a quiet moment, raise --max-load (or ${MAX_LOAD_ENV}), or pass --busy-ok to "
            'write them marked "busy": true'
        )


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
    busy: bool = False
    """Measured on a busy machine (``--busy-ok``): the value is not to be trusted."""

    def line(self) -> str:
        ratio = "-" if self.ratio is None else f"{self.ratio:.3g}"
        met = {True: "met", False: "MISSED", None: "n/a"}[self.met]
        return (
            ("BUSY MACHINE, NOT A RESULT: " if self.busy else "")
            + f"{self.name}: {self.value} {self.unit} | baseline {self.baseline} "
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


def markdown_table(document: dict[str, Any]) -> str:
    """The summary table of docs/benchmarks.md from a ``latest.json`` document; a figure
    measured on a busy machine says so in its own column."""
    lines = [
        "| benchmark | value | baseline (same run) | ratio | goal | | load (start/end) |",
        "| --- | ---: | --- | ---: | --- | --- | --- |",
    ]
    for name, f in document.get("benchmarks", {}).items():
        met = {True: "**met**", False: "missed", None: "n/a"}[f.get("met")]
        details = f.get("details", {})
        load = details.get("load", {})
        if load:
            where = f"{load.get('load_average_at_start')}/{load.get('load_average_at_end')}"
        elif isinstance(details.get("load_average_at_start"), list):  # before the guard
            where = f"{details['load_average_at_start'][0]}/?"
        else:
            where = "-"
        if f.get("busy"):
            where = f"**BUSY** {where}"
        ratio = "-" if f.get("ratio") is None else f"{f['ratio']} ({f['ratio_means']})"
        baseline = "-" if f.get("baseline") is None else f"{f['baseline']} ({f['baseline_is']})"
        lines.append(
            f"| `{name}` | {f['value']} {f['unit']} | {baseline} | {ratio} | {f['goal']} "
            f"| {met} | {where} |"
        )
    return "\n".join(lines)
