"""Benchmarks on a busy machine refuse, or with --busy-ok say so in their figures
(``bench.harness.LoadGuard``), from injected load readings."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.harness import Figure, LoadGuard, MachineBusy, _own_runnable, markdown_table


def _guard(
    loads: list[float],
    cpu: list[float],
    *,
    busy_ok: bool = False,
    settle: float = 0.0,
    slept: list[float] | None = None,
    runnable: list[int] | None = None,
) -> LoadGuard:
    clock = itertools.count(0.0, 60.0)  # every reading of the clock is a minute later
    return LoadGuard(
        max_load=1.5,
        busy_ok=busy_ok,
        settle=settle,
        load=iter(loads).__next__,
        own_cpu=iter(cpu).__next__,
        own_runnable=iter(runnable).__next__ if runnable is not None else lambda: 0,
        clock=lambda: next(clock),
        sleep=(slept if slept is not None else []).append,
        sample_every=None,  # the test samples
    )


def test_a_quiet_machine_passes_and_the_load_is_recorded_at_start_and_end() -> None:
    # the benchmark itself used 2 cores for 60 s: 2 x (1 - 1/e) = 1.26 of the 1-minute
    # average is its own, as the kernel averages (0.4 at the start decays to 0.15)
    guard = _guard([0.4, 1.7], [10.0, 130.0])
    guard.start()
    load = guard.finish()
    assert load["busy"] is False
    assert load["load_average_at_start"] == 0.4 and load["load_average_at_end"] == 1.7
    assert load["own_cores"] == 2.0 and load["own_load_at_end"] == pytest.approx(1.26)
    assert load["others_load_at_end"] == pytest.approx(0.44)


def test_a_benchmark_ending_with_its_heaviest_minutes_is_not_refused_for_them() -> None:
    """``e2e`` ramps up: its last step keeps both cores busy after minutes of light load.
    Its mean over the run (0.65 cores) would leave 1.55 of the end's 2.2 to "others"."""
    light = [12.0 * minute for minute in range(10)]  # 9 minutes at 0.2 cores
    heavy = [light[-1] + 120.0 * minute for minute in (1, 2, 3)]  # then 3 at 2 cores
    guard = _guard([0.3, 2.2], light + heavy)
    guard.start()
    for _ in range(11):
        guard.sample()
    load = guard.finish()
    assert load["busy"] is False
    assert load["own_cores"] == pytest.approx(0.65)
    assert load["own_load_at_end"] == pytest.approx(1.91, abs=0.01)
    assert load["others_load_at_end"] == pytest.approx(0.29, abs=0.01)


def test_a_benchmark_saturating_the_machine_counts_its_waiting_tasks_as_its_own() -> None:
    """``e2e``'s 300-student step: the stack gets both cores and has a third of its tasks
    waiting for one; the kernel counts all of them. Counting only the cores it got left 1.79
    of an end load of 3.09 to "others" on a machine running nothing else (refused)."""
    guard = _guard([0.5, 3.0], [0.0, 120.0, 240.0], runnable=[3, 3])
    guard.start()
    guard.sample()
    load = guard.finish()
    assert load["busy"] is False
    assert load["own_load_at_end"] == pytest.approx(3 * (1 - math.exp(-2)), abs=0.01)
    assert load["others_load_at_end"] < 0.5


def test_the_own_runnable_tasks_are_read_from_this_process_tree() -> None:
    """A child process spinning on a core is a runnable task of the tree, as the kernel's
    load average counts it."""
    spinning = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 20.0
        counts: list[int] = []
        while time.monotonic() < deadline and sum(c >= 1 for c in counts) < 3:
            counts.append(_own_runnable())
            time.sleep(0.05)
        assert sum(c >= 1 for c in counts) >= 3, counts
    finally:
        spinning.kill()
        spinning.wait()


def test_the_own_share_is_sampled_in_the_background_while_the_benchmark_runs() -> None:
    readings: list[float] = []

    def own_cpu() -> float:
        readings.append(0.5 * len(readings))  # every reading, half a CPU second more
        return readings[-1]

    guard = LoadGuard(max_load=1.5, load=lambda: 0.2, own_cpu=own_cpu, sample_every=0.001)
    guard.start()
    deadline = time.monotonic() + 10.0
    while len(readings) < 3 and time.monotonic() < deadline:  # the start's + two samples
        time.sleep(0.001)
    assert len(readings) >= 3
    assert guard.finish()["own_load_at_end"] > 0.0
    assert guard._sampler is None  # the sampler ended with the benchmark


def test_a_busy_machine_is_refused_before_the_benchmark_starts() -> None:
    guard = _guard([3.2], [0.0])
    with pytest.raises(MachineBusy, match=r"load average 3\.20 before .* above 1\.5"):
        guard.start()


def test_the_previous_benchmarks_own_load_is_waited_out_not_refused() -> None:
    """``make bench`` runs five benchmarks in a row: the last one's load (about 2 on two
    cores) is still in the 1-minute average when the next one starts."""
    slept: list[float] = []
    guard = _guard([1.8, 1.7, 1.2, 1.3], [0.0, 60.0], settle=180.0, slept=slept)
    assert guard.start() == 1.2
    assert len(slept) == 2  # polled until the load fell, within the settle time
    assert guard.finish()["load_average_at_start"] == 1.2


def test_a_load_that_does_not_fall_within_the_settle_time_is_refused() -> None:
    slept: list[float] = []
    guard = _guard([1.8, 1.8, 1.8, 1.8], [0.0], settle=180.0, slept=slept)
    with pytest.raises(MachineBusy, match=r"1\.80 before"):
        guard.start()
    assert len(slept) == 2


def test_others_arriving_during_the_benchmark_are_refused_at_the_end() -> None:
    guard = _guard([0.5, 4.0], [0.0, 60.0])  # we used one core for a minute (0.63 of it)
    guard.start()
    with pytest.raises(MachineBusy, match=r"3\.37 of it others'"):
        guard.finish()


def test_busy_ok_writes_the_figure_marked_busy() -> None:
    guard = _guard([3.2, 4.0], [0.0, 60.0], busy_ok=True)
    guard.start()
    load = guard.finish()
    assert load["busy"] is True
    figure = Figure("x", 1.0, "ms", None, "-", None, "-", "<= 2 ms", True, {"load": load}, True)
    assert figure.line().startswith("BUSY MACHINE, NOT A RESULT")
    table = markdown_table({"benchmarks": {"x": figure.__dict__}})
    assert "**BUSY** 3.2/4.0" in table.splitlines()[-1]


def test_python_m_bench_exits_non_zero_and_writes_nothing_on_a_busy_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setenv("BENCH_MAX_LOAD", "1.5")
    out = tmp_path / "latest.json"
    with pytest.raises(SystemExit) as exit_:
        main(["--only", "frames", "--size", "tiny", "--settle", "0", "--out", str(out)])
    assert exit_.value.code == 3 and not out.exists()
    assert "the machine is busy" in capsys.readouterr().err


def test_the_soak_refuses_a_busy_machine_before_starting_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import soak

    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    args = ["--minutes", "0.1", "--max-load", "1.5", "--settle", "0", "--out", str(tmp_path)]
    assert soak.main(args) == 3
    assert list(tmp_path.iterdir()) == []
