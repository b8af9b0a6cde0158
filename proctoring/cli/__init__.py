"""The ``proctor`` command: the local stack, registration, replay, the consumer and the demo.

Every command resolves ``Settings`` once (options > ``PROCTOR_*`` environment >
defaults) and passes it down. Commands that talk to an existing stack
(``register``, ``replay``, ``consume``) need ``PROCTOR_ENDPOINT_URL`` locally,
as printed by ``proctor up``, or real AWS credentials.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
) -> None:
    """Run the services until SIGINT or SIGTERM; ``ready`` is called once both are handled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from proctoring.cli.services import run_services  # after the handlers: it takes a second

    if ready is not None:
        ready()
    await run_services(settings, stop, consumer=consumer, router=router)


@click.group()
@click.version_option(package_name="hybrid-proctoring")
def main() -> None:
    """Hybrid remote proctoring: chunks -> Kinesis -> face analysis -> results and alerts."""


@main.command()
@click.option("--port", type=int, help="emulator port (default: a free one)")
@click.option("--prefix", help="resource name prefix (default: proctor)")
@click.option("--shards", type=int, default=2, show_default=True)
def up(port: int | None, prefix: str | None, shards: int) -> None:
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

        _run(_until_signalled(settings, consumer=True, router=True, ready=announce))
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
    from proctoring.cli.serving import serve_locally

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
def register(exam_id: str, student_id: str, photo: Path) -> None:
    """Register a student's face for an exam (refuses a photo without exactly one face)."""
    from lambdas.register import register_photo

    settings = _settings()
    configure_logging(settings)
    face = _run(register_photo(settings, exam_id, student_id, photo.read_bytes()))
    left, top, width, height = face.box
    click.echo(f"registered {student_id} for {exam_id}: face {width}x{height} px at {left},{top}")


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
    help="register the scenario's photo first",
)
def replay_command(
    source: Path, exam_id: str, student_id: str | None, speed: float, do_register: bool
) -> None:
    """Upload a recording or a scenario file as one student's 5 s chunks."""
    from producer.cli import replay_source

    settings = _settings()
    configure_logging(settings)
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
    from proctoring.cli.demo import run_demo

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


@main.command("eval")
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the labelled suite (default: producer/scenarios/eval/suite.yaml)",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the figures to this JSON file",
)
@click.option("--port", type=int)
def eval_command(suite_path: Path | None, json_path: Path | None, port: int | None) -> None:
    """Run the labelled scenarios through the pipeline: precision, recall, false alerts, cost."""
    from proctoring.cli.eval_run import DEFAULT_SUITE, run_eval

    settings = _settings(port=port, prefix="eval", log_level="ERROR")
    configure_logging(settings)
    _run(run_eval(settings, suite_path or DEFAULT_SUITE, json_path=json_path, out=click.echo))
