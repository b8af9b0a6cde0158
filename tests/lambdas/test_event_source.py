"""The local SQS event source can invoke the handler from several pollers at once, as Lambda's
event source mapping does (it starts with five).

A standard queue delivers at least once: AWS may hand a message out twice, and moto's server,
answering five concurrent receives from its threads, sometimes does (seen on a loaded machine).
The router is idempotent (the consumer drops a repeated chunk), so the test asks that every
message is handled, not that none is handled twice."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from lambdas.event_source import poll_queue
from proctoring.aws import async_clients
from proctoring.settings import Settings


def test_batches_are_handled_side_by_side_and_every_message_is_handled(settings: Settings) -> None:
    async def run() -> tuple[int, list[str]]:
        async with async_clients(settings) as clients:
            url = (await clients.sqs.get_queue_url(QueueName=settings.names.chunk_events_queue))[
                "QueueUrl"
            ]
            for start in range(0, 30, 10):
                await clients.sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)
                    ],
                )
            stop = asyncio.Event()
            overlap = asyncio.Event()
            in_flight = 0
            most = 0
            bodies: list[str] = []

            async def invoke(event: dict[str, Any]) -> dict[str, Any]:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                if in_flight >= 2:
                    overlap.set()
                # hold the batch until a second one is in hand (or give up after 20 s)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(20):
                        await overlap.wait()
                # the bucket's s3:TestEvent is on the queue too
                bodies.extend(r["body"] for r in event["Records"] if r["body"].startswith("m"))
                in_flight -= 1
                if len(bodies) >= 30:
                    stop.set()
                return {"batchItemFailures": []}

            async with asyncio.timeout(60):
                await poll_queue(
                    sqs=clients.sqs,
                    queue_url=url,
                    invoke=invoke,
                    stop=stop,
                    wait_seconds=1,
                    concurrency=5,
                )
            return most, bodies

    most, bodies = asyncio.run(run())
    assert most >= 2
    assert set(bodies) == {f"m{i}" for i in range(30)}
