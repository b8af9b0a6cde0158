"""Load replay: many students through the real local stack, and the report's arithmetic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

import pytest

from cli.services import run_services
from proctoring.aws import async_clients
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk, chunk_recording
from producer.load import LoadError, LoadPlan, LoadReport, Progress, plot_report, run_load
from tests.conftest import DATA, needs_data


def _chunk(start: float, duration: float = 5.0) -> Chunk:
    return Chunk(index=int(start // 5), data=b"x", start=start, duration=duration, remuxed=True)


def test_the_schedule_cycles_the_session_and_scales_with_speed() -> None:
    plan = LoadPlan(
        chunks=[_chunk(0), _chunk(5)], students=2, exam_id="e", speed=2.0, duration=20.0
    )
    assert [(q, due) for q, due, _ in plan.schedule()] == [(0, 2.5), (1, 5.0), (2, 7.5), (3, 10.0)]
    assert plan.student_ids() == [f"student-{plan.run}-00000", f"student-{plan.run}-00001"]
    again = LoadPlan(chunks=[_chunk(0)], students=1, exam_id="e")
    assert again.student_ids() != plan.student_ids()[:1], "another run, other students"
    # a recording's short tail, cycled: on the recorder's 5 s beat; the last when it ends
    clip = [_chunk(0), _chunk(5, duration=4.0)]
    cycled = LoadPlan(chunks=clip, students=1, exam_id="e", duration=20.0)
    assert [due for _, due, _ in cycled.schedule()] == [5.0, 10.0, 15.0, 20.0]
    once = LoadPlan(chunks=clip, students=1, exam_id="e")  # the recording once: 9 s
    assert [due for _, due, _ in once.schedule()] == [5.0, 9.0]
    fast = LoadPlan(chunks=[_chunk(0)], students=1, exam_id="e", speed=None)
    assert [due for _, due, _ in fast.schedule()] == [0.0]
    with pytest.raises(LoadError, match="students"):
        LoadPlan(chunks=[_chunk(0)], students=0, exam_id="e")
    with pytest.raises(LoadError, match="no chunks"):
        LoadPlan(chunks=[], students=1, exam_id="e")


def _report(latencies: list[float], *, missing: int = 0) -> LoadReport:
    report = LoadReport(plan={"chunks": len(latencies) + missing}, started=1000.0)
    for i, latency in enumerate(latencies):
        report.created[("s", i)] = 1000.0 + i
        report.written[("s", i)] = 1000.0 + i + latency / 1000
    for i in range(missing):
        report.created[("s", len(latencies) + i)] = 2000.0
    report.alerts.append(("s", 1, "NO_FACE", 1001.0 + 0.75))
    report.finished = 1000.0 + len(latencies)
    return report


def test_percentiles_alert_latency_and_a_flat_or_growing_lag() -> None:
    flat = _report([400.0] * 30).to_dict()
    assert flat["latency_ms"]["created_to_result"]["p50"] == 400.0
    assert flat["latency_ms"]["created_to_result"]["count"] == 30
    assert flat["latency_ms"]["created_to_alert_delivered"]["p99"] == 750.0
    assert flat["alerts"] == {"delivered": 1, "by_type": {"NO_FACE": 1}}
    assert flat["lag"]["flat"] is True
    growing = _report([400.0 + 200 * i for i in range(30)]).to_dict()
    assert growing["lag"]["flat"] is False and growing["lag"]["slope_ms_per_minute"] > 1000
    lost = _report([400.0] * 30, missing=2).to_dict()
    assert lost["chunks"]["missing"] == 2 and lost["lag"]["flat"] is False
    assert json.dumps(lost)  # the JSON report


def test_the_stage_breakdown_adds_up_to_each_chunks_latency() -> None:
    report = LoadReport(plan={"chunks": 100}, started=1000.0)
    # every chunk: upload 50 ms, notification 200, router 10, put 5, read 300, frame 20,
    # analysis 100, write 15 = 700 ms; chunk 99 waits 2 s more for GetRecords
    steps = [0.05, 0.2, 0.01, 0.005, 0.3, 0.02, 0.1, 0.015]
    marks = ("notified_at", "routed_at", "arrived_at", "read_at", "extracted_at", "analysed_at")
    for i in range(100):
        key = ("s", i)
        at = report.created[key] = 1000.0 + i
        times = []
        for step in steps:
            at += step + (2.0 if i == 99 and step == 0.3 else 0.0)
            times.append(at)
        report.uploaded[key] = times[0]
        report.marks[key] = dict(zip(marks, times[1:-1], strict=True))
        report.written[key] = times[-1]
    summary = report.to_dict()
    breakdown = summary["breakdown"]
    stages = [s["stage"] for s in breakdown["stages"]]
    assert stages == [
        "upload",
        "notification",
        "router",
        "kinesis_put",
        "kinesis_read",
        "frame",
        "analysis",
        "write",
    ]
    percentiles = breakdown["percentiles_ms"]
    for stage, step in zip(stages, steps, strict=True):
        assert percentiles[stage]["p50"] == pytest.approx(step * 1000, abs=0.1), stage
    assert percentiles["kinesis_read"]["p99"] > 300 and percentiles["kinesis_read"]["max"] == 2300
    assert percentiles["upload"]["p95"] == pytest.approx(50, abs=0.1)
    # the means add up to the mean total; the slowest 1 % is the chunk that waited
    total = summary["latency_ms"]["created_to_result"]["mean"]
    assert sum(breakdown["mean_ms"].values()) == pytest.approx(total, abs=0.5)
    assert breakdown["slowest_1pct_mean_ms"]["kinesis_read"] == pytest.approx(2300, abs=0.1)
    assert breakdown["chunks_with_mark"]["read_at"] == 100
    # a chunk without the router's times (events mode): its Kinesis put carries them
    del report.marks[("s", 0)]["notified_at"], report.marks[("s", 0)]["routed_at"]
    durations = report.stage_durations()
    first = {stage: float(values[0]) for stage, values in durations.items()}
    assert first["notification"] == first["router"] == 0.0
    assert first["kinesis_put"] == pytest.approx(215, abs=0.1)
    assert sum(first.values()) == pytest.approx(700, abs=0.1)


async def _stack(
    settings: Settings,
    pool: Executor,
    *,
    router: bool,
    plan: LoadPlan,
    on_progress: Callable[[Progress], None],
) -> LoadReport:
    stop = asyncio.Event()
    services = asyncio.create_task(
        run_services(settings, stop, router=router, executor=pool, metrics_sink=lambda _: None)
    )
    try:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            return await run_load(
                plan,
                settings=settings,
                clients=clients,
                tables=tables,
                within=60.0,
                on_progress=on_progress,
            )
    finally:
        stop.set()
        await services


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "events"])
def test_every_chunk_of_every_student_gets_its_result_and_latency(
    settings: Settings, pool: Executor, tmp_path: Path, mode: str
) -> None:
    fixed = settings.model_copy(update={"engine": "fixed", "fixed_latency": 0.01})
    chunks = list(chunk_recording(DATA / "video/short_hamilton_clip.mp4"))
    plan = LoadPlan(chunks=chunks, students=3, exam_id="load", speed=None, mode=mode)  # type: ignore[arg-type]
    seen: list[Progress] = []
    report = asyncio.run(
        _stack(fixed, pool, router=mode == "full", plan=plan, on_progress=seen.append)
    )
    summary = report.to_dict(timeline=True)
    assert summary["chunks"] == {
        "planned": 6,
        "created": 6,
        "results": 6,
        "results_with_error": {},
        "missing": 0,
    }
    result = summary["latency_ms"]["created_to_result"]
    assert result["count"] == 6 and 0 < result["p50"] <= result["p99"] < 60_000
    assert summary["latency_ms"]["uploaded_to_result"]["count"] == 6
    assert len(summary["timeline"]) == 6 and summary["errors"] == {}
    # every chunk's stages, stamped by the router (full path) and the consumer
    breakdown = summary["breakdown"]
    routed = 6 if mode == "full" else 0
    assert breakdown["chunks_with_mark"] == {
        "notified_at": routed,
        "routed_at": routed,
        "arrived_at": 6,
        "read_at": 6,
        "extracted_at": 6,
        "analysed_at": 6,
    }
    assert all(v >= 0 for v in breakdown["mean_ms"].values()), breakdown["mean_ms"]
    assert breakdown["percentiles_ms"]["analysis"]["p50"] >= 10  # the fixed engine's 10 ms
    plot_report(report, tmp_path / "load.png")
    assert (tmp_path / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (seen[-1].created, seen[-1].results, seen[-1].planned) == (6, 6, 6)
    if mode == "full":  # the same exam again: a run of its own, not taken for replaced evidence
        plan = replace(plan, run="second")
        again = asyncio.run(
            _stack(fixed, pool, router=True, plan=plan, on_progress=lambda _: None)
        ).to_dict(timeline=True)
        assert again["chunks"]["results"] == 6 and again["chunks"]["missing"] == 0
        assert again["latency_ms"]["created_to_uploaded"]["p50"] >= 0
        assert min(latency for _, latency in again["timeline"]) > 0
