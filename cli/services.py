"""The long-running services of one process: the consumer worker, the chunk router, the forwarder.

``run_services`` wires them from settings - clients, tables, the process
pool, the engine, metrics - and runs them until ``stop`` is set. ``proctor
up`` and ``proctor demo`` run both against the local emulator; ``proctor
consume`` runs only the consumer (the ECS task); ``proctor serve`` adds the alert
forwarder on the alerts queue (a Lambda in AWS).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from consumer.outbox import AlertPublisher, OutboxSweeper, run_sweeper
from consumer.processor import ChunkProcessor
from consumer.worker import Worker
from lambdas.chunk_router import Attendees, route
from lambdas.event_source import poll_queue
from proctoring.analysis.base import Engine
from proctoring.analysis.engine import local_engine, open_engine
from proctoring.analysis.faces import warm_up
from proctoring.aws import AsyncClients, async_clients
from proctoring.errors import ProctoringError
from proctoring.exams import ExamStore
from proctoring.lifetime import bind_to_parent
from proctoring.metrics import Metrics
from proctoring.pool import RenewingPool
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["build_processor", "cpu_pool", "router_invoker", "run_services", "warm_pool"]


def cpu_pool(settings: Settings) -> RenewingPool:
    """The process pool for decoding and face analysis (spawned: no fork of a threaded process).

    Every process starts now, from the calling thread, and ends with this process
    however it ends (``proctoring.lifetime``): create the pool in the thread that owns
    it, for as long as it lives (the main thread, the event loop's thread). When one of
    its processes dies (OOM killer, a crash), the next job makes the pool again
    (``proctoring.pool``) instead of every later job failing.
    """

    def start() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=settings.cpu_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_pool_worker,
            initargs=(os.getpid(),),
        )
        for _ in range(settings.cpu_workers):  # each submit with no idle process spawns one
            pool.submit(int)
        return pool

    return RenewingPool(start)


def _start_pool_worker(parent_pid: int) -> None:
    """End with the parent and on SIGTERM, ignore Ctrl-C, then load the models.

    A terminal sends Ctrl-C to every process of the job, pool workers included; the
    owner decides when to stop (after the batch in hand) and shuts the pool down.
    SIGTERM and the parent's death end a worker at once: nothing in it needs saving.
    """
    bind_to_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up()


def router_invoker(
    settings: Settings, clients: AsyncClients, tables: Tables, metrics: Metrics
) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The chunk router as an SQS event source invokes it: event in, batch response out."""

    attendees = Attendees(
        ExamStore(clients.dynamodb, settings.names, timeout=settings.call_timeout)
    )

    async def invoke(event: dict[str, Any]) -> dict[str, Any]:
        outcome = await route(
            event,
            kinesis=clients.kinesis,
            tables=tables,
            stream=settings.names.stream,
            metrics=metrics,
            attendees=attendees,
            retention_days=settings.retention_days,
        )
        return outcome.response()

    return invoke


async def warm_pool(pool: Executor, workers: int) -> None:
    """Have the pool's processes load their models now, not on the first chunk.

    A worker that takes over shards after a failover must process at once.
    """
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, warm_up) for _ in range(workers)))


def build_processor(
    settings: Settings,
    clients: AsyncClients,
    tables: Tables,
    executor: Executor,
    metrics: Metrics,
    engine: Engine | None = None,
) -> ChunkProcessor:
    """The record-processing core with ``engine`` (default: the local engine of the settings)."""
    engine = engine or local_engine(settings, tables, executor)
    return ChunkProcessor(
        settings=settings,
        clients=clients,
        tables=tables,
        engine=engine,
        executor=executor,
        metrics=metrics,
        topic_arn=settings.alerts_topic_arn or "",
    )


def outbox_sweeper(
    settings: Settings, clients: AsyncClients, tables: Tables, metrics: Metrics
) -> OutboxSweeper:
    """The alert-outbox sweeper every consumer process runs beside its worker."""
    publisher = AlertPublisher(
        clients.sns, tables, settings.alerts_topic_arn or "", timeout=settings.call_timeout
    )
    return OutboxSweeper(tables, publisher, metrics, grace=settings.outbox_grace)


async def run_services(
    settings: Settings,
    stop: asyncio.Event,
    *,
    consumer: bool = True,
    router: bool = True,
    forwarder: bool = False,
    metrics_sink: Callable[[str], None] = print,
    executor: Executor | None = None,
) -> None:
    """Run the selected services until ``stop`` is set.

    ``executor`` is the process pool for CPU work; one is made (and shut down)
    when none is given.
    """
    if consumer and not settings.alerts_topic_arn:
        raise ProctoringError("PROCTOR_ALERTS_TOPIC_ARN is not set (the stack's AlertsTopicArn)")
    async with async_clients(settings) as clients:
        tables = Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout)
        with contextlib.ExitStack() as stack:
            async with contextlib.AsyncExitStack() as engines, asyncio.TaskGroup() as group:
                if consumer:
                    pool = executor or stack.enter_context(cpu_pool(settings))
                    await warm_pool(pool, settings.cpu_workers)
                    metrics = Metrics(settings.metrics_namespace, "consumer", metrics_sink)
                    workers: list[Worker] = []  # the Rekognition budget is shared by live workers
                    engine = await engines.enter_async_context(
                        open_engine(
                            settings,
                            tables,
                            pool,
                            live_workers=lambda: workers[0].leases.live_workers if workers else 1,
                        )
                    )
                    worker = Worker(
                        settings=settings,
                        kinesis=clients.kinesis,
                        dynamodb=clients.dynamodb,
                        processor=build_processor(settings, clients, tables, pool, metrics, engine),
                        metrics=metrics,
                    )
                    workers.append(worker)
                    group.create_task(worker.run(stop))
                    group.create_task(
                        run_sweeper(
                            outbox_sweeper(settings, clients, tables, metrics),
                            stop,
                            every=settings.outbox_sweep_interval,
                        )
                    )
                if router:
                    invoke = router_invoker(
                        settings,
                        clients,
                        tables,
                        Metrics(settings.metrics_namespace, "chunk-router", metrics_sink),
                    )
                    queue_url = (
                        await clients.sqs.get_queue_url(QueueName=settings.names.chunk_events_queue)
                    )["QueueUrl"]
                    group.create_task(
                        poll_queue(
                            sqs=clients.sqs,
                            queue_url=queue_url,
                            invoke=invoke,
                            stop=stop,
                            concurrency=settings.router_pollers,
                        )
                    )
                if forwarder:
                    group.create_task(_forward_alerts(settings, clients, stop))


async def _forward_alerts(settings: Settings, clients: AsyncClients, stop: asyncio.Event) -> None:
    """The alert forwarder on the alerts queue, as Lambda's event source would run it."""
    from lambdas.alert_forwarder import forward
    from proctoring.channels import Channel, LocalTransport
    from proctoring.exams import ExamStore
    from proctoring.ratelimit import RateLimiter

    exams = ExamStore(clients.dynamodb, settings.names, retention_days=settings.retention_days)
    channel = Channel(exams, LocalTransport(), RateLimiter(settings.channel_messages_per_second))
    queue_url = (await clients.sqs.get_queue_url(QueueName=settings.names.alerts_queue))["QueueUrl"]

    async def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return await forward(event, exams=exams, channel=channel)

    await poll_queue(sqs=clients.sqs, queue_url=queue_url, invoke=invoke, stop=stop)
