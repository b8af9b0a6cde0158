"""``proctor metrics`` reads back what the services wrote, as CloudWatch would."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli import main
from proctoring.metrics import Metrics
from proctoring.metrics_view import aggregate


def _written() -> list[str]:
    lines: list[str] = ["a log line, not EMF", "{not json"]
    consumer = Metrics("Proctoring", "consumer", lines.append)
    for latency in (100, 200, 300, 400):
        consumer.add("ChunksProcessed")
        consumer.add("ChunkLatencyMs", latency, "Milliseconds")
    consumer.add("ChunkErrors", Reason="empty")
    consumer.flush()
    router = Metrics("Proctoring", "chunk-router", lines.append)
    router.add("EventsRouted", 3)
    router.flush()
    router.add("EventsRouted", 2)
    router.flush()
    return lines


def test_counts_are_summed_and_timings_get_percentiles_per_service_and_dimension() -> None:
    rows = {(dict(s.dimensions)["Service"], s.name, s.dimensions): s for s in aggregate(_written())}
    routed = next(s for (svc, name, _), s in rows.items() if name == "EventsRouted")
    assert routed.summary()["sum"] == 5 and routed.summary()["samples"] == 2
    latency = next(s for (_, name, _), s in rows.items() if name == "ChunkLatencyMs").summary()
    assert latency["samples"] == 4 and latency["p50"] == 250.0 and latency["max"] == 400.0
    errors = next(s for (_, name, _), s in rows.items() if name == "ChunkErrors")
    assert dict(errors.dimensions) == {"Reason": "empty", "Service": "consumer"}


def test_the_command_prints_a_table_and_json(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(_written()) + "\n")
    result = CliRunner().invoke(main, ["metrics", str(path)])
    assert result.exit_code == 0, result.output
    assert "ChunkLatencyMs" in result.output and "chunk-router" in result.output
    result = CliRunner().invoke(main, ["metrics", str(path), "--json"])
    rows = json.loads(result.output)
    assert {r["metric"] for r in rows} == {
        "ChunksProcessed",
        "ChunkLatencyMs",
        "ChunkErrors",
        "EventsRouted",
    }
    missing = CliRunner().invoke(main, ["metrics", str(tmp_path / "none.jsonl")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
