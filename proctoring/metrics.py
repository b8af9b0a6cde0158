"""Metrics in CloudWatch Embedded Metric Format (EMF), one namespace, stable names.

A ``Metrics`` collects counts and timings and ``flush()`` writes one EMF JSON
document per dimension set to a sink: stdout in AWS (Lambda and the
CloudWatch agent turn it into metrics), a file locally. The format is small
and specified (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html); the tests check it.

The metric names are declared once, with what each counts, in
``proctoring.metric_names`` (:class:`~proctoring.metric_names.MetricName`); keep them
stable: dashboards and alarms depend on them.
``proctoring.metrics_view`` reads the documents back (``proctor metrics``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Literal

from proctoring.metric_names import MetricName

__all__ = ["Metrics", "Unit"]

Unit = Literal["Count", "Milliseconds", "Bytes", "Seconds", "None"]
_MAX_VALUES = 100  # EMF allows at most 100 values per metric in one document


class Metrics:
    """Counts and timings for one service, flushed as EMF documents."""

    def __init__(
        self,
        namespace: str,
        service: str,
        sink: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        # (dimension items) -> metric name -> (unit, values)
        self._pending: dict[tuple[tuple[str, str], ...], dict[str, tuple[str, list[float]]]] = (
            defaultdict(dict)
        )
        self._totals: dict[str, float] = defaultdict(float)

    def add(
        self, name: MetricName, value: float = 1, unit: Unit = "Count", **dimensions: str
    ) -> None:
        """Record one value; counts with equal names and dimensions are summed on flush."""
        plain = str(name)  # the documents and totals are keyed by the plain name
        key = tuple(sorted(dimensions.items()))
        with self._lock:
            entry = self._pending[key].setdefault(plain, (unit, []))
            entry[1].append(float(value))
            self._totals[plain] += value
            full = len(entry[1]) >= _MAX_VALUES
        if full:
            self.flush()

    def totals(self) -> dict[str, float]:
        """Everything recorded since start, summed per name (for tests and the local views)."""
        with self._lock:
            return dict(self._totals)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(dict)
        timestamp = int(self._clock() * 1000)
        for key, metrics in pending.items():
            dimensions = {"Service": self._service, **dict(key)}
            document: dict[str, object] = {
                "_aws": {
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self._namespace,
                            "Dimensions": [sorted(dimensions)],
                            "Metrics": [
                                {"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()
                            ],
                        }
                    ],
                },
                **dimensions,
            }
            for name, (unit, values) in metrics.items():
                document[name] = sum(values) if unit == "Count" else values
            self._sink(json.dumps(document, separators=(",", ":")))
