"""Run a Lambda handler from an SQS queue, as Lambda's SQS event source mapping does.

Locally there is no Lambda service, so the local stack drives the same
handler with this poller: receive up to 10 messages, hand them over as an
``aws:sqs`` event, delete the ones the handler did not report in
``batchItemFailures``. ``concurrency`` loops receive and invoke side by side,
as the event source mapping's pollers do (it starts with five): one loop
alone (three round trips per batch of ten) falls behind at a few dozen chunks
a second (docs/benchmarks.md). Several may put a student's chunks out of order
when they are uploaded at once (a replay at full speed; a student's real chunks
are 5 s apart), and a late chunk gets no rule evaluation, so the local stack
runs one unless told otherwise (``PROCTOR_ROUTER_POLLERS``). A handler that
raises leaves the whole batch on the queue; it comes back after the
visibility timeout and, after the queue's ``maxReceiveCount``, goes to the
dead-letter queue - exactly the deployed behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

__all__ = ["poll_queue"]

_log = structlog.get_logger(__name__)

Invoke = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def poll_queue(
    *,
    sqs: Any,
    queue_url: str,
    invoke: Invoke,
    stop: asyncio.Event,
    wait_seconds: int = 1,
    concurrency: int = 1,
) -> None:
    """Deliver the queue's messages to ``invoke`` until ``stop`` is set."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    queue_arn = (await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(_poll(sqs, queue_url, queue_arn, invoke, stop, wait_seconds))


async def _poll(
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    invoke: Invoke,
    stop: asyncio.Event,
    wait_seconds: int,
) -> None:
    while not stop.is_set():
        response = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            continue
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody"),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                }
                for m in messages
            ]
        }
        try:
            result = await invoke(event)
        except Exception as exc:  # the handler failed: SQS redelivers, as in AWS
            _log.error("handler failed; messages stay on the queue", error=repr(exc))
            continue
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            await sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
