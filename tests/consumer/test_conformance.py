"""Conformance: real workers as OS processes share a 4-shard stream like KCL workers do.

Against moto's server and against kinesis-local (an independent Kinesis
implementation), while chunks are produced continuously:

- three workers balance to 1-2 shards each within three lease periods;
- a split and a merge while running: parents finish before children start,
  every student's chunks are processed in order, nothing is lost or repeated
  (moto never ends a closed shard: there, children must stay unstarted);
- after ``kill -9`` of a worker, its shards are processed again within 15 s;
- at the end every produced chunk has exactly one result row, every incident
  exactly one alert, and SNS delivered each alert exactly once (the FIFO
  alerts topic drops the re-publish of a worker taking over).

S3, DynamoDB and SNS are always moto's; only Kinesis changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.aws import async_clients, sync_client
from proctoring.settings import Settings
from proctoring.storage import Tables, from_item
from producer.rendering import render_chunks
from producer.scenario import load_scenario
from tests import kinesis_local
from tests.conftest import DATA, eventually, needs_data, poll
from tests.pipeline import put_chunk

pytestmark = [pytest.mark.slow, needs_data]

EXAM = "conformance"
LEASE = 10.0  # KCL's default failover time, the one the acceptance is stated in


def _student_in(eighth: int, prefix: str) -> str:
    """A student id whose partition key hashes into the given eighth of the key space.

    Eight students, one per eighth, put records on every shard of a 4-shard stream
    and on every child after a split or a merge.
    """
    low, size = eighth * 2**125, 2**125
    return next(
        student
        for student in (f"{prefix}{i}" for i in range(100_000))
        if low <= int(hashlib.md5(f"{EXAM}#{student}".encode()).hexdigest(), 16) < low + size
    )


AWAY = [_student_in(e, "a") for e in (1, 6)]  # nobody there: one NO_FACE incident each
PRESENT = [_student_in(e, "p") for e in (0, 2, 3, 4, 5, 7)]  # facing the camera: no alert


# moto's Kinesis keeps routing new records to a shard after splitting or merging it and
# never ends the closed shard (moto 5.2.5: PutRecords writes to the parent, GetRecords keeps
# returning NextShardIterator). Against moto the suite still splits and merges, and checks
# what moto can show: the children are discovered and held back while their parents are
# open, and nothing is lost or repeated. Parents ending and children taking over are
# checked against kinesis-local.


@dataclass
class _Run:
    settings: Settings
    folder: Path
    parents_end: bool  # the emulator ends a shard after a split or merge
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    produced: dict[str, int] = field(default_factory=dict)

    def env(self, worker: str) -> dict[str, str]:
        s = self.settings
        env = {
            **os.environ,
            "PROCTOR_ENDPOINT_URL": s.endpoint_url or "",
            "PROCTOR_PREFIX": s.prefix,
            "PROCTOR_ALERTS_TOPIC_ARN": s.alerts_topic_arn or "",
            "PROCTOR_WORKER_ID": worker,
            "PROCTOR_CPU_WORKERS": "1",
            "PROCTOR_DETECT_UPSAMPLE": "0",  # faces fill the small frames: no upsampling needed
            "PROCTOR_POLL_INTERVAL": "0.2",
            "PROCTOR_BATCH_SIZE": "5",  # small batches: results soon after a takeover
            "PROCTOR_LEASE_DURATION": str(LEASE),
            "PROCTOR_SHARD_SYNC_INTERVAL": "2",
            "PROCTOR_LOG_FORMAT": "json",
            "PROCTOR_DATA_DIR": str(DATA),
        }
        if s.kinesis_endpoint_url:
            env["PROCTOR_KINESIS_ENDPOINT_URL"] = s.kinesis_endpoint_url
        return env

    def start(self, worker: str) -> None:
        self.workers[worker] = subprocess.Popen(
            [sys.executable, "-m", "cli", "consume"],
            env=self.env(worker),
            stdin=subprocess.DEVNULL,
            stdout=self.files.enter_context((self.folder / f"{worker}.metrics").open("wb")),
            stderr=self.files.enter_context((self.folder / f"{worker}.log").open("wb")),
        )

    def log(self, worker: str) -> list[dict[str, Any]]:
        # the last piece may be a line the worker is still writing: only whole lines count
        *lines, _ = (self.folder / f"{worker}.log").read_text().split("\n")
        return [json.loads(line) for line in lines if line.startswith("{")]

    def leases(self) -> dict[str, dict[str, Any]]:
        items = sync_client(self.settings, "dynamodb").scan(
            TableName=self.settings.names.leases_table, ConsistentRead=True
        )["Items"]
        return {i["leaseKey"]: i for i in map(from_item, items)}


def _wait_active(kinesis: Any, stream: str) -> None:
    for _ in poll("stream ACTIVE", 30):
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return


def _chunks(tmp: Path) -> dict[str, bytes]:
    """One small real chunk with the student, one of an empty room (fast to analyse)."""
    made = {}
    for name, segment in {
        "present": "  - photo: faces/obama2.jpg\n    seconds: 1\n",
        "away": "  - empty: 1\n",
    }.items():
        path = tmp / f"{name}.yaml"
        path.write_text(f"segments:\n{segment}")
        (chunk,) = render_chunks(
            load_scenario(path, data_dir=DATA), seconds=1, fps=5, size=(320, 240)
        )
        made[name] = chunk.data
    return made


async def _produce(run: _Run, chunks: dict[str, bytes], stop: asyncio.Event) -> None:
    """Every 1.5 s: one more chunk per student, uploaded and put on the stream.

    Sized for 2 cores shared by three workers, the emulators and this test: about
    0.4 CPU-seconds of analysis per second, so lag stays flat and failover shows.
    """
    s = run.settings
    async with async_clients(s) as clients:
        sequence = 0
        while not stop.is_set():
            for student in PRESENT + AWAY:
                data = chunks["away" if student in AWAY else "present"]
                await put_chunk(
                    clients, s, exam_id=EXAM, student_id=student, sequence=sequence, data=data
                )
                run.produced[student] = sequence + 1
            sequence += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.5)


@contextlib.contextmanager
def _producing(run: _Run, chunks: dict[str, bytes]) -> Iterator[None]:
    """Run the producer in a thread's event loop for the duration of the block."""
    import threading

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(_produce(run, chunks, stop))
        except BaseException as exc:  # reported below, in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
    if failure:
        raise failure[0]


def _owners(leases: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(
        lease["leaseOwner"]
        for lease in leases.values()
        if lease.get("leaseOwner") and lease.get("checkpoint") != "SHARD_END"
    )


def _split_and_merge(run: _Run, kinesis: Any, stream: str) -> list[str]:
    """Split the first shard and merge the last two while chunks flow; return the children."""
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    first = shards[0]
    low, high = (int(first["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit=first["ShardId"],
        NewStartingHashKey=str((low + high) // 2),
    )
    _wait_active(kinesis, stream)
    kinesis.merge_shards(
        StreamName=stream,
        ShardToMerge=shards[2]["ShardId"],
        AdjacentShardToMerge=shards[3]["ShardId"],
    )
    _wait_active(kinesis, stream)
    parents = {first["ShardId"], shards[2]["ShardId"], shards[3]["ShardId"]}
    if not run.parents_end:
        for _ in poll("children discovered", 3 * LEASE):
            leases = run.leases()
            children = [k for k, v in leases.items() if set(v.get("parentShardIds", [])) & parents]
            if len(children) == 3:
                return children
    for _ in poll("parents ended and children taken", 6 * LEASE):
        leases = run.leases()
        children = [k for k, v in leases.items() if set(v.get("parentShardIds", [])) & parents]
        if (
            len(children) == 3
            and all(leases[p]["checkpoint"] == "SHARD_END" for p in parents)
            and all(leases[c].get("leaseOwner") for c in children)
        ):
            break
    for _ in poll("children processing", 3 * LEASE):
        leases = run.leases()
        if all(leases[c]["checkpoint"] not in ("TRIM_HORIZON",) for c in children):
            break
    return children


@pytest.fixture(params=["moto", "kinesis-local"])
def run(request: pytest.FixtureRequest, emulator: Emulator, tmp_path: Path) -> Iterator[_Run]:
    base = Settings(endpoint_url=emulator.endpoint_url, prefix=f"c{uuid.uuid4().hex[:8]}")
    outputs = provision(base, shard_count=4)
    settings = base.model_copy(update={"alerts_topic_arn": outputs["AlertsTopicArn"]})
    with contextlib.ExitStack() as stack:
        if request.param == "kinesis-local":
            if (why := kinesis_local.available()) is not None:
                pytest.skip(why)
            local = stack.enter_context(kinesis_local.KinesisLocal())
            settings = settings.model_copy(update={"kinesis_endpoint_url": local.endpoint_url})
            kinesis = sync_client(settings, "kinesis")
            kinesis.create_stream(StreamName=settings.names.stream, ShardCount=4)
            _wait_active(kinesis, settings.names.stream)
        result = _Run(settings, tmp_path, parents_end=request.param == "kinesis-local")
        try:
            yield result
        finally:
            for process in result.workers.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
            result.files.close()


def test_workers_balance_fail_over_and_reshard_without_losing_or_repeating(run: _Run) -> None:
    settings = run.settings
    kinesis = sync_client(settings, "kinesis")
    stream = settings.names.stream
    with _producing(run, _chunks(run.folder)):
        # ---- three workers balance -------------------------------------------------
        for worker in ("w1", "w2", "w3"):
            run.start(worker)
        # the clock starts when the last worker starts leasing (its process pool warm), so a
        # slow interpreter start on a loaded machine is not counted as balancing time
        for _ in poll("3 workers started", 60):
            if all(
                any(line.get("event") == "worker started" for line in run.log(w))
                for w in run.workers
            ):
                break
        for elapsed in poll("3 workers balanced on 4 shards", 3 * LEASE):
            owners = _owners(run.leases())
            if sum(owners.values()) == 4 and len(owners) == 3 and max(owners.values()) <= 2:
                balanced_after = elapsed
                first_started = min(
                    datetime.fromisoformat(line["timestamp"]).timestamp()
                    for w in run.workers
                    for line in run.log(w)
                    if line.get("event") == "worker started"
                )
                since_first = time.time() - first_started
                break

        children = _split_and_merge(run, kinesis, stream)

        # ---- kill -9 the worker holding the most shards ------------------------------------
        victim, _ = _owners(run.leases()).most_common(1)[0]
        held = [
            k
            for k, v in run.leases().items()
            if v.get("leaseOwner") == victim and v["checkpoint"] != "SHARD_END"
        ]
        run.workers[victim].send_signal(signal.SIGKILL)
        run.workers[victim].wait()
        killed = time.time()
        # failover: from the kill to the first chunk of each orphaned shard processed by another
        # worker. Read from the workers' logs, not from the checkpoints: the victim may have
        # checkpointed between the lease read and the kill, so a changed checkpoint is no proof.
        resumed: dict[str, float] = {}
        for _ in poll("orphaned shards processed again", 30):
            for worker in set(run.workers) - {victim}:
                for line in run.log(worker):
                    stamp = datetime.fromisoformat(line["timestamp"]).timestamp()
                    shard = line.get("shard")
                    if line.get("event") == "chunk processed" and shard in held and stamp > killed:
                        resumed[shard] = min(stamp, resumed.get(shard, stamp))
            if resumed.keys() == set(held):
                break
        leases = run.leases()
        assert all(leases[k].get("leaseOwner") not in (None, victim) for k in held)

    # ---- drain: every produced chunk gets its result ---------------------------------------
    async def drained() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)

            async def rows() -> dict[str, list[dict[str, Any]]]:
                return {s: await tables.results(f"{EXAM}#{s}") for s in run.produced}

            found = await eventually(
                rows,
                lambda found: all(len(found[s]) >= n for s, n in run.produced.items()),
                within=90,
                interval=0.5,
            )
            return found, await tables.alerts(EXAM)

    failover = max(resumed.values()) - killed
    assert failover <= 15.0, f"orphaned shards processed again only after {failover:.1f} s"
    rows, alerts = asyncio.run(drained())
    for process in run.workers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for worker, process in run.workers.items():
        assert process.wait(timeout=60) in (0, -signal.SIGKILL), f"{worker} did not stop cleanly"

    # exactly one result row per produced chunk, each processed in the student's order
    for student, count in run.produced.items():
        ordered = sorted(rows[student], key=lambda r: r["sequence"])
        assert [r["sequence"] for r in ordered] == list(range(count)), student
        assert all(r["status"] == "ok" for r in ordered), student
        times = [r["processed_at"] for r in ordered]
        assert times == sorted(times), f"{student}'s chunks were processed out of order"

    # a chunk is processed twice only when the worker that processed it first lost that
    # shard's lease around then (killed, or stolen from during balancing) before it could
    # checkpoint the batch
    first: dict[tuple[str, int], tuple[float, str, str]] = {}
    processed: Counter[tuple[str, int]] = Counter()
    loss_times: dict[tuple[str, str], list[float]] = {}
    for worker in run.workers:
        for line in run.log(worker):
            stamp = datetime.fromisoformat(line["timestamp"]).timestamp()
            if line.get("event") == "lease lost":
                loss_times.setdefault((worker, line["shard"]), []).append(stamp)
            if line.get("event") == "chunk processed" and line.get("student"):
                chunk = (line["student"], line["seq"])
                processed[chunk] += 1
                first[chunk] = min(
                    first.get(chunk, (stamp, worker, line["shard"])), (stamp, worker, line["shard"])
                )
    assert set(processed) == {(s, q) for s, n in run.produced.items() for q in range(n)}
    repeated = {chunk for chunk, n in processed.items() if n > 1}
    for chunk in repeated:
        stamp, worker, shard = first[chunk]
        near = [t for t in loss_times.get((worker, shard), []) if abs(t - stamp) <= LEASE]
        assert worker == victim or near, f"{chunk} repeated, but {worker} kept {shard}"

    # one alert per incident, each delivered once: a worker killed after publishing and
    # before marking the alert published leaves it to the next owner, whose re-publish the
    # FIFO topic drops (same deduplication id)
    assert sorted((a["student_id"], a["type"]) for a in alerts) == [(s, "NO_FACE") for s in AWAY]
    sqs = sync_client(settings, "sqs")
    queue = sqs.get_queue_url(QueueName=settings.names.alerts_queue)["QueueUrl"]
    delivered: Counter[str] = Counter()
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            delivered[json.loads(json.loads(message["Body"])["Message"])["alert_id"]] += 1
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert delivered == Counter(a["alert_id"] for a in alerts)

    # parents before children, from the workers' own logs
    ended: dict[str, float] = {}
    started: dict[str, float] = {}
    for worker in run.workers:
        for line in run.log(worker):
            stamp = datetime.fromisoformat(line["timestamp"]).timestamp()
            if line.get("event") == "shard ended; children may start":
                ended[line["shard"]] = min(stamp, ended.get(line["shard"], stamp))
            if line.get("event") == "batch checkpointed":
                started.setdefault(line["shard"], stamp)
                started[line["shard"]] = min(started[line["shard"]], stamp)
    leases = run.leases()
    assert len(children) == 3
    for child in children:
        if not run.parents_end:
            assert child not in started, f"{child} started while its parents are open"
        for parent in leases[child]["parentShardIds"]:
            if child in started:
                assert ended[parent] <= started[child], f"{child} started before {parent} ended"

    print(
        f"\n[{(settings.kinesis_endpoint_url and 'kinesis-local') or 'moto'}] balanced "
        f"{balanced_after:.1f} s after the last worker started ({since_first:.1f} s after the "
        f"first), failover of {len(held)} shard(s) in {failover:.1f} s, "
        f"{sum(run.produced.values())} chunks, {len(repeated)} repeated after kill -9"
    )
