"""The long-running services of one process: the consumer worker, the chunk router, the forwarder.

``run_services`` runs them from settings until ``stop`` is set: the consumer
as ``consumer.wiring`` composes it (the process pool, the engine, the worker,
the outbox sweeper), the chunk router and the forwarder as Lambda's event
sources would invoke them. ``proctor up`` and ``proctor demo`` run both
against the local emulator; ``proctor consume`` runs only the consumer (the
ECS task); ``proctor serve`` adds the alert forwarder on the alerts queue (a
Lambda in AWS).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from consumer.wiring import run_worker
from lambdas.chunk_router import Attendees, route
from lambdas.event_source import poll_queue
from proctoring.aws import AsyncClients, async_clients
from proctoring.exams import ExamStore
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["router_invoker", "run_services"]


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
    async with async_clients(settings) as clients:
        tables = Tables(  # the consumer's reads coalesce (proctoring.dynamo)
            clients.dynamodb, settings.names, timeout=settings.call_timeout, batch_reads=consumer
        )
        async with asyncio.TaskGroup() as group:
            if consumer:
                group.create_task(
                    run_worker(
                        settings,
                        clients,
                        tables,
                        stop,
                        metrics=Metrics(settings.metrics_namespace, "consumer", metrics_sink),
                        executor=executor,
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
