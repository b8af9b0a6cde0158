"""The emulator's CPU per request as its bucket, its queue and its tables grow.

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

and the emulator's resident memory. ``--rows 10,120,240`` (``--sizes ""`` for these alone)
measures DynamoDB as the consumer and the load generator use it: ``--students`` students (40)
each get a result row (~2.5 kB, nested maps) a chunk, written with their session (one binary
attribute of ~1.5 kB and a version) in one ``TransactWriteItems`` of 80 items with the
consumer's conditions, until each student's partition holds N rows; then the CPU per
``TransactWriteItems`` (and per item) of the next ``--tx-sample`` chunks, and per ``Query`` of
a student's rows after the last but one, projected to the load generator's fields (what
``Tables.results_after`` sends).

CPU is the emulator's own count (its thread's CPU time per request, ``GET
/moto-api/proctor/requests``), so the figures do not move much with the machine's other load.
``--emulator-cwd ../main`` runs another checkout's emulator (the figures before a change).
Not part of ``make test``: a diagnosis tool (docs/benchmarks.md).
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


_FIELDS = ("chunk_id", "sequence", "processed_at", "uploaded_at", "status", "error_reason")
"""What the load generator reads of each result row (``producer.load._collect``)."""


def _result(session: str, n: int) -> dict[str, Any]:
    """A result row as the consumer writes it, in DynamoDB's JSON: ~2.5 kB, nested maps."""
    when = "2026-12-07T12:00:00.000000+00:00"
    box = {side: {"N": "0.25"} for side in ("left", "top", "width", "height")}
    face = {"M": {"box": {"M": box},
                  "confidence": {"N": "0.998"}, "yaw": {"N": "3.2"}, "pitch": {"N": "-4.1"},
                  "landmarks": {"L": [{"N": str(i / 10)} for i in range(20)]}}}  # fmt: skip
    rules = ("NO_FACE", "MULTIPLE_FACES", "LOOKING_AWAY", "PHONE", "IDENTITY")
    return {
        "session_id": {"S": session},
        "chunk_id": {"S": f"camera#{n:06d}"},
        "sequence": {"N": str(n)},
        "chunk_key": {"S": f"chunks/{session}/camera/{n:06d}.mp4"},
        "chunk_sha256": {"S": "ab" * 32},
        "status": {"S": "ok"},
        "latency_ms": {"N": "812"},
        "frame": {
            "M": {
                "key": {"S": f"frames/{session}/{n:06d}.jpg"},
                "sha256": {"S": "cd" * 32},
                "width": {"N": "640"},
                "height": {"N": "480"},
            }
        },
        "faces": {"L": [face, face]},
        "identity": {"M": {"match": {"BOOL": True}, "similarity": {"N": "0.93"}}},
        "findings": {
            "L": [
                {"M": {"type": {"S": rule}, "active": {"BOOL": False}, "count": {"N": "0"}}}
                for rule in rules
            ]
        },
        "risk": {"N": "0.12"},
        **{
            name: {"S": when}
            for name in (
                "captured_at",
                "uploaded_at",
                "processed_at",
                "notified_at",
                "routed_at",
                "arrived_at",
                "read_at",
                "extracted_at",
                "analysed_at",
            )
        },
    }


def _transaction(results: str, sessions: str, students: int, n: int) -> list[dict[str, Any]]:
    """Chunk ``n`` of every student: its row and its session (version n + 1), as
    ``Tables.save_sessions`` writes them."""
    items: list[dict[str, Any]] = []
    for student in range(students):
        items.append(
            {
                "Put": {
                    "TableName": results,
                    "Item": _result(f"exam#s{student:03d}", n),
                    "ConditionExpression": (
                        "attribute_not_exists(chunk_id) OR (#s = :error AND error_reason = :parked)"
                    ),
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":error": {"S": "error"},
                        ":parked": {"S": "parked"},
                    },
                }
            }
        )
        put: dict[str, Any] = {
            "TableName": sessions,
            "Item": {
                "exam_id": {"S": "exam"},
                "student_id": {"S": f"s{student:03d}"},
                "version": {"N": str(n + 1)},
                "risk": {"N": "0.1"},
                "state": {"B": bytes([student % 256, n % 256]) * 750},
            },
        }
        if n == 0:
            put["ConditionExpression"] = "attribute_not_exists(student_id)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(n)}}
        items.append({"Put": put})
    return items


def measure_tables(
    emulator: Emulator, rows: list[int], students: int, sample: int
) -> list[dict[str, Any]]:
    """CPU per TransactWriteItems and per Query after the last row, as partitions grow."""
    dynamodb = sync_client(Settings(endpoint_url=emulator.endpoint_url), "dynamodb")
    run = uuid.uuid4().hex[:8]
    results, sessions = f"results-{run}", f"sessions-{run}"
    for name, key in ((results, ("session_id", "chunk_id")), (sessions, ("exam_id", "student_id"))):
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key[0], "KeyType": "HASH"},
                       {"AttributeName": key[1], "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": key[0], "AttributeType": "S"},
                                  {"AttributeName": key[1], "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
    names = {f"#f{i}": name for i, name in enumerate(_FIELDS)}
    written = 0
    out = []
    for size in rows:
        while written < size - sample:
            dynamodb.transact_write_items(
                TransactItems=_transaction(results, sessions, students, written)
            )
            written += 1
        before = _counts(emulator)
        target = max(size, written + 1)
        while written < target:
            dynamodb.transact_write_items(
                TransactItems=_transaction(results, sessions, students, written)
            )
            written += 1
        transact = _per_call(before, _counts(emulator))["dynamodb.TransactWriteItems"]
        before = _counts(emulator)
        for student in range(students):
            found = dynamodb.query(
                TableName=results,
                KeyConditionExpression="session_id = :s AND chunk_id > :after",
                ExpressionAttributeValues={
                    ":s": {"S": f"exam#s{student:03d}"},
                    ":after": {"S": f"camera#{written - 2:06d}"},
                },
                ProjectionExpression=", ".join(names),
                ExpressionAttributeNames=names,
                ConsistentRead=True,
            )["Items"]
            assert [row["chunk_id"]["S"] for row in found] == [f"camera#{written - 1:06d}"]
        query = _per_call(before, _counts(emulator))["dynamodb.Query"]
        out.append(
            {
                "rows_per_partition": written,
                "rows": written * students,
                "transact_ms": transact,
                "transact_ms_per_item": round(transact / (2 * students), 3),
                "query_after_ms": query,
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


class _Checkout(Emulator):
    """The emulator of another checkout (``--emulator-cwd``): its ``infrastructure``
    package comes first on the path of ``python -m``."""

    def __init__(self, cwd: str) -> None:
        super().__init__()
        self.cwd = cwd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,3000,12000", help="objects ('' for none)")
    parser.add_argument("--kb", type=int, default=600, help="object size (a chunk: ~600 kB)")
    parser.add_argument("--sample", type=int, default=100, help="requests timed at each size")
    parser.add_argument("--rows", default="", help="rows per partition, e.g. 10,120,240")
    parser.add_argument("--students", type=int, default=40, help="partitions (2 items each)")
    parser.add_argument("--tx-sample", type=int, default=5, help="transactions timed per size")
    parser.add_argument("--emulator-cwd", help="run this checkout's emulator (e.g. ../main)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    rows = sorted(int(s) for s in args.rows.split(",") if s)
    with _Checkout(args.emulator_cwd) if args.emulator_cwd else Emulator() as emulator:
        if sizes:
            measure(emulator, sizes, args.kb, args.sample)
        if rows:
            measure_tables(emulator, rows, args.students, args.tx_sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
