"""What every ``proctor`` command shares: settings from its options, and running a coroutine
with the errors a user can fix said in one line.

Every command resolves ``Settings`` once (options > ``PROCTOR_*`` environment >
defaults) and passes it down.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import click
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from proctoring.errors import ProctoringError
from proctoring.settings import Settings

__all__ = ["run", "settings_from", "until_signalled", "user_error"]


def settings_from(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        raise click.ClickException(message) from exc


def user_error(exc: BaseException) -> str | None:
    """A one-line message for an error the user can fix, or None for a bug (traceback)."""
    if isinstance(exc, BaseExceptionGroup):  # failed tasks of the services' TaskGroups
        messages = [user_error(e) for e in exc.exceptions]
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


async def until_signalled(
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
