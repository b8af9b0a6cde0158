"""``proctor up``, ``proctor serve``, ``proctor consume`` and ``proctor route``: the local
stack, the local exam service, the consumer worker and the chunk router, each until a signal
stops it.

``consume`` needs ``PROCTOR_ENDPOINT_URL`` locally, as printed by ``proctor up``,
or real AWS credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from cli.base import run, settings_from, until_signalled
from cli.children import router_process, stack_environment
from proctoring.logs import configure_logging

__all__ = ["consume", "route", "serve", "up"]


@click.command()
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
@click.option(
    "--split",
    multiple=True,
    metavar="SERVICES",
    help="serve these services (dynamodb, kinesis; comma-separated) from an emulator process"
    " of their own, on the other core (repeatable: one process each)",
)
def up(
    port: int | None,
    prefix: str | None,
    shards: int,
    router: bool,
    metrics_file: Path | None,
    split: tuple[str, ...],
) -> None:
    """Start the local stack: emulator, resources, chunk router and consumer, until Ctrl-C."""
    import shlex

    from infrastructure.emulator import StackError, emulators, split_groups
    from infrastructure.local import provision

    settings = settings_from(port=port, prefix=prefix)
    configure_logging(settings)
    try:
        groups = split_groups(split)
    except StackError as exc:
        raise click.BadParameter(str(exc), param_hint="--split") from exc
    with emulators(settings.host, settings.port, groups) as (emulator, endpoints):
        settings = settings.model_copy(
            update={"endpoint_url": emulator.endpoint_url, "endpoint_urls": endpoints}
        )
        outputs = provision(settings, shard_count=shards)
        settings = settings.model_copy(update={"alerts_topic_arn": outputs["AlertsTopicArn"]})

        def announce() -> None:  # once Ctrl-C stops the stack cleanly
            click.echo("Local stack is up. In another terminal:", err=True)
            for name, value in stack_environment(settings).items():
                click.echo(f"export {name}={shlex.quote(value)}")

        with _metrics_sink(metrics_file) as sink, contextlib.ExitStack() as children:
            routing = None
            if router:  # a process of its own, as its Lambda is: not on the consumer's loop
                routing = children.enter_context(router_process(settings, metrics_file))
            run(
                until_signalled(
                    settings, consumer=True, router=False, ready=announce, metrics_sink=sink
                )
            )
    click.echo("local stack stopped", err=True)
    if routing is not None and routing.exited is not None:
        raise click.ClickException(f"the chunk router exited ({routing.exited}): stack stopped")


@click.command()
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="append the EMF metric lines here instead of stdout",
)
def route(metrics_file: Path | None) -> None:
    """Run the chunk router on the chunk-events queue (its Lambda, locally) until SIGTERM."""
    settings = settings_from()
    configure_logging(settings)
    with _metrics_sink(metrics_file) as sink:
        run(until_signalled(settings, consumer=False, router=True, metrics_sink=sink))


@contextlib.contextmanager
def _metrics_sink(path: Path | None) -> Iterator[Callable[[str], None]]:
    """Where EMF metric lines go: appended to ``path`` (one write a line: processes may
    share the file), or stdout."""
    if path is None:
        yield print
        return
    with path.open("a", buffering=1) as stream:
        yield lambda line: print(line, file=stream)


@click.command()
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

    settings = settings_from(port=port, api_port=api_port, prefix=prefix, exam_gate=True)
    configure_logging(settings)
    run(serve_locally(settings, users=list(users), out=click.echo))
    click.echo("exam service stopped", err=True)


@click.command()
@click.option(
    "--kcl", is_flag=True, help="serve the KCL MultiLangDaemon protocol on stdin/stdout instead"
)
def consume(kcl: bool) -> None:
    """Run the consumer worker (the ECS task) until SIGTERM."""
    settings = settings_from()
    configure_logging(settings)
    if kcl:
        from consumer.kcl import run as run_kcl

        run_kcl(settings)
        return
    run(until_signalled(settings, consumer=True, router=False))
