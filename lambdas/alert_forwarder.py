"""Alert forwarder: each alert from the alerts topic, posted once to its exam's channel.

Subscribed (through the alerts queue, SQS FIFO: one message group per exam,
deduplicated on the alert id) to the alerts topic. For each alert it claims
``fwd#<alert_id>`` in the exams table with a conditional write (the claim
fixes the message's time) and posts the
alert to the exam's channel (``proctoring.channels``): to the proctor, and to
the student when the exam says so (``student_alerts``). A second delivery of
the same alert finds the claim and posts nothing; a post that failed leaves
the claim in ``posting`` and the message on the queue, and the retry posts it
(Chime's ClientRequestToken and the message's fixed key make that retry one
message, not two). Sends go through one rate limiter (Chime: 30 messages/s;
the function's reserved concurrency is one, so one limiter is the limit).

Messages that fail are reported as ``batchItemFailures``; with a FIFO queue
every later message of the same exam in the batch is reported too, so an
exam's alerts stay in order.

A warm container keeps its clients, channel and rate limiter between
invocations (``lambdas.container``), so the limiter holds across batches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog

from lambdas import container
from proctoring.channels import Channel, TransportError
from proctoring.exams import ExamStore
from proctoring.logs import configure_logging
from proctoring.settings import Settings
from proctoring.storage import StorageError

__all__ = ["forward", "forward_alert", "handler"]

_log = structlog.get_logger(__name__)


def _alert_of(body: str) -> dict[str, Any]:
    """The alert in an SQS body: an SNS envelope (``Message``) or, with raw delivery, the alert."""
    value = json.loads(body)
    if isinstance(value, dict) and value.get("Type") == "Notification" and "Message" in value:
        value = json.loads(value["Message"])
    if not isinstance(value, dict) or not {"exam_id", "alert_id", "student_id"} <= set(value):
        raise ValueError("not an alert: exam_id, alert_id and student_id are required")
    return value


def _summary(alert: Mapping[str, Any]) -> dict[str, Any]:
    """What the channel carries: enough to show the alert, no face data."""
    keys = (
        "alert_id", "student_id", "type", "severity", "source", "sequence", "first_sequence",
        "frame_key", "risk", "created_at", "duration_s", "speech_s", "window_s",
    )  # fmt: skip
    return {k: alert[k] for k in keys if alert.get(k) is not None}


async def forward_alert(exams: ExamStore, channel: Channel, alert: Mapping[str, Any]) -> bool:
    """Post one alert; False when it was posted before or its exam is unknown."""
    exam = await exams.get_exam(str(alert["exam_id"]))
    if exam is None:
        _log.warning("alert for an unknown exam; not posted", alert=alert["alert_id"])
        return False
    posting_at = await exams.claim_alert(
        exam["exam_id"], str(alert["alert_id"]), str(alert["student_id"])
    )
    if posting_at is None:
        _log.info("alert posted before; not again", alert=alert["alert_id"])
        return False
    targets = [str(exam["proctor_id"])]
    if exam.get("student_alerts"):
        targets.append(str(alert["student_id"]))
    message, _ = await channel.post(
        exam,
        kind="alert",
        student_id=str(alert["student_id"]),
        sender_id="proctoring",
        message_id=f"alert-{alert['alert_id']}",
        created_at=posting_at,
        alert=_summary(alert),
        targets=targets,
    )
    await exams.alert_posted(exam["exam_id"], str(alert["alert_id"]), message["message_id"])
    _log.info("alert posted", alert=alert["alert_id"], type=alert.get("type"))
    return True


async def forward(
    event: Mapping[str, Any], *, exams: ExamStore, channel: Channel
) -> dict[str, Any]:
    """Handle one SQS batch; the partial-batch response Lambda expects."""
    failed: list[str] = []
    failed_groups: set[str] = set()
    for record in event.get("Records", []):
        message_id = record.get("messageId", "?")
        group = (record.get("attributes") or {}).get("MessageGroupId")
        if group is not None and group in failed_groups:
            failed.append(message_id)  # keep the exam's order: retry after the one that failed
            continue
        try:
            alert = _alert_of(record.get("body", ""))
        except (ValueError, TypeError) as exc:
            _log.error("message is not an alert; dropped", message_id=message_id, error=str(exc))
            continue
        try:
            await forward_alert(exams, channel, alert)
        except (StorageError, TransportError, TimeoutError) as exc:
            _log.error("alert not posted; will retry", alert=alert["alert_id"], error=str(exc))
            failed.append(message_id)
            if group is not None:
                failed_groups.add(group)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point (SQS event source on the alerts queue)."""
    settings = Settings()
    configure_logging(settings)
    return container.run(_handle(event, settings))


async def _handle(event: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    from lambdas.api.services import open_services

    services = await container.kept("services", settings, open_services)
    return await forward(event, exams=services.exams, channel=services.channel)
