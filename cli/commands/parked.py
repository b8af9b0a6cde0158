"""``proctor parked``: the records the consumer set aside, listed and put back on the stream."""

from __future__ import annotations

from typing import Any

import click

from cli.base import run, settings_from
from proctoring.logs import configure_logging

__all__ = ["parked"]


@click.group()
def parked() -> None:
    """Records the consumer set aside after they kept failing (the dead letters)."""


@parked.command("list")
def parked_list() -> None:
    """Show every parked record: where it was, why it failed, whether it was replayed."""
    from proctoring.aws import async_clients
    from proctoring.storage import Tables

    settings = settings_from()

    async def rows() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            return await Tables(clients.dynamodb, settings.names).parked()

    found = run(rows())
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

    settings = settings_from()
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
        replayed = run(replay())
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"replayed {len(replayed)} parked record(s)")
