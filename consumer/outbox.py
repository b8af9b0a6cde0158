"""The alert outbox: every alert written is published, once.

The processor creates an alert row (conditional: once per incident), then
publishes it to the FIFO alerts topic, then marks it published, which takes
it out of the table's sparse ``outbox`` index. A worker that dies in
between leaves the row in the outbox. Usually the next owner of the shard
processes the batch again and publishes it within seconds; the sweeper
covers every other way an alert can stay unpublished (the batch was parked,
the KCL daemon moved on, SNS was down for longer than the batch retried):
every ``outbox_sweep_interval`` it publishes the alerts that have been in the
outbox for more than ``outbox_grace`` seconds.

Publishing twice is harmless: the topic deduplicates on the alert id for 5
minutes, and the alert forwarder deduplicates on it for good.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.storage import Tables
from proctoring.waiting import wait_any

__all__ = ["AlertPublisher", "OutboxSweeper", "run_sweeper"]

_log = structlog.get_logger(__name__)
_INTERNAL = frozenset({"published", "outbox", "message_id"})  # bookkeeping, not the alert


class AlertPublisher:
    """Creates an alert row once, publishes it to the alerts topic and marks it published."""

    def __init__(self, sns: Any, tables: Tables, topic_arn: str, *, timeout: float = 10.0) -> None:
        self._sns = sns
        self._tables = tables
        self._topic_arn = topic_arn
        self._timeout = timeout

    async def deliver(self, alert: dict[str, Any]) -> bool:
        """Create the alert once and publish it; False when a replay finds it published.

        The row is created only if absent (the alert id is deterministic); a row left in the
        outbox by a worker that died before publishing is published now.
        """
        if not await self._tables.create_alert(alert):
            existing = await self._tables.get_alert(alert["exam_id"], alert["alert_id"])
            if existing is None or existing.get("published"):
                return False
            alert = existing
        await self.publish(alert)
        return True

    async def publish(self, row: dict[str, Any]) -> None:
        alert = {k: v for k, v in row.items() if k not in _INTERNAL}
        async with asyncio.timeout(self._timeout):
            response = await self._sns.publish(
                TopicArn=self._topic_arn,
                Message=json.dumps(alert, default=str),
                # FIFO topic: a second publish of the same alert is dropped (5-minute
                # deduplication window); one exam's alerts stay in order.
                MessageDeduplicationId=alert["alert_id"],
                MessageGroupId=alert["exam_id"],
                MessageAttributes={
                    "type": {"DataType": "String", "StringValue": alert["type"]},
                    "exam_id": {"DataType": "String", "StringValue": alert["exam_id"]},
                    "severity": {"DataType": "String", "StringValue": alert["severity"]},
                },
            )
        await self._tables.mark_alert_published(
            alert["exam_id"], alert["alert_id"], response["MessageId"]
        )


class OutboxSweeper:
    """Publishes the alerts left in the outbox longer than ``grace`` seconds."""

    def __init__(
        self,
        tables: Tables,
        publisher: AlertPublisher,
        metrics: Metrics,
        *,
        grace: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._tables = tables
        self._publisher = publisher
        self._metrics = metrics
        self._grace = grace
        self._clock = clock or (lambda: datetime.now(UTC).timestamp())

    async def sweep(self) -> int:
        """One pass; returns how many alerts it published."""
        cutoff = datetime.fromtimestamp(self._clock(), tz=UTC) - timedelta(seconds=self._grace)
        published = 0
        for row in await self._tables.unpublished_alerts(cutoff.isoformat()):
            await self._publisher.publish(row)
            published += 1
            self._metrics.add(MetricName.AlertsSwept)
            _log.warning(
                "unpublished alert published by the outbox sweeper",
                alert=row["alert_id"],
                exam=row["exam_id"],
                created_at=row["created_at"],
            )
        return published


async def run_sweeper(sweeper: OutboxSweeper, stop: asyncio.Event, *, every: float) -> None:
    """Sweep every ``every`` seconds until ``stop``; a failed pass is retried on the next."""
    while not stop.is_set():
        try:
            await sweeper.sweep()
        except Exception as exc:  # an outage must not stop the loop; the next pass retries
            _log.warning("outbox sweep failed; retrying on the next pass", error=repr(exc))
        await wait_any(stop, within=every)
