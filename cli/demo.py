"""``proctor demo``: a whole exam on one laptop, from recordings to alerts.

Starts the local stack (emulator, provisioned from the CloudFormation
template), runs the chunk router and the consumer in this process,
registers one student per scenario, replays all sessions at once and shows
students and alerts live: on the terminal, and on the proctor console, whose
signed-in link it prints (and opens in a browser with ``open_browser``;
``cli.console``). The alert forwarder posts each alert to the
exam's channel, which the console follows. With ``exit_when_done`` it waits
until every uploaded chunk has its result row, writes the report and returns.
"""

from __future__ import annotations

import asyncio
import json
import signal
import tempfile
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.live import Live

from cli.console import identity_for_demo, serve_console
from cli.services import run_services
from consumer.wiring import cpu_pool
from dashboard.terminal import Board, StudentRow, render
from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.analysis.engine import open_engine
from proctoring.aws import AsyncClients, async_clients
from proctoring.errors import ProctoringError
from proctoring.logs import configure_logging
from proctoring.settings import Settings
from proctoring.storage import Tables
from proctoring.waiting import wait_any
from producer.chunking import Chunk
from producer.rendering import render_chunks
from producer.replay import Uploaded, replay
from producer.scenario import load_scenario

__all__ = ["BUILT_IN_SCENARIOS", "DemoFailed", "run_demo"]

_log = structlog.get_logger(__name__)
BUILT_IN_SCENARIOS = sorted((Path(__file__).parents[1] / "producer" / "scenarios").glob("*.yaml"))


class DemoFailed(ProctoringError):
    """The demo could not finish: a chunk never got its result in time."""


@dataclass(frozen=True)
class _Session:
    student_id: str
    scenario: str
    photo: Path
    chunks: list[Chunk]


def _render(path: Path, data_dir: Path, seconds: float) -> tuple[str, str, Path, list[Chunk]]:
    """Process-pool job: load and render one scenario into chunks."""
    scenario = load_scenario(path, data_dir=data_dir)
    if scenario.register is None:
        raise ProctoringError(f"{path}: a demo scenario must name the photo to register")
    chunks = list(render_chunks(scenario, seconds=seconds))
    return scenario.student or scenario.name, scenario.name, scenario.register, chunks


async def run_demo(
    settings: Settings,
    *,
    scenarios: list[Path] | None = None,
    speed: float | None = 1.0,
    exit_when_done: bool = False,
    report: Path | None = None,
    console: Console | None = None,
    exam_id: str = "demo-exam",
    done_timeout: float = 120.0,
    open_browser: bool = False,
) -> dict[str, Any]:
    """Run the demo; return the report (also written to ``report`` when given)."""
    console = console or Console(stderr=True)
    paths = scenarios or BUILT_IN_SCENARIOS
    started = time.monotonic()
    with Emulator(settings.host, settings.port) as emulator:
        settings = settings.model_copy(update={"endpoint_url": emulator.endpoint_url})
        outputs = provision(settings)
        settings = settings.model_copy(update={"alerts_topic_arn": outputs["AlertsTopicArn"]})
        settings, proctor_id, token = await identity_for_demo(settings)
        console.print(f"local stack on {emulator.endpoint_url} (prefix {settings.prefix})")

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        artifacts = report.parent if report else Path(tempfile.mkdtemp(prefix="proctor-demo-"))
        stem = report.stem if report else "demo"
        metrics_log = artifacts / f"{stem}.metrics.jsonl"
        log_file = artifacts / f"{stem}.log"
        board = Board(exam_id=exam_id)
        result: dict[str, Any] = {}
        with metrics_log.open("a") as metrics_file, log_file.open("a") as log_stream:
            # the live board owns the terminal; logs go to a file beside the report
            configure_logging(settings, stream=log_stream)

            def sink(line: str) -> None:
                metrics_file.write(line + "\n")

            async def drive() -> None:
                try:
                    result.update(
                        await _drive(
                            settings,
                            paths,
                            board,
                            speed,
                            exit_when_done,
                            stop,
                            console,
                            done_timeout,
                            (proctor_id, token),
                            open_browser,
                        )
                    )
                finally:
                    stop.set()

            async with asyncio.TaskGroup() as group:
                group.create_task(run_services(settings, stop, forwarder=True, metrics_sink=sink))
                group.create_task(drive())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    result["elapsed_seconds"] = round(time.monotonic() - started, 1)
    result["metrics_log"] = str(metrics_log)
    result["log"] = str(log_file)
    if report is not None:
        text = json.dumps(result, indent=2, default=str) + "\n"
        await asyncio.to_thread(report.write_text, text)
        console.print(f"report written to {report}")
    return result


async def _drive(
    settings: Settings,
    paths: list[Path],
    board: Board,
    speed: float | None,
    exit_when_done: bool,
    stop: asyncio.Event,
    console: Console,
    done_timeout: float,
    proctor: tuple[str, str],
    open_browser: bool,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    board.status = "rendering scenarios into 5 s chunks"
    with cpu_pool(settings) as pool:
        rendered = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _render, path, settings.data_dir, settings.chunk_seconds)
                for path in paths
            )
        )
        sessions = [_Session(*r) for r in rendered]
        if len({s.student_id for s in sessions}) != len(sessions):
            raise DemoFailed("two scenarios name the same student; give each its own 'student'")
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout)
            async with open_engine(settings, tables, pool) as engine:
                for session in sessions:
                    photo = await asyncio.to_thread(session.photo.read_bytes)
                    await engine.register(board.exam_id, session.student_id, photo)
            for session in sessions:
                board.students[session.student_id] = StudentRow(
                    session.student_id,
                    session.scenario,
                    session.photo.name,
                    total=len(session.chunks),
                )
            board.status = "replaying sessions" + (
                f" at {speed}x real time" if speed else " as fast as possible"
            )
            proctor_id, token = proctor
            async with serve_console(
                settings,
                exam_id=board.exam_id,
                title="Demo exam",
                proctor_id=proctor_id,
                token=token,
                students=[(s.student_id, f"{s.student_id} ({s.photo.name})") for s in sessions],
            ) as link:
                console.print(f"proctor console: {link.url}", soft_wrap=True, highlight=False)
                if open_browser:
                    await asyncio.to_thread(webbrowser.open, link.url)
                return await _show(
                    clients, tables, settings, board, sessions, speed, exit_when_done, stop,
                    console, done_timeout,
                )  # fmt: skip


async def _show(
    clients: AsyncClients,
    tables: Tables,
    settings: Settings,
    board: Board,
    sessions: list[_Session],
    speed: float | None,
    exit_when_done: bool,
    stop: asyncio.Event,
    console: Console,
    done_timeout: float,
) -> dict[str, Any]:
    """Replay the sessions and show the board until done (or Ctrl-C)."""
    with Live(render(board), console=console, refresh_per_second=4, transient=False) as live:
        refresh = lambda: live.update(render(board))  # noqa: E731
        async with asyncio.TaskGroup() as group:
            uploads = [
                group.create_task(_replay(clients, settings, board, s, speed, refresh))
                for s in sessions
            ]
            watcher = group.create_task(_watch(tables, board, stop, refresh))
            await asyncio.gather(*uploads)
            board.status = "all chunks uploaded; waiting for results"
            deadline = time.monotonic() + done_timeout
            while not stop.is_set():
                if all(r.results >= r.uploaded for r in board.students.values()):
                    if exit_when_done:
                        break
                    board.status = "all chunks processed; Ctrl-C to stop"
                elif exit_when_done and time.monotonic() > deadline:
                    missing = {
                        r.student_id: r.uploaded - r.results
                        for r in board.students.values()
                        if r.results < r.uploaded
                    }
                    raise DemoFailed(
                        f"chunks without a result after {done_timeout:.0f} s: {missing}"
                    )
                await wait_any(stop, within=0.25)
            await _refresh_from_tables(tables, board)
            board.status = "done: every uploaded chunk has its result\n"
            refresh()
            watcher.cancel()
    return _report(board)


async def _replay(
    clients: AsyncClients,
    settings: Settings,
    board: Board,
    session: _Session,
    speed: float | None,
    refresh: Callable[[], None],
) -> list[Uploaded]:
    row = board.students[session.student_id]

    def uploaded(item: Uploaded) -> None:
        row.uploaded += 1
        refresh()

    return await replay(
        session.chunks,
        s3=clients.s3,
        bucket=settings.names.chunks_bucket,
        exam_id=board.exam_id,
        student_id=session.student_id,
        speed=speed,
        on_upload=uploaded,
    )


async def _watch(
    tables: Tables, board: Board, stop: asyncio.Event, refresh: Callable[[], None]
) -> None:
    """Follow the results and the alerts in the tables, as a proctor's screen would (the
    alerts queue belongs to the forwarder, which posts them to the console's stream)."""
    while not stop.is_set():
        await _refresh_from_tables(tables, board)
        refresh()
        await wait_any(stop, within=0.5)


async def _refresh_from_tables(tables: Tables, board: Board) -> None:
    alerts = await tables.alerts(board.exam_id)
    known = {a["alert_id"] for row in board.students.values() for a in row.alerts}
    for alert in sorted(alerts, key=lambda a: str(a.get("created_at", ""))):
        if alert["alert_id"] not in known:
            board.feed.appendleft(alert)
    for row in board.students.values():
        results = await tables.results(f"{board.exam_id}#{row.student_id}")
        row.results = len(results)
        row.errors = sum(1 for r in results if r.get("status") == "error")
        if results:
            row.latest = max(results, key=lambda r: r["sequence"])
        row.alerts = sorted(
            (a for a in alerts if a["student_id"] == row.student_id),
            key=lambda a: (a["sequence"], a["type"]),
        )


def _report(board: Board) -> dict[str, Any]:
    return {
        "exam_id": board.exam_id,
        "students": {
            row.student_id: {
                "scenario": row.scenario,
                "registered_with": row.registered_with,
                "chunks_uploaded": row.uploaded,
                "results": row.results,
                "errors": row.errors,
                "alerts": [
                    {
                        "type": a["type"],
                        "sequence": a["sequence"],
                        "first_sequence": a["first_sequence"],
                        "severity": a["severity"],
                        "frame_key": a.get("frame_key"),
                    }
                    for a in row.alerts
                ],
            }
            for row in board.students.values()
        },
    }
