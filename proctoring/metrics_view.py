"""Reading EMF documents back: what ``proctor metrics`` shows of the local stack.

The local processes write the same Embedded Metric Format lines CloudWatch
ingests in AWS (``proctor up --metrics-file``, ``<report>.metrics.jsonl`` of
the demo). :func:`aggregate` reads them by their own ``_aws`` directive -
namespace, dimension names, metric names and units - and sums counts and
collects timings per (service, metric, dimensions), as CloudWatch would.
Lines that are not EMF (log lines) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Series", "aggregate"]


@dataclass
class Series:
    """One metric of one service with one set of dimension values."""

    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    values: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        data = np.array(self.values, dtype=float)
        row: dict[str, object] = {
            "namespace": self.namespace,
            "metric": self.name,
            "unit": self.unit,
            "dimensions": dict(self.dimensions),
            "samples": int(data.size),
            "sum": round(float(data.sum()), 3),
        }
        if self.unit != "Count" and data.size:
            p50, p90, p99 = np.percentile(data, [50, 90, 99])
            row.update(
                p50=round(float(p50), 1),
                p90=round(float(p90), 1),
                p99=round(float(p99), 1),
                max=round(float(data.max()), 1),
            )
        return row


def aggregate(lines: Iterable[str]) -> list[Series]:
    """Every metric found in ``lines``, sorted by service, name and dimensions."""
    series: dict[tuple[str, str, tuple[tuple[str, str], ...]], Series] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
            directives = document["_aws"]["CloudWatchMetrics"]
        except (ValueError, KeyError, TypeError):
            continue
        for directive in directives:
            names = sorted({d for group in directive.get("Dimensions", []) for d in group})
            dimensions = tuple((d, str(document.get(d, ""))) for d in names)
            for metric in directive.get("Metrics", []):
                name = metric["Name"]
                if name not in document:
                    continue
                key = (directive.get("Namespace", ""), name, dimensions)
                entry = series.setdefault(
                    key,
                    Series(key[0], name, metric.get("Unit", "None"), dimensions),
                )
                raw = document[name]
                entry.values.extend(float(v) for v in (raw if isinstance(raw, list) else [raw]))
    return sorted(
        series.values(), key=lambda s: (dict(s.dimensions).get("Service", ""), s.name, s.dimensions)
    )
