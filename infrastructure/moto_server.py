"""moto's server as the local stack needs it: what ``infrastructure.emulator`` runs.

``python -m infrastructure.moto_server -H 127.0.0.1 -p PORT`` is ``python -m moto.server``
with the changes below, none of them in what an answer says. First: moto's server answers
requests on threads, and its Kinesis shard numbers
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

moto's server runs on werkzeug's development server, which answers every request with
``Connection: close``: each request was a new TCP connection for the client and a new thread
for the server (and a socket left in TIME_WAIT for a minute: at 200 students, ~500 a
second against 28,000 local ports). Here connections are kept alive
(:func:`keep_alive_handler`), as AWS's endpoints keep them.

Costs per request that AWS does not have are cut (:mod:`infrastructure.moto_costs`), and
stored objects' bodies above 64 kB live in files of their own, in a directory of this process
removed when it stops (:func:`body_directory`), not in its memory: moto kept every chunk in
memory (13.8 GB by minute 18 of the 200-student soak).

And one addition, for the benchmarks: every request is counted by ``service.Operation`` with
the CPU time its thread spent answering it (:func:`count_requests`); ``GET`` on
:data:`STATS_PATH` returns the counts so far as JSON (``bench.stack_cpu`` reads them before
and after a load step to get the emulator's requests and CPU per chunk, by operation).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infrastructure.moto_bodies import SPILL_PREFIX, bodies_on_disk
from infrastructure.moto_costs import cut_request_costs

__all__ = [
    "SERIALISED",
    "STATS_PATH",
    "backup_items_only",
    "body_directory",
    "count_requests",
    "keep_alive_handler",
    "main",
    "serialise_kinesis",
]

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


def keep_alive_handler() -> type:
    """moto's request handler with HTTP/1.1 keep-alive (see the module docstring).

    werkzeug closes every connection because ``http.server`` cannot read the next request
    while the previous body is unread, and after each response it reads whatever else the
    client sent (the next request, on a kept connection). This handler gives the application
    a ``Content-Length`` body's bytes only, reads what it left of them before the next
    request, and shows werkzeug's after-response read nothing; a connection whose request
    body was chunked (its end is the application's to find) is still closed.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveHandler(MotoRequestHandler):
        _body: _Body | None = None
        _stream: Any = None

        def make_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().make_environ()
            self._body = None
            if not environ.get("wsgi.input_terminated"):  # not chunked: its length is known
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    return environ
                self._body = _Body(self._stream, max(length, 0))
                environ["wsgi.input"] = self._body
            return environ

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "connection" and value.lower() == "close" and self._body:
                return  # werkzeug's unconditional close: kept alive instead
            super().send_header(keyword, value)

        def run_wsgi(self) -> None:
            self._stream = self.rfile
            # what werkzeug reads itself (see above)
            self.rfile = _AfterBody(self)  # type: ignore[assignment]
            try:
                super().run_wsgi()
            finally:
                self.rfile = self._stream
            if self._body is not None:
                self._body.drain()  # the next request starts where this body ends

    return KeepAliveHandler


class _AfterBody:
    """The connection as werkzeug's handler reads it: a chunked body (the connection is
    closed after it) as it comes; past a body of known length, nothing (the next request)."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def read(self, size: int = -1) -> bytes:
        if self._handler._body is not None:
            return b""
        data: bytes = self._handler._stream.read(size)
        return data

    def readline(self, size: int = -1) -> bytes:
        if self._handler._body is not None:
            return b""
        data: bytes = self._handler._stream.readline(size)
        return data


class _Body:
    """A request body of known length: what the application reads, the rest drained."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data: bytes = self._stream.read(size) if size else b""
        self._left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data: bytes = self._stream.readline(size) if size else b""
        self._left -= len(data)
        return data

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self) -> None:
        while self._left > 0 and self.read(min(self._left, 65536)):
            pass


STATS_PATH = "/moto-api/proctor/requests"
"""``GET`` here: ``{"service.Operation": {"count": n, "cpu_s": seconds}, ...}`` so far."""

_STATS: dict[str, list[float]] = {}
_STATS_LOCK = threading.Lock()


def operation_of(environ: dict[str, Any]) -> str:
    """``service.Operation`` of a request, as botocore names them where the request says
    (the JSON protocols' ``X-Amz-Target``, the query protocol's ``Action``); S3's REST
    requests as ``s3.<METHOD> object|bucket`` (which is enough to tell PUT from GET)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    credential = (  # a presigned URL (the consumer's chunk GET) signs in its query
        auth.split("Credential=", 1)[1].split(",", 1)[0]
        if "Credential=" in auth
        else query.get("X-Amz-Credential", [""])[0]
    )
    scope = credential.split("/")
    service = scope[3] if len(scope) > 3 else "?"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}.{target.rsplit('.', 1)[-1]}"
    if "Action" in query:
        return f"{service}.{query['Action'][0]}"
    if service == "s3":
        path = environ.get("PATH_INFO", "").strip("/")
        return f"s3.{environ.get('REQUEST_METHOD', '?')} {'object' if '/' in path else 'bucket'}"
    return f"{service}.{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')[:40]}"


def count_requests() -> None:
    """Count every request moto's server answers and the CPU its thread spent on it."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__
    if getattr(original, "_counted", False):
        return

    @functools.wraps(original)
    def counted(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STATS_PATH:
            with _STATS_LOCK:
                body = json.dumps(
                    {k: {"count": int(v[0]), "cpu_s": round(v[1], 6)} for k, v in _STATS.items()}
                ).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        started = time.thread_time()
        try:
            return original(app, environ, start_response)
        finally:
            spent = time.thread_time() - started
            name = operation_of(environ)
            with _STATS_LOCK:
                row = _STATS.setdefault(name, [0, 0.0])
                row[0] += 1
                row[1] += spent

    counted._counted = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.__call__ = counted  # type: ignore[method-assign,assignment]


def body_directory(parent: Path | None = None) -> Path:
    """A new directory for this process's S3 bodies (``moto_bodies.bodies_on_disk``) in
    ``parent`` (the system's temporary directory), after removing those of emulators no
    longer running (killed before they could remove their own)."""
    parent = Path(parent or tempfile.gettempdir())
    for old in parent.glob(f"{SPILL_PREFIX}*"):
        pid = old.name.removeprefix(SPILL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", dir=parent))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def main(argv: list[str] | None = None) -> None:
    """moto's server (its own command line), Kinesis serialised, transactions' backups
    of the items they name only, requests counted, bodies on disk (removed when it stops:
    moto's server exits on SIGTERM and SIGINT)."""
    from moto import server

    serialise_kinesis()
    backup_items_only()
    cut_request_costs()
    count_requests()
    bodies = body_directory()
    bodies_on_disk(bodies)
    server.MotoRequestHandler = keep_alive_handler()  # type: ignore[misc,assignment]
    try:
        server.main(argv)
    finally:
        shutil.rmtree(bodies, ignore_errors=True)


if __name__ == "__main__":
    main()
