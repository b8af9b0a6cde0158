"""The one DynamoDB base on the emulator: every store pages the same way, and a lost condition,
a failed call and a timeout surface as the same typed errors in all of them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumer.leases import Lease, LeaseLost, LeaseTable
from proctoring.aws import async_clients
from proctoring.dynamo import Conflict, DynamoStore, StorageError, to_item
from proctoring.exams import ExamStore
from proctoring.settings import Settings
from proctoring.storage import StaleState, Tables
from tests.faults import FaultInjector


def test_pages_conditions_failures_and_timeouts_are_one_behaviour(settings: Settings) -> None:
    async def scenario() -> None:
        async with async_clients(settings) as clients:
            db = clients.dynamodb
            tables = Tables(db, settings.names)
            for n in range(5):
                await tables.put_error({"exam_id": "ex1", "error_id": f"e{n}", "stage": "x"})

            # one paginator: a page of one item at a time still finds all five
            store = DynamoStore(db)
            query = {
                "TableName": settings.names.errors_table,
                "KeyConditionExpression": "exam_id = :e",
                "ExpressionAttributeValues": to_item({":e": "ex1"}),
                "Limit": 1,
            }
            pages = [page async for page in store._pages("query", **query)]
            assert len(pages) >= 5
            items = await store._items("query", **query)
            assert sorted(i["error_id"] for i in items) == [f"e{n}" for n in range(5)]
            assert len(await tables.errors("ex1")) == 5

            # one read of an item by its key: Python values, or None when there is none
            key = {"exam_id": "ex1", "error_id": "e3"}
            found = await store._get_item(settings.names.errors_table, key)
            assert found == {**key, "stage": "x"}
            key["error_id"] = "e9"
            assert await store._get_item(settings.names.errors_table, key) is None

            # a lost condition is Conflict in every store, with each store's own meaning
            await tables.save_session({"exam_id": "ex1", "student_id": "s1"}, expected_version=0)
            with pytest.raises(StaleState) as stale:
                await tables.save_session(
                    {"exam_id": "ex1", "student_id": "s1"}, expected_version=0
                )
            assert isinstance(stale.value, Conflict)
            exams = ExamStore(db, settings.names)
            await exams.create_exam({"exam_id": "ex1", "proctor_id": "p1", "title": "t"})
            with pytest.raises(Conflict):
                await exams.create_exam({"exam_id": "ex1", "proctor_id": "p1", "title": "t"})
            leases = LeaseTable(db, settings.names.leases_table)
            assert await leases.create("shard-1", []) is True
            assert await leases.create("shard-1", []) is False
            with pytest.raises(LeaseLost) as lost:
                await leases.renew(Lease("shard-1", owner="w1", counter=7))
            assert isinstance(lost.value.__cause__, Conflict)
            assert [lease.key for lease in await leases.list()] == ["shard-1"]

            # any other failure, and a call over the timeout, is StorageError naming the call
            missing = LeaseTable(db, f"{settings.names.leases_table}-missing")
            with pytest.raises(StorageError, match=r"scan on .*-missing"):
                await missing.list()
            slow = Tables(db, settings.names, timeout=1e-6)
            with pytest.raises(StorageError, match="timed out"):
                await slow.errors("ex1")

    asyncio.run(scenario())


def _session(student: str) -> dict[str, object]:
    return {"exam_id": "reads", "student_id": student, "risk": 0.25}


async def _three_sessions(db: Any, settings: Settings) -> Tables:
    """The consumer's tables (reads batched), with the sessions of students a, b and c."""
    for student in ("a", "b", "c"):
        await db.put_item(TableName=settings.names.sessions_table, Item=to_item(_session(student)))
    return Tables(db, settings.names, batch_reads=True)


def test_reads_asked_together_go_as_one_batch_and_a_read_alone_as_get_item(
    settings: Settings,
) -> None:
    """An exam's start: every student of a batch reads its session, then its result row, at
    once. Those reads go as one BatchGetItem (two tables in one here, 250 keys in three), each
    reader getting its own item or None; a read alone is still a GetItem. Stores made without
    ``batch_reads`` (the API's, the Lambdas': their roles may not BatchGetItem) read one by one."""
    from proctoring.aws import RequestCounter

    async def scenario() -> None:
        async with async_clients(settings) as clients:
            db = clients.dynamodb
            tables = await _three_sessions(db, settings)
            await tables.put_result(
                {"session_id": "reads#a", "chunk_id": "camera#000001", "status": "ok"}
            )
            counter = RequestCounter().watch([db])
            found = await asyncio.gather(
                *(tables.get_session("reads", s) for s in ("a", "b", "c", "nobody", "a")),
                tables.get_result("reads#a", "camera#000001"),
                tables.get_result("reads#a", "camera#000002"),
            )
            assert [f and f.get("student_id") for f in found[:5]] == ["a", "b", "c", None, "a"]
            assert found[0] == found[4] and found[0] is not found[4], "each reader its own copy"
            assert all(f["risk"] == 0.25 for f in found[:3])
            assert found[5] is not None and found[5]["status"] == "ok"
            assert found[6] is None
            assert dict(counter.counts) == {"dynamodb.BatchGetItem": 1}

            counter.counts.clear()
            alone = await tables.get_session("reads", "b")
            assert alone is not None and alone["student_id"] == "b"
            assert dict(counter.counts) == {"dynamodb.GetItem": 1}

            counter.counts.clear()
            many = await asyncio.gather(*(tables.get_session("reads", f"x{n}") for n in range(250)))
            assert many == [None] * 250
            assert dict(counter.counts) == {"dynamodb.BatchGetItem": 3}, "100 keys a request"

            counter.counts.clear()
            one_by_one = Tables(db, settings.names)
            found = await asyncio.gather(*(one_by_one.get_session("reads", s) for s in "abc"))
            assert [f and f["student_id"] for f in found] == ["a", "b", "c"]
            assert dict(counter.counts) == {"dynamodb.GetItem": 3}
            counter.stop()

    asyncio.run(scenario())


def test_keys_dynamodb_leaves_unprocessed_are_asked_again_and_errors_reach_every_reader(
    settings: Settings,
) -> None:
    """DynamoDB may answer a BatchGetItem in part (``UnprocessedKeys``: throttled, or over 16
    MB): the rest is asked again. A failed read fails each of its readers, as their own
    GetItems would have."""

    async def scenario() -> None:
        async with async_clients(settings) as clients:
            db = clients.dynamodb
            tables = await _three_sessions(db, settings)
            calls = []

            def answer_in_part(parsed: dict[str, object], **_: object) -> None:
                # AWS's partial answer: the first call's last item comes back as unprocessed
                calls.append(1)
                responses = parsed.get("Responses")
                if len(calls) == 1 and isinstance(responses, dict):
                    table = settings.names.sessions_table
                    item = responses[table].pop()
                    key = {"exam_id": item["exam_id"], "student_id": item["student_id"]}
                    parsed["UnprocessedKeys"] = {table: {"Keys": [key], "ConsistentRead": True}}

            db.meta.events.register("after-call.dynamodb.BatchGetItem", answer_in_part)
            found = await asyncio.gather(*(tables.get_session("reads", s) for s in "abc"))
            assert [f and f["student_id"] for f in found] == ["a", "b", "c"]
            assert len(calls) == 2, "the unprocessed key asked again"
            db.meta.events.unregister("after-call.dynamodb.BatchGetItem", answer_in_part)

            FaultInjector.random(1.0, code="InternalServerError", status=500).attach(
                db, "BatchGetItem"
            )
            failed = await asyncio.gather(
                *(tables.get_session("reads", s) for s in "abc"), return_exceptions=True
            )
            assert all(isinstance(f, StorageError) for f in failed), failed

    asyncio.run(scenario())
