"""The student sessions a worker owns, kept between batches instead of read per batch.

A student's session item (rule state, schedule, call counts, risk; ``proctoring.storage``)
is written by the worker that holds the lease of the student's shard: the lease is the
ownership. So the worker keeps the item it last wrote, with its version, and the next
batch of the same student starts from it without a GetItem. :class:`SessionCache` is
that memory, bounded (least recently used first out) and keyed by ``(exam, student)``.

It stays right because every save is still conditional on the version (``save_session``):

- :meth:`SessionCache.load` *takes* the entry out. Only a successful
  :meth:`SessionCache.save` puts the session back, with its new version. A batch that
  fails anywhere in between (``BatchFailed``: processed again) finds nothing kept and
  reads the item afresh - a half-applied copy is never reused.
- Anyone else who writes the item bumps its version: the integrity path of another
  worker, an operator setting accommodations (``ADD version :one``, docs/operations.md),
  erasure deleting it. The next conditional save from the kept copy then fails with
  ``StaleState``; nothing is kept, the batch fails as before and is processed again from
  a fresh read, so the other write is never undone.
- When a shard's lease is lost, released or the shard ends, :meth:`SessionCache.release`
  drops its students' entries: the next owner (maybe this worker again, later) reads.

Rows with the session: the result rows of a batch's chunks that had none (``Chunk.absent``:
the row was read and absent, or the kept session's ``results_through`` vouched for it) are
written in one ``TransactWriteItems`` with the session (``Tables.save_session``, at most 99
rows), *after* the alerts those chunks raise; rows that may exist (a re-delivery) are written
one by one before their alerts, as the write-once check needs (``consumer.results``). No alert
is lost, because the session, which records what was raised, is written only after the
alerts exist: if the process dies before the transaction, nothing of those chunks is written
but their alerts, and the batch, processed again from the session as it was, raises the same
alerts (deterministic ids: found, published if they were not) and writes the rows. If the
transaction fails (the session moved, or a row exists after all), none of it is written; the
batch is processed again from a fresh read, which reads the rows first and so flags a second
object instead of analysing it. (A row can appear between the read and the transaction only
if two workers process one student at once, which the lease prevents; should it happen with
another object, the alerts its analysis raised in the failed attempt stay, beside the
CHUNK_REPLACED the retry raises.)

Several students in one transaction: a batch's students save through one :class:`SaveGroup`
(group commit). A student's save waits while another student of the batch is still between
its frames and its save (analysing, raising alerts); the last one to get there writes every
waiting save at once (``Tables.save_sessions``: one ``TransactWriteItems`` for up to 100
items, each student's rows and session all or nothing). A student still fetching or
extracting its chunk holds nobody: its save goes in a later write; nor does a slow one hold
the others longer than ``PROCTOR_SAVE_GROUP_WAIT`` (50 ms by default: the rows' latency is
not the slowest student's, for a transaction or two more a batch). When DynamoDB cancels the
transaction because one student's session moved (or one of its rows exists), the others are
written without it and only that student is stale (``StaleState``: the batch fails and is
processed again; the others' rows are then found, a redelivery).

The API never writes the session item: interventions (pause, end, warnings) live on the
student's enrolment in the exams table, and the policy on the exam's ``#policy`` item,
which ``consumer.analyser.Policies`` caches on its own terms.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from proctoring.events import ChunkEvent
from proctoring.storage import SessionSave, StorageError, Tables

__all__ = ["SaveGroup", "SessionCache"]

_Key = tuple[str, str]
_Outcome = dict[str, Any] | StorageError


class SessionCache:
    """See the module docstring. One per processor; ``size`` 0 keeps nothing (reads each time)."""

    def __init__(self, tables: Tables, *, size: int) -> None:
        self._tables = tables
        self._size = size
        self._kept: OrderedDict[_Key, tuple[dict[str, Any], str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    async def load(self, exam_id: str, student_id: str) -> dict[str, Any]:
        """The student's session with its ``version`` (0: none yet), taken out of the cache
        (kept again only by a successful ``save``), or read from the table."""
        entry = self._kept.pop((exam_id, student_id), None)
        if entry is not None:
            return entry[0]
        return await self._tables.get_session(exam_id, student_id) or {
            "exam_id": exam_id,
            "student_id": student_id,
            "version": 0,
        }

    def new(self, event: ChunkEvent) -> bool:
        """Whether the student's kept session vouches that the chunk's sequence has no result
        row yet: above the highest one written for its source (``results_through``)."""
        entry = self._kept.get((event.exam_id, event.student_id))
        if entry is None:
            return False
        return event.sequence > int((entry[0].get("results_through") or {}).get(event.source, -1))

    async def save(
        self,
        session: Mapping[str, Any],
        *,
        expected_version: int,
        shard_id: str,
        results: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Save conditionally (``Tables.save_session``, with ``results``: the new rows in the
        same transaction) and keep the saved session for the next batch of the shard; on
        ``StaleState`` keep nothing and raise it."""
        saved = await self._tables.save_session(
            session, expected_version=expected_version, results=results
        )
        self._keep(saved, shard_id)

    async def save_many(self, saves: Sequence[SessionSave], *, shard_id: str) -> list[_Outcome]:
        """Several students' saves at once (``Tables.save_sessions``); keep each one saved.
        Per save: the session as saved, or the StorageError (StaleState) it failed with."""
        outcomes = await self._tables.save_sessions(saves)
        for outcome in outcomes:
            if not isinstance(outcome, StorageError):
                self._keep(outcome, shard_id)
        return outcomes

    def _keep(self, saved: dict[str, Any], shard_id: str) -> None:
        if self._size <= 0:
            return
        key = (saved["exam_id"], saved["student_id"])
        self._kept[key] = (saved, shard_id)  # as a read would return it, with its new version
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def release(self, shard_id: str) -> int:
        """Forget the sessions kept for ``shard_id`` (its lease is gone); how many."""
        gone = [key for key, (_, shard) in self._kept.items() if shard == shard_id]
        for key in gone:
            del self._kept[key]
        return len(gone)


class SaveGroup:
    """One batch's session saves, written together (module docstring, "Several students in
    one transaction"). Each student of the batch :meth:`joins <join>` once its frames are
    there and then saves or leaves; ``write`` writes a list of saves and returns each one's
    outcome (the session saved, or the StorageError it failed with). The saves waiting are
    written without waiting for the others once there are ``most`` of them
    (``PROCTOR_SAVE_GROUP_STUDENTS``) or once the first of them waited ``wait`` seconds
    (``PROCTOR_SAVE_GROUP_WAIT``): a student's rows never wait long for a slow one's."""

    def __init__(
        self,
        write: Callable[[list[SessionSave]], Awaitable[list[_Outcome]]],
        *,
        most: int = 50,
        wait: float | None = None,
    ) -> None:
        self._write = write
        self._most = most  # saves written at once without waiting for the others
        self._wait = wait  # seconds the first waiting save waits for the others at most
        self._busy = 0  # students joined that have neither saved nor left
        self._waiting: list[tuple[SessionSave, asyncio.Future[dict[str, Any]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()  # flushes the timer started

    def join(self) -> _Member:
        """A student whose frames are there: saves wait for it until it saves or leaves."""
        self._busy += 1
        return _Member(self)

    async def _save(self, save: SessionSave) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((save, future))
        self._busy -= 1
        if self._busy == 0 or len(self._waiting) >= self._most:  # nobody else coming, or full
            await self._flush()
        elif self._timer is None and self._wait is not None:
            self._timer = asyncio.get_running_loop().call_later(self._wait, self._waited)
        return await future

    def _waited(self) -> None:
        """The first waiting save waited ``wait`` seconds: the waiting ones go now."""
        self._timer = None
        if self._waiting:
            flush = asyncio.ensure_future(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    def _leave(self) -> None:
        """A student failed before its save: the batch fails. When nobody else is on the way,
        the waiting saves are not written (their tasks end cancelled; all is done again)."""
        self._busy -= 1
        if self._busy == 0:
            self._stop_timer()
            waiting, self._waiting = self._waiting, []
            for _, future in waiting:
                future.cancel()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _flush(self) -> None:
        self._stop_timer()
        waiting, self._waiting = self._waiting, []
        # unless the write comes back, the waiting students end cancelled (so does the batch)
        outcomes: list[_Outcome | BaseException] = [asyncio.CancelledError()] * len(waiting)
        try:
            outcomes = list(await self._write([save for save, _ in waiting]))
        except Exception as exc:  # each waiting student fails with it
            outcomes = [exc] * len(waiting)
        finally:
            for (_, future), outcome in zip(waiting, outcomes, strict=True):
                if future.done():  # its student was cancelled meanwhile (the batch failed)
                    continue
                if isinstance(outcome, asyncio.CancelledError):
                    future.cancel()
                elif isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


class _Member:
    """A student's place in a :class:`SaveGroup`: one :meth:`save`, or :meth:`leave`."""

    def __init__(self, group: SaveGroup) -> None:
        self._group = group
        self._done = False

    async def save(self, save: SessionSave) -> dict[str, Any]:
        """Save with the batch's other students; the session as saved, or raise its
        StorageError (StaleState: its session moved, or one of its rows exists)."""
        assert not self._done, "one save per student and batch"
        self._done = True
        return await self._group._save(save)

    def leave(self) -> None:
        """No save after all (the student's processing failed); nothing if it saved."""
        if not self._done:
            self._done = True
            self._group._leave()

    def __enter__(self) -> _Member:
        return self

    def __exit__(self, *_: object) -> None:
        self.leave()
