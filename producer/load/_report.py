"""What a load run measured (:class:`LoadReport`) and its statistics: percentiles, rates,
whether the lag stayed flat."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = ["LoadReport"]

_FLAT_SLOPE_MS_PER_MIN = 1000


@dataclass
class LoadReport:
    """Everything measured; :meth:`to_dict` is the JSON report."""

    plan: dict[str, Any]
    started: float
    finished: float = 0.0
    created: dict[tuple[str, int], float] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    written: dict[tuple[str, int], float] = field(default_factory=dict)
    uploaded: dict[tuple[str, int], float] = field(default_factory=dict)
    """When the chunk's S3 object was created (full path) or its event put (events)."""
    failed: dict[str, int] = field(default_factory=dict)
    alerts: list[tuple[str, int, str, float]] = field(default_factory=list)
    throttles: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def latencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(created seconds after the start, created -> result written in ms), by creation."""
        pairs = sorted(
            (self.created[k] - self.started, (w - self.created[k]) * 1000)
            for k, w in self.written.items()
            if k in self.created
        )
        array = np.array(pairs, dtype=float).reshape(-1, 2)
        return array[:, 0], array[:, 1]

    def alert_latencies(self) -> list[float]:
        return [
            (delivered - self.created[(student, sequence)]) * 1000
            for student, sequence, _, delivered in self.alerts
            if (student, sequence) in self.created
        ]

    def to_dict(self, *, timeline: bool = False) -> dict[str, Any]:
        at, latency = self.latencies()
        elapsed = max(self.finished - self.started, 1e-9)
        span = (max(self.created.values()) - self.started) if self.created else 0.0
        missing = len(self.created) - len(self.written)
        report: dict[str, Any] = {
            "plan": self.plan,
            "started_at": datetime.fromtimestamp(self.started, tz=UTC).isoformat(),
            "elapsed_seconds": round(elapsed, 2),
            "chunks": {
                "planned": self.plan["chunks"],
                "created": len(self.created),
                "results": len(self.written),
                "results_with_error": dict(self.failed),
                "missing": missing,
            },
            "throughput": {
                "created_per_second": round(len(self.created) / span, 2) if span else None,
                "results_per_second": _rate(sorted(self.written.values())),
            },
            "latency_ms": {
                "created_to_result": _percentiles(latency),
                "created_to_alert_delivered": _percentiles(np.array(self.alert_latencies())),
                # the parts: student -> S3 object (upload), S3 object -> result (the pipeline)
                "created_to_uploaded": _percentiles(
                    np.array([(u - self.created[k]) * 1000 for k, u in self.uploaded.items()])
                ),
                "uploaded_to_result": _percentiles(
                    np.array([(self.written[k] - u) * 1000 for k, u in self.uploaded.items()])
                ),
            },
            "lag": _lag(at, latency, missing),
            "alerts": {
                "delivered": len(self.alerts),
                "by_type": dict(Counter(kind for _, _, kind, _ in self.alerts)),
            },
            "throttles": dict(self.throttles),
            "errors": dict(self.errors),
            "generator_late_ms": _percentiles(np.array(self.lateness) * 1000),
        }
        if timeline:
            report["timeline"] = [
                [round(a, 3), round(b, 1)] for a, b in zip(at, latency, strict=True)
            ]
        return report


def _percentiles(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "count": int(values.size),
        "p50": round(float(p50), 1),
        "p90": round(float(p90), 1),
        "p99": round(float(p99), 1),
        "max": round(float(values.max()), 1),
        "mean": round(float(values.mean()), 1),
    }


def _rate(times: list[float]) -> float | None:
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return round((len(times) - 1) / (times[-1] - times[0]), 2)


def _lag(at: np.ndarray, latency: np.ndarray, missing: int) -> dict[str, Any]:
    """Is the lag flat? The last third of the chunks against the first, and the slope of a
    straight line through every chunk's latency against its creation time."""
    if latency.size < 6:
        return {"flat": missing == 0 and latency.size > 0, "reason": "too few chunks to tell"}
    third = latency.size // 3
    first, last = latency[:third], latency[-third:]
    first_p90, last_p90 = float(np.percentile(first, 90)), float(np.percentile(last, 90))
    slope = float(np.polyfit(at, latency, 1)[0]) * 60 if np.ptp(at) > 0 else 0.0
    # growing from one third to the last, or along the whole run (a backlog that built up
    # in the first seconds and keeps growing shows in the slope, not in the thirds)
    grew = last_p90 > max(1.5 * first_p90, first_p90 + 500) or slope > _FLAT_SLOPE_MS_PER_MIN
    return {
        "first_third_p90_ms": round(first_p90, 1),
        "last_third_p90_ms": round(last_p90, 1),
        "slope_ms_per_minute": round(slope, 1),
        "flat": not grew and missing == 0,
        "reason": "results missing"
        if missing
        else "latency grew over the run"
        if grew
        else "last third within 1.5x (or +500 ms) of the first, slope under "
        f"{_FLAT_SLOPE_MS_PER_MIN} ms a minute",
    }
