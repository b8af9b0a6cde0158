"""The exam's audit log on the emulator: appends chain, nothing is overwritten, and an edited,
deleted or cut-off record, or a whole chain gone, is found."""

from __future__ import annotations

import asyncio
import hashlib
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


def _append(
    settings: Settings, exam_id: str, *actions: str, student: str | None = None
) -> list[dict[str, Any]]:
    async def work(log: AuditLog) -> list[dict[str, Any]]:
        for action in actions:
            record = {"action": action, "by": "p1", "deleted": {"chunks": 3}}
            await log.append(exam_id, {**record, "student_id": student})
        return await log.records(exam_id)

    return _with_log(settings, work)


def test_records_chain_each_to_the_one_before(settings: Settings) -> None:
    records = _append(settings, "ex1", "registration", "uploads_issued", "review")
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert [r["prev"] for r in records] == [GENESIS, records[0]["hash"], records[1]["hash"]]
    assert all(record_hash(r) == r["hash"] and r["chain"] == "exam" for r in records)
    found = verify(records)
    assert (found.verified, found.records, found.chains) == (True, 3, {"exam": records[2]["hash"]})
    assert found.head == hashlib.sha256(f"exam {records[2]['hash']}".encode()).hexdigest()
    assert verify(_append(settings, "ex2")).as_dict()["records"] == 0, "exams chain apart"


def test_each_student_has_a_chain_and_the_head_covers_them_all(settings: Settings) -> None:
    """Appends about different students never race each other (two hundred students asking
    for upload forms at an exam's start), and one head still stands for the whole log."""
    _append(settings, "ex1", "registration", "uploads_issued", student="s1")
    _append(settings, "ex1", "registration", student="s2")
    records = _append(settings, "ex1", "review")
    assert sorted((r["chain"], r["seq"]) for r in records) == [
        ("exam", 1), ("student#s1", 1), ("student#s1", 2), ("student#s2", 1),
    ]  # fmt: skip
    found = verify(records)
    assert found.verified and set(found.chains) == {"exam", "student#s1", "student#s2"}
    without_s2 = verify([r for r in records if r["chain"] != "student#s2"])
    assert without_s2.verified and without_s2.head != found.head, "the head moves"
    gone = verify([r for r in records if r["chain"] != "student#s2"], kept=found.chains)
    assert gone.problem == f"student#s2: the chain does not reach {found.chains['student#s2'][:12]}"


def test_appends_racing_for_one_exam_make_one_chain(settings: Settings) -> None:
    """Two writers reading the same head race for one position: the conditional put lets one
    win; the other re-reads and appends after it. Nothing is lost or overwritten."""

    async def work(log: AuditLog) -> list[dict[str, Any]]:
        await asyncio.gather(*(log.append("ex1", {"action": f"a{i}"}) for i in range(8)))
        return await log.records("ex1")

    records = _with_log(settings, work)
    assert sorted(r["action"] for r in records) == [f"a{i}" for i in range(8)]
    assert sorted(r["seq"] for r in records) == list(range(1, 9))
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
        (lambda rs: rs[1].update(by="someone else"), "exam: record 2 was altered"),
        (lambda rs: rs[1].update(deleted={"chunks": 0}), "exam: record 2 was altered"),
        (lambda rs: rs.pop(1), "exam: record 2 is missing"),
        (lambda rs: rs.pop(0), "exam: record 1 is missing"),
        (lambda rs: rs[1].update(prev=GENESIS, hash=record_hash({**rs[1], "prev": GENESIS})),
         "exam: record 2 does not follow record 1"),
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
    reported = verify(records).chains
    assert verify(records[:-1]).verified, "a shorter chain holds on its own"
    cut = verify(records[:-1], kept=reported)
    assert cut.problem == f"exam: the chain does not reach {reported['exam'][:12]}"
    older = verify(records[:1]).chains
    assert verify(records, kept=older).verified, "an older head is reached"
