"""A pool process that dies (OOM killer, a crash) costs one job, not every job after it."""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import psutil
import pytest

from consumer.wiring import (
    CALL_PIPE_BYTES,
    StoppedWhileStarting,
    build_processor,
    cpu_pool,
    open_consumer,
    run_worker,
    widen_call_pipe,
)
from proctoring.aws import async_clients
from proctoring.metrics import Metrics
from proctoring.pool import CallGroups, RenewingPool
from proctoring.settings import Settings
from proctoring.storage import Tables
from tests.conftest import eventually
from tests.pipeline import put_chunk, running_worker


def _small_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def _size(data: bytes) -> int:
    return len(data)


def test_a_chunk_crosses_into_the_pool_through_one_wide_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 1 MB chunk goes into a pool process in one write (the pipe was 64 KB: a score of
    wake-ups, twice the receiving process's CPU per chunk), and arrives whole."""
    with cpu_pool(Settings(cpu_workers=1)) as pool:
        pipe = pool._pool._call_queue._writer.fileno()  # type: ignore[attr-defined]
        assert fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ) == CALL_PIPE_BYTES
        chunk = os.urandom(1 << 20)
        assert pool.submit(_size, chunk).result(timeout=30) == len(chunk)
    real = fcntl.fcntl

    def refused(fd: int, command: int, arg: int = 0) -> int:
        if command == fcntl.F_SETPIPE_SZ:
            raise PermissionError(1, "Operation not permitted")  # the user's pipe quota spent
        return real(fd, command, arg)

    monkeypatch.setattr(fcntl, "fcntl", refused)
    with _small_pool() as plain:  # a pipe that cannot grow stays as it was: no error
        assert widen_call_pipe(plain) == 65536
        assert plain.submit(_size, chunk).result(timeout=30) == len(chunk)


def _die() -> None:  # a job that kills the process running it, as a decoder crash would
    os.kill(os.getpid(), signal.SIGKILL)


def _gone(pid: int, deadline: float) -> None:
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"pool process {pid} still alive"
        time.sleep(0.02)


def test_the_job_whose_process_died_fails_and_the_next_one_runs_on_a_new_pool() -> None:
    renewed: list[int] = []
    with RenewingPool(_small_pool, on_renew=renewed.append) as pool:
        assert pool.submit(pow, 2, 5).result(timeout=60) == 32
        with pytest.raises(BrokenProcessPool):
            pool.submit(_die).result(timeout=60)
        assert pool.submit(pow, 3, 2).result(timeout=60) == 9, "not broken for good"
        assert pool.renewals == 1 and renewed == [1]
        assert pool.submit(pow, 2, 2).result(timeout=60) == 4
        assert pool.renewals == 1, "a healthy pool is kept"


def test_a_process_killed_while_idle_costs_no_job() -> None:
    with RenewingPool(_small_pool) as pool:
        assert pool.submit(abs, -1).result(timeout=60) == 1
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)  # the OOM killer picks it between two jobs
        _gone(pid, time.monotonic() + 10)
        deadline = time.monotonic() + 10
        while True:  # the pool's own thread notices the death shortly after; either way
            try:
                assert pool.submit(abs, -2).result(timeout=60) == 2
                break
            except BrokenProcessPool:  # it broke after our submit was taken: retried once
                assert time.monotonic() < deadline
        assert pool.renewals == 1
        assert pool.pids() and pid not in pool.pids()


def test_a_crash_every_time_stays_a_failure_of_that_job() -> None:
    """A chunk that kills its process on every try must still fail (the batch runner parks
    it after poison_attempts), not be retried here for ever."""
    with RenewingPool(_small_pool) as pool:
        for _ in range(3):
            with pytest.raises(BrokenProcessPool):
                pool.submit(_die).result(timeout=60)
        assert pool.submit(pow, 2, 3).result(timeout=60) == 8
        assert pool.renewals == 3


def test_a_death_with_a_cancelled_job_waiting_answers_the_rest_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop cancels the consumer's waiting jobs while a process dies (``docker stop`` as
    the pool starts): the pool answers every other job with BrokenProcessPool and its own
    thread ends without an error (on 3.11 it raised InvalidStateError on the cancelled job,
    printed a traceback and left the rest unanswered: CPython gh-107219)."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: errors.append(args.exc_value), raising=True
    )
    pool = _small_pool()
    try:
        assert pool.submit(abs, -1).result(timeout=60) == 1
        (pid,) = pool._processes  # type: ignore[attr-defined]
        # one process and a call queue of two: once the process took the first, two more
        # fit in the queue; three held jobs fill both, so the ones after them surely wait
        held = [pool.submit(time.sleep, 30) for _ in range(3)]
        cancelled, waiting = pool.submit(abs, -2), pool.submit(abs, -3)
        assert cancelled.cancel(), "a job still waiting can be cancelled"
        os.kill(pid, signal.SIGKILL)
        for job in [*held, waiting]:
            with pytest.raises(BrokenProcessPool):
                job.result(timeout=30)
        manager = pool._executor_manager_thread  # type: ignore[attr-defined]
        if manager is not None:
            manager.join(timeout=30)
            assert not manager.is_alive()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert errors == [], errors


@pytest.mark.slow
def test_the_consumer_goes_on_analysing_after_a_pool_process_was_killed(
    settings: Settings, present_chunk: bytes
) -> None:
    """Before the pool renewed itself, every chunk after the kill failed with
    BrokenProcessPool and was parked, while the worker kept its leases."""
    fast = settings.model_copy(
        update={"retry_backoff": 0.05, "retry_max_backoff": 0.2, "poison_attempts": 2}
    )
    exam = "pool-exam"

    async def run() -> dict[str, Any]:
        with cpu_pool(fast.model_copy(update={"cpu_workers": 1})) as pool:
            async with async_clients(fast) as clients:
                tables = Tables(clients.dynamodb, fast.names)
                sink = Metrics("Test", "consumer", lambda line: None)
                processor = build_processor(fast, clients, tables, pool, sink)
                async with running_worker(fast, clients, processor, sink):
                    await put_chunk(
                        clients, fast, exam_id=exam, student_id="s", sequence=0, data=present_chunk
                    )
                    await eventually(lambda: tables.results(f"{exam}#s"), lambda r: len(r) == 1)
                    (pid,) = pool.pids()
                    os.kill(pid, signal.SIGKILL)
                    for sequence in (1, 2):
                        await put_chunk(
                            clients, fast, exam_id=exam, student_id="s", sequence=sequence,
                            data=present_chunk,
                        )  # fmt: skip
                    rows = await eventually(
                        lambda: tables.results(f"{exam}#s"), lambda r: len(r) == 3
                    )
                return {"rows": rows, "parked": await tables.parked(), "pool": pool}

    outcome = asyncio.run(run())
    assert [r["status"] for r in outcome["rows"]] == ["ok", "ok", "ok"]
    assert outcome["parked"] == []
    assert outcome["pool"].renewals == 1


def test_a_stop_while_the_pool_loads_its_models_ends_its_processes_at_once() -> None:
    """``docker stop`` (SIGTERM, then SIGKILL after 10-30 s) during the start of a consumer
    on a crowded host: the pool's processes are still loading the face models. The worker
    returns without waiting for them, and none of them is left behind."""
    settings = Settings(cpu_workers=2, alerts_topic_arn="arn:aws:sns:us-east-1:1:alerts")
    before = {child.pid for child in psutil.Process().children()}
    stop = asyncio.Event()
    stop.set()  # the signal came before the models were loaded
    clients: Any = type("Clients", (), {"dynamodb": None, "kinesis": None})()

    async def start_and_stop() -> None:
        with pytest.raises(StoppedWhileStarting):
            async with open_consumer(settings, clients, None, Metrics("T", "c", print), stop=stop):  # type: ignore[arg-type]
                pytest.fail("the consumer opened after its stop")
        started = [c.pid for c in psutil.Process().children() if c.pid not in before]
        deadline = time.monotonic() + 10
        for pid in started:
            _gone(pid, deadline)
        # and the worker, which owns that start, ends quietly
        await run_worker(settings, clients, None, stop, metrics=Metrics("T", "c", print))  # type: ignore[arg-type]

    asyncio.run(start_and_stop())


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    if x == 13:
        os.kill(os.getpid(), signal.SIGKILL)  # as a decoder crash on a hostile chunk would
    return x * x


def test_calls_made_while_the_pool_is_busy_go_in_few_jobs_each_with_its_own_answer() -> None:
    """Twelve chunks at once on one job slot: two jobs (8 + 4), not twelve hand-overs; each
    caller gets its own result, and the failing call its own error with where it was raised."""

    async def main(pool: RenewingPool) -> None:
        groups = CallGroups(pool, _square_or_fail, jobs=1, most=8)
        answers = await asyncio.gather(
            *(groups(x) for x in [*range(5), -1, *range(6, 12)]), return_exceptions=True
        )
        assert answers[:5] == [0, 1, 4, 9, 16] and answers[6:] == [x * x for x in range(6, 12)]
        assert isinstance(answers[5], ValueError) and str(answers[5]) == "negative: -1"
        assert "_square_or_fail" in "".join(answers[5].__notes__), "the worker's traceback"
        assert groups.sent == 2
        for x in range(3):  # light load: one call at a time goes at once, alone
            assert await groups(x) == x * x
        assert groups.sent == 5

    with RenewingPool(_small_pool) as pool:
        asyncio.run(main(pool))


def test_a_call_that_kills_its_process_fails_alone_and_its_group_is_answered() -> None:
    """A hostile chunk in a group: its process dies with the whole job, so each call of the
    job is sent again alone - the chunk fails (the batch runner parks it after
    poison_attempts), the others get their frames from the renewed pool."""

    async def main(pool: RenewingPool) -> None:
        groups = CallGroups(pool, _square_or_fail, jobs=1)
        answers = await asyncio.gather(*(groups(x) for x in (2, 13, 3)), return_exceptions=True)
        assert answers[0] == 4 and answers[2] == 9
        assert isinstance(answers[1], BrokenProcessPool)
        assert groups.sent == 4  # the group, then each of its three calls alone

    with RenewingPool(_small_pool) as pool:
        asyncio.run(main(pool))
        assert pool.renewals >= 1
