"""``proctor eval``: the labelled scenarios through the real pipeline, twice, and the figures.

Starts the local stack (emulator provisioned from the template), then runs
the suite twice through the chunk router and the consumer, each pass on its
own stack prefix: once with the **naive** schedule (every question on every
chunk, no repeats carried over) as the in-process baseline, once with the
**scheduled** plan of the settings. Both passes use the engine the settings
name. Each scenario is one student of the exam ``eval``, uploaded as fast as
possible; the pass ends when every student's session has evaluated its last
chunk. Scoring is :mod:`cli.evaluation`.

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
from typing import Any, Literal

from cli.eval_report import report_of, tables
from cli.eval_suite import Suite, SuiteEntry
from cli.evaluation import Score, SessionRun, failures, score
from cli.services import run_services
from consumer.wiring import cpu_pool
from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.analysis.engine import open_engine
from proctoring.analysis.faces import RegistrationError
from proctoring.aws import async_clients
from proctoring.enrolment import enrol
from proctoring.errors import ProctoringError
from proctoring.frames import extract_frame
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import Chunk, chunk_recording
from producer.people import Half, eval_sessions
from producer.rendering import render_chunks
from producer.replay import replay
from producer.scenario import load_scenario, scenario_from_mapping

__all__ = ["CURATED_SUITE", "NAIVE_SCHEDULE", "people_suite", "run_eval"]

CURATED_SUITE = Path(__file__).parents[1] / "producer" / "scenarios" / "eval" / "suite.yaml"
"""The hand-written suite: the phone recordings, stills, glances and the long exam."""
NAIVE_SCHEDULE: dict[str, Any] = {
    "faces_every": 1,
    "identity_every": 1,
    "objects_every": 1,
    "similar_below": 0.0,
    "max_repeats": 0,
}
"""Settings of the baseline pass: every API on every chunk, nothing carried over."""
EXAM = "eval"


class EvalFailed(ProctoringError):
    """A pass did not finish in time, or the schedule lost recall against the naive plan."""


def people_suite(half: Half | Literal["all"], data_dir: Path) -> Suite:
    """The default suite: five labelled sessions per person of ``half`` (``producer.people``)."""
    return Suite.model_validate({"scenarios": eval_sessions(half, data_dir)})


Rendered = tuple[list[Chunk], bytes | None, tuple[bytes, ...]]
"""A session's chunks, registration photo and enrolment frames."""


def _render(entry: SuiteEntry, folder: Path, data_dir: Path, seconds: float) -> Rendered:
    """Process-pool job: a session's chunks, registration photo and enrolment frames.

    Enrolment frames (``enrol_frames``) are what the student's camera shows at the
    start, as the student page takes them: the first and middle frames of the first
    chunk and the first of the second."""
    if entry.scenario is not None:
        scenario = scenario_from_mapping(entry.scenario, name=entry.label, data_dir=data_dir)
    else:
        assert entry.file is not None
        scenario = load_scenario(folder / entry.file, data_dir=data_dir)
    chunks = list(render_chunks(scenario, seconds=seconds))
    photo = None
    if entry.register_frame is not None:
        first = next(chunk_recording(data_dir / entry.register_frame, seconds=seconds))
        photo = extract_frame(first.data, position="first").jpeg
    elif scenario.register is not None:
        photo = scenario.register.read_bytes()
    frames: tuple[bytes, ...] = ()
    if entry.enrol_frames:
        second = chunks[1] if len(chunks) > 1 else chunks[0]
        views: list[tuple[Chunk, Literal["first", "middle"]]] = [
            (chunks[0], "first"),
            (chunks[0], "middle"),
            (second, "first"),
        ]
        frames = tuple(extract_frame(chunk.data, position=at).jpeg for chunk, at in views)
    return chunks, photo, frames


async def run_eval(
    settings: Settings,
    suite: Suite,
    *,
    json_path: Path | None = None,
    out: Callable[[str], None] = print,
    within: float | None = None,
) -> dict[str, Any]:
    """Run both passes, print the tables, write ``json_path``; return the report."""
    started = time.monotonic()
    with Emulator(settings.host, settings.port) as emulator, cpu_pool(settings) as pool:
        base = settings.model_copy(update={"endpoint_url": emulator.endpoint_url})
        loop = asyncio.get_running_loop()
        rendered = await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool,
                    _render,
                    entry,
                    suite.folder,
                    settings.data_dir,
                    settings.chunk_seconds,
                )
                for entry in suite.scenarios
            )
        )
        people = {entry.person for entry in suite.scenarios if entry.person}
        out(
            f"suite: {len(suite.scenarios)} sessions"
            + (f" of {len(people)} people" if people else "")
            + f", {sum(len(r[0]) for r in rendered)} chunks"
        )
        chunks = sum(len(r[0]) for r in rendered)
        within = within if within is not None else max(600.0, 1.5 * chunks)
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
    report = report_of(passes, settings)
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)
    report["failures"] = failures(
        passes["scheduled"][0], passes["naive"][0], passes["scheduled"][1]
    )
    for line in tables(report):
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
    rendered: list[Rendered],
    within: float,
) -> list[SessionRun]:
    stop = asyncio.Event()
    services = asyncio.create_task(
        run_services(settings, stop, executor=pool, metrics_sink=lambda line: None)
    )
    names = [entry.label for entry in suite.scenarios]
    try:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout)
            async with open_engine(settings, tables, pool) as engine:
                refused: dict[str, str] = {}
                for name, (_, photo, frames) in zip(names, rendered, strict=True):
                    if photo is None:
                        continue
                    bucket = settings.names.frames_bucket
                    try:
                        await enrol(engine, clients.s3, bucket, EXAM, name, photo, frames)
                    except RegistrationError as exc:
                        if not frames:
                            raise
                        # The student page sends them to the proctor, who checks them on
                        # camera and registers them from their camera (every eval student
                        # is who they say at the start); the refusal is reported.
                        refused[name] = exc.reason
                        await enrol(engine, clients.s3, bucket, EXAM, name, frames[0], frames)
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
                    for name, (chunks, _, _) in zip(names, rendered, strict=True)
                )
            )
            await _until_evaluated(tables, names, rendered, within, services)
            runs = []
            alerts = await tables.alerts(EXAM)
            for entry, name, (chunks, _, _) in zip(suite.scenarios, names, rendered, strict=True):
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
                        groups=entry.groups,
                        person=entry.person,
                        enrolment_refused=refused.get(name),
                    )
                )
            return runs
    finally:
        stop.set()
        await services


async def _until_evaluated(
    tables: Tables,
    names: list[str],
    rendered: list[Rendered],
    within: float,
    services: asyncio.Task[None],
) -> None:
    """Poll until each student's session has evaluated its last chunk."""
    deadline = time.monotonic() + within
    pending = {name: len(r[0]) - 1 for name, r in zip(names, rendered, strict=True)}
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
