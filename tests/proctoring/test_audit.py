"""The exam's audit log on the emulator: appends chain, nothing is overwritten, and an edited,
deleted or cut-off record is found."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError

from proctoring.audit import GENESIS, AuditLog, record_hash, verify
from proctoring.aws import async_clients, sync_client
from proctoring.settings import Settings
from proctoring.storage import to_item

T = TypeVar("T")


def _with_log(settings: Settings, work: Callable[[AuditLog], Awaitable[T]]) -> T:
    async def run() -> T:
        async with async_clients(settings) as clients:
            return await work(AuditLog(clients.dynamodb, settings.names))

    return asyncio.run(run())


def _append(settings: Settings, exam_id: str, *actions: str) -> list[dict[str, Any]]:
    async def work(log: AuditLog) -> list[dict[str, Any]]:
        for action in actions:
            await log.append(exam_id, {"action": action, "by": "p1", "deleted": {"chunks": 3}})
        return await log.records(exam_id)

    return _with_log(settings, work)


def test_records_chain_each_to_the_one_before(settings: Settings) -> None:
    records = _append(settings, "ex1", "registration", "uploads_issued", "review")
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert [r["prev"] for r in records] == [GENESIS, records[0]["hash"], records[1]["hash"]]
    assert all(record_hash(r) == r["hash"] for r in records)
    assert verify(records).as_dict() == {
        "verified": True, "records": 3, "head": records[2]["hash"], "problem": None,
    }  # fmt: skip
    assert verify(_append(settings, "ex2")).as_dict()["records"] == 0, "exams chain apart"


def test_appends_racing_for_one_exam_make_one_chain(settings: Settings) -> None:
    """Two writers reading the same head race for one position: the conditional put lets one
    win; the other re-reads and appends after it. Nothing is lost or overwritten."""

    async def work(log: AuditLog) -> list[dict[str, Any]]:
        await asyncio.gather(*(log.append("ex1", {"action": f"a{i}"}) for i in range(8)))
        return await log.records("ex1")

    records = _with_log(settings, work)
    assert sorted(r["action"] for r in records) == [f"a{i}" for i in range(8)]
    assert verify(records).verified


def test_a_record_cannot_be_put_over_another(settings: Settings) -> None:
    (first,) = _append(settings, "ex1", "erasure")
    forged = {**first, "action": "nothing happened"}
    forged["hash"] = record_hash(forged)
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        sync_client(settings, "dynamodb").put_item(
            TableName=settings.names.audit_table,
            Item=to_item(forged),
            ConditionExpression="attribute_not_exists(audit_id)",
        )
    assert _append(settings, "ex1")[0]["action"] == "erasure"


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda rs: rs[1].update(by="someone else"), "record 2 was altered"),
        (lambda rs: rs[1].update(deleted={"chunks": 0}), "record 2 was altered"),
        (lambda rs: rs.pop(1), "record 2 is missing"),
        (lambda rs: rs.pop(0), "record 1 is missing"),
        (lambda rs: rs[1].update(prev=GENESIS, hash=record_hash({**rs[1], "prev": GENESIS})),
         "record 2 does not follow record 1"),
    ],
    ids=["edited", "edited-nested", "deleted", "first-deleted", "rechained"],
)  # fmt: skip
def test_an_edited_or_deleted_record_breaks_the_chain(
    settings: Settings, tamper: Callable[[list[dict[str, Any]]], Any], problem: str
) -> None:
    records = _append(settings, "ex1", "registration", "review", "erasure")
    tamper(records)
    found = verify(records)
    assert (found.verified, found.problem) == (False, problem)


def test_a_cut_off_chain_does_not_reach_the_head_a_report_carried(settings: Settings) -> None:
    records = _append(settings, "ex1", "registration", "review", "erasure")
    reported = records[-1]["hash"]
    assert verify(records[:-1]).verified, "a shorter chain holds on its own"
    cut = verify(records[:-1], head=reported)
    assert not cut.verified and cut.problem == f"the chain does not reach {reported[:12]}"
    assert verify(records, head=records[0]["hash"]).verified, "an older head is reached"
