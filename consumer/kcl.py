"""KCL MultiLangDaemon mode: the same batch pipeline as an ``amazon_kclpy`` v3 record processor.

Teams that already run the Java Kinesis Client Library can keep it: the
daemon owns leases, balancing, resharding and checkpoint storage, and talks
to this process over stdin/stdout (one JSON message a line). Each
``processRecords`` batch - chunk events and integrity events alike
(``proctoring.integrity.parse_record``) - goes through the same ``ChunkProcessor`` as the
native worker, on an event loop in a background thread; the batch is
checkpointed only after it returned (every effect durable). A batch that
fails is retried in place (``consumer.poison``: backoff while AWS fails,
poison records parked), so the shard never skips it.

stdout belongs to the protocol: logs and EMF metrics go to stderr here.

Run it under the daemon with ``proctor consume --kcl`` as the ``executableName``
of a ``kcl.properties`` (see ``consumer/kcl.properties``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog
from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor as kcl_processor

from consumer.batch import Record
from consumer.poison import BatchRunner
from consumer.wiring import open_consumer
from proctoring.aws import async_clients
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["ChunkRecordProcessor", "run"]

_log = structlog.get_logger(__name__)
T = TypeVar("T")


class _LoopThread:
    """An asyncio loop in a daemon thread: the protocol is synchronous, the pipeline is not."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


class ChunkRecordProcessor(kcl_processor.RecordProcessorBase):
    """One shard's record processor, as the MultiLangDaemon drives it."""

    def __init__(self, batches: BatchRunner, loop: _LoopThread) -> None:
        self._batches = batches
        self._loop = loop
        self.shard_id = ""

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        structlog.contextvars.bind_contextvars(shard=self.shard_id)
        _log.info("kcl shard initialised", checkpoint=initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        read_at = time.time()  # the latency breakdown's read_at
        records = [  # amazon_kclpy.messages.Record: base64 data decoded by binary_data
            Record(r.sequence_number, r.binary_data, r.partition_key or "", read_at=read_at)
            for r in process_records_input.records
        ]
        if not records:
            return
        # retried in place while AWS fails, poison records parked: the daemon must not
        # move past a batch that is not done
        outcome = self._loop.run(self._batches.run(records, shard_id=self.shard_id))
        process_records_input.checkpointer.checkpoint(records[-1].sequence_number)
        _log.info(
            "kcl batch checkpointed",
            records=len(records),
            results=outcome.results,
            parked=outcome.parked,
        )

    def lease_lost(self, lease_lost_input: Any) -> None:
        self._release()
        _log.warning("kcl lease lost; nothing to checkpoint")

    def shard_ended(self, shard_ended_input: Any) -> None:
        self._release()
        shard_ended_input.checkpointer.checkpoint()  # SHARD_END: the children may start
        _log.info("kcl shard ended")

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        # every batch was checkpointed when it returned; nothing is in flight here
        self._release()
        _log.info("kcl shutdown requested")

    def _release(self) -> None:
        """The sessions kept for this shard's students go with its lease (on the loop's
        thread, where the processor lives)."""

        async def release() -> None:
            self._batches.release(self.shard_id)

        self._loop.run(release())


async def _stopped(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await task


def run(settings: Settings) -> None:
    """Serve the MultiLang protocol on stdin/stdout until the daemon closes stdin."""
    runner = _LoopThread()
    stack = contextlib.AsyncExitStack()
    stopping = asyncio.Event()

    async def build() -> BatchRunner:
        clients = await stack.enter_async_context(async_clients(settings))
        tables = Tables(
            clients.dynamodb, settings.names, timeout=settings.call_timeout, batch_reads=True
        )

        def to_stderr(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        metrics = Metrics(settings.metrics_namespace, "consumer-kcl", to_stderr)
        # the same parts as the native worker (the engine PROCTOR_ENGINE names)
        consumer = await stack.enter_async_context(
            open_consumer(settings, clients, tables, metrics)
        )
        # the daemon owns leases and checkpoints; the alert outbox is still this process's
        sweeping = asyncio.create_task(consumer.sweep(stopping))
        stack.push_async_callback(_stopped, stopping, sweeping)
        return BatchRunner(consumer.processor, settings=settings, metrics=metrics)

    try:
        batches = runner.run(build())
        kcl.KCLProcess(ChunkRecordProcessor(batches, runner)).run()
    finally:
        runner.run(stack.aclose())
        runner.stop()
