"""moto's server: costs per request that AWS does not have, cut.

Costs per request that AWS does not have, found by profiling the emulator under the
end-to-end benchmark's load (docs/benchmarks.md, "The local stack's CPU per chunk") and
measuring it as its bucket and queue grow (``bench.emulator_growth``), are
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
  the same order (and a sort-key range of it is found by bisection,
  :mod:`infrastructure.moto_dynamodb`, as is an item's size checked once per attribute);
- a conditional write's ``ConditionExpression`` is parsed three times per item (validating
  the request, checking the transaction, writing the item), about 1 ms each, half of a
  ``TransactWriteItems``'s time: a parse is kept for the same expression, names and values
  (the syntax tree is only read when evaluated), the last 1,024 of them. Values of every
  type make the key, binary ones (bytes) included;
- SQS ``SendMessage`` (every S3 notification is one) builds all of the queue's attributes to
  read one, ``ContentBasedDeduplication``, and three of them count the queue's messages one by
  one: each send cost more the longer the queue, so a stack that fell behind fell further
  behind. Here a send reads that one attribute;
- SQS ``ReceiveMessage`` listed every visible message of the queue to take ten, and for each
  message it took built all of the queue's attributes three times (to read its retention
  period), each attribute build counting the messages: 11 ms a receive on a short queue, ~2 s
  at 3,000 messages. ``DeleteMessage`` and ``ChangeMessageVisibility`` asked every message in
  Python whether it ever had the receipt handle. So the S3/SQS emulator of the 200-student
  soak fell further behind the more it was behind (docs/operations.md, "Soak"). Here a
  receive reads the queue only as far as the messages it takes, reads the retention period
  alone, and the messages it hands out are indexed by receipt handle, so a delete or a
  visibility change finds its message directly (an identity check in C that it is still on
  the queue remains); a handle the index does not know goes to moto's own code, which answers
  as before (already deleted: nothing; unknown: ``ReceiptHandleIsInvalid``). And moto's
  record of every message it ever made, each receive's copies included (for its debugging
  page ``/moto-api/data.json``; ~3.2 kB a message, never freed), is kept empty.
"""

from __future__ import annotations

import collections
import functools
import json
import threading
from typing import Any

from infrastructure.moto_dynamodb import cut_dynamodb_costs

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
    cut_dynamodb_costs()  # on top of the partition query above, which it falls back to
    _send_reads_one_attribute()
    _receive_independent_of_queue_length()
    _keep_parses()


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


_RECEIVING = threading.local()


class _Visible:
    """A queue's visible, undelayed messages in order, found as they are iterated: moto listed
    all of them for each receive, which takes ten. True when there is one (the long poll's
    question), found the same way."""

    def __init__(self, messages: list[Any]) -> None:
        self._messages = messages

    def __iter__(self) -> Any:
        return (m for m in self._messages if m.visible and not m.delayed)

    def __bool__(self) -> bool:
        return any(True for _ in self)


class _Untracked(list[Any]):
    """moto's record of every SQS message ever made (for ``/moto-api/data.json``), each
    receive's copies included: ~3 kB a message, never freed. Kept empty."""

    def append(self, _: Any) -> None:
        return None


def _handles(queue: Any) -> dict[str, Any]:
    """The queue's messages by every receipt handle they were given (see below)."""
    index: dict[str, Any] | None = queue.__dict__.get("_proctor_handles")
    if index is None:
        index = queue.__dict__.setdefault("_proctor_handles", {})
    return index


def _receive_independent_of_queue_length() -> None:
    """SQS ``ReceiveMessage``, ``DeleteMessage`` and ``ChangeMessageVisibility`` at a cost that
    does not grow with the queue (module docstring)."""
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import Message, Queue, SQSBackend

    listed: property = Queue.messages  # type: ignore[assignment]
    receive, mark_received = SQSBackend.receive_message, Message.mark_received
    delete, change = Queue.delete_message, SQSBackend.change_message_visibility

    def messages(queue: Any) -> Any:
        receiving: Any = getattr(_RECEIVING, "queue", None)
        if receiving is queue:
            return _Visible(receiving._messages)
        return listed.fget(queue)  # type: ignore[misc]

    @functools.wraps(receive)
    def receive_message(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        outer, _RECEIVING.queue = getattr(_RECEIVING, "queue", None), backend.get_queue(queue_name)
        try:
            return receive(backend, queue_name, *args, **kwargs)
        finally:
            _RECEIVING.queue = outer  # a receive within one: a Lambda mapping's, on a send

    @functools.wraps(mark_received)
    def received(message: Any, *args: Any, **kwargs: Any) -> None:
        mark_received(message, *args, **kwargs)
        queue = getattr(_RECEIVING, "queue", None)
        if queue is not None:
            _handles(queue)[message.receipt_handle] = message

    def still_retained(backend: Any, queue_name: str, message: Any) -> bool:
        # moto built every attribute of the queue three times, each counting its messages
        retention = backend.get_queue(queue_name).message_retention_period
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    def indexed(queue: Any, receipt_handle: str) -> Any:
        """The message given this handle, if it is still on the queue (an identity scan in C:
        moto called each message's ``had_receipt_handle`` in Python)."""
        message = _handles(queue).get(receipt_handle)
        return message if message is not None and message in queue._messages else None

    @functools.wraps(delete)
    def delete_message(queue: Any, receipt_handle: str) -> None:
        message = (
            None if receipt_handle in queue.deleted_messages else indexed(queue, receipt_handle)
        )
        if message is None:  # deleted before, unknown, or never received here: moto's answer
            return delete(queue, receipt_handle)
        queue.pending_messages.discard(message)
        queue.deleted_messages.update(message.all_receipt_handles)
        with queue._messages_lock:  # as a send appends (two deletes at once must both count)
            remaining = list(queue._messages)  # a new list, as moto's: a receive may be reading
            if message in remaining:  # not deleted by another handle meanwhile
                remaining.remove(message)
                queue._messages = remaining
        for handle in message.all_receipt_handles:
            _handles(queue).pop(handle, None)
        return None

    @functools.wraps(change)
    def change_message_visibility(
        backend: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = backend.get_queue(queue_name)
        message = indexed(queue, receipt_handle)
        if message is None:
            return change(backend, queue_name, receipt_handle, visibility_timeout)
        # moto's own steps for the message it would have found
        until = unix_time_millis() + int(visibility_timeout) * 1000
        if until - message.sent_timestamp > 43200 * 1000:
            raise InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: "
                "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if message.visible and message in queue.pending_messages:
            queue.pending_messages.remove(message)
        return None

    Message.instances_tracked = _Untracked()  # type: ignore[attr-defined]
    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign,assignment]
    Message.mark_received = received  # type: ignore[method-assign,assignment]
    SQSBackend.is_message_valid_based_on_retention_period = still_retained  # type: ignore[method-assign,assignment]
    Queue.delete_message = delete_message  # type: ignore[method-assign,assignment]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign,assignment]


_PARSES = 1024


def _typed(value: Any) -> list[str]:
    """What JSON cannot write (bytes, sets), written with its type: equal only to itself."""
    if isinstance(value, set | frozenset):
        return [type(value).__name__, *sorted(map(repr, value))]
    return [type(value).__name__, repr(value)]


def _keep_parses() -> None:
    """Keep the last :data:`_PARSES` condition expressions' parses (module docstring)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parse = ConditionExpressionParser.parse
    kept: collections.OrderedDict[tuple[str, ...], tuple[Any, list[str], list[str]]] = (
        collections.OrderedDict()
    )
    lock = threading.Lock()

    @functools.wraps(parse)
    def kept_parse(parser: Any) -> Any:
        # moto hands binary values (B, BS) over as bytes, which JSON cannot write: this key
        # once raised TypeError for them, a 500 that botocore retried until the caller gave
        # up (a proctor's re-registration keeps the old face's binary embedding)
        key = (
            str(parser.condition_expression),
            json.dumps(parser.expression_attribute_names, sort_keys=True, default=_typed),
            json.dumps(parser.expression_attribute_values, sort_keys=True, default=_typed),
        )
        with lock:
            found = kept.get(key)
            if found is not None:
                kept.move_to_end(key)
        if found is None:
            op = parse(parser)  # raises for a bad expression: nothing kept
            found = (op, list(parser.expr_attr_names_found), list(parser.expr_attr_values_found))
            with lock:
                kept[key] = found
                if len(kept) > _PARSES:
                    kept.popitem(last=False)
        else:  # what the parse records for the request's validation, as a parse would
            parser.expr_attr_names_found.extend(found[1])
            parser.expr_attr_values_found.extend(found[2])
        return found[0]

    ConditionExpressionParser.parse = kept_parse  # type: ignore[method-assign,assignment]
