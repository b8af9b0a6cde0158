"""The ``proctor`` command: the local stack, registration, replay, the consumer and the demo.

Every command resolves ``Settings`` once (options > ``PROCTOR_*`` environment >
defaults) and passes it down. Commands that talk to an existing stack
(``register``, ``replay``, ``consume``) need ``PROCTOR_ENDPOINT_URL`` locally,
as printed by ``proctor up``, or real AWS credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from proctoring.errors import ProctoringError
from proctoring.logs import configure_logging
from proctoring.settings import Settings

__all__ = ["main"]


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            raise
        raise click.ClickException(message) from exc


def _user_error(exc: BaseException) -> str | None:
    """A one-line message for an error the user can fix, or None for a bug (traceback)."""
    if isinstance(exc, BaseExceptionGroup):  # failed tasks of the services' TaskGroups
        messages = [_user_error(e) for e in exc.exceptions]
        if any(m is None for m in messages):
            return None
        return "; ".join(dict.fromkeys(m for m in messages if m))
    if isinstance(exc, ProctoringError):
        return str(exc)
    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials found. For the local stack, set PROCTOR_ENDPOINT_URL (and"
            " PROCTOR_PREFIX) as printed by `proctor up`; for AWS, configure credentials."
        )
    if isinstance(exc, EndpointConnectionError):
        return (
            f"could not connect to {exc.kwargs.get('endpoint_url')}. Is `proctor up` running,"
            " and is PROCTOR_ENDPOINT_URL the URL it printed?"
        )
    return None


async def _until_signalled(
    settings: Settings,
    *,
    consumer: bool,
    router: bool,
    ready: Callable[[], None] | None = None,
    metrics_sink: Callable[[str], None] = print,
) -> None:
    """Run the services until SIGINT or SIGTERM; ``ready`` is called once both are handled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from cli.services import run_services  # after the handlers: it takes a second

    if ready is not None:
        ready()
    await run_services(settings, stop, consumer=consumer, router=router, metrics_sink=metrics_sink)


@click.group()
@click.version_option(package_name="hybrid-proctoring")
def main() -> None:
    """Hybrid remote proctoring: chunks -> Kinesis -> face analysis -> results and alerts."""


@main.command()
@click.option("--port", type=int, help="emulator port (default: a free one)")
@click.option("--prefix", help="resource name prefix (default: proctor)")
@click.option("--shards", type=int, default=2, show_default=True)
@click.option(
    "--router/--no-router",
    default=True,
    show_default=True,
    help="run the chunk router (off for `proctor replay --mode events`)",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="append the EMF metric lines here (for `proctor metrics`) instead of stdout",
)
def up(
    port: int | None, prefix: str | None, shards: int, router: bool, metrics_file: Path | None
) -> None:
    """Start the local stack: emulator, resources, chunk router and consumer, until Ctrl-C."""
    from infrastructure.emulator import Emulator
    from infrastructure.local import provision

    settings = _settings(port=port, prefix=prefix)
    configure_logging(settings)
    with Emulator(settings.host, settings.port) as emulator:
        settings = settings.model_copy(update={"endpoint_url": emulator.endpoint_url})
        outputs = provision(settings, shard_count=shards)
        settings = settings.model_copy(update={"alerts_topic_arn": outputs["AlertsTopicArn"]})

        def announce() -> None:  # once Ctrl-C stops the stack cleanly
            click.echo("Local stack is up. In another terminal:", err=True)
            click.echo(f"export PROCTOR_ENDPOINT_URL={emulator.endpoint_url}")
            click.echo(f"export PROCTOR_PREFIX={settings.prefix}")
            click.echo(f"export PROCTOR_ALERTS_TOPIC_ARN={settings.alerts_topic_arn}")

        with contextlib.ExitStack() as files:
            sink: Callable[[str], None] = print
            if metrics_file is not None:
                stream = files.enter_context(metrics_file.open("a", buffering=1))
                sink = lambda line: print(line, file=stream)  # noqa: E731
            _run(
                _until_signalled(
                    settings, consumer=True, router=router, ready=announce, metrics_sink=sink
                )
            )
    click.echo("local stack stopped", err=True)


@main.command()
@click.option("--port", type=int, help="emulator port (default: a free one)")
@click.option("--api-port", type=int, help="API server port (default: a free one)")
@click.option("--prefix", help="resource name prefix (default: proctor)")
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="EMAIL:GROUP",
    help="create this user (group proctor, student or admin) and print a token (repeatable)",
)
def serve(
    port: int | None, api_port: int | None, prefix: str | None, users: tuple[str, ...]
) -> None:
    """The local exam service: stack, users, API server, forwarder, consumer, until Ctrl-C."""
    from cli.serving import serve_locally

    settings = _settings(port=port, api_port=api_port, prefix=prefix, exam_gate=True)
    configure_logging(settings)
    _run(serve_locally(settings, users=list(users), out=click.echo))
    click.echo("exam service stopped", err=True)


@main.command()
@click.option(
    "--kcl", is_flag=True, help="serve the KCL MultiLangDaemon protocol on stdin/stdout instead"
)
def consume(kcl: bool) -> None:
    """Run the consumer worker (the ECS task) until SIGTERM."""
    settings = _settings()
    configure_logging(settings)
    if kcl:
        from consumer.kcl import run

        run(settings)
        return
    _run(_until_signalled(settings, consumer=True, router=False))


@main.group()
def parked() -> None:
    """Records the consumer set aside after they kept failing (the dead letters)."""


@parked.command("list")
def parked_list() -> None:
    """Show every parked record: where it was, why it failed, whether it was replayed."""
    from proctoring.aws import async_clients
    from proctoring.storage import Tables

    settings = _settings()

    async def rows() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            return await Tables(clients.dynamodb, settings.names).parked()

    found = _run(rows())
    if not found:
        click.echo("no parked records")
    for row in found:
        state = f"replayed {row['replayed_at']}" if "replayed_at" in row else "parked"
        click.echo(
            f"{row['error_id']}  exam={row['exam_id']}  chunk={row.get('chunk_key', '-')}  "
            f"attempts={row['attempts']}  {state}\n    {row['message']}"
        )


@parked.command("replay")
@click.argument("error_ids", nargs=-1)
@click.option("--again", is_flag=True, help="also records replayed before")
def parked_replay(error_ids: tuple[str, ...], again: bool) -> None:
    """Put parked records back on the stream (all not yet replayed, or the ERROR_IDS given)."""
    from consumer.parked import replay_parked
    from proctoring.aws import async_clients
    from proctoring.storage import Tables

    settings = _settings()
    configure_logging(settings)

    async def replay() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            return await replay_parked(
                Tables(clients.dynamodb, settings.names),
                clients.kinesis,
                settings.names.stream,
                error_ids=error_ids,
                include_replayed=again,
            )

    try:
        replayed = _run(replay())
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"replayed {len(replayed)} parked record(s)")


@main.command()
@click.option("--exam", "exam_id", required=True)
@click.option("--student", "student_id", required=True)
@click.option(
    "--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--frame",
    "frames",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a frame from the student's own camera at exam start (repeat, up to 8); kept "
    "beside the photo, identity = the closest",
)
def register(exam_id: str, student_id: str, photo: Path, frames: tuple[Path, ...]) -> None:
    """Register a student's face for an exam (refuses a photo without exactly one face)."""
    from lambdas.register import register_photo

    settings = _settings()
    configure_logging(settings)
    face = _run(
        register_photo(
            settings, exam_id, student_id, photo.read_bytes(), [f.read_bytes() for f in frames]
        )
    )
    left, top, width, height = face.box
    click.echo(
        f"registered {student_id} for {exam_id}: face {width}x{height} px at {left},{top}, "
        f"{face.frames_enrolled} of {len(frames)} camera frames enrolled"
    )


@main.command("replay")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--exam", "exam_id", required=True)
@click.option("--student", "student_id", help="default: the scenario's student")
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="1 = real time; 0 = as fast as possible",
)
@click.option(
    "--register/--no-register",
    "do_register",
    default=True,
    show_default=True,
    help="register the scenario's photo first (one student only)",
)
@click.option(
    "--students",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="simulated students replaying SOURCE at once; more than 1 makes a load test",
)
@click.option(
    "--mode",
    type=click.Choice(["full", "events"]),
    default="full",
    show_default=True,
    help="load test: upload through S3 (full), or put events for pre-uploaded chunks "
    "(events: the consumer alone; run the stack without the chunk router)",
)
@click.option("--duration", type=float, help="load test: seconds per student (SOURCE cycled)")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="load test: write the JSON report here (a load test even with one student)",
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), help="load test: PNG plot here"
)
@click.option(
    "--within",
    type=float,
    default=120.0,
    show_default=True,
    help="load test: seconds to wait for the last results",
)
@click.option(
    "--poll-rate",
    type=float,
    default=20.0,
    show_default=True,
    help="load test: result queries per second",
)
def replay_command(
    source: Path,
    exam_id: str,
    student_id: str | None,
    speed: float,
    do_register: bool,
    students: int,
    mode: str,
    duration: float | None,
    report: Path | None,
    plot: Path | None,
    within: float,
    poll_rate: float,
) -> None:
    """Upload a recording or a scenario file as one student's 5 s chunks, or as many students'.

    With --students N (or --report) it is a load test: it waits for the results and
    prints throughput, latency percentiles, alerts, throttles and errors.
    """
    settings = _settings()
    configure_logging(settings)
    if students > 1 or report is not None or plot is not None:
        _load(
            settings,
            source,
            exam_id,
            students,
            speed,
            mode,
            duration,
            report,
            plot,
            within,
            poll_rate,
        )
        return
    from producer.cli import replay_source

    uploaded = _run(
        replay_source(
            settings,
            source,
            exam_id=exam_id,
            student_id=student_id,
            speed=speed or None,
            do_register=do_register,
        )
    )
    click.echo(f"uploaded {len(uploaded)} chunks")


def _load(
    settings: Settings,
    source: Path,
    exam_id: str,
    students: int,
    speed: float,
    mode: str,
    duration: float | None,
    report_path: Path | None,
    plot: Path | None,
    within: float,
    poll_rate: float,
) -> None:
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    from producer.cli import load_source
    from producer.load import Progress, plot_report

    with Bars(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bars:
        created = bars.add_task("chunks created", total=None, note="")
        written = bars.add_task("results written", total=None, note="")

        def show(progress: Progress) -> None:
            bars.update(created, total=progress.planned, completed=progress.created)
            bars.update(
                written,
                total=progress.planned,
                completed=progress.results,
                note=f"alerts {progress.alerts}, errors {progress.errors}",
            )

        outcome = _run(
            load_source(
                settings,
                source,
                students=students,
                exam_id=exam_id,
                speed=speed or None,
                duration=duration,
                mode=mode,  # type: ignore[arg-type]
                within=within,
                poll_rate=poll_rate,
                on_progress=show,
            )
        )
    summary = outcome.to_dict(timeline=True)
    latency = summary["latency_ms"]
    click.echo(
        f"{summary['chunks']['results']} of {summary['chunks']['planned']} chunks have results "
        f"({summary['chunks']['missing']} missing); "
        f"{summary['throughput']['results_per_second']} results/s"
    )
    for name, values in latency.items():
        click.echo(
            f"{name}: p50 {values['p50']} ms, p90 {values['p90']} ms, p99 {values['p99']} ms "
            f"(n={values['count']})"
        )
    click.echo(
        f"lag flat: {summary['lag']['flat']} ({summary['lag']['reason']}); alerts "
        f"{summary['alerts']['delivered']}; throttles {summary['throttles'] or 0}; "
        f"errors {summary['errors'] or 0}"
    )
    if report_path is not None:
        report_path.write_text(json.dumps(summary, indent=2) + "\n")
        click.echo(f"report written to {report_path}")
    if plot is not None:
        plot_report(outcome, plot)
        click.echo(f"plot written to {plot}")


@main.command()
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="run these scenario files instead of the built-in four (repeatable)",
)
@click.option("--exit-when-done", is_flag=True, help="exit once every chunk has its result")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="write the JSON report here"
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="replay speed; 1 = real time, 0 = as fast as possible",
)
@click.option("--port", type=int)
@click.option("--api-port", type=int, help="the console's server port (default: a free one)")
@click.option(
    "--open/--no-open",
    "open_browser",
    default=None,
    help="open the proctor console in a browser (default: on a terminal, unless --exit-when-done)",
)
def demo(
    scenarios: tuple[Path, ...],
    exit_when_done: bool,
    report: Path | None,
    speed: float,
    port: int | None,
    api_port: int | None,
    open_browser: bool | None,
) -> None:
    """Start the local stack and replay exam sessions; students and alerts live, on the
    terminal and on the proctor console (its signed-in link is printed)."""
    from cli.demo import run_demo

    settings = _settings(port=port, api_port=api_port, prefix="demo")
    if open_browser is None:
        open_browser = not exit_when_done and sys.stderr.isatty()
    _run(
        run_demo(
            settings,
            scenarios=list(scenarios) or None,
            speed=speed or None,
            exit_when_done=exit_when_done,
            report=report,
            open_browser=open_browser,
        )
    )


@main.command("metrics")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="print the aggregates as JSON")
def metrics_command(files: tuple[Path, ...], as_json: bool) -> None:
    """Aggregate EMF metric lines (proctor up --metrics-file, the demo's .metrics.jsonl).

    Counts are summed; timings get p50/p90/p99/max, per service and dimensions.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from proctoring.metrics_view import aggregate

    lines = [line for path in files for line in path.read_text().splitlines()]
    rows = [series.summary() for series in aggregate(lines)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("service", "metric", "dimensions", "unit", "samples", "sum", "p50", "p99", "max")
    for row in rows:
        dims = dict(row["dimensions"])  # type: ignore[call-overload]
        service = dims.pop("Service", "")
        table.add_row(
            service,
            str(row["metric"]),
            ", ".join(f"{k}={v}" for k, v in dims.items()),
            str(row["unit"]),
            str(row["samples"]),
            f"{row['sum']:g}",
            *(str(row.get(k, "")) for k in ("p50", "p99", "max")),
        )
    Console(width=140).print(table)


@main.command("eval")
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a labelled suite file (e.g. producer/scenarios/eval/suite.yaml, the hand-written "
    "one); default: five sessions per person of producer/people.py, one half",
)
@click.option(
    "--half",
    type=click.Choice(["test", "development", "all"]),
    default="test",
    show_default=True,
    help="which people the default suite takes: thresholds are chosen on the development "
    "half, figures reported on the test half",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the figures to this JSON file",
)
@click.option(
    "--speech",
    is_flag=True,
    help="the speech suite instead (TALKING: the voice activity detector and the rule on "
    "chunks with a microphone, threshold chosen on its development half, figures on its "
    "test half; producer/speech_suite.py)",
)
@click.option("--port", type=int)
def eval_command(
    suite_path: Path | None,
    half: Literal["test", "development", "all"],
    json_path: Path | None,
    speech: bool,
    port: int | None,
) -> None:
    """Run the labelled scenarios through the pipeline: precision, recall, false alerts, cost."""
    from cli.eval_run import people_suite, run_eval
    from cli.evaluation import load_suite

    settings = _settings(port=port, prefix="eval", log_level="ERROR")
    configure_logging(settings)
    if speech:
        from cli.eval_speech import run_speech_eval
        from consumer.wiring import cpu_pool

        with cpu_pool(settings) as pool:
            _run(run_speech_eval(settings.data_dir, pool, json_path=json_path, out=click.echo))
        return
    suite = load_suite(suite_path) if suite_path else people_suite(half, settings.data_dir)
    _run(run_eval(settings, suite, json_path=json_path, out=click.echo))
