"""moto's DynamoDB: two costs that grow with what is stored or with an item's attributes, cut.

Found by the 200-student soak (docs/operations.md, "Soak") and measured by
``bench.emulator_growth``; run by :func:`infrastructure.moto_costs.cut_request_costs`. Neither
changes an answer (``tests/infrastructure/test_moto_dynamodb.py`` compares them with moto's
own server).

- **A Query of a sort-key range** (``session_id = :s AND chunk_id > :after``, how the load
  generator follows each student's results) walked the whole partition and, for every item
  of it, matching or not, computed the item's size (a walk of its nested maps, for the 1 MB
  page limit): 28 ms of the emulator's CPU a call at ~120 rows of ~2.3 kB, growing by a row
  every 5 s. Here a table with a sort key keeps each partition's items in sort-key order
  (a ``sortedcontainers.SortedDict``, which is a dict, so moto's own reads and writes work on
  it unchanged), and a query of the table's own key (no index, no legacy ``QueryFilter``)
  finds the items its key condition matches and the ``ExclusiveStartKey``'s place by
  bisection, then takes them as moto's loop does: the same order both ways, ``Limit``, the
  1 MB page, ``LastEvaluatedKey`` where moto gives one (also when the page is full and only
  items the key condition does not match follow), ``ScannedCount``, then moto's own filter
  and projection. Cost: the items returned and a logarithm of the partition. Anything else
  (an index, a key of another type than the table's, an odd ``ExclusiveStartKey``) goes to
  moto's query. (moto refuses an item above 405,000 bytes, so an item the key condition does
  not match can end a page at 1 MB only after matched ones: the items before the matches are
  not looked at.) Since moto's server answers on threads and a sorted dict changes in many
  interpreter steps, a partition changes, and a query reads positions in it, under one lock.
- **An item's construction** (every Put of a transaction, a ``PutItem``, a ``BatchWriteItem``)
  checked DynamoDB's 400 kB item limit as each attribute was added by summing the sizes of
  all the attributes already there: quadratic in the attributes, each size a walk of nested
  maps: more than half of a ``TransactWriteItems``'s cost per item (0.9-1.1 ms an item for
  the consumer's 80-item transaction of ~2.5 kB rows before, 0.35-0.55 ms after; the soak's
  heavier rows on a busy machine, 4.3 ms). Here the running total is kept: the same limit,
  checked after each attribute as before (so the same error for the same item), once per
  attribute.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

from sortedcontainers import SortedDict

__all__ = ["cut_dynamodb_costs"]

_MAX_ITEM = 405_000
"""moto refuses an item whose attributes' sizes sum above this (``LimitedSizeDict``)."""

_RANGES = frozenset({None, "=", "<", "<=", ">", ">=", "BETWEEN", "BEGINS_WITH"})


def cut_dynamodb_costs() -> None:
    """Sorted partitions, range queries by bisection, items sized once (idempotent)."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_bisected", False):
        return
    _sorted_partitions()
    _items_sized_once()


_LOCK = threading.RLock()
"""Held while a sorted partition changes or a query reads positions in one: moto's server
answers on threads, and a dict's change is one step for the interpreter where a sorted one's
is many (two writes at once could leave the order wrong)."""


def _locked(name: str) -> Any:
    change = getattr(SortedDict, name)

    @functools.wraps(change)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return change(self, *args, **kwargs)

    return locked


class _Partition(SortedDict):
    """A partition's items by sort key, in its order: a dict whose changes hold :data:`_LOCK`,
    iterated over a copy of its keys (moto's plain dict raised ``RuntimeError`` when changed
    while iterated; a copy sees no half-made change)."""

    __setitem__ = _locked("__setitem__")
    __delitem__ = _locked("__delitem__")
    __ior__ = _locked("__ior__")
    pop = _locked("pop")
    popitem = _locked("popitem")
    clear = _locked("clear")
    setdefault = _locked("setdefault")
    update = _locked("update")

    def __iter__(self) -> Any:
        with _LOCK:
            return iter(list(self._list_iter()))


def _sorted_partitions() -> None:
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

    init: Any = Table.__init__
    query: Any = Table.query

    @functools.wraps(init)
    def table_init(table: Any, *args: Any, **kwargs: Any) -> None:
        init(table, *args, **kwargs)
        if table.range_key_attr:  # each new partition sorted by its sort key from the start
            table.items.default_factory = _Partition

    @functools.wraps(query)
    def range_query(
        table: Any,
        hash_key: Any,
        range_comparison: str | None,
        range_objs: list[Any],
        limit: int | None,
        exclusive_start_key: dict[str, Any] | None,
        scan_index_forward: bool,
        projection_expressions: Any,
        index_name: str | None = None,
        consistent_read: bool = False,
        filter_expression: Any = None,
        hash_key_conditions: Any = None,
        range_key_conditions: Any = None,
        **filter_kwargs: Any,
    ) -> Any:
        arguments = (hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                     scan_index_forward, projection_expressions, index_name, consistent_read,
                     filter_expression)  # fmt: skip
        partition = _partition(table, hash_key, range_comparison, range_objs, limit,
                               exclusive_start_key, index_name, range_key_conditions,
                               filter_kwargs)  # fmt: skip
        if partition is None:
            return query(
                table,
                *arguments,
                hash_key_conditions=hash_key_conditions,
                range_key_conditions=range_key_conditions,
                **filter_kwargs,
            )
        with _LOCK:  # positions in the partition: no change to it meanwhile
            results, last_key = _take(
                table, partition, range_comparison, range_objs, limit, exclusive_start_key,
                scan_index_forward, RESULT_SIZE_LIMIT,
            )  # fmt: skip
        scanned = len(results)
        results = copy.deepcopy(results)
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expressions:
            results = [item.project(projection_expressions) for item in results]
        return results, scanned, last_key

    range_query._bisected = True  # type: ignore[attr-defined]
    Table.__init__ = table_init  # type: ignore[method-assign,assignment]
    Table.query = range_query  # type: ignore[method-assign,assignment]


def _take(
    table: Any,
    partition: Any,
    range_comparison: str | None,
    range_objs: list[Any],
    limit: int | None,
    exclusive_start_key: dict[str, Any] | None,
    scan_index_forward: bool,
    page_limit: int,
) -> tuple[list[Any], Any]:
    """The items moto's query loop takes from the partition, and its LastEvaluatedKey."""
    lo, hi = _window(partition, range_comparison, range_objs)
    size = len(partition)
    forward = scan_index_forward is not False
    values = partition.values()

    def at(step: int) -> Any:  # the step-th item in the query's order
        return values[step if forward else size - 1 - step]

    start = 0
    if exclusive_start_key is not None:  # moto skips what comes before it, or is it
        keys = ([table.hash_key_attr], [table.range_key_attr], scan_index_forward)
        high = size
        while start < high:  # it is a prefix of the query's order: bisect it
            middle = (start + high) // 2
            if table._item_comes_before_dct(at(middle), exclusive_start_key, *keys):
                start = middle + 1
            else:
                high = middle
    first, end = (lo, hi) if forward else (size - hi, size - lo)  # the matches, in steps
    results: list[Any] = []
    taken = 0
    last_key = None
    for step in range(max(start, first), end):
        item = at(step)
        item_size = item.size()
        if len(results) == limit or taken + item_size > page_limit:
            last_key = table._get_last_evaluated_key(results[-1], None)
            break
        results.append(item)
        taken += item_size
    else:
        # moto went on through the items after the matches (none of them taken): the first
        # one ends a full page with a LastEvaluatedKey, and any of them can end it at 1 MB
        after = max(start, end)
        if after < size and results and len(results) == limit:
            last_key = table._get_last_evaluated_key(results[-1], None)
        elif results and taken + _MAX_ITEM > page_limit:
            for step in range(after, size):
                if taken + at(step).size() > page_limit:
                    last_key = table._get_last_evaluated_key(results[-1], None)
                    break
    return results, last_key


def _partition(
    table: Any,
    hash_key: Any,
    range_comparison: str | None,
    range_objs: list[Any],
    limit: int | None,
    exclusive_start_key: dict[str, Any] | None,
    index_name: str | None,
    range_key_conditions: Any,
    filter_kwargs: dict[str, Any],
) -> Any:
    """The queried partition, sorted, when the query is one this module answers; else None
    (moto answers it)."""
    if index_name is not None or hash_key is None or filter_kwargs or not table.range_key_attr:
        return None
    if range_comparison not in _RANGES or (limit is not None and limit < 1):
        return None
    if range_key_conditions and (
        len(range_key_conditions) > 1 or range_key_conditions[-1][0] != table.range_key_attr
    ):
        return None
    if any(obj.type != table.range_key_type for obj in range_objs):
        return None
    if range_comparison == "BEGINS_WITH" and (
        table.range_key_type not in ("S", "B") or len(range_objs) != 1
    ):
        return None
    if exclusive_start_key is not None:
        for name, kind in ((table.hash_key_attr, table.hash_key_type),
                           (table.range_key_attr, table.range_key_type)):  # fmt: skip
            value = exclusive_start_key.get(name)
            if not isinstance(value, dict) or len(value) != 1 or kind not in value:
                return None
    if hash_key not in table.items:  # a defaultdict: do not create the partition
        return _Partition()
    partition = table.items[hash_key]
    return partition if isinstance(partition, _Partition) else None


def _window(partition: Any, comparison: str | None, objs: list[Any]) -> tuple[int, int]:
    """The positions ``[lo, hi)`` of the partition's items whose sort key the key condition
    matches: a range, since the items are in sort-key order."""
    size = len(partition)
    if comparison is None:
        return 0, size
    if comparison == "BETWEEN":
        lo, hi = partition.bisect_left(objs[0]), partition.bisect_right(objs[1])
        return lo, max(lo, hi)
    value = objs[0]
    if comparison == "BEGINS_WITH":
        lo = hi = partition.bisect_left(value)
        prefix = value.cast_value
        for key in partition.islice(lo):
            if not key.cast_value.startswith(prefix):
                break
            hi += 1
        return lo, hi
    return {
        "=": lambda: (partition.bisect_left(value), partition.bisect_right(value)),
        "<": lambda: (0, partition.bisect_left(value)),
        "<=": lambda: (0, partition.bisect_right(value)),
        ">": lambda: (partition.bisect_right(value), size),
        ">=": lambda: (partition.bisect_left(value), size),
    }[comparison]()


def _items_sized_once() -> None:
    """An item's 400 kB limit checked with a running total (module docstring)."""
    from moto.dynamodb.models.dynamo_type import (
        DynamoType,
        Item,
        ItemSizeTooLarge,
        LimitedSizeDict,
        bytesize,
    )

    def item_init(item: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        item.hash_key = hash_key
        item.range_key = range_key
        item.attrs = kept = LimitedSizeDict()  # later changes to it are checked as before
        total = 0
        for key, value in attrs.items():
            typed = DynamoType(value)
            # LimitedSizeDict summed every attribute so far (keys and values) plus this one
            total += bytesize(key) + typed.size()
            if total > _MAX_ITEM:
                raise ItemSizeTooLarge
            dict.__setitem__(kept, key, typed)

    Item.__init__ = item_init  # type: ignore[method-assign,assignment]
