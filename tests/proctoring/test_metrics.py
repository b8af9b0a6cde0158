"""EMF documents that CloudWatch can turn into metrics."""

from __future__ import annotations

import json

from proctoring.metrics import Metrics


def test_flush_writes_one_valid_emf_document_per_dimension_set() -> None:
    lines: list[str] = []
    metrics = Metrics("Proctoring", "consumer", lines.append, clock=lambda: 1_800_000_000.0)
    metrics.add("ChunksProcessed")
    metrics.add("ChunksProcessed")
    metrics.add("FrameExtractionMs", 7.5, "Milliseconds")
    metrics.add("ChunkErrors", Reason="empty")
    metrics.flush()
    documents = [json.loads(line) for line in lines]
    assert len(documents) == 2
    plain = next(d for d in documents if "Reason" not in d)
    directive = plain["_aws"]["CloudWatchMetrics"][0]
    assert plain["_aws"]["Timestamp"] == 1_800_000_000_000
    assert directive["Namespace"] == "Proctoring"
    assert directive["Dimensions"] == [["Service"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "ChunksProcessed": "Count",
        "FrameExtractionMs": "Milliseconds",
    }
    assert plain["ChunksProcessed"] == 2
    assert plain["FrameExtractionMs"] == [7.5]
    assert plain["Service"] == "consumer"
    errors = next(d for d in documents if "Reason" in d)
    assert errors["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Reason", "Service"]]
    assert errors["Reason"] == "empty"
    assert errors["ChunkErrors"] == 1
    assert metrics.totals()["ChunksProcessed"] == 2


def test_nothing_pending_writes_nothing_and_100_values_flush_early() -> None:
    lines: list[str] = []
    metrics = Metrics("Proctoring", "consumer", lines.append)
    metrics.flush()
    assert lines == []
    for value in range(100):
        metrics.add("AnalysisMs", value, "Milliseconds")
    assert len(lines) == 1
    assert len(json.loads(lines[0])["AnalysisMs"]) == 100
