"""moto's server with its Kinesis operations serialised: what ``infrastructure.emulator`` runs.

``python -m infrastructure.moto_server -H 127.0.0.1 -p PORT`` is ``python -m moto.server``
with one change. moto's server answers requests on threads, and its Kinesis shard numbers
a new record ``max + 1`` without a lock ("not safe for concurrency", says its source): two
PutRecords at once give two records one sequence number and the later replaces the
earlier, so chunk events were lost under load (found by ``make soak``; proved by
``tests/infrastructure/test_emulator.py``). GetRecords iterates the same dict a put grows.
Here every Kinesis operation that reads or changes a shard's records or the shard list
holds one lock in the emulator's process: Kinesis requests are cheap in moto, so
serialising them costs the local stack little. Nothing changes in AWS, whose Kinesis has
no such race.

The other change: moto's ``TransactWriteItems`` backs up every table it touches with a deep
copy before it starts, to put the copy back if the transaction is cancelled. The results
table grows by a row per chunk, so each transaction cost more than the last (the 50-student
end-to-end run's latency grew without bound once the consumer wrote a student's rows and
session in one transaction), and restoring a whole table undid other requests' writes made
meanwhile. Here the backup is of the items the transaction names, restored one by one
(:func:`backup_items_only`); what a cancelled transaction leaves is the same.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SERIALISED", "backup_items_only", "main", "serialise_kinesis"]

SERIALISED = (
    "put_record",
    "put_records",
    "get_records",
    "get_shard_iterator",
    "split_shard",
    "merge_shards",
    "update_shard_count",
    "list_shards",
    "describe_stream",
    "describe_stream_summary",
)
"""The methods of moto's ``KinesisBackend`` that run under the lock."""

_LOCK = threading.RLock()  # re-entrant: put_records may call other guarded methods


def serialise_kinesis() -> None:
    """Make the :data:`SERIALISED` methods of moto's Kinesis backend hold one lock."""
    from moto.kinesis.models import KinesisBackend

    for name in SERIALISED:
        original = getattr(KinesisBackend, name)
        if getattr(original, "_serialised", False):
            continue  # already done in this process
        setattr(KinesisBackend, name, _guarded(original))


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return original(*args, **kwargs)

    guarded._serialised = True  # type: ignore[attr-defined]
    return guarded


_IN_TRANSACTION = threading.local()


def backup_items_only() -> None:
    """Make moto's ``transact_write_items`` back up only the items it names (see above)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "_items_only", False):
        return  # already done in this process

    def table_copy(table: Any, memo: dict[int, Any]) -> Any:
        """A table's deep copy, except inside a transaction: the table itself."""
        if getattr(_IN_TRANSACTION, "on", False):
            return table
        copied = object.__new__(type(table))
        memo[id(table)] = copied
        for name, value in table.__dict__.items():
            setattr(copied, name, copy.deepcopy(value, memo))
        return copied

    @functools.wraps(original)
    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        before = _items_before(backend, transact_items)
        _IN_TRANSACTION.on = True
        try:
            original(backend, transact_items)
        except Exception:
            for table_name, key, item in before:
                if item is None:
                    backend.delete_item(table_name, key)
                else:
                    backend.put_item(table_name, item)
            raise
        finally:
            _IN_TRANSACTION.on = False

    transact_write_items._items_only = True  # type: ignore[attr-defined]
    Table.__deepcopy__ = table_copy  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]


def _items_before(
    backend: Any, transact_items: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """Each named item's table, key and attributes now (DynamoDB JSON; None: it does not
    exist), read before the transaction writes anything."""
    before = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        table_name = op.get("TableName")
        if table_name not in backend.tables:
            continue  # moto refuses the transaction before it writes anything
        table = backend.get_table(table_name)
        if "Item" in op:
            names = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
            key = {n: op["Item"][n] for n in names if n in op["Item"]}
        else:
            key = op.get("Key") or {}
        if not key:
            continue  # moto refuses an item without its key before it writes anything
        current = backend.get_item(table_name, key)
        attributes = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        before.append((table_name, key, attributes))
    return before


def main(argv: list[str] | None = None) -> None:
    """moto's server (its own command line), Kinesis serialised, transactions' backups
    of the items they name only."""
    from moto.server import main as moto_main

    serialise_kinesis()
    backup_items_only()
    moto_main(argv)


if __name__ == "__main__":
    main()
