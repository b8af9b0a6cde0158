"""moto's server: costs per request that AWS does not have, cut.

Four costs per request that AWS does not have, found by profiling the emulator under the
end-to-end benchmark's load (docs/benchmarks.md, "The local stack's CPU per chunk"), are
cut (:func:`cut_request_costs`, run by :mod:`infrastructure.moto_server`), none of them
changing an answer:

- moto's dispatcher asks, for every request, whether its host names a moto module by listing
  moto's package directory and ``stat``-ing each entry (~150 system calls, ~1.7 ms of the
  ~3 ms a small request costs): the list is read once;
- its response class lists its own methods with ``inspect.getmembers`` for every request to
  check the action exists (~0.8 ms): once per class;
- a DynamoDB ``Query`` on a table's key sorts every item of the table, then keeps those of
  the queried partition: a cost that grows with the table (the results table gains a row per
  chunk; 10 ms a query at 1,500 rows, and the load generator follows results with queries).
  Here a query of a table's own key (no index) reads only its partition; the same items in
  the same order;
- SQS ``SendMessage`` (every S3 notification is one) builds all of the queue's attributes to
  read one, ``ContentBasedDeduplication``, and three of them count the queue's messages one by
  one: each send cost more the longer the queue, so a stack that fell behind fell further
  behind. Here a send reads that one attribute.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

__all__ = ["cut_request_costs"]

_IN_QUERY = threading.local()


def cut_request_costs() -> None:
    """The per-request costs of the module docstring, cut (idempotent)."""
    from moto import backends
    from moto.core import responses
    from moto.dynamodb.models.table import Table

    if getattr(backends.list_of_moto_modules, "_once", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)

    query, all_items = Table.query, Table.all_items

    @functools.wraps(query)
    def partition_query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # positional as moto's backend calls it: index_name is the eighth argument
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None:
            return query(table, hash_key, *args, **kwargs)
        _IN_QUERY.partition = (table, hash_key)
        try:
            return query(table, hash_key, *args, **kwargs)
        finally:
            _IN_QUERY.partition = None

    @functools.wraps(all_items)
    def partition_items(table: Any) -> list[Any]:
        partition = getattr(_IN_QUERY, "partition", None)
        if partition is None or partition[0] is not table:
            return all_items(table)
        hash_key = partition[1]
        if hash_key not in table.items:  # a defaultdict: do not create the partition
            return []
        if not table.range_key_attr:
            return [table.items[hash_key]]
        return sorted(table.items[hash_key].values(), key=lambda item: item.range_key)

    Table.query = partition_query  # type: ignore[method-assign,assignment]
    Table.all_items = partition_items  # type: ignore[method-assign,assignment]
    _send_reads_one_attribute()


_SENDING = threading.local()


def _send_reads_one_attribute() -> None:
    """SQS's send reads ``ContentBasedDeduplication`` only (module docstring)."""
    from moto.sqs.models import Queue, SQSBackend

    attributes: property = Queue.attributes  # type: ignore[assignment]
    send = SQSBackend.send_message

    def one_attribute(queue: Any) -> dict[str, Any]:
        if not getattr(_SENDING, "on", False):
            return attributes.fget(queue)  # type: ignore[misc]
        if not queue.fifo_queue:  # a FIFO attribute: absent from a standard queue's
            return {}
        value = queue.content_based_deduplication
        return {
            "ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value
        }

    @functools.wraps(send)
    def send_message(backend: Any, *args: Any, **kwargs: Any) -> Any:
        _SENDING.on = True
        try:
            return send(backend, *args, **kwargs)
        finally:
            _SENDING.on = False

    Queue.attributes = property(one_attribute)  # type: ignore[assignment,method-assign]
    SQSBackend.send_message = send_message  # type: ignore[method-assign,assignment]
