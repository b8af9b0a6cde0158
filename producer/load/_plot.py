"""The load report drawn: latency of every chunk over the run, and throughput per second."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from producer.load._plan import LoadError
from producer.load._report import LoadReport

__all__ = ["plot_report"]


def plot_report(report: LoadReport, path: Path, *, title: str = "") -> None:
    """A PNG: latency of every chunk over the run, and throughput per second."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LoadError("plotting needs matplotlib: pip install 'hybrid-proctoring[load]'") from exc
    at, latency = report.latencies()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    top.scatter(at, latency, s=3, alpha=0.4, label="created -> result written")
    alerts = [
        (report.created[(s, q)] - report.started, (d - report.created[(s, q)]) * 1000)
        for s, q, _, d in report.alerts
        if (s, q) in report.created
    ]
    if alerts:
        top.scatter(
            *zip(*alerts, strict=True),
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
