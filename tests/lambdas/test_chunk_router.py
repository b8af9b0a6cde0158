"""The chunk router: S3 notifications in, one ordered chunk event per chunk in Kinesis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cli.services import run_services
from lambdas import chunk_router
from lambdas.chunk_router import Attendees, route
from proctoring.aws import async_clients
from proctoring.events import ChunkEvent
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from tests.conftest import eventually
from tests.pipeline import stream_records

EXAM = "router-exam"


def _s3_event(bucket: str, keys: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-27T10:00:05.000Z",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 100 + i}},
            }
            for i, key in enumerate(keys)
        ]
    }


def test_uploads_become_ordered_events_per_student_through_s3_and_sqs(settings: Settings) -> None:
    """The deployed path: S3 notification -> SQS -> router -> Kinesis, over HTTP."""

    async def run() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            for sequence in range(4):
                for student in ("ana", "ben"):
                    await clients.s3.put_object(
                        Bucket=settings.names.chunks_bucket,
                        Key=f"chunks/{EXAM}/{student}/camera/{sequence:06d}_17000000{sequence}.mp4",
                        Body=b"video bytes",
                    )
            stop = asyncio.Event()
            router = asyncio.create_task(run_services(settings, stop, consumer=False, router=True))
            queue = (await clients.sqs.get_queue_url(QueueName=settings.names.chunk_events_queue))[
                "QueueUrl"
            ]
            records = await eventually(
                lambda: stream_records(clients.kinesis, settings.names.stream),
                lambda found: len(found) >= 8,
            )
            stop.set()
            await router
            left = await clients.sqs.get_queue_attributes(
                QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
            )
            assert left["Attributes"]["ApproximateNumberOfMessages"] == "0"
            return records

    records = asyncio.run(run())
    assert len(records) == 8
    by_student: dict[str, list[ChunkEvent]] = {}
    shards: dict[str, set[str]] = {}
    for record in records:
        event = ChunkEvent.from_bytes(record["Data"])
        assert record["PartitionKey"] == f"{EXAM}#{event.student_id}"
        by_student.setdefault(event.student_id, []).append(event)
        shards.setdefault(event.student_id, set()).add(record["ShardId"])
    for student, events in by_student.items():
        assert [e.sequence for e in events] == [0, 1, 2, 3], "one student's chunks stay in order"
        assert len(shards[student]) == 1
        assert events[0].size == len(b"video bytes")


class _Flaky:
    """The emulator's Kinesis, except that the first ``failures`` records of each call fail.

    moto never throttles; this wrapper returns the documented partial-failure
    shape (``FailedRecordCount`` and per-record ``ErrorCode``) for some records
    and passes the rest to the real stream.
    """

    def __init__(self, kinesis: Any, failures: int, calls_failing: int) -> None:
        self._kinesis = kinesis
        self._failures = failures
        self._calls_failing = calls_failing
        self.calls: list[int] = []

    async def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> Any:
        self.calls.append(len(Records))
        failing = self._failures if len(self.calls) <= self._calls_failing else 0
        passed = {"Records": []}
        if Records[failing:]:
            passed = await self._kinesis.put_records(
                StreamName=StreamName, Records=Records[failing:]
            )
        rejected = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
        ] * min(failing, len(Records))
        return {"FailedRecordCount": len(rejected), "Records": rejected + passed["Records"]}


def test_rejected_records_are_retried_until_kinesis_takes_them(settings: Settings) -> None:
    keys = [f"chunks/{EXAM}/cy/camera/{i:06d}_1.mp4" for i in range(5)]

    async def run() -> tuple[Any, _Flaky, list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            flaky = _Flaky(clients.kinesis, failures=2, calls_failing=2)
            outcome = await route(
                _s3_event(settings.names.chunks_bucket, keys),
                kinesis=flaky,
                tables=Tables(clients.dynamodb, settings.names),
                stream=settings.names.stream,
                metrics=Metrics("Test", "router", lambda line: None),
            )
            return outcome, flaky, await stream_records(clients.kinesis, settings.names.stream)

    outcome, flaky, records = asyncio.run(run())
    assert outcome.routed == 5 and outcome.failed_messages == []
    assert flaky.calls == [5, 2, 2], "only the rejected records are sent again"
    assert sorted(ChunkEvent.from_bytes(r["Data"]).sequence for r in records) == [0, 1, 2, 3, 4]


def test_messages_whose_records_keep_failing_are_reported_for_redelivery(
    settings: Settings,
) -> None:
    body = json.dumps(
        _s3_event(settings.names.chunks_bucket, [f"chunks/{EXAM}/dee/camera/000000_1.mp4"])
    )
    other = json.dumps(
        _s3_event(settings.names.chunks_bucket, [f"chunks/{EXAM}/eve/camera/000000_1.mp4"])
    )
    event = {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": "m-1", "body": body},
            {"eventSource": "aws:sqs", "messageId": "m-2", "body": other},
        ]
    }

    async def run() -> Any:
        async with async_clients(settings) as clients:
            return await route(
                event,
                kinesis=_Flaky(clients.kinesis, failures=1, calls_failing=99),
                tables=Tables(clients.dynamodb, settings.names),
                stream=settings.names.stream,
                metrics=Metrics("Test", "router", lambda line: None),
                max_attempts=3,
            )

    outcome = asyncio.run(run())
    assert outcome.routed == 1
    assert outcome.response() == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_test_events_are_ignored_and_bad_keys_recorded(settings: Settings) -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    event = {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": "t", "body": json.dumps(test_event)},
            {"eventSource": "aws:sqs", "messageId": "junk", "body": "<not an S3 event>"},
            *_s3_event(settings.names.chunks_bucket, [f"chunks/{EXAM}/fay/camera/../x.mp4"])[
                "Records"
            ],
        ]
    }

    async def run() -> tuple[Any, list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            outcome = await route(
                event,
                kinesis=clients.kinesis,
                tables=tables,
                stream=settings.names.stream,
                metrics=Metrics("Test", "router", lambda line: None),
            )
            return outcome, await tables.errors(EXAM)

    outcome, errors = asyncio.run(run())
    assert (outcome.routed, outcome.rejected, outcome.failed_messages) == (0, 2, [])
    assert [(e["stage"], e["reason"]) for e in errors] == [("router", "bad_key")]


def test_a_warm_router_lambda_reuses_its_clients_and_attendee_cache(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, built_clients: list[str]
) -> None:
    """Through ``handler``, as Lambda calls it: the second invocation builds no client."""
    monkeypatch.setenv("PROCTOR_ENDPOINT_URL", settings.endpoint_url or "")
    monkeypatch.setenv("PROCTOR_PREFIX", settings.prefix)
    monkeypatch.setenv("PROCTOR_LOG_FORMAT", "console")
    attendees: list[Attendees] = []
    route_ = chunk_router.route

    async def spy(event: Any, **kwargs: Any) -> Any:
        attendees.append(kwargs["attendees"])
        return await route_(event, **kwargs)

    monkeypatch.setattr(chunk_router, "route", spy)
    bucket = settings.names.chunks_bucket
    for sequence in range(2):
        key = f"chunks/{EXAM}/dee/camera/{sequence:06d}_1.mp4"
        assert chunk_router.handler(_s3_event(bucket, [key])) == {"batchItemFailures": []}
    assert sorted(built_clients) == ["dynamodb", "kinesis", "s3", "sns", "sqs"]  # once, not twice
    assert attendees[0] is attendees[1]  # the attendee cache outlives an invocation

    async def read() -> list[dict[str, Any]]:
        async with async_clients(settings) as clients:
            return await stream_records(clients.kinesis, settings.names.stream)

    records = asyncio.run(read())
    assert sorted(ChunkEvent.from_bytes(r["Data"]).sequence for r in records) == [0, 1]
