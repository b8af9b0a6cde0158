"""What the consumer's stages write through: one bundle the processor makes once.

A chunk's results (``consumer.results``), the browser's events (``consumer.integrity``) and
a student's speech (``consumer.speech``) raise alerts and record errors the same way:

- :meth:`Outlet.alert` builds an alert's item (``rules.alert_item``) at the outlet's clock,
  with its expiry;
- :meth:`Outlet.raise_alert` creates and publishes it once (``deliver``, in the processor
  ``consumer.outbox.AlertPublisher.deliver``: False when a replay finds it published),
  counts ``AlertsRaised`` and logs ``alert raised``;
- ``record_error`` writes a row of the errors table a human can inspect
  (``consumer.error_rows.ErrorRows.record``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.rules import Finding, alert_item

__all__ = ["Deliver", "Outlet", "RecordError"]

_log = structlog.get_logger(__name__)

Deliver = Callable[[dict[str, Any]], Awaitable[bool]]
RecordError = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Outlet:
    metrics: Metrics
    deliver: Deliver
    record_error: RecordError
    now: Callable[[], datetime]
    expiry: Callable[[datetime], int]
    """The TTL (epoch seconds) of an item written at a time."""

    def alert(
        self, exam_id: str, student_id: str, source: str, finding: Finding, **fields: Any
    ) -> dict[str, Any]:
        """The alert's item, open, written now (see ``rules.alert_item``)."""
        now = self.now()
        return alert_item(
            exam_id, student_id, source, finding, now=now, expires_at=self.expiry(now), **fields
        )

    async def raise_alert(self, alert: dict[str, Any], **log: Any) -> bool:
        """Create and publish ``alert`` once; True when this call raised it."""
        if not await self.deliver(alert):
            return False  # raised and published before this replay
        self.metrics.add(MetricName.AlertsRaised, Rule=alert["type"])
        _log.warning("alert raised", alert=alert["alert_id"], type=alert["type"], **log)
        return True
