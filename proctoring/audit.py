"""An exam's audit log: append-only and hash-chained, in DynamoDB.

The audit table (``<prefix>-audit``, ``exam_id`` + ``audit_id``) holds, per
exam, what the exam's record rests on and what must outlive an erasure:
upload forms issued (and refused), face registrations and the proctor's
reregistrations, the proctor's reviews of alerts, interventions (warnings,
pauses, a session ended, a hand raised, a warning acknowledged), erasures -
who, when, what; nothing biometric, and a review's note only as its SHA-256.

An exam's log is a few chains, one per subject: ``student#<id>`` for what is
about one student (everything written today), ``exam`` for the rest. Record
*n* of a chain is stored under ``audit_id`` ``<chain>#<n, 12 digits>``,
carries ``chain``, ``seq`` = *n*, ``prev`` = the ``hash`` of record *n-1*
(``GENESIS`` for the first) and its own ``hash``: the SHA-256 of its
canonical JSON (every field but ``hash``, keys sorted, as it reads back from
DynamoDB). An append reads its chain's last record and writes the next
position only if it is free (``attribute_not_exists``): nothing is ever
overwritten, and of two writers racing for one position one wins and the
other backs off and appends after it. One chain per student keeps those
races rare: a student's requests come one after another, and two hundred
students asking for upload forms at the start of an exam write two hundred
chains, not one (one chain took 32 such writers to a standstill on the
emulator).

``verify`` recomputes every chain: an edited record no longer matches its
hash, a deleted one leaves a gap in ``seq`` and a ``prev`` that points
nowhere. The log's ``head`` is the SHA-256 over every chain's head, so one
value a report carries stands for the whole log; deleting the newest records
(or a whole chain) leaves chains that verify on their own, and only the
chain heads a report kept (``verify(records, kept=...)``) show what is gone.

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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from proctoring.dynamo import Conflict, DynamoStore, StorageError, from_item, to_item
from proctoring.exams import now_iso
from proctoring.settings import ResourceNames

__all__ = ["GENESIS", "AuditLog", "Verification", "record_hash", "verify"]

GENESIS = "0" * 64
# Appends racing for one exam's next position: one wins each round, the losers back off
# (full jitter, doubling up to _MAX_BACKOFF seconds) and append after it.
_ATTEMPTS = 24
_MAX_BACKOFF = 0.4


def record_hash(record: Mapping[str, Any]) -> str:
    """The SHA-256 of ``record`` without its ``hash``, as JSON with sorted keys (the values as
    they read back from DynamoDB, so a stored record hashes as it did when written)."""
    fields = from_item(to_item({k: v for k, v in record.items() if k != "hash"}))
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: whether every chain holds, how many records, the log's head
    (over the chains' heads), each chain's head, the first fault."""

    verified: bool
    records: int
    head: str | None
    chains: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chain_problem(chain: Sequence[Mapping[str, Any]]) -> str | None:
    previous = GENESIS
    for position, record in enumerate(chain, start=1):
        if int(record["seq"]) != position:
            return f"record {position} is missing"
        if record.get("prev") != previous:
            return f"record {position} does not follow record {position - 1}"
        if record_hash(record) != record.get("hash"):
            return f"record {position} was altered"
        previous = str(record["hash"])
    return None


def verify(
    records: Sequence[Mapping[str, Any]], *, kept: Mapping[str, str] | None = None
) -> Verification:
    """Check every chain: each ``seq`` present, each ``prev`` the hash before it, each
    ``hash`` its record's. With ``kept`` (the ``chains`` a report carried) each of those
    chains must still reach the head it had."""
    chains: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if "seq" in record:
            chains.setdefault(str(record.get("chain", "")), []).append(record)
    heads: dict[str, str] = {}
    problem: str | None = None
    for name, chain in sorted(chains.items()):
        chain.sort(key=lambda r: int(r["seq"]))
        heads[name] = str(chain[-1].get("hash"))
        found = _chain_problem(chain)
        if found is not None and problem is None:
            problem = f"{name}: {found}"
    for name, earlier in sorted((kept or {}).items()):
        if problem is None and earlier not in {r.get("hash") for r in chains.get(name, [])}:
            problem = f"{name}: the chain does not reach {earlier[:12]}"
    digest = "\n".join(f"{name} {last}" for name, last in sorted(heads.items()))
    head = hashlib.sha256(digest.encode()).hexdigest() if heads else None
    count = sum(len(c) for c in chains.values())
    return Verification(problem is None, count, head, heads, problem)


class AuditLog(DynamoStore):
    """Append to and read an exam's chains; see the module docstring."""

    def __init__(
        self,
        dynamodb: Any,
        names: ResourceNames,
        *,
        retention_days: int = 2190,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(dynamodb, timeout=timeout)
        self._table = names.audit_table
        self._retention = timedelta(days=retention_days)

    async def append(self, exam_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``record`` as the next link of its chain (its student's, or the exam's); the
        stored record (``audit_id``, ``chain``, ``seq``, ``at``, ``prev``, ``hash`` added).
        StorageError when every attempt lost the race."""
        student = record.get("student_id")
        chain = f"student#{student}" if student else "exam"
        for attempt in range(_ATTEMPTS):
            last = await self._last(exam_id, chain)
            seq = int(last["seq"]) + 1 if last else 1
            now = datetime.now(UTC)
            item: dict[str, Any] = {
                **record,
                "exam_id": exam_id,
                "audit_id": f"{chain}#{seq:012d}",
                "chain": chain,
                "seq": seq,
                "at": now_iso(now),
                "prev": str(last["hash"]) if last else GENESIS,
                "expires_at": int((now + self._retention).timestamp()),
            }
            item["hash"] = record_hash(item)
            try:
                await self._call(
                    "put_item",
                    TableName=self._table,
                    Item=to_item(item),
                    ConditionExpression="attribute_not_exists(audit_id)",
                )
            except Conflict:
                await asyncio.sleep(random.uniform(0, min(_MAX_BACKOFF, 0.01 * 2**attempt)))
                continue
            return from_item(to_item(item))
        raise StorageError(f"the audit log of {exam_id} is busy: {_ATTEMPTS} appends lost")

    async def records(self, exam_id: str) -> list[dict[str, Any]]:
        """The exam's records, oldest first."""
        records = await self._items(
            "query",
            TableName=self._table,
            KeyConditionExpression="exam_id = :e",
            ExpressionAttributeValues=to_item({":e": exam_id}),
            ConsistentRead=True,
        )
        return sorted(records, key=lambda r: (str(r.get("at", "")), str(r["audit_id"])))

    async def verify(self, exam_id: str) -> Verification:
        return verify(await self.records(exam_id))

    async def _last(self, exam_id: str, chain: str) -> dict[str, Any] | None:
        response = await self._call(
            "query",
            TableName=self._table,
            KeyConditionExpression="exam_id = :e AND begins_with(audit_id, :c)",
            ExpressionAttributeValues=to_item({":e": exam_id, ":c": f"{chain}#"}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return from_item(items[0]) if items else None
