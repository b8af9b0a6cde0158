"""Metric names are declared once (proctoring.metric_names) and every emitting site uses them.

The emitting sites are read from the source with ``ast`` (nothing is imported), so a new
``metrics.add("Typo")`` fails here even where mypy's ``MetricName`` annotation is not run.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("proctoring", "consumer", "lambdas", "producer", "dashboard", "cli", "bench")


def _receiver(node: ast.expr) -> str:
    """The last name of what ``.add`` is called on: ``self._outlet.metrics`` -> ``metrics``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _emitting_sites() -> list[tuple[str, ast.Call]]:
    sites = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add"
                    and "metrics" in _receiver(node.func.value).lower()
                ):
                    sites.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return sites


def test_every_metric_the_code_emits_is_a_declared_name() -> None:
    sites = _emitting_sites()
    assert len(sites) >= 35, "the scan finds the emitting sites (35 when this was written)"
    undeclared = []
    for where, call in sites:
        name = call.args[0] if call.args else None
        declared = (
            isinstance(name, ast.Attribute)
            and isinstance(name.value, ast.Name)
            and name.value.id == "MetricName"
            and name.attr in MetricName.__members__
        )
        if not declared:
            undeclared.append(f"{where}: {ast.unparse(name) if name else 'no name'}")
    assert undeclared == []


def test_members_are_spelt_as_the_names_cloudwatch_sees() -> None:
    assert [m.name for m in MetricName] == [m.value for m in MetricName]


def test_a_declared_name_is_written_as_its_plain_name() -> None:
    """Emitting ``MetricName.X`` or the string ``"X"`` writes the same document."""
    documents = []
    for name in (MetricName.ChunkErrors, "ChunkErrors"):
        lines: list[str] = []
        metrics = Metrics("Proctoring", "consumer", lines.append, clock=lambda: 1.0)
        metrics.add(name, Reason="empty")  # type: ignore[arg-type]
        metrics.flush()
        assert type(next(iter(metrics.totals()))) is str
        documents.append(lines)
    assert documents[0] == documents[1]
    assert json.loads(documents[0][0])["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "ChunkErrors", "Unit": "Count"}
    ]
