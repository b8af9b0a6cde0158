"""The S3/SQS emulator's CPU per request as its bucket and its queue grow.

``python -m bench.emulator_growth --sizes 100,3000,12000`` starts the emulator as the local
stack does (``infrastructure.moto_server``), makes a versioned bucket whose ``ObjectCreated``
events go to an SQS queue (as the chunks bucket's do), and at each size N:

- stores objects of ``--kb`` kB (a chunk is ~600) until the bucket holds N, receiving and
  deleting their notifications as the router does (10 a call), and reports the CPU per
  ``PutObject``, ``GetObject``, ``ReceiveMessage`` and ``DeleteMessageBatch`` of the last
  ``--sample`` objects: what grows with the *bucket* (the queue stays short);
- then leaves N messages on the queue and reports the CPU per ``ReceiveMessage``,
  ``ChangeMessageVisibility`` and ``DeleteMessageBatch`` on it: what grows with the *queue*
  (a stack that has fallen behind);

and the emulator's resident memory. CPU is the emulator's own count (its thread's CPU time
per request, ``GET /moto-api/proctor/requests``), so the figures do not move with the
machine's other load. Not part of ``make test``: a diagnosis tool (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
import uuid
from typing import Any

import psutil

from infrastructure.emulator import Emulator
from infrastructure.moto_server import STATS_PATH
from proctoring.aws import sync_client
from proctoring.settings import Settings

__all__ = ["main"]


def _counts(emulator: Emulator) -> dict[str, dict[str, float]]:
    url = f"{emulator.endpoint_url}{STATS_PATH}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        counts: dict[str, dict[str, float]] = json.loads(answer.read())
    return counts


def _per_call(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU ms per call of each operation between two counts."""
    out = {}
    for name, row in after.items():
        old = before.get(name, {"count": 0, "cpu_s": 0.0})
        calls = row["count"] - old["count"]
        if calls:
            out[name] = round(1000 * (row["cpu_s"] - old["cpu_s"]) / calls, 3)
    return out


def _drain(sqs: Any, url: str, want: int) -> int:
    got = 0
    while got < want:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        got += len(messages)
    return got


def measure(emulator: Emulator, sizes: list[int], kb: int, sample: int) -> list[dict[str, Any]]:
    settings = Settings(endpoint_url=emulator.endpoint_url)
    s3, sqs = sync_client(settings, "s3"), sync_client(settings, "sqs")
    name = f"grow-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    _drain(sqs, url, 10)  # the test event
    body = bytes(range(256)) * (kb * 4)
    process = next(
        child
        for child in psutil.Process().children(recursive=True)
        if f"-p {emulator.port}" in " ".join(child.cmdline())
    )
    stored = 0
    rows = []
    for size in sizes:
        while stored < size - sample:  # fill, draining as the router would
            for n in range(stored, min(stored + 50, size - sample)):
                s3.put_object(Bucket=name, Key=f"chunks/{n:06d}.mp4", Body=body)
            _drain(sqs, url, min(50, size - sample - stored))
            stored = min(stored + 50, size - sample)
        before = _counts(emulator)
        for n in range(stored, size):
            s3.put_object(Bucket=name, Key=f"chunks/{n:06d}.mp4", Body=body)
            s3.get_object(Bucket=name, Key=f"chunks/{n:06d}.mp4")["Body"].read()
            if n % 10 == 9:
                _drain(sqs, url, 10)
        _drain(sqs, url, sample)
        stored = size
        bucket = _per_call(before, _counts(emulator))
        # the same number of messages left on a queue: a stack that has fallen behind
        backlog = sqs.create_queue(QueueName=f"{name}-{size}")["QueueUrl"]
        for start in range(0, size, 10):
            sqs.send_message_batch(
                QueueUrl=backlog,
                Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
            )
        before = _counts(emulator)
        for _ in range(sample // 10):
            messages = sqs.receive_message(QueueUrl=backlog, MaxNumberOfMessages=10)["Messages"]
            sqs.change_message_visibility(
                QueueUrl=backlog, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=300
            )
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            sqs.delete_message_batch(QueueUrl=backlog, Entries=entries)
        queue = _per_call(before, _counts(emulator))
        sqs.delete_queue(QueueUrl=backlog)
        rows.append(
            {
                "objects": size,
                "bucket_ms": bucket,
                "queue_ms": queue,
                "emulator_mib": round(process.memory_info().rss / 2**20),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,3000,12000")
    parser.add_argument("--kb", type=int, default=600, help="object size (a chunk: ~600 kB)")
    parser.add_argument("--sample", type=int, default=100, help="requests timed at each size")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with Emulator() as emulator:
        measure(emulator, sizes, args.kb, args.sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
