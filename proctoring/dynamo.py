"""The one way this project talks to DynamoDB: items, one call, one paginator, typed errors.

``DynamoStore`` is the base of every store over a table (``storage.Tables``,
``exams.ExamStore``, ``audit.AuditLog`` and the consumer's
``leases.LeaseTable``): ``_call`` makes one call within the store's
timeout, a lost condition raising ``Conflict`` and any other failure
``StorageError`` (``raise ... from`` the botocore error); ``_pages`` and
``_items`` follow ``LastEvaluatedKey`` through a query or a scan. Items are
plain dicts of Python values (``to_item``/``from_item``: floats become
Decimals on the way in and come back as floats).

With ``batch_reads`` (the consumer's tables: ``cli.services``, ``consumer.kcl``; its role
may ``BatchGetItem`` where it may ``GetItem``), ``_get_item`` reads coalesce: the consistent
reads asked in one pass of the event loop (a batch's students starting together, each
reading its session, then its result row) go as one ``BatchGetItem`` (up to 100 keys, over
any tables, ``ConsistentRead`` on each; what DynamoDB leaves unprocessed is asked again), a
read alone as the ``GetItem`` it was. At an exam's start, when every student's first chunk
finds nothing kept, that is one request a batch instead of one a student: the requests, and
the latency they queue up, of 200 students starting at once.

Errors::

    ProctoringError
     └── StorageError       a table operation failed after botocore's retries, or timed out
          ├── Conflict      a conditional write lost (exists already, wrong state, changed)
          └── InvalidItem   DynamoDB refused an item itself (too large, a bad value)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from proctoring.errors import ProctoringError

__all__ = [
    "Conflict",
    "DynamoStore",
    "InvalidItem",
    "StorageError",
    "dynamodb_call",
    "from_item",
    "pages",
    "to_item",
]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_CONDITION_LOST = ("ConditionalCheckFailedException", "TransactionCanceledException")


class StorageError(ProctoringError):
    """A table operation failed after botocore's retries."""


class Conflict(StorageError):
    """A conditional write lost: the item exists already, or is not in the expected state."""


class InvalidItem(StorageError):
    """DynamoDB refused an item itself (over 400 KB, a value it cannot store): the fault of
    what was written, not of DynamoDB's availability (``consumer.batch.is_poison``)."""


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values -> DynamoDB attribute values (None dropped)."""
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values -> Python values."""
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


async def dynamodb_call(
    db: Any, call_timeout: float, operation: str, **kwargs: Any
) -> dict[str, Any]:
    """One DynamoDB call within ``call_timeout``: a lost condition is Conflict, any other failure
    StorageError."""
    try:
        async with asyncio.timeout(call_timeout):
            result: dict[str, Any] = await getattr(db, operation)(**kwargs)
            return result
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in _CONDITION_LOST:
            raise Conflict(f"{operation} on {kwargs.get('TableName')}: condition failed") from exc
        raise StorageError(f"DynamoDB {operation} on {kwargs.get('TableName')}: {exc}") from exc
    except TimeoutError as exc:
        raise StorageError(f"DynamoDB {operation} timed out after {call_timeout} s") from exc


async def pages(
    db: Any, call_timeout: float, operation: Literal["query", "scan"], **kwargs: Any
) -> AsyncIterator[dict[str, Any]]:
    """Every response page of a query or scan, following ``LastEvaluatedKey``."""
    while True:
        response = await dynamodb_call(db, call_timeout, operation, **kwargs)
        yield response
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


_BATCH_GET = 100  # keys a BatchGetItem takes at most
_UNPROCESSED_TRIES = 8  # sends of a batch operation before what is left unprocessed fails


_Asked = tuple[str, dict[str, Any], list[asyncio.Future[Any]]]
"""A key asked for: its table, the key (Python values), the readers waiting for it."""


def _key_id(table: str, key: Mapping[str, Any]) -> tuple[str, str]:
    """A key (Python values) as something to look an answer up by."""
    return table, repr(sorted(key.items()))


class DynamoStore:
    """The base of a store over DynamoDB tables: one call, one paginator (module docstring)."""

    def __init__(self, dynamodb: Any, *, timeout: float = 10.0, batch_reads: bool = False) -> None:
        self._db = dynamodb
        self._timeout = timeout
        self._batch_reads = batch_reads
        self._asked: dict[tuple[str, str], _Asked] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return await dynamodb_call(self._db, self._timeout, operation, **kwargs)

    def _pages(
        self, operation: Literal["query", "scan"], **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        return pages(self._db, self._timeout, operation, **kwargs)

    async def _get_item(
        self, table: str, key: Mapping[str, Any], *, consistent: bool = True
    ) -> dict[str, Any] | None:
        """The item with ``key`` as Python values, or None when there is none. With
        ``batch_reads``, a consistent read joins the others asked in the same pass of the event
        loop (module docstring)."""
        if not consistent or not self._batch_reads:
            raw = await self._get_one(table, key, consistent=consistent)
            return from_item(raw) if raw is not None else None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        if not self._asked:
            loop.call_soon(self._send_asked)  # after every task of this pass has asked
        self._asked.setdefault(_key_id(table, key), (table, dict(key), []))[2].append(answer)
        return await answer

    async def _get_one(
        self, table: str, key: Mapping[str, Any], *, consistent: bool
    ) -> dict[str, Any] | None:
        """One GetItem: the item as DynamoDB gave it, or None."""
        kwargs: dict[str, Any] = {"ConsistentRead": True} if consistent else {}
        response = await self._call("get_item", TableName=table, Key=to_item(key), **kwargs)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _send_asked(self) -> None:
        asked, self._asked = list(self._asked.values()), {}
        for start in range(0, len(asked), _BATCH_GET):
            task = asyncio.ensure_future(self._read(asked[start : start + _BATCH_GET]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _read(self, asked: list[_Asked]) -> None:
        """Answer each waiting read of ``asked`` with its item (None: no item) or the error."""
        try:
            if len(asked) == 1:
                table, key, _ = asked[0]
                raw = await self._get_one(table, key, consistent=True)
                found = {_key_id(table, key): raw} if raw is not None else {}
            else:
                found = await self._batch_get(asked)
        except BaseException as exc:  # every reader gets the error, as its GetItem would have
            for _, _, waiting in asked:
                for answer in waiting:
                    if answer.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        answer.cancel()
                    else:
                        answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for table, key, waiting in asked:
            raw = found.get(_key_id(table, key))
            for answer in waiting:  # each reader its own copy, as its own GetItem gave
                if not answer.done():
                    answer.set_result(from_item(raw) if raw is not None else None)

    async def _batch_get(self, asked: list[_Asked]) -> dict[tuple[str, str], dict[str, Any]]:
        """One BatchGetItem for ``asked`` (and again for what it leaves unprocessed): the items
        found, by key."""
        names: dict[str, list[str]] = {}
        pending: dict[str, Any] = {}
        for table, key, _ in asked:
            names[table] = sorted(key)
            pending.setdefault(table, {"Keys": [], "ConsistentRead": True})
            pending[table]["Keys"].append(to_item(key))
        found: dict[tuple[str, str], dict[str, Any]] = {}
        async for response in self._until_processed("batch_get_item", pending, "UnprocessedKeys"):
            for table, items in response.get("Responses", {}).items():
                for raw in items:
                    key = from_item({name: raw[name] for name in names[table]})
                    found[_key_id(table, key)] = raw
        return found

    async def _until_processed(
        self, operation: str, pending: dict[str, Any], unprocessed: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Each response of a batch ``operation`` on ``RequestItems=pending``, sent again with
        what DynamoDB leaves unprocessed (the response's ``unprocessed``: throttled, or over
        its size limits) until nothing is; StorageError after :data:`_UNPROCESSED_TRIES`."""
        for _ in range(_UNPROCESSED_TRIES):
            response = await self._call(operation, RequestItems=pending)
            yield response
            pending = response.get(unprocessed) or {}
            if not pending:
                return
            await asyncio.sleep(0.05)  # back off before the unprocessed rest
        raise StorageError(f"DynamoDB {operation} kept part of {sorted(pending)} unprocessed")

    async def _items(
        self, operation: Literal["query", "scan"], **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Every item of every page, as Python values."""
        return [
            from_item(item)
            async for page in self._pages(operation, **kwargs)
            for item in page.get("Items", [])
        ]
