"""DynamoDB tables of the service, over aiobotocore.

One class, ``Tables``, owns every read and write; items are plain dicts of
Python values (floats become Decimals on the way in and come back as
floats). Writes that must happen once are conditional, so a replayed batch
changes nothing:

- results: ``session_id`` (exam#student), ``chunk_id`` (source#sequence) - one row per chunk,
  written once: a later write of the same chunk finds the first row and changes nothing (only
  a ``parked`` error row gives way, to the replay of its record);
- alerts: ``exam_id``, ``alert_id`` (deterministic per incident) - created once, in the
  sparse ``outbox`` index until it is marked ``published`` after SNS accepted it;
- sessions: ``exam_id``, ``student_id`` - rule state (``proctoring.session_item``) with an
  optimistic ``version``; the consumer writes a student's new result rows with it, all or
  nothing, several students' in one transaction (``save_sessions``, ``proctoring.transactions``);
- faces: ``exam_id``, ``student_id`` - the registered face embedding (biometric: never logged);
- errors: ``exam_id``, ``error_id`` - bad input a human can inspect.

Every call goes through ``proctoring.dynamo.DynamoStore`` (timeout, errors,
pagination).

Errors::

    ProctoringError
     └── StorageError             (proctoring.dynamo)
          └── Conflict            a conditional write lost (proctoring.dynamo)
               └── StaleState     the session state changed under us (another writer)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proctoring import session_item
from proctoring.dynamo import Conflict, DynamoStore, StorageError, from_item, to_item
from proctoring.settings import ResourceNames
from proctoring.transactions import write_units

__all__ = [
    "RESULTS_PER_SAVE",
    "SessionSave",
    "StaleState",
    "StorageError",
    "Tables",
    "from_item",
    "to_item",
]

_OUTBOX = "pending"  # the one partition of the alerts' outbox index
RESULTS_PER_SAVE = 99
"""Result rows written in one transaction with a session (DynamoDB allows 100 items)."""


class StaleState(Conflict):
    """A conditional state update lost against another writer."""


@dataclass(frozen=True)
class SessionSave:
    """A student's session to write with ``version = expected_version + 1``, and the new
    result rows that go with it (``Tables.save_sessions``)."""

    session: Mapping[str, Any]
    expected_version: int
    results: Sequence[Mapping[str, Any]] = ()


class Tables(DynamoStore):
    """Every table access of the service; see the module docstring."""

    def __init__(
        self,
        dynamodb: Any,
        names: ResourceNames,
        *,
        timeout: float = 10.0,
        batch_reads: bool = False,
    ) -> None:
        super().__init__(dynamodb, timeout=timeout, batch_reads=batch_reads)
        self._names = names

    # ---- results ---------------------------------------------------------------
    def _new_result(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """A Put of a result row only if the chunk has none (a ``parked`` row gives way)."""
        return {
            "TableName": self._names.results_table,
            "Item": to_item(result),
            "ConditionExpression": (
                "attribute_not_exists(chunk_id) OR (#s = :error AND error_reason = :parked)"
            ),
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": to_item({":error": "error", ":parked": "parked"}),
        }

    async def put_result(self, result: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write a chunk's result row unless the chunk has one; None when this call wrote it,
        else the row that was there (unchanged). A row left ``parked`` (``ChunkProcessor.park``)
        gives way to the replay of its record."""
        try:
            await self._call("put_item", **self._new_result(result))
        except Conflict as exc:
            existing = await self.get_result(result["session_id"], result["chunk_id"])
            if existing is None:  # erased between the two calls: nothing to keep
                raise StorageError(f"result {result['chunk_id']} vanished after a write") from exc
            return existing
        return None

    async def get_result(self, session_id: str, chunk_id: str) -> dict[str, Any] | None:
        return await self._get_item(
            self._names.results_table, {"session_id": session_id, "chunk_id": chunk_id}
        )

    async def results(self, session_id: str) -> list[dict[str, Any]]:
        return await self._query(self._names.results_table, "session_id", session_id)

    async def results_after(
        self, session_id: str, after_chunk_id: str, fields: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """The session's result rows whose ``chunk_id`` sorts after ``after_chunk_id``, with
        only ``fields`` (a load test follows thousands of sessions without re-reading rows)."""
        return await self._query(
            self._names.results_table,
            "session_id",
            session_id,
            extra_condition=("chunk_id > :after", {":after": after_chunk_id}),
            fields=fields,
        )

    # ---- alerts ----------------------------------------------------------------
    async def create_alert(self, alert: Mapping[str, Any]) -> bool:
        """Create an alert unless its id exists; True when this call created it."""
        try:
            await self._call(
                "put_item",
                TableName=self._names.alerts_table,
                # `outbox` puts it in the sparse outbox index until it is published
                Item=to_item({**alert, "published": False, "outbox": _OUTBOX}),
                ConditionExpression="attribute_not_exists(alert_id)",
            )
        except Conflict:
            return False
        return True

    async def get_alert(self, exam_id: str, alert_id: str) -> dict[str, Any] | None:
        return await self._get_item(
            self._names.alerts_table, {"exam_id": exam_id, "alert_id": alert_id}
        )

    async def mark_alert_published(self, exam_id: str, alert_id: str, message_id: str) -> None:
        await self._call(
            "update_item",
            TableName=self._names.alerts_table,
            Key=to_item({"exam_id": exam_id, "alert_id": alert_id}),
            UpdateExpression="SET published = :t, message_id = :m REMOVE outbox",
            ExpressionAttributeValues=to_item({":t": True, ":m": message_id}),
        )

    async def unpublished_alerts(self, created_before: str) -> list[dict[str, Any]]:
        """Alerts created before ``created_before`` (ISO time), not yet published, oldest first."""
        return await self._items(
            "query",
            TableName=self._names.alerts_table,
            IndexName="outbox",
            KeyConditionExpression="outbox = :o AND created_at < :t",
            ExpressionAttributeValues=to_item({":o": _OUTBOX, ":t": created_before}),
        )

    async def alerts(self, exam_id: str) -> list[dict[str, Any]]:
        return await self._query(self._names.alerts_table, "exam_id", exam_id)

    async def review_alert(
        self, exam_id: str, alert_id: str, review: Mapping[str, Any], *, status: str
    ) -> dict[str, Any] | None:
        """Append a proctor's review and set the alert's status; None for an unknown alert."""
        try:
            response = await self._call(
                "update_item",
                TableName=self._names.alerts_table,
                Key=to_item({"exam_id": exam_id, "alert_id": alert_id}),
                UpdateExpression=(
                    "SET #s = :s, reviews = list_append(if_not_exists(reviews, :none), :r)"
                ),
                ConditionExpression="attribute_exists(alert_id)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=to_item(
                    {":s": status, ":r": [dict(review)], ":none": []}
                ),
                ReturnValues="ALL_NEW",
            )
        except Conflict:
            return None
        return from_item(response["Attributes"])

    async def delete_rows(self, table: str, keys: list[dict[str, Any]]) -> int:
        """Delete items by key, 25 a batch, retrying what DynamoDB leaves unprocessed."""
        for start in range(0, len(keys), 25):
            batch = keys[start : start + 25]
            pending = {table: [{"DeleteRequest": {"Key": to_item(k)}} for k in batch]}
            async for _ in self._until_processed("batch_write_item", pending, "UnprocessedItems"):
                pass
        return len(keys)

    # ---- sessions (rule state) --------------------------------------------------
    async def get_session(self, exam_id: str, student_id: str) -> dict[str, Any] | None:
        """The session as the worker uses it (``proctoring.session_item``), or None."""
        item = await self._get_item(
            self._names.sessions_table, {"exam_id": exam_id, "student_id": student_id}
        )
        return session_item.decode(item) if item is not None else None

    async def save_session(
        self,
        session: Mapping[str, Any],
        *,
        expected_version: int,
        results: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Write the session with ``version = expected_version + 1``, or raise StaleState.

        With ``results`` (at most ``RESULTS_PER_SAVE`` rows of chunks that have none yet),
        the rows and the session are one ``TransactWriteItems``: all written, or, when the
        session moved or one of the rows exists after all, none (StaleState).

        Returns the item as written, as a read would give it back (None values dropped,
        numbers and binaries as DynamoDB returns them): what ``consumer.sessions`` keeps.
        """
        (outcome,) = await self.save_sessions([SessionSave(session, expected_version, results)])
        if isinstance(outcome, StorageError):
            raise outcome
        return outcome

    async def save_sessions(
        self, saves: Sequence[SessionSave]
    ) -> list[dict[str, Any] | StorageError]:
        """Several students' ``save_session`` in as few ``TransactWriteItems`` as DynamoDB's
        limits allow (``proctoring.transactions.pack``: 100 items, 4 MB; a student's rows
        and session always in the same one); one item alone is a ``PutItem``.

        Each save is all or nothing, as with ``save_session``. When DynamoDB cancels a
        transaction because conditions failed (``ConditionalCheckFailed`` for some items,
        ``None`` for the others), the saves owning the failed items are stale and the
        transaction is sent again without them, so the others are written once and nothing
        of theirs is lost. Any other cancellation (``TransactionConflict``, throttling) or
        failure is every save's of that transaction: the caller's retry policy applies.

        Returns, per save in order: the session as written (as ``save_session`` returns
        it), ``StaleState`` (its session moved, or one of its rows exists), or the
        ``StorageError`` its transaction failed with. Nothing is raised for a save.
        """
        units = [self._session_puts(save) for save in saves]
        written = await write_units(self._call, [puts for puts, _ in units])
        return [
            session_item.decode(from_item(item)) if outcome is None
            else _stale_state(save, outcome) if isinstance(outcome, Conflict)
            else outcome
            for save, (_, item), outcome in zip(saves, units, written, strict=True)
        ]  # fmt: skip

    def _session_puts(self, save: SessionSave) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A save's transaction items (its rows, then the session) and the session item."""
        if len(save.results) > RESULTS_PER_SAVE:
            raise ValueError(f"at most {RESULTS_PER_SAVE} result rows with a session")
        version = save.expected_version
        item = to_item(session_item.encode({**save.session, "version": version + 1}))
        put: dict[str, Any] = {"TableName": self._names.sessions_table, "Item": item}
        if version == 0:
            put["ConditionExpression"] = "attribute_not_exists(student_id)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = to_item({":v": version})
        return [{"Put": self._new_result(r)} for r in save.results] + [{"Put": put}], item

    async def students_by_risk(
        self, exam_id: str, fields: tuple[str, ...] | None = None
    ) -> list[dict[str, Any]]:
        """The exam's student sessions, highest risk first (the exam's #policy item left out);
        with ``fields``, only those attributes (and ``student_id``) of each."""
        items = await self._query(
            self._names.sessions_table,
            "exam_id",
            exam_id,
            fields=None if fields is None else ("student_id", *fields),
        )
        students = [i for i in items if not str(i.get("student_id", "")).startswith("#")]
        return sorted(students, key=lambda i: (-float(i.get("risk") or 0), i["student_id"]))

    # ---- faces (the local engine's collection) ------------------------------------
    async def put_face(self, face: Mapping[str, Any]) -> None:
        await self._call("put_item", TableName=self._names.faces_table, Item=to_item(face))

    async def keep_superseded_face(
        self, exam_id: str, student_id: str, previous: Mapping[str, Any]
    ) -> None:
        """Keep ``previous`` (the faces item a new registration replaced) inside the student's
        new faces item, under ``superseded``, with the ones it had superseded itself: both
        enrolments stay, in the one item erasure deletes."""
        earlier = list(previous.get("superseded") or [])
        kept = {k: v for k, v in previous.items() if k not in ("exam_id", "student_id")}
        kept.pop("superseded", None)
        await self._call(
            "update_item",
            TableName=self._names.faces_table,
            Key=to_item({"exam_id": exam_id, "student_id": student_id}),
            UpdateExpression="SET superseded = :s",
            ConditionExpression="attribute_exists(student_id)",
            ExpressionAttributeValues=to_item({":s": [*earlier, kept]}),
        )

    async def get_face(self, exam_id: str, student_id: str) -> dict[str, Any] | None:
        return await self._get_item(
            self._names.faces_table,
            {"exam_id": exam_id, "student_id": student_id},
            consistent=False,
        )

    # ---- errors ------------------------------------------------------------------
    async def put_error(self, record: Mapping[str, Any]) -> None:
        """Record bad input; the same error written twice is one row (deterministic id)."""
        await self._call("put_item", TableName=self._names.errors_table, Item=to_item(record))

    async def errors(self, exam_id: str) -> list[dict[str, Any]]:
        return await self._query(self._names.errors_table, "exam_id", exam_id)

    async def parked(self) -> list[dict[str, Any]]:
        """Every parked record (``stage = parked``) of every exam: a scan, for operators."""
        items = await self._items(
            "scan",
            TableName=self._names.errors_table,
            FilterExpression="stage = :p",
            ExpressionAttributeValues=to_item({":p": "parked"}),
            ConsistentRead=True,
        )
        return sorted(items, key=lambda i: i["created_at"])

    async def mark_replayed(
        self, exam_id: str, error_id: str, *, at: str, sequence_number: str
    ) -> None:
        await self._call(
            "update_item",
            TableName=self._names.errors_table,
            Key=to_item({"exam_id": exam_id, "error_id": error_id}),
            UpdateExpression="SET replayed_at = :a, replay_sequence_number = :s",
            ExpressionAttributeValues=to_item({":a": at, ":s": sequence_number}),
        )

    async def delete_face(self, exam_id: str, student_id: str) -> None:
        await self._call(
            "delete_item",
            TableName=self._names.faces_table,
            Key=to_item({"exam_id": exam_id, "student_id": student_id}),
        )

    async def delete_session(self, exam_id: str, student_id: str) -> None:
        await self._call(
            "delete_item",
            TableName=self._names.sessions_table,
            Key=to_item({"exam_id": exam_id, "student_id": student_id}),
        )

    # ---- helpers -------------------------------------------------------------------
    async def _query(
        self,
        table: str,
        key: str,
        value: str,
        *,
        extra_condition: tuple[str, dict[str, Any]] | None = None,
        fields: tuple[str, ...] | None = None,
    ) -> list[dict[str, Any]]:
        """The items of ``key = value`` (and ``extra_condition``), with only ``fields`` if given."""
        condition = f"{key} = :k"
        values: dict[str, Any] = {":k": value}
        if extra_condition is not None:
            condition += f" AND {extra_condition[0]}"
            values.update(extra_condition[1])
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": to_item(values),
            "ConsistentRead": True,
        }
        if fields is not None:
            names = {f"#f{i}": name for i, name in enumerate(fields)}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        return await self._items("query", **kwargs)


def _stale_state(save: SessionSave, cause: BaseException) -> StaleState:
    """The StaleState of a save whose session moved or one of whose rows exists."""
    session = save.session
    stale = StaleState(
        f"session {session['exam_id']}#{session['student_id']} moved past version "
        f"{save.expected_version}"
        + (f", or one of {len(save.results)} result rows exists" if save.results else "")
    )
    stale.__cause__ = cause.__cause__ or cause  # the botocore error
    return stale
