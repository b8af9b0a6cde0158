"""Several students' sessions and result rows in one transaction (``Tables.save_sessions``):
within DynamoDB's limits, and a stale student costs nobody else their rows.

Against moto's server over HTTP; a cancellation moto cannot produce (``TransactionConflict``)
is answered by botocore's own ``before-send`` hook in DynamoDB's protocol (tests/faults.py),
so botocore parses it as it parses AWS's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import botocore.session

from consumer.batch import is_poison
from proctoring.aws import RequestCounter, async_clients
from proctoring.dynamo import to_item
from proctoring.settings import Settings
from proctoring.storage import SessionSave, StaleState, StorageError, Tables
from proctoring.transactions import cancellation_codes, failed_units, pack
from tests.faults import FaultInjector

EXAM = "tx"


def _row(student: str, sequence: int) -> dict[str, Any]:
    return {
        "session_id": f"{EXAM}#{student}",
        "chunk_id": f"camera#{sequence:06d}",
        "exam_id": EXAM,
        "student_id": student,
        "sequence": sequence,
        "status": "ok",
    }


def _save(student: str, version: int, *sequences: int) -> SessionSave:
    session = {"exam_id": EXAM, "student_id": student, "risk": 0.5}
    return SessionSave(session, version, [_row(student, s) for s in sequences])


async def _sessions_at_version_one(tables: Tables, students: list[str]) -> None:
    for outcome in await tables.save_sessions([_save(s, 0) for s in students]):
        assert isinstance(outcome, dict) and outcome["version"] == 1


def test_a_stale_student_in_a_shared_transaction_loses_nobody_elses_rows(
    settings: Settings,
) -> None:
    """Four students in one transaction: one's session moved (an operator's ``ADD version``),
    one's new row exists already. DynamoDB cancels it, naming those two items; the other two
    students are written by the transaction sent again without the stale ones."""

    async def run() -> dict[str, Any]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            await _sessions_at_version_one(tables, ["s0", "s1", "s2", "s3"])
            await clients.dynamodb.update_item(
                TableName=settings.names.sessions_table,
                Key=to_item({"exam_id": EXAM, "student_id": "s1"}),
                UpdateExpression="ADD version :one",
                ExpressionAttributeValues=to_item({":one": 1}),
            )
            await tables.put_result({**_row("s2", 1), "status": "first"})
            requests = RequestCounter().watch([clients.dynamodb])
            outcomes = await tables.save_sessions(
                [_save("s0", 1, 1, 2), _save("s1", 1, 1), _save("s2", 1, 1), _save("s3", 1, 1)]
            )
            requests.stop()
            return {
                "outcomes": outcomes,
                "requests": dict(requests.counts),
                "rows": {
                    s: [(r["sequence"], r["status"]) for r in await tables.results(f"{EXAM}#{s}")]
                    for s in ("s0", "s1", "s2", "s3")
                },
                "versions": {
                    s: (await tables.get_session(EXAM, s) or {})["version"]
                    for s in ("s0", "s1", "s2", "s3")
                },
            }

    out = asyncio.run(run())
    s0, s1, s2, s3 = out["outcomes"]
    assert isinstance(s0, dict) and isinstance(s3, dict) and s0["version"] == s3["version"] == 2
    assert isinstance(s1, StaleState) and isinstance(s2, StaleState)
    assert not is_poison(s1), "processed again, as a stale session always was"
    # what moto answered, read as botocore's model of the error says: one code per item
    assert cancellation_codes(s1) == [
        *["None"] * 3,  # s0: two rows, its session
        *["None", "ConditionalCheckFailed"],  # s1: its row, its moved session
        *["ConditionalCheckFailed", "None"],  # s2: its existing row, its session
        *["None"] * 2,  # s3
    ]
    model = botocore.session.get_session().get_service_model("dynamodb")
    reason = model.shape_for("TransactionCanceledException").members["CancellationReasons"]
    assert "Code" in reason.member.members  # type: ignore[attr-defined]
    assert out["requests"] == {"dynamodb.TransactWriteItems": 2}, "the cancelled one, the rest"
    assert out["rows"] == {
        "s0": [(1, "ok"), (2, "ok")],
        "s1": [],
        "s2": [(1, "first")],  # the row there first stays
        "s3": [(1, "ok")],
    }
    assert out["versions"] == {"s0": 2, "s1": 2, "s2": 1, "s3": 2}


def test_over_a_hundred_items_are_two_transactions_never_splitting_a_student(
    settings: Settings,
) -> None:
    """40 students with a row each (80 items), then one with 30 rows (31 items): two
    transactions, the 31 items of the last student together in the second."""
    students = [f"s{n:02d}" for n in range(41)]

    async def run() -> tuple[list[Any], dict[str, int], int]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            saves = [_save(s, 0, 0) for s in students[:40]]
            saves.append(_save(students[40], 0, *range(30)))
            requests = RequestCounter().watch([clients.dynamodb])
            outcomes = await tables.save_sessions(saves)
            requests.stop()
            rows = sum([len(await tables.results(f"{EXAM}#{s}")) for s in students])
            return outcomes, dict(requests.counts), rows

    outcomes, requests, rows = asyncio.run(run())
    assert all(isinstance(o, dict) and o["version"] == 1 for o in outcomes)
    assert requests == {"dynamodb.TransactWriteItems": 2}
    assert rows == 40 + 30


def test_units_are_packed_within_the_item_and_size_limits_in_order() -> None:
    item = {"Put": {"Item": {"k": {"S": "x" * 100}}}}
    units = [[item] * 60, [item] * 40, [item], [item] * 100, [item] * 101]
    assert pack(units) == [[0, 1], [2], [3], [4]], "100 items at most; an oversized unit alone"
    assert pack([[item]] * 5, max_bytes=300) == [[0, 1], [2, 3], [4]], "and at most max_bytes"


def test_a_cancellation_names_the_students_whose_conditions_failed() -> None:
    sizes = [3, 2, 1]
    failed = "ConditionalCheckFailed"
    assert failed_units(sizes, ["None"] * 4 + [failed, "None"]) == {1: failed}
    everyone = dict.fromkeys([0, 1, 2], failed)
    assert failed_units(sizes, None) == everyone, "not said which: every one, as before"
    assert failed_units(sizes, ["None"] * 3) == everyone, "not one code per item"
    assert failed_units(sizes, ["None", "TransactionConflict"] + ["None"] * 4) is None
    refused = ["None", "None", "ValidationError"] + ["None"] * 2 + [failed]
    assert failed_units(sizes, refused) == {0: "ValidationError", 2: failed}


def _cancel_the_first_transaction(dynamodb: Any, reasons: list[dict[str, str]]) -> None:
    """DynamoDB's answer to the client's first ``TransactWriteItems``: cancelled, with
    ``reasons`` (one per item, in order), in DynamoDB's protocol (tests/faults.py)."""
    FaultInjector(
        lambda operation, call: call == 1,
        code="TransactionCanceledException",
        message="Transaction cancelled",
        fields={"CancellationReasons": reasons},
    ).attach(dynamodb, "TransactWriteItems")


def test_an_item_dynamodb_refuses_is_its_students_fault_and_the_others_are_written(
    settings: Settings,
) -> None:
    """DynamoDB cancels a transaction because it refuses one student's item itself
    (``ValidationError``: over 400 KB, say). That student's save fails as the record's
    fault (parked after its attempts, not retried for ever as an outage, which would hold
    the shard); the other student's rows and session are written by the resent one."""
    reasons = [{"Code": "None"}] * 2 + [{"Code": "ValidationError", "Message": "too large"}] * 2

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            _cancel_the_first_transaction(clients.dynamodb, reasons)
            outcomes = await tables.save_sessions([_save("s0", 0, 0), _save("s1", 0, 0)])
            return outcomes, await tables.results(f"{EXAM}#s0"), await tables.results(f"{EXAM}#s1")

    (kept, refused), s0_rows, s1_rows = asyncio.run(run())
    assert isinstance(kept, dict) and kept["version"] == 1
    assert [r["sequence"] for r in s0_rows] == [0] and s1_rows == []
    assert isinstance(refused, StorageError) and not isinstance(refused, StaleState)
    assert is_poison(refused), "the record's fault: parked after its attempts"


def test_a_transaction_cancelled_for_a_conflict_fails_everyone_in_it_as_an_outage(
    settings: Settings,
) -> None:
    """DynamoDB cancels a transaction that collides with another (``TransactionConflict``):
    no one in it is stale, nothing is written, and each save fails with an error the
    retry policy treats as AWS's (processed again, never parked)."""
    reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "conflict"}]

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            _cancel_the_first_transaction(clients.dynamodb, reasons * 2)
            saves = [_save("s0", 0, 0), _save("s1", 0, 0)]
            failed = await tables.save_sessions(saves)
            rows = await tables.results(f"{EXAM}#s0")
            return failed, rows, await tables.save_sessions(saves)

    failed, rows_between, again = asyncio.run(run())
    assert all(type(o) is StorageError for o in failed), failed
    assert not any(is_poison(o) for o in failed)
    assert rows_between == []
    assert all(isinstance(o, dict) for o in again), "the same saves go through next time"
