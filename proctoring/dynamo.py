"""One DynamoDB call the way the exams and audit stores make it: within a timeout, a lost
condition as ``Conflict``, any other failure as ``StorageError``; and paged queries.

Errors::

    ProctoringError
     └── storage.StorageError
          └── Conflict          a conditional write lost (exists already, wrong state)
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError

from proctoring.storage import StorageError, from_item

__all__ = ["Conflict", "dynamodb_call", "query_all"]


class Conflict(StorageError):
    """A conditional write lost: the item exists already, or is not in the expected state."""


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
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            raise Conflict(f"{operation} on {kwargs.get('TableName')}: condition failed") from exc
        raise StorageError(f"DynamoDB {operation} on {kwargs.get('TableName')}: {exc}") from exc
    except TimeoutError as exc:
        raise StorageError(f"DynamoDB {operation} timed out after {call_timeout} s") from exc


async def query_all(db: Any, call_timeout: float, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a query finds, page after page (consistent reads on the table itself)."""
    items: list[dict[str, Any]] = []
    if "IndexName" not in kwargs:
        kwargs["ConsistentRead"] = True
    while True:
        response = await dynamodb_call(db, call_timeout, "query", **kwargs)
        items.extend(from_item(i) for i in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
