"""Analysis calls per student-hour: the schedule against the naive plan (``proctor eval``).

``run_eval`` runs the labelled suite through the local pipeline twice in one
process, naive plan first (every API on every chunk) as the baseline. The
figure is the schedule's Rekognition calls per student-hour; it must cost less
at the same recall.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bench.harness import Figure, Size
from cli.eval_run import CURATED_SUITE, run_eval
from cli.eval_suite import load_suite
from proctoring.logs import configure_logging
from proctoring.settings import Settings

__all__ = ["run"]


def _at_least(recall: float | None, naive: float | None) -> bool:
    """The schedule's recall is no worse (None: the rule had no labelled incident)."""
    return naive is None or (recall is not None and recall >= naive)


def run(data_dir: Path, size: Size) -> list[Figure]:
    settings = Settings(prefix="eval", log_level="ERROR", data_dir=data_dir)
    configure_logging(settings)
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as folder:
        suite = CURATED_SUITE
        if size == "tiny":  # one short labelled scenario
            suite = Path(folder) / "suite.yaml"
            scenario = CURATED_SUITE.parent / "glance_left.yaml"
            suite.write_text(f"scenarios:\n  - file: {scenario}\n")
        report = asyncio.run(run_eval(settings, load_suite(suite), out=lambda line: None))
    scheduled = round(sum(report["calls_per_student_hour"].values()), 1)
    naive = round(float(report["naive_calls_per_student_hour"]), 1)
    recall = {rule: r["recall"] for rule, r in report["rules"].items() if r["available"]}
    naive_recall = {rule: report["naive"]["rules"][rule]["recall"] for rule in recall}
    ratio = round(scheduled / naive, 3) if naive else None
    return [
        Figure(
            name="analysis_calls_per_student_hour",
            value=scheduled,
            unit="Rekognition calls per student-hour (planned)",
            baseline=naive,
            baseline_is="naive plan: DetectFaces, SearchFacesByImage, DetectLabels on every chunk",
            ratio=ratio,
            ratio_means="fraction of the naive plan's calls",
            goal="fewer calls than the naive plan at the same recall or better",
            met=ratio is not None
            and ratio < 1
            and all(_at_least(recall[rule], naive_recall[rule]) for rule in recall),
            details={
                "per_api": report["calls_per_student_hour"],
                "recall": recall,
                "recall_naive": naive_recall,
                "chunks": report["chunks"],
                "dollars_per_student_hour": round(scheduled * 0.001, 3),
            },
        )
    ]
