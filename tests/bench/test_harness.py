"""``python -m bench`` on token sizes writes a well-formed latest.json (the figures' shape,
not their values: timing goals are benchmarks, not tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, main
from tests.conftest import require_data

pytestmark = pytest.mark.slow

_FIELDS = {"value", "unit", "baseline", "ratio", "goal", "met"}


def test_every_benchmark_reports_value_baseline_ratio_goal_and_met(tmp_path: Path) -> None:
    require_data()
    out = tmp_path / "latest.json"
    main(["--size", "tiny", "--out", str(out), "--busy-ok"])  # CI runs tests on both cores
    document = json.loads(out.read_text())
    assert document["size"] == "tiny" and document["machine"]["cpus"] >= 1
    figures = document["benchmarks"]
    assert set(figures) == {
        "frame_extraction_vs_ffmpeg",
        "frame_extraction_vs_floor",
        "consumer_cpu_per_chunk",
        "consumer_capacity_projected",
        "consumer_aws_requests_per_chunk",
        "local_engine_fps",
        "e2e_p99_latency",
        "local_stack_sustained_students",
        "analysis_calls_per_student_hour",
    }
    for name, figure in figures.items():
        assert set(figure) >= _FIELDS, name
        assert isinstance(figure["value"], int | float), name
        assert figure["met"] in (True, False, None), name
        if figure["baseline"] is not None and figure["ratio"] is not None:
            assert figure["ratio"] > 0, name
    assert figures["consumer_cpu_per_chunk"]["details"]["extraction_ms"] > 0
    assert (tmp_path / "e2e.png").stat().st_size > 0
    assert len(BENCHMARKS) == 5
