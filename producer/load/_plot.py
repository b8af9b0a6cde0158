"""The load report drawn: latency of every chunk over the run, throughput per second, and
where the time went (the per-stage breakdown, stacked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from producer.load._plan import LoadError
from producer.load._report import STAGES, LoadReport

__all__ = ["plot_report"]


def plot_report(report: LoadReport, path: Path, *, title: str = "") -> None:
    """A PNG: latency of every chunk over the run, throughput per second, and the mean of
    each stage for all chunks and for the slowest 5 % and 1 % (stacked: means add up)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LoadError("plotting needs matplotlib: pip install 'hybrid-proctoring[load]'") from exc
    at, latency = report.latencies()
    figure = plt.figure(figsize=(9, 9))
    grid = figure.add_gridspec(3, 1, height_ratios=[3, 2, 2])
    top = figure.add_subplot(grid[0])
    bottom = figure.add_subplot(grid[1], sharex=top)
    _stages(figure.add_subplot(grid[2]), report)
    top.scatter(at, latency, s=3, alpha=0.4, label="created -> result written")
    alerts = [
        (report.created[(s, q)] - report.started, (d - report.created[(s, q)]) * 1000)
        for s, q, _, d in report.alerts
        if (s, q) in report.created
    ]
    if alerts:
        alert_at, alert_ms = zip(*alerts, strict=True)
        top.scatter(
            alert_at,
            alert_ms,
            s=12,
            marker="x",
            color="red",
            label="created -> alert delivered",
        )
    top.set_ylabel("latency (ms)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    if at.size:
        seconds = np.arange(0, int(max(at.max(), 1)) + 2)
        created = np.histogram(at, bins=seconds)[0]
        written = np.histogram([w - report.started for w in report.written.values()], bins=seconds)[
            0
        ]
        bottom.step(seconds[:-1], created, where="post", label="chunks created / s")
        bottom.step(seconds[:-1], written, where="post", label="results written / s")
    bottom.set_xlabel("seconds since the start")
    bottom.set_ylabel("chunks per second")
    bottom.legend(loc="upper left")
    bottom.grid(alpha=0.3)
    plan = report.plan
    figure.suptitle(
        title or f"{plan['students']} students, {plan['mode']} path, speed {plan['speed'] or 'max'}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _stages(axes: Any, report: LoadReport) -> None:
    """Stacked horizontal bars: each stage's mean, for all chunks and the slowest ones."""
    breakdown = report.breakdown()
    rows = [
        (label, breakdown[name])
        for label, name in (
            ("all chunks", "mean_ms"),
            ("slowest 5 %", "slowest_5pct_mean_ms"),
            ("slowest 1 %", "slowest_1pct_mean_ms"),
        )
        if name in breakdown
    ]
    colours = _colours(len(STAGES))
    for index, (stage, _, _) in enumerate(STAGES):
        left = [sum(means[s] for s, _, _ in STAGES[:index]) for _, means in rows]
        widths = [means[stage] for _, means in rows]
        if any(widths):
            axes.barh(
                [label for label, _ in rows], widths, left=left, color=colours[index], label=stage
            )
    axes.invert_yaxis()
    axes.set_xlabel("mean ms per stage, created -> result written (stacked)")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="small", ncol=4)
    axes.grid(alpha=0.3, axis="x")


def _colours(count: int) -> list[Any]:
    import matplotlib

    return [matplotlib.colormaps["tab10"](i % 10) for i in range(count)]
