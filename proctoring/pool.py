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

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError, ProcessPoolExecutor
from concurrent.futures import process as _process
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

import structlog

__all__ = ["RenewingPool"]

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
