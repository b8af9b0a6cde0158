"""What a warm Lambda container keeps between invocations: one event loop, the services on it.

Lambda's Python runtime calls a synchronous handler once per event and keeps
the process (the container) for the next one. Building AWS clients, the
user pool's key client (and so re-fetching its keys) or a router's attendee
cache on every invocation throws that away. The handlers instead run each
invocation with ``run`` and ask ``kept`` for their services, which are built
lazily on the first invocation and kept while the container lives.

The choice: one event loop per container, made on first use and driven with
``run_until_complete`` per invocation, rather than ``asyncio.run`` per
invocation. aiobotocore clients (their aiohttp sessions) belong to the loop
that opened them, and ``asyncio.run`` makes and closes a new loop each time,
so keeping the clients requires keeping the loop. ``kept`` refuses to run on
any other loop. Nothing here is made at import time, and nothing outside the
handlers uses it: the local server (``dashboard.server``) and ``proctor
serve`` open their services once on their own loop, as before.

Services are kept per name and rebuilt when the ``Settings`` they were built
from change (the handlers read ``Settings()`` per invocation, which is cheap):
the old ones are closed first. ``close`` closes everything and the loop; it is
registered with ``atexit`` (Lambda may freeze and end a container without
running it, which is harmless: the process is gone) and used by tests to make
a container cold. Connections kept through a freeze may be gone on thaw;
botocore's standard retry mode retries a call on a dropped connection.

Lambda sends one event at a time to a container; a lock keeps it so when a
handler is called from several threads (tests, operators).
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar, cast

from proctoring.settings import Settings

__all__ = ["Container", "close", "kept", "run"]

T = TypeVar("T")
R = TypeVar("R")

Build = Callable[[Settings], AbstractAsyncContextManager[T]]


class Container:
    """One event loop and the services opened on it; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kept: dict[str, tuple[Settings, AsyncExitStack, Any]] = {}

    def run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        """Run one invocation to completion on the container's loop (made on first use)."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coroutine)

    async def kept(self, name: str, settings: Settings, build: Build[T]) -> T:
        """What ``build(settings)`` opened, kept under ``name`` until the settings change."""
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("kept services live on the container's loop: call through run()")
        entry = self._kept.get(name)
        if entry is not None:
            built_from, stack, value = entry
            if built_from == settings:
                return cast(T, value)
            del self._kept[name]
            await stack.aclose()
        async with AsyncExitStack() as stack:
            value = await stack.enter_async_context(build(settings))
            self._kept[name] = (settings, stack.pop_all(), value)
        return value

    def close(self) -> None:
        """Close every kept service, then the loop; the next ``run`` starts cold."""
        with self._lock:
            loop, self._loop = self._loop, None
            kept, self._kept = self._kept, {}
            if loop is None or loop.is_closed():
                return
            try:
                for _, stack, _ in reversed(kept.values()):
                    loop.run_until_complete(stack.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()


_CONTAINER = Container()
atexit.register(_CONTAINER.close)


def run(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run one invocation on this process's container loop."""
    return _CONTAINER.run(coroutine)


async def kept(name: str, settings: Settings, build: Build[T]) -> T:
    """This container's services called ``name``, built from ``settings`` on first use."""
    return await _CONTAINER.kept(name, settings, build)


def close() -> None:
    """Close this container's services and loop (at exit; tests, for a cold container)."""
    _CONTAINER.close()
