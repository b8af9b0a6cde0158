"""A process pool that outlives the death of one of its processes.

``concurrent.futures.ProcessPoolExecutor`` is broken for good once any of its
processes dies (the OOM killer picks the biggest one, a decoder crashes on a
hostile chunk, an operator kills one): every later ``submit`` raises
``BrokenProcessPool``. In the consumer that turned into every following
record failing as if it were poison and being parked, while the worker kept
its leases and looked alive.

``RenewingPool`` wraps the pool and makes a new one from its factory when the
current one broke: on the next ``submit`` (from the caller's thread - the
thread that owns the pool, which matters for ``proctoring.lifetime``'s
parent-death signal), never from the pool's own threads. The job that was
running when the process died still fails with ``BrokenProcessPool``: the
batch runner retries it, so a chunk that was only unlucky succeeds on the
renewed pool and a chunk that kills its process every time is parked after
``poison_attempts`` (``consumer/poison.py``). Jobs submitted after the break
run on the new pool.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError, ProcessPoolExecutor
from concurrent.futures import process as _process
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, ParamSpec, TypeVar

import structlog

__all__ = ["CallGroups", "RenewingPool"]

_log = structlog.get_logger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def _tolerate_cancelled_jobs() -> None:
    """The broken pool's clean-up skips jobs cancelled while they waited (module docstring).

    3.11's ``terminate_broken`` sets the error on every waiting job and raises on one that
    was cancelled, before it ends the processes and frees the pool; here the jobs already
    answered (cancelled, or set by the previous try) are left out, and it tries again if a
    job is cancelled while it runs (a job can be cancelled from the event loop's thread).
    """
    manager = _process._ExecutorManagerThread
    if sys.version_info >= (3, 12) or getattr(manager.terminate_broken, "_tolerant", False):
        return
    terminate_broken = manager.terminate_broken

    def tolerant(self: Any, cause: Any) -> None:
        while True:
            self.pending_work_items = {
                work_id: item
                for work_id, item in self.pending_work_items.items()
                if not item.future.done()
            }
            try:
                return terminate_broken(self, cause)
            except InvalidStateError:
                continue  # cancelled between the two: the rest again

    tolerant._tolerant = True  # type: ignore[attr-defined]
    manager.terminate_broken = tolerant  # type: ignore[method-assign]


_tolerate_cancelled_jobs()


class RenewingPool(Executor):
    """An executor over ``factory()``'s process pool, made again when a process of it died."""

    def __init__(
        self,
        factory: Callable[[], ProcessPoolExecutor],
        *,
        on_renew: Callable[[int], None] = lambda renewals: None,
    ) -> None:
        self._factory = factory
        self._on_renew = on_renew
        self._lock = threading.Lock()
        self._pool = factory()
        self._broken = False
        self.renewals = 0
        """How many times a broken pool was replaced (a metric and a test's evidence)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            if self._broken:
                self._renew()
            try:
                future = self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:  # broke while idle: this job had no part in it
                self._renew()
                future = self._pool.submit(fn, *args, **kwargs)
            pool = self._pool
        future.add_done_callback(lambda done: self._note(done, pool))
        return future

    def pids(self) -> list[int]:
        """The process ids of the current pool's processes (operators' and tests' view)."""
        processes: dict[int, Any] = getattr(self._pool, "_processes", None) or {}
        return sorted(processes)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def terminate(self) -> None:
        """End the processes now, whatever they run, and shut the pool down: for a stop
        before the pool was needed (the owner waits for nothing; jobs fail as broken)."""
        with self._lock:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()

    def _note(self, done: Future[Any], pool: ProcessPoolExecutor) -> None:
        """Runs in the pool's thread: only mark the pool broken; the owner's thread renews it."""
        if done.cancelled() or not isinstance(done.exception(), BrokenProcessPool):
            return
        with self._lock:
            if pool is self._pool:
                self._broken = True

    def _renew(self) -> None:
        broken = self._pool
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = self._factory()
        self._broken = False
        self.renewals += 1
        _log.warning("a process of the pool died; the pool was made again", renewals=self.renewals)
        self._on_renew(self.renewals)


_Waiting = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]
"""A call waiting for a job: its arguments and its caller's future."""


def _each(fn: Callable[..., Any], calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    """Process-pool job: ``fn`` on each call's arguments; per call ``(True, result)`` or
    ``(False, exception)``, the exception's traceback kept as a note (it crosses as a value)."""
    done: list[Any] = []
    for args, kwargs in calls:
        try:
            done.append((True, fn(*args, **kwargs)))
        except Exception as exc:  # that one call's caller raises it
            exc.add_note("".join(traceback.format_exception(exc)))
            done.append((False, exc))
    return done


class CallGroups(Generic[T]):
    """Calls of one function sent to a process pool in groups when it is busy: fewer jobs.

    Handing a job to a process pool and its result back costs CPU whatever the job: pickling,
    the pool's queue and its threads, the event loop's wake-up, and the threads' turns at the
    GIL, which grow with the jobs in flight: ~1 ms of the event loop's thread a job beside a
    chunk's ~6 ms frame job (docs/benchmarks.md, "The pool's hand-over").

    At most ``jobs`` jobs are in the pool at once (the pool's processes). A call made while
    a job slot is free goes at once, alone or with the calls of the same turn of the event
    loop (spread over the free slots); calls made while every slot is busy wait, and the next
    job to start takes up to ``most`` of them. Light load: each call alone, no wait. Heavy
    load: a few jobs of many calls each, and the same cores do the same work. Each caller gets
    its own result or exception.

    A job that fails as a whole with ``BrokenProcessPool`` (one of the pool's processes died)
    is sent again one call a job, one job at a time, so a call that kills its process fails
    alone (``RenewingPool`` makes the pool again; the batch runner parks the call that keeps
    killing it, ``consumer/poison.py``). As without the groups, a job that was in the pool
    when another one's process died fails too, and the batch runner tries it again.
    """

    def __init__(
        self, executor: Executor, fn: Callable[..., T], *, jobs: int, most: int = 4
    ) -> None:
        if jobs < 1 or most < 1:
            raise ValueError(f"jobs and most must be at least 1 (jobs={jobs}, most={most})")
        self._executor = executor
        self._fn = fn
        self._most = most
        self._free = jobs
        self._waiting: list[_Waiting] = []
        self._running: set[asyncio.Task[None]] = set()
        self._turn_ends: asyncio.Handle | None = None
        self._alone = asyncio.Lock()  # the calls of a broken job, one at a time
        self.sent = 0
        """Jobs sent so far (tests' and benchmarks' evidence of the grouping)."""

    async def __call__(self, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((args, kwargs, future))
        if self._turn_ends is None:  # the calls of this turn go together
            self._turn_ends = loop.call_soon(self._send)
        return await future

    def _send(self) -> None:
        self._turn_ends = None
        self._waiting = [w for w in self._waiting if not w[2].done()]  # callers gone
        while self._free and self._waiting:
            size = min(self._most, math.ceil(len(self._waiting) / self._free))
            group, self._waiting = self._waiting[:size], self._waiting[size:]
            self._free -= 1
            self._start(group, slot=True)

    def _start(self, group: list[_Waiting], *, slot: bool) -> None:
        job = asyncio.ensure_future(self._run(group, slot=slot))
        self._running.add(job)  # referenced until done: the loop keeps weak references
        job.add_done_callback(self._running.discard)

    async def _run(self, group: list[_Waiting], *, slot: bool) -> None:
        loop = asyncio.get_running_loop()
        calls = [(args, kwargs) for args, kwargs, _ in group]
        try:
            if slot:
                self.sent += 1
                done = await loop.run_in_executor(self._executor, _each, self._fn, calls)
            else:
                async with self._alone:
                    self.sent += 1
                    done = await loop.run_in_executor(self._executor, _each, self._fn, calls)
        except BrokenProcessPool as exc:
            if len(group) == 1:
                _settle(group[0][2], False, exc)
            else:
                for one in group:  # each alone: a call that kills its process fails alone
                    self._start([one], slot=False)
            return
        except asyncio.CancelledError:
            for _, _, future in group:
                future.cancel()
            raise
        except Exception as exc:  # the hand-over failed (the pool shut down): every call's
            for _, _, future in group:
                _settle(future, False, exc)
            return
        finally:
            if slot:
                self._free += 1
                self._send()
        for (_, _, future), (ok, value) in zip(group, done, strict=True):
            _settle(future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
