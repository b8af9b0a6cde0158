"""An exam's audit log: append-only and hash-chained, in DynamoDB.

The audit table (``<prefix>-audit``, ``exam_id`` + ``audit_id``) holds, per
exam, what the exam's record rests on and what must outlive an erasure:
upload forms issued (and refused), face registrations and the proctor's
reregistrations, the proctor's reviews of alerts, erasures - who, when, what;
nothing biometric, and a review's note only as its SHA-256.

The records of one exam form one chain. Record *n* is stored under
``audit_id`` ``chain#<n, 12 digits>``, carries ``seq`` = *n*, ``prev`` = the
``hash`` of record *n-1* (``GENESIS`` for the first) and its own ``hash``: the
SHA-256 of its canonical JSON (every field but ``hash``, keys sorted, as it
reads back from DynamoDB). An append reads the last record and writes the
next position only if it is free (``attribute_not_exists``): nothing is ever
overwritten, and of two writers racing for one position one wins and the
other appends after it. ``verify`` recomputes the chain: an edited record no
longer matches its hash, a deleted one leaves a gap in ``seq`` and a ``prev``
that points nowhere. Deleting the newest records leaves a shorter chain that
verifies; the head a report carried (``AuditLog.head``) shows what is gone.

Errors::

    ProctoringError
     └── storage.StorageError   an append that kept losing the race, or a failed call
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from proctoring.dynamo import Conflict, dynamodb_call, query_all
from proctoring.exams import now_iso
from proctoring.settings import ResourceNames
from proctoring.storage import StorageError, from_item, to_item

__all__ = ["GENESIS", "AuditLog", "Verification", "record_hash", "verify"]

GENESIS = "0" * 64
_CHAIN = "chain#"
_ATTEMPTS = 12  # appends racing for one exam's next position; each loser re-reads and retries


def record_hash(record: Mapping[str, Any]) -> str:
    """The SHA-256 of ``record`` without its ``hash``, as JSON with sorted keys (the values as
    they read back from DynamoDB, so a stored record hashes as it did when written)."""
    fields = from_item(to_item({k: v for k, v in record.items() if k != "hash"}))
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: whether the chain holds, its length and head, the first fault."""

    verified: bool
    records: int
    head: str | None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(records: Sequence[Mapping[str, Any]], *, head: str | None = None) -> Verification:
    """Check a chain, oldest first: every ``seq`` present, every ``prev`` the hash before it,
    every ``hash`` its record's. With ``head`` (one a report carried) the chain must reach it."""
    chain = sorted((r for r in records if "seq" in r), key=lambda r: int(r["seq"]))
    previous = GENESIS
    for position, record in enumerate(chain, start=1):
        problem = None
        if int(record["seq"]) != position:
            problem = f"record {position} is missing"
        elif record.get("prev") != previous:
            problem = f"record {position} does not follow record {position - 1}"
        elif record_hash(record) != record.get("hash"):
            problem = f"record {position} was altered"
        if problem is not None:
            return Verification(False, len(chain), chain[-1].get("hash"), problem)
        previous = str(record["hash"])
    last = previous if chain else None
    if head is not None and head not in {r.get("hash") for r in chain}:
        return Verification(False, len(chain), last, f"the chain does not reach {head[:12]}")
    return Verification(True, len(chain), last)


class AuditLog:
    """Append to and read an exam's chain; see the module docstring."""

    def __init__(
        self,
        dynamodb: Any,
        names: ResourceNames,
        *,
        retention_days: int = 2190,
        timeout: float = 10.0,
    ) -> None:
        self._db = dynamodb
        self._table = names.audit_table
        self._retention = timedelta(days=retention_days)
        self._timeout = timeout

    async def append(self, exam_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``record`` as the exam's next link; the stored record (``audit_id``, ``seq``,
        ``at``, ``prev``, ``hash`` added). StorageError when every attempt lost the race."""
        for attempt in range(_ATTEMPTS):
            last = await self._last(exam_id)
            seq = int(last["seq"]) + 1 if last else 1
            now = datetime.now(UTC)
            item: dict[str, Any] = {
                **record,
                "exam_id": exam_id,
                "audit_id": f"{_CHAIN}{seq:012d}",
                "seq": seq,
                "at": now_iso(now),
                "prev": str(last["hash"]) if last else GENESIS,
                "expires_at": int((now + self._retention).timestamp()),
            }
            item["hash"] = record_hash(item)
            try:
                await dynamodb_call(
                    self._db,
                    self._timeout,
                    "put_item",
                    TableName=self._table,
                    Item=to_item(item),
                    ConditionExpression="attribute_not_exists(audit_id)",
                )
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.02 * (attempt + 1)))
                continue
            return from_item(to_item(item))
        raise StorageError(f"the audit log of {exam_id} is busy: {_ATTEMPTS} appends lost")

    async def records(self, exam_id: str) -> list[dict[str, Any]]:
        """The exam's records, oldest first."""
        return await query_all(
            self._db,
            self._timeout,
            TableName=self._table,
            KeyConditionExpression="exam_id = :e",
            ExpressionAttributeValues=to_item({":e": exam_id}),
        )

    async def verify(self, exam_id: str) -> Verification:
        return verify(await self.records(exam_id))

    async def _last(self, exam_id: str) -> dict[str, Any] | None:
        response = await dynamodb_call(
            self._db,
            self._timeout,
            "query",
            TableName=self._table,
            KeyConditionExpression="exam_id = :e AND begins_with(audit_id, :c)",
            ExpressionAttributeValues=to_item({":e": exam_id, ":c": _CHAIN}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return from_item(items[0]) if items else None
