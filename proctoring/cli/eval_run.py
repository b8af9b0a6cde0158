"""``proctor eval``: the labelled scenarios through the real pipeline, twice, and the figures.

Starts the local stack (emulator provisioned from the template), then runs
the suite twice through the chunk router and the consumer, each pass on its
own stack prefix: once with the **naive** schedule (every question on every
chunk, no repeats carried over) as the in-process baseline, once with the
**scheduled** plan of the settings. Both passes use the engine the settings
name. Each scenario is one student of the exam ``eval``, uploaded as fast as
possible; the pass ends when every student's session has evaluated its last
chunk. Scoring is :mod:`proctoring.cli.evaluation`.

The eval fails (:class:`EvalFailed`, a non-zero exit of ``proctor eval``) when the
scheduled pass loses recall on any rule against the naive pass, or flags an
impostor later than on their second chunk (``evaluation.failures``); the tables
and the JSON are written first, so the figures of a failed run can be read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.analysis.engine import open_engine
from proctoring.aws import async_clients
from proctoring.cli.evaluation import (
    Score,
    SessionRun,
    Suite,
    failures,
    flag_delays,
    load_suite,
    score,
)
from proctoring.cli.services import cpu_pool, run_services
from proctoring.errors import ProctoringError
from proctoring.frames import extract_frame
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk, chunk_recording
from producer.replay import replay
from producer.scenario import load_scenario, render_chunks

__all__ = ["DEFAULT_SUITE", "NAIVE_SCHEDULE", "run_eval"]

DEFAULT_SUITE = Path(__file__).parents[2] / "producer" / "scenarios" / "eval" / "suite.yaml"
NAIVE_SCHEDULE: dict[str, Any] = {
    "faces_every": 1,
    "identity_every": 1,
    "objects_every": 1,
    "similar_below": 0.0,
    "max_repeats": 0,
}
"""Settings of the baseline pass: every API on every chunk, nothing carried over."""
EXAM = "eval"
_GAZE_SCENARIOS = ("glance_left", "glance_right")


class EvalFailed(ProctoringError):
    """A pass did not finish in time, or the schedule lost recall against the naive plan."""


def _render(
    path: Path, data_dir: Path, seconds: float, register_frame: Path | None
) -> tuple[list[Chunk], bytes | None]:
    """Process-pool job: a scenario's chunks and the registration photo."""
    scenario = load_scenario(path, data_dir=data_dir)
    chunks = list(render_chunks(scenario, seconds=seconds))
    photo = None
    if register_frame is not None:
        first = next(chunk_recording(data_dir / register_frame, seconds=seconds))
        photo = extract_frame(first.data, position="first").jpeg
    elif scenario.register is not None:
        photo = scenario.register.read_bytes()
    return chunks, photo


async def run_eval(
    settings: Settings,
    suite_path: Path = DEFAULT_SUITE,
    *,
    json_path: Path | None = None,
    out: Callable[[str], None] = print,
    within: float = 600.0,
) -> dict[str, Any]:
    """Run both passes, print the tables, write ``json_path``; return the report."""
    suite = load_suite(suite_path)
    started = time.monotonic()
    with Emulator(settings.host, settings.port) as emulator, cpu_pool(settings) as pool:
        base = settings.model_copy(update={"endpoint_url": emulator.endpoint_url})
        loop = asyncio.get_running_loop()
        rendered = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool,
                    _render,
                    suite.folder / entry.file,
                    settings.data_dir,
                    settings.chunk_seconds,
                    entry.register_frame,
                )
                for entry in suite.scenarios
            )
        )
        out(f"suite: {len(suite.scenarios)} scenarios, {sum(len(c) for c, _ in rendered)} chunks")
        passes: dict[str, tuple[Score, list[SessionRun]]] = {}
        for name, overrides in (("naive", NAIVE_SCHEDULE), ("scheduled", {})):
            pass_settings = base.model_copy(update={"prefix": f"eval-{name}", **overrides})
            outputs = await asyncio.to_thread(provision, pass_settings)
            pass_settings = pass_settings.model_copy(
                update={"alerts_topic_arn": outputs["AlertsTopicArn"]}
            )
            runs = await _one_pass(pass_settings, pool, suite, rendered, within)
            passes[name] = (score(runs), runs)
            out(f"{name} pass done after {time.monotonic() - started:.0f} s")
    report = _report(passes, settings)
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)
    report["failures"] = failures(
        passes["scheduled"][0], passes["naive"][0], passes["scheduled"][1]
    )
    for line in _tables(report):
        out(line)
    if json_path is not None:
        await asyncio.to_thread(json_path.write_text, json.dumps(report, indent=2) + "\n")
        out(f"figures written to {json_path}")
    if report["failures"]:
        raise EvalFailed("the eval failed:\n  " + "\n  ".join(report["failures"]))
    return report


async def _one_pass(
    settings: Settings,
    pool: Executor,
    suite: Suite,
    rendered: list[tuple[list[Chunk], bytes | None]],
    within: float,
) -> list[SessionRun]:
    stop = asyncio.Event()
    services = asyncio.create_task(
        run_services(settings, stop, executor=pool, metrics_sink=lambda line: None)
    )
    names = [entry.file.stem for entry in suite.scenarios]
    try:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout)
            async with open_engine(settings, tables, pool) as engine:
                for name, (_, photo) in zip(names, rendered, strict=True):
                    if photo is not None:
                        await engine.register(EXAM, name, photo)
            await asyncio.gather(
                *(
                    replay(
                        chunks,
                        s3=clients.s3,
                        bucket=settings.names.chunks_bucket,
                        exam_id=EXAM,
                        student_id=name,
                        speed=None,
                    )
                    for name, (chunks, _) in zip(names, rendered, strict=True)
                )
            )
            await _until_evaluated(tables, names, rendered, within, services)
            runs = []
            alerts = await tables.alerts(EXAM)
            for entry, name, (chunks, _) in zip(suite.scenarios, names, rendered, strict=True):
                results = await tables.results(f"{EXAM}#{name}")
                runs.append(
                    SessionRun(
                        name=name,
                        incidents=entry.incidents,
                        chunk_times=[(c.start, c.start + c.duration) for c in chunks],
                        results=sorted(results, key=lambda r: r["sequence"]),
                        alerts=sorted(
                            (a for a in alerts if a["student_id"] == name),
                            key=lambda a: (a["sequence"], a["type"]),
                        ),
                    )
                )
            return runs
    finally:
        stop.set()
        await services


async def _until_evaluated(
    tables: Tables,
    names: list[str],
    rendered: list[tuple[list[Chunk], bytes | None]],
    within: float,
    services: asyncio.Task[None],
) -> None:
    """Poll until each student's session has evaluated its last chunk."""
    deadline = time.monotonic() + within
    pending = {name: len(chunks) - 1 for name, (chunks, _) in zip(names, rendered, strict=True)}
    while pending:
        if services.done():
            services.result()  # raises what stopped the consumer
            raise EvalFailed("the consumer stopped before the suite was processed")
        for name in list(pending):
            session = await tables.get_session(EXAM, name) or {}
            last = session.get("rules", {}).get("camera", {}).get("last_sequence", -1)
            if last >= pending[name]:
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise EvalFailed(f"sessions not evaluated after {within:.0f} s: {sorted(pending)}")
        await asyncio.sleep(0.5)


def _report(
    passes: dict[str, tuple[Score, list[SessionRun]]], settings: Settings
) -> dict[str, Any]:
    scheduled, runs = passes["scheduled"]
    naive, _ = passes["naive"]
    figures = scheduled.to_dict()
    gaze = [
        {
            "scenario": run.name,
            "sequence": row["sequence"],
            "time": round(run.chunk_times[row["sequence"]][0] + float(row.get("frame_time", 0)), 2),
            "analysed": row.get("analysed"),
            "yaw": (row.get("face_details") or [{}])[0].get("yaw"),
            "gaze_ratio": (row.get("face_details") or [{}])[0].get("gaze_ratio"),
            "gaze": (row.get("face_details") or [{}])[0].get("gaze"),
        }
        for run in runs
        if run.name in _GAZE_SCENARIOS
        for row in run.results
    ]
    return {
        **{
            rule: {"precision": r["precision"], "recall": r["recall"]}
            for rule, r in figures["rules"].items()
        },
        **figures,
        "engine": settings.engine,
        "frame_position": settings.frame_position,
        "naive": naive.to_dict(),
        "false_alert_list": [
            {k: a.get(k) for k in ("student", "type", "first_sequence", "sequence")}
            for a in scheduled.false_alert_list
        ],
        "gaze": gaze,
        "impostor_flagged_on_chunk": flag_delays(runs),
        "naive_impostor_flagged_on_chunk": flag_delays(passes["naive"][1]),
        "sessions": {
            run.name: [
                {
                    key: row.get(key)
                    for key in ("sequence", "analysed", "faces", "identity", "calls", "difference")
                }
                for row in run.results
            ]
            for run in runs
        },
    }


def _fmt(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if interval is None else f"{value:.2f} {_ci(interval)}"


def _ci(interval: list[float] | None) -> str:
    return "-" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _tables(report: dict[str, Any]) -> list[str]:
    naive = report["naive"]
    lines = [
        "",
        f"engine: {report['engine']}, frame: {report['frame_position']}",
        "",
        "| rule | incidents | alerts | recall [95% Wilson] | precision [95% Wilson] "
        "| recall (naive plan) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rule, r in report["rules"].items():
        if not r["available"]:
            lines.append(f"| {rule} | {r['incidents']} | - | unavailable | unavailable | - |")
            continue
        lines.append(
            f"| {rule} | {r['incidents']} | {r['alerts']} | "
            f"{_fmt(r['recall'], r['recall_ci95'])} | "
            f"{_fmt(r['precision'], r['precision_ci95'])} | "
            f"{_fmt(naive['rules'][rule]['recall'])} |"
        )
    lines += [
        "",
        f"false alerts on honest segments: {report['false_alerts']} in "
        f"{report['honest_student_hours'] * 60:.1f} student-minutes = "
        f"{report['false_alerts_per_student_hour']:.2f} per student-hour, "
        f"95% {_ci(report['false_alerts_per_student_hour_ci95'])} "
        f"(exact Poisson over honest hours; naive plan: "
        f"{naive['false_alerts_per_student_hour']:.2f})",
        "",
        "| Rekognition API | calls per student-hour (scheduled) | naive plan |",
        "| --- | ---: | ---: |",
    ]
    naive_each = report["naive_calls_per_student_hour"] / 3
    for api, per_hour in report["calls_per_student_hour"].items():
        lines.append(f"| {api} | {per_hour:.0f} | {naive_each:.0f} |")
    lines += [
        f"| all | {sum(report['calls_per_student_hour'].values()):.0f} | "
        f"{report['naive_calls_per_student_hour']:.0f} |",
        "",
        f"calls vs naive plan: {report['calls_vs_naive']:.1%} "
        f"({sum(report['calls'].values())} of {report['naive_calls']} "
        f"over {report['chunks']} chunks)",
    ]
    if report["impostor_flagged_on_chunk"]:
        naive_delays = {
            (d["session"], d["start"]): d["chunks"]
            for d in report["naive_impostor_flagged_on_chunk"]
        }
        lines += [
            "",
            "| impostor session | takes the seat at (s) | flagged on their chunk | naive plan |",
        ]
        lines.append("| --- | ---: | ---: | ---: |")
        for d in report["impostor_flagged_on_chunk"]:
            naive_chunks = naive_delays.get((d["session"], d["start"]))
            lines.append(
                f"| {d['session']} | {d['start']:g} | {d['chunks'] or 'never'} | "
                f"{naive_chunks or 'never'} |"
            )
    if report["gaze"]:
        lines += ["", "| scenario | chunk | frame at (s) | head yaw | pupil ratio | gaze |"]
        lines.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for g in report["gaze"]:
            lines.append(
                f"| {g['scenario']} | {g['sequence']} | {g['time']} | {g['yaw']} | "
                f"{g['gaze_ratio']} | {g['gaze']} ({g['analysed']}) |"
            )
    if report["false_alert_list"]:
        lines += ["", "false alerts:"]
        lines += [f"  {a}" for a in report["false_alert_list"]]
    return lines
