"""Throttling: Kinesis and DynamoDB say "slow down"; the worker backs off and loses nothing.

Neither emulator throttles, so ``tests.faults`` makes the real client calls
fail with ``ProvisionedThroughputExceededException`` (GetRecords, PutRecords,
DynamoDB PutItem/UpdateItem) before they reach moto's server; botocore retries
as it would against AWS and the worker handles what is left.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from typing import Any

import pytest

from cli.services import router_invoker
from consumer.wiring import build_processor
from consumer.worker import Worker
from lambdas.event_source import poll_queue
from proctoring.aws import async_clients
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.rendering import render_chunks
from producer.replay import replay
from producer.scenario import load_scenario
from tests.conftest import DATA, eventually, needs_data
from tests.faults import FaultInjector

pytestmark = [pytest.mark.slow, needs_data]

EXAM = "throttled"


def test_throttled_calls_are_retried_and_every_chunk_is_processed_once(
    settings: Settings, pool: Executor, tmp_path: Any
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("segments:\n  - photo: faces/obama2.jpg\n    seconds: 5\n  - empty: 15\n")
    chunks = list(render_chunks(load_scenario(scenario, data_dir=DATA), size=(320, 240)))
    lines: list[str] = []

    async def run() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], dict[str, Any]]:
        async with async_clients(settings) as clients:
            # Kinesis: the first 12 GetRecords calls fail (both shards), so botocore's 5 attempts
            # run out and the worker sees the error itself; then a third of all calls fail.
            get_records = FaultInjector(lambda op, n: n <= 12 or n % 3 == 0).attach(
                clients.kinesis, "GetRecords"
            )
            put_records = FaultInjector.random(0.3, seed=1).attach(clients.kinesis, "PutRecords")
            dynamo = FaultInjector.random(0.2, seed=2).attach(
                clients.dynamodb, "PutItem", "UpdateItem"
            )
            tables = Tables(clients.dynamodb, settings.names)
            metrics = Metrics("Test", "consumer", lines.append)
            worker = Worker(
                settings=settings,
                kinesis=clients.kinesis,
                dynamodb=clients.dynamodb,
                processor=build_processor(settings, clients, tables, pool, metrics),
                metrics=metrics,
                worker_id="throttled-worker",
            )

            invoke = router_invoker(settings, clients, tables, metrics)
            queue = (await clients.sqs.get_queue_url(QueueName=settings.names.chunk_events_queue))[
                "QueueUrl"
            ]
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(worker.run(stop)),
                asyncio.create_task(
                    poll_queue(
                        sqs=clients.sqs, queue_url=queue, invoke=invoke, stop=stop, wait_seconds=0
                    )
                ),
            ]
            students = ("s1", "s2")
            for student in students:
                await replay(
                    chunks,
                    s3=clients.s3,
                    bucket=settings.names.chunks_bucket,
                    exam_id=EXAM,
                    student_id=student,
                    speed=None,
                )
            rows = {
                s: await eventually(
                    lambda s=s: tables.results(f"{EXAM}#{s}"),
                    lambda found: len(found) >= len(chunks),
                    within=120,
                )
                for s in students
            }
            stop.set()
            await asyncio.gather(*tasks)
            injected = {
                "GetRecords": get_records.failed["GetRecords"],
                "PutRecords": put_records.failed["PutRecords"],
                "DynamoDB": sum(dynamo.failed.values()),
            }
            return rows, await tables.alerts(EXAM), injected

    rows, alerts, injected = asyncio.run(run())
    assert all(count > 0 for count in injected.values()), injected
    for student, found in rows.items():
        assert sorted(r["sequence"] for r in found) == list(range(len(chunks))), student
        assert all(r["status"] == "ok" for r in found)
    assert sorted((a["student_id"], a["type"]) for a in alerts) == [
        ("s1", "NO_FACE"),
        ("s2", "NO_FACE"),
    ], "one alert per incident despite the retries"
    emitted = [json.loads(line) for line in lines]
    throttles = sum(d.get("Throttles", 0) for d in emitted)
    assert throttles >= 1, "the worker counted the throttling it had to back off from"
