"""The one DynamoDB base on the emulator: every store pages the same way, and a lost condition,
a failed call and a timeout surface as the same typed errors in all of them."""

from __future__ import annotations

import asyncio

import pytest

from consumer.leases import Lease, LeaseLost, LeaseTable
from proctoring.aws import async_clients
from proctoring.dynamo import Conflict, DynamoStore, StorageError, to_item
from proctoring.exams import ExamStore
from proctoring.settings import Settings
from proctoring.storage import StaleState, Tables


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
