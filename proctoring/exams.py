"""Exams, enrolments and channel messages, in DynamoDB.

The exams table (``<prefix>-exams``) holds one partition per exam, keyed
``exam_id`` + ``item``:

- ``exam``: the exam itself - its proctor, title, status (created -> started
  -> stopped), the Chime meeting, channel and capture pipeline;
- ``student#<student_id>``: a student's enrolment - joined, consent (policy
  version and time), registered;
- ``attendee#<attendee_id>``: who a Chime meeting attendee is - ``role``
  ``student`` (with ``student_id``, so erasure finds it) or ``proctor`` (with
  ``user_id``); written by the API when it creates the attendee, read by the
  chunk router to turn a capture pipeline's video chunk into that student's;
- ``msg#<time>#<id>``: the exam channel's messages when no Chime app instance
  is configured (the local channel): chat between the proctor and a student,
  alerts the forwarder posted; ``student_id`` names the thread;
- ``fwd#<alert_id>``: the forwarder's claim on an alert, so each alert is
  posted once however often SNS delivers it.

Exam items carry ``proctor_id``; the sparse ``by-proctor`` index lists a
proctor's exams. The exam's audit log is ``proctoring.audit``.

Errors::

    ProctoringError
     └── StorageError           (proctoring.dynamo, as every store's)
          └── Conflict          a conditional write lost (exists already, wrong state)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from proctoring.dynamo import Conflict, DynamoStore, from_item, to_item
from proctoring.settings import ResourceNames

__all__ = [
    "EXAM_ITEM",
    "AttendeeRole",
    "Conflict",
    "ExamStatus",
    "ExamStore",
    "is_message_item",
    "message_item",
    "now_iso",
]

ExamStatus = Literal["created", "started", "stopped"]
AttendeeRole = Literal["student", "proctor"]
EXAM_ITEM = "exam"
_STUDENT = "student#"
_ATTENDEE = "attendee#"
_MESSAGE = "msg#"
_FORWARDED = "fwd#"
_UPLOAD = "upload#"
BY_PROCTOR_INDEX = "by-proctor"


def now_iso(now: datetime | None = None) -> str:
    """A UTC time that sorts as text: ``2026-11-27T10:00:00.123456Z``."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_item(created_at: str, message_id: str) -> str:
    return f"{_MESSAGE}{created_at}#{message_id}"


_MESSAGE_ITEM = re.compile(r"^msg#\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#[A-Za-z0-9_.-]{1,200}$")


def is_message_item(key: str) -> bool:
    """Whether ``key`` is a message's key (what the live stream sends as an event's id)."""
    return bool(_MESSAGE_ITEM.match(key))


class ExamStore(DynamoStore):
    """Every read and write of the exams table; see the module docstring."""

    def __init__(
        self,
        dynamodb: Any,
        names: ResourceNames,
        *,
        retention_days: int = 30,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(dynamodb, timeout=timeout)
        self._names = names
        self._retention = timedelta(days=retention_days)

    def expires_at(self, now: datetime | None = None) -> int:
        return int(((now or datetime.now(UTC)) + self._retention).timestamp())

    # ---- exams -------------------------------------------------------------------
    async def create_exam(self, exam: Mapping[str, Any]) -> None:
        await self._call(
            "put_item",
            TableName=self._names.exams_table,
            Item=to_item({**exam, "item": EXAM_ITEM, "expires_at": self.expires_at()}),
            ConditionExpression="attribute_not_exists(exam_id)",
        )

    async def get_exam(self, exam_id: str) -> dict[str, Any] | None:
        return await self._get(exam_id, EXAM_ITEM)

    async def status(self, exam_id: str) -> ExamStatus | None:
        """The exam's status, or None for an unknown exam (what the consumer's gate reads)."""
        response = await self._call(
            "get_item",
            TableName=self._names.exams_table,
            Key=to_item({"exam_id": exam_id, "item": EXAM_ITEM}),
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        )
        item = from_item(response["Item"]) if "Item" in response else None
        return item["status"] if item else None

    async def update_exam(
        self, exam_id: str, values: Mapping[str, Any], *, expect_status: tuple[str, ...]
    ) -> dict[str, Any]:
        """Set ``values`` on the exam if its status is one of ``expect_status``; Conflict else."""
        names = {f"#k{i}": k for i, k in enumerate(values)}
        assigned = {f":v{i}": v for i, v in enumerate(values.values())}
        allowed = {f":s{i}": s for i, s in enumerate(expect_status)}
        response = await self._call(
            "update_item",
            TableName=self._names.exams_table,
            Key=to_item({"exam_id": exam_id, "item": EXAM_ITEM}),
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(values))),
            ConditionExpression=f"#status IN ({', '.join(allowed)})",
            ExpressionAttributeNames={**names, "#status": "status"},
            ExpressionAttributeValues=to_item({**assigned, **allowed}),
            ReturnValues="ALL_NEW",
        )
        return from_item(response["Attributes"])

    async def exams_of(self, proctor_id: str) -> list[dict[str, Any]]:
        return await self._query(
            KeyConditionExpression="proctor_id = :p",
            ExpressionAttributeValues=to_item({":p": proctor_id}),
            IndexName=BY_PROCTOR_INDEX,
        )

    async def all_exams(self) -> list[dict[str, Any]]:
        items = await self._items(
            "scan",
            TableName=self._names.exams_table,
            FilterExpression="#i = :e",
            ExpressionAttributeNames={"#i": "item"},
            ExpressionAttributeValues=to_item({":e": EXAM_ITEM}),
        )
        return sorted(items, key=lambda i: str(i.get("created_at", "")))

    # ---- enrolments ----------------------------------------------------------------
    async def get_student(self, exam_id: str, student_id: str) -> dict[str, Any] | None:
        return await self._get(exam_id, _STUDENT + student_id)

    async def join(self, exam_id: str, student_id: str) -> dict[str, Any]:
        """Enrol the student (idempotent: joining twice keeps the first enrolment)."""
        item = {
            "exam_id": exam_id,
            "item": _STUDENT + student_id,
            "student_id": student_id,
            "joined_at": now_iso(),
            "expires_at": self.expires_at(),
        }
        return await self._put_once(item) or item

    async def issue_upload(
        self, exam_id: str, student_id: str, source: str, sequence: int, key: str
    ) -> str:
        """Fix the S3 key of the student's chunk ``sequence`` of ``source``, once: the key
        issued first (``key`` when this call issued it). A conditional write, so two requests
        racing for one sequence get the same key."""
        item: dict[str, Any] = {
            "exam_id": exam_id,
            "item": f"{_UPLOAD}{student_id}#{source}#{sequence:09d}",
            "student_id": student_id,
            "source": source,
            "sequence": sequence,
            "key": key,
            "issued_at": now_iso(),
            "expires_at": self.expires_at(),
        }
        existing = await self._put_once(item)
        return key if existing is None else str(existing["key"])

    async def students(self, exam_id: str) -> list[dict[str, Any]]:
        return await self._query(
            KeyConditionExpression="exam_id = :e AND begins_with(#i, :p)",
            ExpressionAttributeNames={"#i": "item"},
            ExpressionAttributeValues=to_item({":e": exam_id, ":p": _STUDENT}),
        )

    async def update_student(
        self,
        exam_id: str,
        student_id: str,
        values: Mapping[str, Any],
        *,
        expect: Mapping[str, tuple[str | None, ...]] | None = None,
    ) -> dict[str, Any]:
        """Set ``values`` on an existing enrolment; Conflict when the student has not joined,
        or when an attribute named in ``expect`` has none of its values (None: absent)."""
        names = {f"#k{i}": k for i, k in enumerate(values)}
        assigned = {f":v{i}": v for i, v in enumerate(values.values())}
        condition = "attribute_exists(exam_id)"
        for i, (name, allowed) in enumerate((expect or {}).items()):
            names[f"#e{i}"] = name
            options = [f"attribute_not_exists(#e{i})"] if None in allowed else []
            for j, value in enumerate(v for v in allowed if v is not None):
                assigned[f":e{i}x{j}"] = value
                options.append(f"#e{i} = :e{i}x{j}")
            condition += f" AND ({' OR '.join(options)})"
        response = await self._call(
            "update_item",
            TableName=self._names.exams_table,
            Key=to_item({"exam_id": exam_id, "item": _STUDENT + student_id}),
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(values))),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(assigned),
            ReturnValues="ALL_NEW",
        )
        return from_item(response["Attributes"])

    # ---- meeting attendees ------------------------------------------------------------
    async def put_attendee(
        self, exam_id: str, attendee_id: str, user_id: str, role: AttendeeRole
    ) -> None:
        """Remember who a meeting attendee is (idempotent: the same attendee, the same item)."""
        item: dict[str, Any] = {
            "exam_id": exam_id,
            "item": _ATTENDEE + attendee_id,
            "attendee_id": attendee_id,
            "role": role,
            "user_id": user_id,
            "created_at": now_iso(),
            "expires_at": self.expires_at(),
        }
        if role == "student":
            item["student_id"] = user_id
        await self._call("put_item", TableName=self._names.exams_table, Item=to_item(item))

    async def get_attendee(self, exam_id: str, attendee_id: str) -> dict[str, Any] | None:
        """The attendee's item (``role``, ``user_id``), or None for an attendee we never made."""
        return await self._get(exam_id, _ATTENDEE + attendee_id)

    # ---- the local channel's messages ------------------------------------------------
    async def put_message(self, message: Mapping[str, Any]) -> bool:
        """Store a message once; False when a message with its key exists already."""
        try:
            await self._call(
                "put_item",
                TableName=self._names.exams_table,
                Item=to_item({**message, "expires_at": self.expires_at()}),
                ConditionExpression="attribute_not_exists(exam_id)",
            )
        except Conflict:
            return False
        return True

    async def messages(
        self, exam_id: str, *, after: str | None = None, student_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The exam's messages in order, after the message key ``after``; one thread if asked.

        Only messages: an ``after`` that is not a message key never reaches the exam's other
        items (the exam, enrolments, forwarder claims) - the range starts at the messages."""
        values: dict[str, Any] = {":e": exam_id}
        if after:
            condition = "exam_id = :e AND #i BETWEEN :a AND :z"
            start = max(after + "\x00", _MESSAGE)
            end = _MESSAGE + "\uffff"
            if start > end:
                return []
            values.update({":a": start, ":z": end})
        else:
            condition = "exam_id = :e AND begins_with(#i, :p)"
            values[":p"] = _MESSAGE
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#i": "item"},
        }
        if student_id is not None:
            kwargs["FilterExpression"] = "student_id = :s"
            values[":s"] = student_id
        return await self._query(ExpressionAttributeValues=to_item(values), **kwargs)

    # ---- forwarded alerts ---------------------------------------------------------------
    async def claim_alert(self, exam_id: str, alert_id: str, student_id: str) -> str | None:
        """Claim an alert for posting: the time its message is posted under, or None when it
        was posted before. A claim left ``posting`` by a failed attempt keeps its time, so the
        retry writes the same message, not a second one; a new claim takes the time of now, so
        live streams that follow the channel by time never miss a late alert."""
        key = to_item({"exam_id": exam_id, "item": _FORWARDED + alert_id})
        posting_at = now_iso()
        try:
            await self._call(
                "put_item",
                TableName=self._names.exams_table,
                Item=to_item(
                    {
                        "exam_id": exam_id,
                        "item": _FORWARDED + alert_id,
                        "student_id": student_id,
                        "state": "posting",
                        "posting_at": posting_at,
                        "expires_at": self.expires_at(),
                    }
                ),
                ConditionExpression="attribute_not_exists(exam_id)",
            )
        except Conflict:
            response = await self._call(
                "get_item", TableName=self._names.exams_table, Key=key, ConsistentRead=True
            )
            claim = from_item(response.get("Item", {}))
            if claim.get("state") != "posting":
                return None
            return str(claim["posting_at"])
        return posting_at

    async def alert_posted(self, exam_id: str, alert_id: str, message_id: str) -> None:
        await self._call(
            "update_item",
            TableName=self._names.exams_table,
            Key=to_item({"exam_id": exam_id, "item": _FORWARDED + alert_id}),
            UpdateExpression="SET #st = :posted, message_id = :m",
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues=to_item({":posted": "posted", ":m": message_id}),
        )

    # ---- erasure -----------------------------------------------------------------------
    async def student_items(self, exam_id: str, student_id: str) -> list[dict[str, str]]:
        """Keys of every item of this table that belongs to the student."""
        items = await self._query(
            KeyConditionExpression="exam_id = :e",
            FilterExpression="student_id = :s",
            ExpressionAttributeValues=to_item({":e": exam_id, ":s": student_id}),
            ProjectionExpression="exam_id, #i",
            ExpressionAttributeNames={"#i": "item"},
        )
        return [{"exam_id": i["exam_id"], "item": i["item"]} for i in items]

    async def delete(self, key: Mapping[str, str]) -> None:
        await self._call("delete_item", TableName=self._names.exams_table, Key=to_item(key))

    # ---- helpers -------------------------------------------------------------------------
    async def _put_once(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write ``item`` unless its key exists: None when written, else the item there.

        Conflict when the item was there and is gone before it could be read (erased
        between the two calls)."""
        try:
            await self._call(
                "put_item",
                TableName=self._names.exams_table,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(exam_id)",
            )
        except Conflict:
            existing = await self._get(str(item["exam_id"]), str(item["item"]))
            if existing is None:
                raise
            return existing
        return None

    async def _get(self, exam_id: str, item: str) -> dict[str, Any] | None:
        return await self._get_item(self._names.exams_table, {"exam_id": exam_id, "item": item})

    async def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        if "IndexName" not in kwargs:  # consistent reads on the table itself
            kwargs["ConsistentRead"] = True
        return await self._items("query", TableName=self._names.exams_table, **kwargs)
