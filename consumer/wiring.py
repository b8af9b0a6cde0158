"""The consumer composed from the core: the one place its parts are wired.

Every way of running the consumer builds it here, so they all run the same
pipeline: the native worker (``run_worker``: ``proctor consume``, the ECS task,
and ``proctor up``/``serve``/``demo`` through ``cli.services``), the KCL
MultiLangDaemon mode (``consumer.kcl``) and the benchmarks (``bench/``)::

    cpu_pool ─▶ warm_pool ─▶ open_engine ─▶ ChunkProcessor ─┬─▶ Worker (leases, shards)   native
                                                            └─▶ BatchRunner               KCL mode
                                        OutboxSweeper beside either (``Consumer.sweep``)

``open_consumer`` yields the parts for as long as its block lasts; the
process pool it makes (unless one is given) and the engine end with it.

The native worker's lease coordinator is made before the engine: the
Rekognition budget divides the account's rate by the live worker count, which
the coordinator learns while balancing (``lease_coordinator``, then
``live_workers=lambda: leases.live_workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import structlog

from consumer.fan_out import FanOut
from consumer.leases import LeaseCoordinator
from consumer.outbox import AlertPublisher, OutboxSweeper, run_sweeper
from consumer.processor import ChunkProcessor
from consumer.worker import Worker, lease_coordinator
from proctoring.analysis.base import Engine
from proctoring.analysis.engine import local_engine, open_engine
from proctoring.analysis.faces import warm_up
from proctoring.aws import AsyncClients
from proctoring.errors import ProctoringError
from proctoring.lifetime import bind_to_parent
from proctoring.metrics import Metrics
from proctoring.pool import RenewingPool
from proctoring.settings import Settings
from proctoring.storage import Tables

_log = structlog.get_logger(__name__)

__all__ = [
    "Consumer",
    "StoppedWhileStarting",
    "build_processor",
    "cpu_pool",
    "open_consumer",
    "outbox_sweeper",
    "run_worker",
    "warm_pool",
    "widen_call_pipe",
]

CALL_PIPE_BYTES = 1 << 20
"""The size asked for the pipe that carries jobs into the process pool (``widen_call_pipe``)."""


def cpu_pool(settings: Settings) -> RenewingPool:
    """The process pool for decoding and face analysis (spawned: no fork of a threaded process).

    Every process starts now, from the calling thread, and ends with this process
    however it ends (``proctoring.lifetime``): create the pool in the thread that owns
    it, for as long as it lives (the main thread, the event loop's thread). When one of
    its processes dies (OOM killer, a crash), the next job makes the pool again
    (``proctoring.pool``) instead of every later job failing.
    """

    def start() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=settings.cpu_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_pool_worker,
            initargs=(os.getpid(),),
        )
        widen_call_pipe(pool)
        for _ in range(settings.cpu_workers):  # each submit with no idle process spawns one
            pool.submit(int)
        return pool

    return RenewingPool(start)


def widen_call_pipe(pool: ProcessPoolExecutor, size: int = CALL_PIPE_BYTES) -> int:
    """Let a chunk cross into the pool's processes in one write; the pipe's size after.

    Every job's arguments (a chunk: ~0.6-1.2 MB) go through one pipe, 64 KB by default on
    Linux: the receiving process read a chunk in a score of wake-ups, 1.2-1.5 ms of its CPU
    per chunk; through a 1 MB pipe 0.55-0.65 ms (docs/benchmarks.md). 1 MB is what an
    unprivileged process may ask (``/proc/sys/fs/pipe-max-size``); where the pipe cannot
    grow (another OS, the user's pipe quota spent) it stays as it is, which only costs CPU.
    """
    queue = getattr(pool, "_call_queue", None)  # the executor's multiprocessing.Queue
    writer = getattr(queue, "_writer", None)
    if writer is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return 0
    try:
        return fcntl.fcntl(writer.fileno(), fcntl.F_SETPIPE_SZ, size)
    except OSError as exc:  # above pipe-max-size, or the user's pipe quota spent
        _log.info("the process pool's pipe keeps its size", error=str(exc))
        return fcntl.fcntl(writer.fileno(), fcntl.F_GETPIPE_SZ)


def _start_pool_worker(parent_pid: int) -> None:
    """End with the parent and on SIGTERM, ignore Ctrl-C, then load the models.

    A terminal sends Ctrl-C to every process of the job, pool workers included; the
    owner decides when to stop (after the batch in hand) and shuts the pool down.
    SIGTERM and the parent's death end a worker at once: nothing in it needs saving.
    """
    bind_to_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up()


async def warm_pool(pool: Executor, workers: int) -> None:
    """Have the pool's processes load their models now, not on the first chunk.

    A worker that takes over shards after a failover must process at once.
    """
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, warm_up) for _ in range(workers)))


def build_processor(
    settings: Settings,
    clients: AsyncClients,
    tables: Tables,
    executor: Executor,
    metrics: Metrics,
    engine: Engine | None = None,
) -> ChunkProcessor:
    """The record-processing core with ``engine`` (default: the local engine of the settings)."""
    engine = engine or local_engine(settings, tables, executor)
    return ChunkProcessor(
        settings=settings,
        clients=clients,
        tables=tables,
        engine=engine,
        executor=executor,
        metrics=metrics,
        topic_arn=settings.alerts_topic_arn or "",
    )


def outbox_sweeper(
    settings: Settings, clients: AsyncClients, tables: Tables, metrics: Metrics
) -> OutboxSweeper:
    """The alert-outbox sweeper every consumer process runs beside its worker."""
    publisher = AlertPublisher(
        clients.sns, tables, settings.alerts_topic_arn or "", timeout=settings.call_timeout
    )
    return OutboxSweeper(tables, publisher, metrics, grace=settings.outbox_grace)


class StoppedWhileStarting(ProctoringError):
    """``stop`` was set before the consumer's process pool had started."""


@dataclass(frozen=True)
class Consumer:
    """The consumer's parts, open for the block of ``open_consumer``."""

    settings: Settings
    pool: Executor
    processor: ChunkProcessor
    sweeper: OutboxSweeper

    async def sweep(self, stop: asyncio.Event) -> None:
        """The alert outbox swept every ``outbox_sweep_interval`` until ``stop``."""
        await run_sweeper(self.sweeper, stop, every=self.settings.outbox_sweep_interval)


@contextlib.asynccontextmanager
async def open_consumer(
    settings: Settings,
    clients: AsyncClients,
    tables: Tables,
    metrics: Metrics,
    *,
    executor: Executor | None = None,
    live_workers: Callable[[], int] = lambda: 1,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Consumer]:
    """The consumer's parts: ``executor`` (a warmed ``cpu_pool`` when none is given), the
    engine ``settings.engine`` names, the processor and the outbox sweeper.

    ``live_workers`` is how many workers share the Rekognition budget (the KCL daemon
    balances its own workers: 1 there). ``stop`` set while the pool's processes still
    load their models (tens of seconds on a crowded host) ends them at once and raises
    :class:`StoppedWhileStarting`: ``docker stop`` and ECS give a task 30 s at most.
    """
    with contextlib.ExitStack() as stack:
        owned = None if executor is not None else stack.enter_context(cpu_pool(settings))
        pool = executor or owned
        assert pool is not None
        warming = asyncio.ensure_future(warm_pool(pool, settings.cpu_workers))
        if stop is not None:
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({warming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not warming.done():
                warming.cancel()
                if owned is not None:
                    owned.terminate()  # nothing in a process loading its models needs saving
                with contextlib.suppress(asyncio.CancelledError, BrokenProcessPool):
                    await warming
                raise StoppedWhileStarting("stopped while the process pool was starting")
        await warming
        async with open_engine(settings, tables, pool, live_workers=live_workers) as engine:
            yield Consumer(
                settings=settings,
                pool=pool,
                processor=build_processor(settings, clients, tables, pool, metrics, engine),
                sweeper=outbox_sweeper(settings, clients, tables, metrics),
            )


async def run_worker(
    settings: Settings,
    clients: AsyncClients,
    tables: Tables,
    stop: asyncio.Event,
    *,
    metrics: Metrics,
    executor: Executor | None = None,
) -> None:
    """The native worker and its outbox sweeper until ``stop`` (the ECS task's whole life)."""
    if not settings.alerts_topic_arn:
        raise ProctoringError("PROCTOR_ALERTS_TOPIC_ARN is not set (the stack's AlertsTopicArn)")
    leases = lease_coordinator(settings, clients.dynamodb)
    try:
        async with open_consumer(
            settings,
            clients,
            tables,
            metrics,
            executor=executor,
            live_workers=lambda: leases.live_workers,
            stop=stop,
        ) as consumer:
            await _work(settings, clients, consumer, leases, stop, metrics)
    except StoppedWhileStarting:
        _log.info("worker stopped before it started")


async def _work(
    settings: Settings,
    clients: AsyncClients,
    consumer: Consumer,
    leases: LeaseCoordinator,
    stop: asyncio.Event,
    metrics: Metrics,
) -> None:
    async with asyncio.TaskGroup() as group:
        worker = Worker(
            settings=settings,
            kinesis=clients.kinesis,
            dynamodb=clients.dynamodb,
            processor=consumer.processor,
            metrics=metrics,
            leases=leases,
            fan_out=None
            if settings.fan_out_consumer is None
            else FanOut(
                clients.kinesis,
                stream=settings.names.stream,
                consumer_name=settings.fan_out_consumer,
            ),
        )
        group.create_task(worker.run(stop))
        group.create_task(consumer.sweep(stop))
