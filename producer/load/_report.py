"""What a load run measured (:class:`LoadReport`) and its statistics: percentiles, rates,
whether the lag stayed flat, and where each chunk's time went (:data:`STAGES`).

The per-stage breakdown cuts each chunk's created -> result written into consecutive
stages, each ending at a time the pipeline stamped on the way (the chunk event carries the
router's, the result row the consumer's). A stage is named by the time it ends at; when a
time is unknown (events mode has no router; the KCL daemon gives no arrival time) its
stage's share goes to the next known one, so a chunk's stages always add up to its total.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = ["STAGES", "LoadReport"]

_FLAT_SLOPE_MS_PER_MIN = 1000

STAGES: tuple[tuple[str, str, str], ...] = (
    # (stage, the mark it ends at, what it covers)
    ("upload", "uploaded", "the chunk handed over -> its S3 object created (events: event put)"),
    ("notification", "notified_at", "S3 object -> notification on SQS -> the router has it"),
    ("router", "routed_at", "the router's own work, up to its PutRecords"),
    ("kinesis_put", "arrived_at", "PutRecords -> the record in the stream"),
    ("kinesis_read", "read_at", "in the stream -> read by the consumer (GetRecords polling)"),
    ("frame", "extracted_at", "read -> batch started, S3 GET, frame extracted and stored"),
    ("analysis", "analysed_at", "the student's earlier chunks, then the engine's answer"),
    ("write", "written", "rules, alerts, the wait for the batch's group commit, the row sent"),
)
"""The stages of a chunk's latency, in order; see the module docstring."""


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
    marks: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    """The stack's times for each chunk (epoch seconds), by the mark names of :data:`STAGES`."""

    def stage_durations(self) -> dict[str, np.ndarray]:
        """Each stage's duration (ms) for every chunk with a result, in :data:`STAGES` order;
        a chunk's stages add up to its created -> result written."""
        durations: dict[str, list[float]] = {stage: [] for stage, _, _ in STAGES}
        for key, written in self.written.items():
            created = self.created.get(key)
            if created is None:
                continue
            marks = {**self.marks.get(key, {}), "written": written}
            if key in self.uploaded:
                marks["uploaded"] = self.uploaded[key]
            previous = created
            for stage, mark, _ in STAGES:
                when = marks.get(mark)
                if when is None:
                    durations[stage].append(0.0)  # unknown: its share goes to the next stage
                    continue
                durations[stage].append((when - previous) * 1000)
                previous = when
        return {stage: np.array(values, dtype=float) for stage, values in durations.items()}

    def breakdown(self) -> dict[str, Any]:
        """The per-stage latency breakdown of the JSON report: percentiles per stage, and the
        mean of each stage over all chunks and over the slowest 5 % and 1 % (means add up)."""
        durations = self.stage_durations()
        total = sum(durations.values(), np.zeros(len(next(iter(durations.values())))))
        known = {
            mark: sum(1 for marks in self.marks.values() if mark in marks)
            for _, mark, _ in STAGES
            if mark not in ("uploaded", "written")
        }
        result: dict[str, Any] = {
            "stages": [
                {"stage": stage, "ends_at": mark, "covers": covers}
                for stage, mark, covers in STAGES
            ],
            "chunks_with_mark": known,
            "percentiles_ms": {stage: _percentiles(values) for stage, values in durations.items()},
        }
        if total.size:
            for name, share in (
                ("mean_ms", 0.0),
                ("slowest_5pct_mean_ms", 95.0),
                ("slowest_1pct_mean_ms", 99.0),
            ):
                chosen = total >= np.percentile(total, share)
                result[name] = {
                    stage: round(float(values[chosen].mean()), 1)
                    for stage, values in durations.items()
                }
        return result

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
            "breakdown": self.breakdown(),
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
        return {
            "count": 0,
            "p50": None,
            "p90": None,
            "p95": None,
            "p99": None,
            "max": None,
            "mean": None,
        }
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return {
        "count": int(values.size),
        "p50": round(float(p50), 1),
        "p90": round(float(p90), 1),
        "p95": round(float(p95), 1),
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
