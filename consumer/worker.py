"""A consumer worker: one of any number of identical processes sharing a stream.

The worker discovers shards (and new ones after a split or merge), keeps a
lease for every shard in the lease table, renews the leases it holds about
every ``lease_duration / 3``, balances with the other workers every
``take_interval`` (``consumer.leases.plan_takes``) and runs one
``consumer.shards.ShardConsumer`` per held lease. A lease that is lost stops
its shard; a shard that ends lets its children be taken.

On stop (SIGTERM from ECS, Ctrl-C) it stops reading, lets the batches in
flight finish and checkpoint while it keeps renewing, releases its leases so
other workers take them at once, and returns within ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.fan_out import FanOut
from consumer.leases import LeaseCoordinator, LeaseTable
from consumer.poison import BatchRunner
from consumer.processor import ChunkProcessor
from consumer.shards import ShardConsumer
from proctoring.dynamo import StorageError
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.waiting import wait_any

__all__ = ["Worker", "default_worker_id", "lease_coordinator"]

_log = structlog.get_logger(__name__)


def default_worker_id() -> str:
    """Unique per process: host, pid and a random suffix (a restarted task is a new worker)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def lease_coordinator(
    settings: Settings,
    dynamodb: Any,
    *,
    worker_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LeaseCoordinator:
    """A worker's leases in the settings' lease table, as ``worker_id`` (default: unique)."""
    return LeaseCoordinator(
        LeaseTable(dynamodb, settings.names.leases_table, timeout=settings.call_timeout),
        worker_id or settings.worker_id or default_worker_id(),
        lease_duration=settings.lease_duration,
        clock=clock,
    )


class Worker:
    """Leases, balancing and one shard consumer per held lease; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        kinesis: Any,
        dynamodb: Any,
        processor: ChunkProcessor,
        metrics: Metrics,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        leases: LeaseCoordinator | None = None,
        fan_out: FanOut | None = None,
    ) -> None:
        """``leases`` is made here unless given (``consumer.wiring`` makes it first, so the
        engine's Rekognition budget can read the live worker count from it)."""
        self._settings = settings
        self._kinesis = kinesis
        self._runner = BatchRunner(processor, settings=settings, metrics=metrics)
        self._fan_out = fan_out
        self._metrics = metrics
        self._clock = clock
        self.leases = leases or lease_coordinator(
            settings, dynamodb, worker_id=worker_id, clock=clock
        )
        self.worker_id = self.leases.worker_id
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._sync_now = asyncio.Event()  # set when a shard ends: look for its children now
        self._log = _log.bind(worker=self.worker_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully.

        Renewal, balancing and shard discovery run as separate loops, as in KCL: a
        slow ListShards or Scan must never delay the renewal that keeps leases alive.
        """
        settings = self._settings
        renew_every = settings.lease_duration / 3
        if self._fan_out is not None:  # enhanced fan-out: the consumer ACTIVE before any shard
            await self._fan_out.register()
        self._log.info("worker started", stream=settings.names.stream)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._every(renew_every, stop, self.leases.renew))
            group.create_task(self._every(settings.take_interval, stop, self._balance(stop)))
            group.create_task(
                self._every(
                    settings.shard_sync_interval, stop, self._sync_shards, wake=self._sync_now
                )
            )
            group.create_task(self._every(10.0, stop, self._flush))
        await self._shutdown(renew_every)

    async def _every(
        self,
        seconds: float,
        stop: asyncio.Event,
        action: Callable[[], Awaitable[Any]],
        *,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Run ``action`` now and every ``seconds`` (or when ``wake`` is set) until stop.

        The first run is not guarded: a worker that cannot reach AWS at all (no
        credentials, wrong endpoint) fails at start with that error. Later failures
        are logged and retried on the next round.
        """
        first = True
        while not stop.is_set():
            try:
                await action()
            except (StorageError, ClientError, BotoCoreError, TimeoutError) as exc:
                if first:
                    raise
                self._log.warning(
                    "lease-table or stream call failed; retrying",
                    action=getattr(action, "__name__", "balance"),
                    error=repr(exc),
                )
            first = False
            events = [stop] if wake is None else [stop, wake]
            await wait_any(*events, within=seconds)
            if wake is not None:
                wake.clear()

    def _balance(self, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
        async def balance() -> None:
            for key in await self.leases.balance():
                self._start(key, stop)

        return balance

    async def _flush(self) -> None:
        self._metrics.add(MetricName.LeasesHeld, len(self.leases.held()))
        self._metrics.flush()

    async def _shutdown(self, renew_every: float) -> None:
        deadline = self._clock() + self._settings.shutdown_timeout
        pending = {t for t in self._consumers.values() if not t.done()}
        self._log.info("stopping", shards_in_flight=len(pending))
        while pending and self._clock() < deadline:
            await self.leases.renew()  # batches in flight still need their leases
            _, pending = await asyncio.wait(
                pending, timeout=min(renew_every, max(0.0, deadline - self._clock()))
            )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.leases.release_all()
        self._metrics.flush()
        self._log.info("worker stopped", unfinished=len(pending))

    async def _sync_shards(self) -> None:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self._settings.names.stream}
        while True:
            async with asyncio.timeout(self._settings.call_timeout):
                response = await self._kinesis.list_shards(**kwargs)
            shards.extend(response["Shards"])
            token = response.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
        created = await self.leases.create_leases(shards)
        if created:
            self._log.info("new shards", leases_created=created, shards=len(shards))
        for key in [k for k, t in self._consumers.items() if t.done()]:
            del self._consumers[key]

    def _start(self, key: str, stop: asyncio.Event) -> None:
        consumer = ShardConsumer(
            key,
            settings=self._settings,
            kinesis=self._kinesis,
            runner=self._runner,
            leases=self.leases,
            metrics=self._metrics,
            clock=self._clock,
            fan_out=self._fan_out,
        )
        task = asyncio.create_task(consumer.run(stop), name=f"shard-{key}")
        task.add_done_callback(self._consumer_done)
        self._consumers[key] = task

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        self._sync_now.set()  # a shard that ended may have children to discover
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: drop the lease so this or another worker retries the shard
            self._log.error("shard consumer crashed", task=task.get_name(), error=repr(exc))
            key = task.get_name().removeprefix("shard-")
            self.leases.forget(key)
