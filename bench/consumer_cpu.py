"""Consumer CPU per chunk, everything but the analysis engine.

The record-processing core (``ChunkProcessor.process``) runs batches of real
chunk events against the local emulator (moto's server, its own process, not
counted) with the ``fixed`` engine (a wait, no CPU). Measured: CPU seconds of
this process (event loop: AWS calls, parsing, rules, storage) and of the
process-pool workers (frame extraction: the middle frame, the first frame as
fallback, the thumbnail), divided by the chunks processed. Kinesis reads and
checkpoints are not in it (one GetRecords and one conditional write per batch
of up to 100 records).

Counted too: the AWS requests per chunk (S3, DynamoDB, SNS), by operation, as
sent over HTTP (``proctoring.aws.RequestCounter``: botocore's ``before-send``, a
retry counts; the chunk's GetObject, sent by a pool worker to a presigned URL, as the
frame stage reports it, retries included: ``consumer.chunk_get``), after the warm-up
batch: the steady state of a worker that owns its students. The regression guard is
tests/consumer/test_requests.py.

The consumer runs as its ECS task is configured: botocore's client-side parameter check
off (``PROCTOR_VALIDATE_REQUESTS=false``, infrastructure/template.yaml), JSON logs at INFO.

Baseline: the floor of the same chunks (decode one keyframe + JPEG), measured
here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from bench.frames import chunks as cut_chunks
from bench.frames import floor
from bench.harness import Figure, Size, pool_cpu
from consumer.processor import Record
from consumer.wiring import cpu_pool, open_consumer
from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.aws import RequestCounter, async_clients, sync_client
from proctoring.dynamo import to_item
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.logs import configure_logging
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["measure", "run"]

_CHUNK_SECONDS = 5.0
_TASK_VCPUS = 2
_EVERY = {"frame_every": 1}  # the baseline's policy: every frame stored


async def measure(
    students: int,
    batches: int,
    data_dir: Path,
    *,
    position: Literal["first", "middle"] = "middle",
    keep_all: bool = False,
) -> dict[str, Any]:
    """CPU ms per chunk: {"extraction", "rest", "total", "chunks"}, the AWS requests sent and
    the frames decoded per chunk (the consumer's ``FramesDecoded`` metric).

    ``keep_all``: the requests' baseline - no session kept between batches
    (``PROCTOR_SESSION_CACHE_SIZE=0``) and every frame stored (policy ``frame_every: 1``).
    Logs as in production: JSON lines at INFO (written to /dev/null here).
    """
    chunk_data = [data for _, data in cut_chunks(data_dir)]
    logging_config = structlog.get_config()  # restored below: devnull closes with the block
    with (
        Emulator() as emulator,
        open(os.devnull, "w") as devnull,  # noqa: ASYNC230
        contextlib.ExitStack() as restore,
    ):
        restore.callback(lambda: structlog.configure(**logging_config))
        settings = Settings(
            endpoint_url=emulator.endpoint_url,
            prefix=f"bench-cpu-{position}",
            cpu_workers=2,
            engine="fixed",  # a wait of fixed_latency (0.1 s), no CPU
            frame_position=position,
            log_format="json",
            validate_requests=False,  # as the consumer task runs (infrastructure/template.yaml)
            session_cache_size=0 if keep_all else Settings().session_cache_size,
        )
        configure_logging(settings, stream=devnull)
        outputs = await asyncio.to_thread(provision, settings)
        settings = settings.model_copy(update={"alerts_topic_arn": outputs["AlertsTopicArn"]})
        metrics = Metrics("Bench", "consumer", lambda line: None)
        if keep_all:
            await asyncio.to_thread(
                sync_client(settings, "dynamodb").put_item,
                TableName=settings.names.sessions_table,
                Item=to_item({"exam_id": "bench", "student_id": "#policy", "policy": _EVERY}),
            )
        with cpu_pool(settings) as pool:
            async with (
                async_clients(settings) as clients,
                # the consumer's own wiring, with the fixed engine (settings.engine)
                open_consumer(
                    settings,
                    clients,
                    Tables(clients.dynamodb, settings.names, batch_reads=True),
                    metrics,
                    executor=pool,
                ) as consumer,
            ):
                processor = consumer.processor
                records: list[list[Record]] = []
                for sequence in range(batches + 1):  # the first batch warms up
                    batch = []
                    for student in range(students):
                        data = chunk_data[(student + sequence) % len(chunk_data)]
                        key = ChunkKey(
                            exam_id="bench",
                            student_id=f"s{student:04d}",
                            source="camera",
                            sequence=sequence,
                            captured_ms=1_800_000_000_000,
                            ext="mp4",
                        ).key
                        await clients.s3.put_object(
                            Bucket=settings.names.chunks_bucket, Key=key, Body=data
                        )
                        event = ChunkEvent.from_key(
                            settings.names.chunks_bucket,
                            key,
                            size=len(data),
                            uploaded_at=datetime.now(UTC),
                        )
                        batch.append(Record(f"{sequence}-{student}", event.to_bytes()))
                    records.append(batch)
                await processor.process(records[0], shard_id="bench")
                requests = RequestCounter().watch([clients.s3, clients.dynamodb, clients.sns])
                decoded_before = metrics.totals().get("FramesDecoded", 0)
                main_before, pool_before = time.process_time(), pool_cpu(pool)
                for batch in records[1:]:
                    await processor.process(batch, shard_id="bench")
                main_cpu = time.process_time() - main_before
                pool_seconds = pool_cpu(pool) - pool_before
                decoded = metrics.totals().get("FramesDecoded", 0) - decoded_before
                requests.stop()
    processed = students * batches
    return {
        "aws_requests_per_chunk": requests.total() / processed,
        "aws_requests": dict(sorted(requests.counts.items())),
        "chunks": processed,
        "frames_decoded_per_chunk": decoded / processed,
        "extraction": pool_seconds * 1000 / processed,
        "rest": main_cpu * 1000 / processed,
        "total": (pool_seconds + main_cpu) * 1000 / processed,
    }


def _per_chunk(measured: dict[str, Any]) -> dict[str, float]:
    return {op: round(n / measured["chunks"], 2) for op, n in measured["aws_requests"].items()}


def _floor_cpu_ms(chunk_data: list[bytes], rounds: int) -> float:
    """CPU ms per chunk of the floor (decode one keyframe + JPEG), like the figure it is
    compared with: CPU time, which other work on the machine does not inflate."""
    for data in chunk_data:
        floor(data)
    started = time.process_time()
    for _ in range(rounds):
        for data in chunk_data:
            floor(data)
    return (time.process_time() - started) * 1000 / (rounds * len(chunk_data))


def run(data_dir: Path, size: Size) -> list[Figure]:
    students, batches = (3, 1) if size == "tiny" else (40, 6)
    cpu = asyncio.run(measure(students, batches, data_dir))
    first = asyncio.run(measure(students, batches, data_dir, position="first"))
    every = asyncio.run(measure(students, batches, data_dir, keep_all=True))
    floor_ms = _floor_cpu_ms([data for _, data in cut_chunks(data_dir)], rounds=5)
    total = round(cpu["total"], 2)
    requests = cpu["aws_requests_per_chunk"]
    capacity = int(_TASK_VCPUS * _CHUNK_SECONDS * 1000 / cpu["total"])
    details = {
        "extraction_ms": round(cpu["extraction"], 2),
        "rest_ms": round(cpu["rest"], 2),
        "chunks": cpu["chunks"],
        "frames_decoded_per_chunk": round(cpu["frames_decoded_per_chunk"], 2),
        "aws_requests_per_chunk": round(cpu["aws_requests_per_chunk"], 2),
        "rest_ms_per_aws_request": round(cpu["rest"] / cpu["aws_requests_per_chunk"], 2),
        "students_per_batch": students,
        "engine": "fixed (0.1 s wait, no CPU)",
        "client_parameter_validation": "off, as the consumer's ECS task runs",
        "frame_position": "middle (the default), with the first frame as fallback",
        "with_frame_position_first": {
            k: round(first[k], 2) for k in ("extraction", "rest", "total")
        },
    }
    print(
        f"  extraction {details['extraction_ms']} ms + rest {details['rest_ms']} ms per chunk;"
        f" {details['aws_requests_per_chunk']} AWS requests per chunk {cpu['aws_requests']}"
        f" (baseline, nothing kept: {every['aws_requests_per_chunk']:.2f})"
    )
    print(f"  PROCTOR_FRAME_POSITION=first: {details['with_frame_position_first']}")
    return [
        Figure(
            name="consumer_cpu_per_chunk",
            value=total,
            unit="CPU ms per chunk (engine excluded)",
            baseline=round(floor_ms, 2),
            baseline_is="floor: decode one keyframe + JPEG of the same chunks (CPU time)",
            ratio=round(total / floor_ms, 2),
            ratio_means="times the floor",
            goal="<= 8 ms",
            met=total <= 8,
            details=details,
        ),
        Figure(
            name="consumer_capacity_projected",
            value=capacity,
            unit="students per 2-vCPU task (one chunk per 5 s)",
            baseline=None,
            baseline_is="derived: 2 vCPU x 5 s / CPU per chunk (no AWS in this run)",
            ratio=None,
            ratio_means="-",
            goal=">= 1250 students",
            met=capacity >= 1250,
            details={"cpu_ms_per_chunk": total},
        ),
        Figure(
            name="consumer_aws_requests_per_chunk",
            value=round(requests, 2),
            unit="AWS requests per chunk (S3, DynamoDB, SNS; steady state)",
            baseline=round(every["aws_requests_per_chunk"], 2),
            baseline_is="same run, no session kept (PROCTOR_SESSION_CACHE_SIZE=0), frame_every 1",
            ratio=round(requests / every["aws_requests_per_chunk"], 3),
            ratio_means="fraction of the baseline's requests",
            goal="<= 2.5",
            met=requests <= 2.5,
            details={
                "per_operation": _per_chunk(cpu),
                "baseline_per_operation": _per_chunk(every),
                "chunks": cpu["chunks"],
                "students_per_batch": students,
                "chunks_per_student_per_batch": 1,
                "frame_every": "policy default (6)",
            },
        ),
    ]
