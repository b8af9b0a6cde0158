"""Poison records: a batch that keeps failing is retried, then its bad record is parked.

Unit tests drive ``BatchRunner`` with a scripted processor and a recorded
sleep (no waiting); the end-to-end test runs the real worker over moto's
server with an engine that fails on one student's frames, then puts the
parked record back on the stream with ``proctor parked replay``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError
from click.testing import CliRunner, Result

from cli import main
from consumer.leases import LeaseLost
from consumer.poison import BatchRunner
from consumer.processor import BatchFailed, BatchOutcome, Record, is_poison
from consumer.wiring import build_processor
from proctoring.analysis.base import NAIVE, Engine, FrameAnalysis, Plan, Registered, Throttled
from proctoring.analysis.engine import local_engine
from proctoring.aws import async_clients
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import StorageError, Tables
from tests.conftest import eventually
from tests.pipeline import put_chunk, running_worker


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutItem")


def _storage_error(cause: BaseException) -> StorageError:
    try:
        raise StorageError("DynamoDB put_item failed") from cause
    except StorageError as exc:
        return exc


@pytest.mark.parametrize(
    ("failure", "poison"),
    [
        (_client_error("ValidationException"), True),
        (_client_error("InvalidImageFormatException"), True),
        (ValueError("an error no check anticipated"), True),
        (_storage_error(_client_error("ValidationException")), True),
        (ParamValidationError(report="Invalid type for parameter Item.exam_id.S"), True),
        (_client_error("ProvisionedThroughputExceededException"), False),
        (_client_error("ThrottlingException"), False),
        (_client_error("AccessDeniedException"), False),
        (_client_error("InternalServerError"), False),
        (_storage_error(TimeoutError()), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), False),
        (Throttled("Rekognition kept throttling"), False),
        (ExceptionGroup("both", [ValueError("bug"), TimeoutError()]), False),
        (ExceptionGroup("nested", [ExceptionGroup("inner", [ValueError("bug")])]), True),
    ],
)
def test_a_failure_is_poison_only_when_it_belongs_to_the_records(
    failure: BaseException, poison: bool
) -> None:
    assert is_poison(failure) is poison


@pytest.mark.parametrize("validate", [True, False])
def test_a_malformed_write_is_the_records_fault_whoever_refuses_it(
    settings: Settings, validate: bool
) -> None:
    """The consumer's task skips botocore's client-side check (``PROCTOR_VALIDATE_REQUESTS``,
    0.5 ms of CPU per chunk): DynamoDB refuses the same request itself. Either way the
    failure is the record's (parked after its attempts), not an outage retried forever."""
    config = settings.model_copy(update={"validate_requests": validate})

    async def write() -> BaseException:
        async with async_clients(config) as clients:
            item = {"exam_id": {"S": 5}, "error_id": {"S": "e1"}}  # a number where text goes
            with pytest.raises((ParamValidationError, ClientError)) as refused:
                await clients.dynamodb.put_item(TableName=config.names.errors_table, Item=item)
            return refused.value

    failure = asyncio.run(write())
    assert isinstance(failure, ParamValidationError if validate else ClientError)
    assert is_poison(failure)


class _Scripted:
    """A processor whose batches fail as ``fails(records, call)`` says; it notes each call."""

    def __init__(self, fails: Callable[[Sequence[Record], int], BatchFailed | None]) -> None:
        self._fails = fails
        self.calls: list[list[str]] = []
        self.parked: list[tuple[str, int]] = []

    async def process(self, records: Sequence[Record], *, shard_id: str) -> BatchOutcome:
        self.calls.append([r.sequence_number for r in records])
        failure = self._fails(records, len(self.calls))
        if failure is not None:
            raise failure
        return BatchOutcome(results=len(records))

    async def park(
        self, record: Record, *, shard_id: str, error: BaseException, attempts: int
    ) -> None:
        self.parked.append((record.sequence_number, attempts))


def _runner(processor: _Scripted, pauses: list[float], **settings: Any) -> BatchRunner:
    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    config = Settings(retry_backoff=1.0, retry_max_backoff=8.0, poison_attempts=3, **settings)
    sink = Metrics("Test", "consumer", lambda line: None)
    return BatchRunner(processor, settings=config, metrics=sink, sleep=sleep)  # type: ignore[arg-type]


BATCH = [Record(str(n), b"{}", "exam#student") for n in range(1, 4)]


def test_an_outage_is_retried_without_limit_and_parks_nothing() -> None:
    outage = BatchFailed("DynamoDB unreachable", poison=False)
    processor = _Scripted(lambda records, call: outage if call <= 12 else None)
    pauses: list[float] = []

    outcome = asyncio.run(_runner(processor, pauses).run(BATCH, shard_id="s"))

    assert outcome == BatchOutcome(results=3)
    assert len(processor.calls) == 13, "tried until AWS came back, well past poison_attempts"
    assert all(call == ["1", "2", "3"] for call in processor.calls), "always the whole batch"
    assert processor.parked == []
    assert len(pauses) == 12
    assert pauses[0] <= 2.0, "backoff starts near the poll interval"
    assert max(pauses) <= 8.0, "and is capped"
    assert sum(pauses[-4:]) > 4 * 4.0, "and grows (exponential, with jitter)"


def test_a_poison_record_is_parked_and_the_rest_of_the_batch_is_processed_in_order() -> None:
    def fails(records: Sequence[Record], call: int) -> BatchFailed | None:
        if any(r.sequence_number == "2" for r in records):
            return BatchFailed("ValueError('engine bug')", poison=True)
        return None

    processor = _Scripted(fails)
    pauses: list[float] = []

    outcome = asyncio.run(_runner(processor, pauses).run(BATCH, shard_id="s"))

    assert outcome == BatchOutcome(results=2, parked=1)
    assert processor.calls == [["1", "2", "3"]] * 3 + [["1"]] + [["2"]] * 3 + [["3"]]
    assert processor.parked == [("2", 3)]


def test_an_outage_while_a_record_fails_does_not_count_towards_parking_it() -> None:
    poison = BatchFailed("ValidationException", poison=True)
    outage = BatchFailed("throttled", poison=False)
    # poison, outage x4, poison, success: two poison failures, below the limit of three
    script = {1: poison, 2: outage, 3: outage, 4: outage, 5: outage, 6: poison}
    processor = _Scripted(lambda records, call: script.get(call))

    outcome = asyncio.run(_runner(processor, []).run(BATCH[:1], shard_id="s"))

    assert outcome == BatchOutcome(results=1)
    assert processor.parked == []


def test_a_lost_lease_stops_the_retries_at_once() -> None:
    processor = _Scripted(lambda records, call: BatchFailed("throttled", poison=False))
    held = iter([True, True, False])

    def check() -> None:
        if not next(held):
            raise LeaseLost("lease s is no longer valid")

    with pytest.raises(LeaseLost):
        asyncio.run(_runner(processor, []).run(BATCH, shard_id="s", check=check))
    assert len(processor.calls) == 2
    assert processor.parked == []


# ---- end to end: the real worker over moto's server ------------------------------------------

EXAM = "poison-exam"


class _FailsFor:
    """The local engine, except that one student's frames hit a bug in it."""

    def __init__(self, engine: Engine, student: str) -> None:
        self._engine = engine
        self._student = student
        self.name = engine.name
        self.broken = True

    @property
    def objects_available(self) -> bool:
        return self._engine.objects_available

    async def register(self, exam_id: str, student_id: str, photo: bytes) -> Registered:
        return await self._engine.register(exam_id, student_id, photo)

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        if self.broken and student_id == self._student:
            raise ValueError("index out of range in a landmark model")
        return await self._engine.analyse(exam_id, student_id, jpeg, plan)

    def __getattr__(self, name: str) -> Any:  # anything else the consumer asks of an engine
        return getattr(self._engine, name)


async def _proctor(*args: str) -> Result:
    """The operator's command, as typed (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


@pytest.mark.slow
def test_the_worker_parks_a_poison_chunk_moves_on_and_replays_it_on_request(
    settings: Settings, pool: Executor, present_chunk: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = settings.model_copy(
        update={"retry_backoff": 0.05, "retry_max_backoff": 0.2, "poison_attempts": 2}
    )
    metrics: list[str] = []

    async def run() -> dict[str, Any]:
        async with async_clients(fast) as clients:
            tables = Tables(clients.dynamodb, fast.names)
            engine = _FailsFor(local_engine(fast, tables, pool), student="unlucky")
            sink = Metrics("Test", "consumer", metrics.append)
            processor = build_processor(fast, clients, tables, pool, sink, engine)  # type: ignore[arg-type]
            for student, sequence in [("fine", 0), ("unlucky", 0), ("fine", 1)]:
                await put_chunk(
                    clients, fast, exam_id=EXAM, student_id=student, sequence=sequence,
                    data=present_chunk,
                )  # fmt: skip
            async with running_worker(fast, clients, processor, sink):
                fine = await eventually(
                    lambda: tables.results(f"{EXAM}#fine"), lambda rows: len(rows) == 2
                )
                unlucky = await eventually(
                    lambda: tables.results(f"{EXAM}#unlucky"), lambda rows: len(rows) == 1
                )
                parked = await tables.parked()

                # the bug is fixed; the operator puts the record back on the stream
                engine.broken = False
                monkeypatch.setenv("PROCTOR_ENDPOINT_URL", fast.endpoint_url or "")
                monkeypatch.setenv("PROCTOR_PREFIX", fast.prefix)
                listed = await _proctor("parked", "list")
                replayed = await _proctor("parked", "replay")
                again = await _proctor("parked", "replay")
                after = await eventually(
                    lambda: tables.results(f"{EXAM}#unlucky"),
                    lambda rows: rows[0]["status"] == "ok",
                )
            return {
                "fine": fine,
                "unlucky": unlucky,
                "parked": parked,
                "listed": listed,
                "replayed": replayed,
                "again": again,
                "after": after,
                "parked_after": await tables.parked(),
            }

    outcome = asyncio.run(run())
    assert [r["status"] for r in outcome["fine"]] == ["ok", "ok"], "the shard moved on"
    (row,) = outcome["unlucky"]
    assert (row["status"], row["error_reason"]) == ("error", "parked"), "the gap is visible"
    (parked,) = outcome["parked"]
    assert parked["attempts"] == 2
    assert "landmark model" in parked["message"]
    assert parked["chunk_key"] == row["chunk_key"]
    assert any(json.loads(line).get("RecordsParked") for line in metrics)

    assert outcome["listed"].exit_code == 0, outcome["listed"].output
    assert parked["error_id"] in outcome["listed"].output
    assert outcome["replayed"].exit_code == 0, outcome["replayed"].output
    assert "replayed 1 parked record" in outcome["replayed"].output
    assert "replayed 0 parked record" in outcome["again"].output, "replayed once, not twice"
    (after,) = outcome["after"]
    assert (after["status"], after["faces"]) == ("ok", 1)
    (kept,) = outcome["parked_after"]
    assert "replayed_at" in kept, "the row stays, marked replayed, for the record"
