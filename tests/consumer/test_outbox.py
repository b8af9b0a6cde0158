"""The alert outbox: an alert written but never published is published by the sweeper, once.

The processor writes the alert, then SNS fails (the worker would die here,
and its batch is never processed again: parked, or the KCL daemon moved on).
The sweeper, run with an injected clock, publishes it after the grace period
and not before; the topic delivers it once even when the sweeper and a worker
both publish it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.outbox import AlertPublisher, OutboxSweeper
from consumer.processor import BatchFailed
from consumer.wiring import build_processor
from proctoring.aws import AsyncClients, async_clients
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from tests.consumer.test_processor import EXAM, _away_chunks, _delivered, _routed
from tests.faults import FaultInjector

pytestmark = pytest.mark.slow


def _sweeper(
    settings: Settings, clients: AsyncClients, tables: Tables, *, at: float
) -> OutboxSweeper:
    publisher = AlertPublisher(clients.sns, tables, settings.alerts_topic_arn or "")
    sink = Metrics("Test", "consumer", lambda line: None)
    return OutboxSweeper(tables, publisher, sink, grace=60.0, clock=lambda: at)


def test_an_alert_left_unpublished_is_published_once_by_the_sweeper_after_its_grace(
    settings: Settings, pool: Executor, tmp_path: Any
) -> None:
    chunks = _away_chunks(tmp_path)
    sink = Metrics("Test", "consumer", lambda line: None)

    async def run() -> dict[str, Any]:
        async with async_clients(settings) as clients, async_clients(settings) as failing:
            tables = Tables(clients.dynamodb, settings.names)
            records = await _routed(clients, tables, settings, chunks)
            sns_down = FaultInjector(lambda op, n: True, code="InternalError").attach(
                failing.sns, "Publish"
            )
            processor = build_processor(settings, failing, tables, pool, sink)
            with pytest.raises(BatchFailed):
                for shard, batch in records:
                    await processor.process(batch, shard_id=shard)
            (written,) = await tables.alerts(EXAM)
            created = datetime.fromisoformat(written["created_at"]).timestamp()

            early = await _sweeper(settings, clients, tables, at=created + 30).sweep()
            swept = await _sweeper(settings, clients, tables, at=created + 61).sweep()
            again = await _sweeper(settings, clients, tables, at=created + 120).sweep()
            # the shard's next owner processes the batch after all: nothing more is delivered
            healthy = build_processor(settings, clients, tables, pool, sink)
            for shard, batch in records:
                await healthy.process(batch, shard_id=shard)
            return {
                "attempts": sns_down.failed["Publish"],
                "written": written,
                "early": early,
                "swept": swept,
                "again": again,
                "alerts": await tables.alerts(EXAM),
                "delivered": await _delivered(clients, settings),
                "outbox": await tables.unpublished_alerts(datetime.now(UTC).isoformat()),
            }

    outcome = asyncio.run(run())
    assert outcome["attempts"] >= 1, "SNS really was down for the first worker"
    assert outcome["written"]["published"] is False
    assert (outcome["early"], outcome["swept"], outcome["again"]) == (0, 1, 0)
    (alert,) = outcome["alerts"]
    assert alert["published"] is True and "outbox" not in alert
    (message,) = outcome["delivered"]
    assert message["alert_id"] == alert["alert_id"]
    assert message["type"] == "NO_FACE"
    assert {"published", "outbox", "message_id"}.isdisjoint(message), "bookkeeping stays home"
    assert outcome["outbox"] == []


def test_the_sweeper_and_a_worker_publishing_the_same_alert_deliver_it_once(
    settings: Settings, pool: Executor, tmp_path: Any
) -> None:
    """A race: the sweeper publishes an alert while its worker, late, publishes it too."""
    chunks = _away_chunks(tmp_path)
    sink = Metrics("Test", "consumer", lambda line: None)

    async def run() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            records = await _routed(clients, tables, settings, chunks)
            processor = build_processor(settings, clients, tables, pool, sink)
            for shard, batch in records:
                await processor.process(batch, shard_id=shard)
            (alert,) = await tables.alerts(EXAM)
            publisher = AlertPublisher(clients.sns, tables, settings.alerts_topic_arn or "")
            await asyncio.gather(publisher.publish(alert), publisher.publish(alert))
            return await _delivered(clients, settings)

    delivered = asyncio.run(run())
    assert len(delivered) == 1
