"""Enhanced fan-out against botocore's Kinesis model (no emulator has SubscribeToShard).

The client here answers from a script, and checks every request with botocore's own
parameter validation and every answer against the operation's output shape (the event
stream's events included), so the calls and the fields read are the service's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import ListShape, Shape, StructureShape
from botocore.validate import validate_parameters

from consumer.batch import BatchOutcome, Record
from consumer.fan_out import FanOut
from consumer.leases import SHARD_END, TRIM_HORIZON
from consumer.shards import ShardConsumer
from proctoring.metrics import Metrics
from proctoring.settings import Settings

_MODEL = botocore.session.get_session().get_service_model("kinesis")
_OPERATIONS = {xform_name(name): name for name in _MODEL.operation_names}
_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/p-chunks"
_CONSUMER_ARN = f"{_ARN}/consumer/proctor-efo:1700000000"


def _conforms(value: Any, shape: Shape, where: str) -> None:
    """``value`` has only members ``shape`` knows, of its types, all the way down."""
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), where
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{where}: {sorted(unknown)} not in {shape.name}"
        for name, member in value.items():
            _conforms(member, shape.members[name], f"{where}.{name}")
    elif isinstance(shape, ListShape):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _conforms(item, shape.member, f"{where}[{i}]")
    elif shape.type_name == "blob":
        assert isinstance(value, bytes), where
    elif shape.type_name == "timestamp":
        assert isinstance(value, datetime), where
    elif shape.type_name in ("string", "long", "integer"):
        assert isinstance(value, str if shape.type_name == "string" else int), where


class _Events:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield event


class _ModelKinesis:
    """Kinesis answering from ``script`` (per method: answers or errors, in order), every
    request validated and every answer checked against botocore's model."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self._script = script
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        operation = _MODEL.operation_model(_OPERATIONS[method])

        async def call(**params: Any) -> Any:
            validate_parameters(params, operation.input_shape)  # raises on a wrong request
            self.requests.append((method, params))
            answer = self._script[method].pop(0)
            if isinstance(answer, Exception):
                raise answer
            output = operation.output_shape
            assert output is not None
            if method == "subscribe_to_shard":
                stream_shape = output.members["EventStream"]
                for event in answer:
                    _conforms(event, stream_shape, "EventStream")
                return {"EventStream": _Events(answer)}
            _conforms(answer, output, method)
            return answer

        return call


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "operation")


def _pushed(
    sequences: list[str], continuation: str | None, **extra: Any
) -> dict[str, dict[str, Any]]:
    at = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    event: dict[str, Any] = {
        "Records": [
            {
                "SequenceNumber": s,
                "ApproximateArrivalTimestamp": at,
                "Data": b'{"v": 1}',
                "PartitionKey": "exam#student",
            }
            for s in sequences
        ],
        "MillisBehindLatest": 0,
        **extra,
    }
    if continuation is not None:
        event["ContinuationSequenceNumber"] = continuation
    return {"SubscribeToShardEvent": event}


def test_the_consumer_is_registered_once_and_used_once_active() -> None:
    kinesis = _ModelKinesis(
        {
            "describe_stream_summary": [
                {"StreamDescriptionSummary": {"StreamName": "p-chunks", "StreamARN": _ARN}}
            ],
            "register_stream_consumer": [_error("ResourceInUseException")],  # registered before
            "describe_stream_consumer": [
                {"ConsumerDescription": {"ConsumerARN": _CONSUMER_ARN, "ConsumerStatus": s}}
                for s in ("CREATING", "ACTIVE")
            ],
        }
    )
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    fan_out = FanOut(kinesis, stream="p-chunks", consumer_name="proctor-efo", sleep=sleep)
    assert asyncio.run(fan_out.register()) == _CONSUMER_ARN
    assert pauses == [1.0], "asked again once while CREATING"
    assert [m for m, _ in kinesis.requests] == [
        "describe_stream_summary",
        "register_stream_consumer",
        "describe_stream_consumer",
        "describe_stream_consumer",
    ]


def test_events_continue_across_subscriptions_and_end_with_the_closed_shard() -> None:
    children = [
        {
            "ShardId": "shardId-000000000002",
            "ParentShards": ["shardId-000000000000"],
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
        }
    ]
    kinesis = _ModelKinesis(
        {
            "subscribe_to_shard": [
                [_pushed(["11", "12"], "12"), _pushed([], "12")],  # 5 minutes, then it ends
                _error("ResourceInUseException"),  # subscribed again too soon: back off
                [_pushed(["13"], None, ChildShards=children)],  # the shard was split
            ]
        }
    )
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    fan_out = FanOut(kinesis, stream="p-chunks", consumer_name="proctor-efo", sleep=sleep)
    fan_out.consumer_arn = _CONSUMER_ARN

    async def read() -> list[list[str]]:
        return [
            [r["SequenceNumber"] for r in event["Records"]]
            async for event in fan_out.events("shardId-000000000000", "10")
        ]

    assert asyncio.run(read()) == [["11", "12"], [], ["13"]]
    positions = [p["StartingPosition"] for _, p in kinesis.requests]
    assert positions == [
        {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "10"},
        {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "12"},
        {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "12"},
    ]
    assert len(pauses) == 1 and 0.5 <= pauses[0] <= 1.0


class _Lease:
    checkpoint = TRIM_HORIZON


class _Leases:
    """The lease coordinator's side a shard consumer uses: held, never lost."""

    def __init__(self) -> None:
        self.checkpoints: list[str] = []
        self._lost = asyncio.Event()

    def lost_event(self, shard_id: str) -> asyncio.Event:
        return self._lost

    def start_after(self, shard_id: str) -> float:
        return 0.0

    def lease(self, shard_id: str) -> _Lease:
        return _Lease()

    def valid(self, shard_id: str) -> bool:
        return True

    async def checkpoint(self, shard_id: str, sequence: str) -> None:
        self.checkpoints.append(sequence)


class _Runner:
    def __init__(self) -> None:
        self.batches: list[list[Record]] = []

    async def run(self, records: list[Record], *, shard_id: str, check: Any) -> BatchOutcome:
        self.batches.append(records)
        return BatchOutcome(results=len(records))

    def release(self, shard_id: str) -> None:
        """The shard is no longer read here (what the processor kept for it goes)."""


def test_a_shard_read_by_fan_out_is_processed_and_checkpointed_to_its_end() -> None:
    kinesis = _ModelKinesis(
        {"subscribe_to_shard": [[_pushed(["1", "2"], "2"), _pushed(["3"], None)]]}
    )
    fan_out = FanOut(kinesis, stream="p-chunks", consumer_name="proctor-efo")
    fan_out.consumer_arn = _CONSUMER_ARN
    leases, runner = _Leases(), _Runner()
    shard = ShardConsumer(
        "shardId-000000000000",
        settings=Settings(),
        kinesis=kinesis,
        runner=runner,  # type: ignore[arg-type]
        leases=leases,  # type: ignore[arg-type]
        metrics=Metrics("Test", "consumer", lambda line: None),
        fan_out=fan_out,
        wall_clock=lambda: 1_765_087_200.5,
    )

    async def run() -> None:
        async with asyncio.timeout(30):  # a deadline, not a pace
            await shard.run(asyncio.Event())

    asyncio.run(run())
    assert [[r.sequence_number for r in b] for b in runner.batches] == [["1", "2"], ["3"]]
    assert leases.checkpoints == ["2", "3", SHARD_END]
    first = runner.batches[0][0]
    assert first.read_at == 1_765_087_200.5
    assert first.arrived_at == datetime(2026, 12, 7, 6, 0, tzinfo=UTC).timestamp()
    assert [p["StartingPosition"] for _, p in kinesis.requests] == [{"Type": "TRIM_HORIZON"}]


def test_a_request_the_model_refuses_fails_the_test_double() -> None:
    """The double is strict: a request outside the model is refused, as AWS would."""
    kinesis = _ModelKinesis({"subscribe_to_shard": [[]]})
    with pytest.raises(Exception, match="StartingPosition"):
        asyncio.run(kinesis.subscribe_to_shard(ConsumerARN=_CONSUMER_ARN, ShardId="s"))
