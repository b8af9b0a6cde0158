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
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SERIALISED", "main", "serialise_kinesis"]

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


def main(argv: list[str] | None = None) -> None:
    """moto's server (its own command line), Kinesis serialised."""
    from moto.server import main as moto_main

    serialise_kinesis()
    moto_main(argv)


if __name__ == "__main__":
    main()
