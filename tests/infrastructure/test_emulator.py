"""The emulator as the local stack runs it: moto's server, with its Kinesis writes serialised
and its transactions backing up only the items they name."""

from __future__ import annotations

import io
import json
import os
import tempfile
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infrastructure.emulator import Emulator
from infrastructure.moto_bodies import SPILL_PREFIX
from infrastructure.moto_server import STATS_PATH
from proctoring.aws import sync_client
from proctoring.settings import Settings

_THREADS = 8
_CALLS = 25
_RECORDS = 20


def test_concurrent_put_records_lose_nothing(emulator: Emulator) -> None:
    """Eight writers at once on one shard, as the router's pollers and many students make
    them: every record gets a sequence number of its own and is read back. moto numbers
    a shard's records max + 1 without a lock, so before the emulator serialised its
    Kinesis writes two records got one number and the later one replaced the earlier
    (found by `make soak`: chunks without results)."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    kinesis = sync_client(settings, "kinesis")
    stream = f"race-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)

    def writer(thread: int) -> list[str]:
        client = sync_client(settings, "kinesis")
        numbers = []
        for call in range(_CALLS):
            records = [
                {"Data": f"{thread}-{call}-{n}".encode(), "PartitionKey": f"p{thread}"}
                for n in range(_RECORDS)
            ]
            response = client.put_records(StreamName=stream, Records=records)
            assert response.get("FailedRecordCount", 0) == 0
            numbers += [r["SequenceNumber"] for r in response["Records"]]
        return numbers

    with ThreadPoolExecutor(_THREADS) as threads:
        numbers = [n for batch in threads.map(writer, range(_THREADS)) for n in batch]
    expected = _THREADS * _CALLS * _RECORDS
    assert len(numbers) == expected
    assert len(set(numbers)) == expected, f"{expected - len(set(numbers))} numbers given twice"

    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    read: list[bytes] = []
    while True:
        response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        read += [r["Data"] for r in response["Records"]]
        if not response["Records"]:
            break
        iterator = response["NextShardIterator"]
    assert len(read) == expected, f"{expected - len(read)} of {expected} records lost"
    assert len(set(read)) == expected
    kinesis.delete_stream(StreamName=stream)


def test_a_cancelled_transaction_leaves_every_item_it_named_as_it_was(emulator: Emulator) -> None:
    """The consumer writes a student's new result rows and session in one transaction
    (``Tables.save_session``). moto backed up every table it touched with a deep copy per
    transaction (each costing more as the results table grew); the emulator backs up the
    items named instead, and a cancelled transaction must still change none of them."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    dynamodb = sync_client(settings, "dynamodb")
    table = f"tx-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"},
                   {"AttributeName": "r", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                              {"AttributeName": "r", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    for r in range(3):
        dynamodb.put_item(
            TableName=table, Item={"k": {"S": "s"}, "r": {"N": str(r)}, "v": {"N": "1"}}
        )

    def put(r: int, condition: str | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {
            "TableName": table,
            "Item": {"k": {"S": "s"}, "r": {"N": str(r)}, "v": {"N": "2"}},
        }
        if condition:
            op["ConditionExpression"] = condition
        return {"Put": op}

    # rows 0 and 5 written, row 1 deleted, then row 2's condition fails: nothing happened
    delete = {"Delete": {"TableName": table, "Key": {"k": {"S": "s"}, "r": {"N": "1"}}}}
    items = [put(0), put(5), delete, put(2, "attribute_not_exists(k)")]
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=items)
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    rows = dynamodb.query(
        TableName=table,
        KeyConditionExpression="k = :k",
        ExpressionAttributeValues={":k": {"S": "s"}},
    )["Items"]
    assert sorted((int(i["r"]["N"]), int(i["v"]["N"])) for i in rows) == [(0, 1), (1, 1), (2, 1)]

    dynamodb.transact_write_items(TransactItems=items[:3])  # without the failing one: all done
    rows = dynamodb.query(
        TableName=table,
        KeyConditionExpression="k = :k",
        ExpressionAttributeValues={":k": {"S": "s"}},
    )["Items"]
    assert sorted((int(i["r"]["N"]), int(i["v"]["N"])) for i in rows) == [(0, 2), (2, 1), (5, 2)]


def _operations(emulator: Emulator) -> dict[str, dict[str, float]]:
    url = f"{emulator.endpoint_url}{STATS_PATH}"
    with urllib.request.urlopen(url, timeout=5) as answer:  # loopback, the emulator's own
        counts: dict[str, dict[str, float]] = json.loads(answer.read())
    return counts


def test_a_query_reads_its_partition_only_and_answers_as_before(emulator: Emulator) -> None:
    """moto sorted every item of a table for each Query of one partition, so following a
    session's result rows cost more with every chunk any student sent; the emulator reads
    the queried partition only. The answers stay DynamoDB's: the key condition, the order
    both ways, pages, and an index's query (not a partition of the table) still work, and
    the emulator's request counts (what bench.stack_cpu reads) count each query."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    dynamodb = sync_client(settings, "dynamodb")
    table = f"q-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"},
                   {"AttributeName": "r", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                              {"AttributeName": "r", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-g",
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip

    def query(partition: str, **extra: Any) -> list[int]:
        return [
            int(item["r"]["N"])
            for item in dynamodb.query(
                TableName=table,
                KeyConditionExpression="k = :k" + extra.pop("and_", ""),
                ExpressionAttributeValues={":k": {"S": partition}, **extra.pop("values", {})},
                **extra,
            )["Items"]
        ]

    def cpu_per_query(partition: str) -> float:
        before = _operations(emulator).get("dynamodb.Query", {"count": 0, "cpu_s": 0.0})
        for _ in range(15):
            query(partition)
        after = _operations(emulator)["dynamodb.Query"]
        assert after["count"] - before["count"] == 15  # every query counted
        return (after["cpu_s"] - before["cpu_s"]) / 15

    for r in (3, 1, 2, 0):
        dynamodb.put_item(
            TableName=table, Item={"k": {"S": "a"}, "r": {"N": str(r)}, "g": {"S": f"g{r % 2}"}}
        )
    small = cpu_per_query("a")
    rows = [{"PutRequest": {"Item": {"k": {"S": f"p{n % 100}"}, "r": {"N": str(n)},
                                     "g": {"S": "other"}}}} for n in range(2_000)]  # fmt: skip
    for start in range(0, len(rows), 25):
        dynamodb.batch_write_item(RequestItems={table: rows[start : start + 25]})

    assert query("a") == [0, 1, 2, 3]
    assert query("a", ScanIndexForward=False) == [3, 2, 1, 0]
    assert query("a", and_=" AND r > :r", values={":r": {"N": "1"}}) == [2, 3]
    assert query("nobody") == []
    first = dynamodb.query(
        TableName=table,
        KeyConditionExpression="k = :k",
        ExpressionAttributeValues={":k": {"S": "a"}},
        Limit=3,
    )
    rest = dynamodb.query(
        TableName=table,
        KeyConditionExpression="k = :k",
        ExpressionAttributeValues={":k": {"S": "a"}},
        ExclusiveStartKey=first["LastEvaluatedKey"],
    )
    assert [int(i["r"]["N"]) for i in first["Items"] + rest["Items"]] == [0, 1, 2, 3]
    by_index = dynamodb.query(
        TableName=table,
        IndexName="by-g",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "g1"}},
    )["Items"]
    assert sorted(int(i["r"]["N"]) for i in by_index) == [1, 3]
    # 2,000 more rows in other partitions: a query of the four costs about what it did
    # (it sorted all 2,004 before: ~10 ms against ~1 ms); CPU time, not wall
    assert cpu_per_query("a") < max(3 * small, small + 0.002)
    dynamodb.delete_table(TableName=table)


def test_kept_condition_parses_answer_each_write_by_its_own_values(emulator: Emulator) -> None:
    """The emulator keeps the parse of a condition expression (moto parsed each three times
    per written item); a write with the same expression and other values is judged by its
    own values, and a condition that fails still fails, in a transaction or alone. Binary
    values are part of what is kept by: the kept parse's key once failed on them (a 500,
    retried until the client gave up: a proctor's re-registration keeps the old face's
    binary embedding)."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    dynamodb = sync_client(settings, "dynamodb")
    table = f"c-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def save(version: int, expected: int) -> dict[str, Any]:
        return {
            "TableName": table,
            "Item": {"k": {"S": "s"}, "version": {"N": str(version)}},
            "ConditionExpression": "version = :v",
            "ExpressionAttributeValues": {":v": {"N": str(expected)}},
        }

    dynamodb.put_item(TableName=table, Item={"k": {"S": "s"}, "version": {"N": "1"}})
    for version in range(2, 6):  # the same expression, the value one higher each time
        dynamodb.transact_write_items(TransactItems=[{"Put": save(version, version - 1)}])
        with pytest.raises(ClientError) as stale:  # the same request again: now stale
            dynamodb.transact_write_items(TransactItems=[{"Put": save(version, version - 1)}])
        assert stale.value.response["Error"]["Code"] == "TransactionCanceledException"
        with pytest.raises(ClientError) as alone:
            dynamodb.put_item(**save(version, version - 1))
        assert alone.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    item = dynamodb.get_item(TableName=table, Key={"k": {"S": "s"}})["Item"]
    assert item["version"] == {"N": "5"}
    new = {
        "TableName": table,
        "Item": {"k": {"S": "t"}},
        "ConditionExpression": "attribute_not_exists(#k)",
        "ExpressionAttributeNames": {"#k": "k", "#unused": "x"},
    }
    for _ in range(2):  # parsed, then kept: the request's own validation runs both times
        with pytest.raises(ClientError) as unused:
            dynamodb.transact_write_items(TransactItems=[{"Put": new}])
        assert "unused" in unused.value.response["Error"]["Message"]

    # binary values, as the re-registration's (they once gave a 500, retried for ~10 s)
    once = dynamodb
    for n, face in enumerate((b"\x00\x01", b"\x00\x02", b"\x00\x01")):
        once.update_item(
            TableName=table,
            Key={"k": {"S": "s"}},
            UpdateExpression="SET superseded = :s",
            ConditionExpression="attribute_exists(k)",
            ExpressionAttributeValues={":s": {"L": [{"M": {"e": {"B": face}}}]}},
        )
        kept = once.get_item(TableName=table, Key={"k": {"S": "s"}})["Item"]["superseded"]
        assert kept == {"L": [{"M": {"e": {"B": face}}}]}, n
    for face, holds in ((b"\x00\x01", True), (b"\x00\x02", False)):  # judged by its own value
        write = {
            "TableName": table,
            "Key": {"k": {"S": "s"}},
            "UpdateExpression": "SET marked = :m",
            "ConditionExpression": "superseded[0].e = :f",
            "ExpressionAttributeValues": {":f": {"B": face}, ":m": {"BS": [face, b"z"]}},
        }
        if holds:
            once.update_item(**write)
        else:
            with pytest.raises(ClientError) as failed:
                once.update_item(**write)
            assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    dynamodb.delete_table(TableName=table)


def test_a_send_costs_the_same_on_a_long_queue_and_queues_answer_as_before(
    emulator: Emulator,
) -> None:
    """moto's SendMessage counted the queue's messages one by one to read one attribute, so a
    stack that fell behind (S3 notifications piling up) fell further behind; the emulator's
    send reads that attribute only. Counts and FIFO deduplication answer as before."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    sqs = sync_client(settings, "sqs")
    name = f"long-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]

    def cpu_per_send(count: int) -> float:
        before = _operations(emulator).get("sqs.SendMessage", {"count": 0, "cpu_s": 0.0})
        for n in range(count):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        after = _operations(emulator)["sqs.SendMessage"]
        return (after["cpu_s"] - before["cpu_s"]) / (after["count"] - before["count"])

    short = cpu_per_send(20)
    for start in range(0, 3_000, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "MessageBody": f"b{start + n}"} for n in range(10)],
        )
    assert cpu_per_send(20) < max(3 * short, short + 0.002)  # it was ~56 ms at 3,000 (1 ms at 20)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "3040"

    fifo = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for _ in range(2):  # the same body twice within five minutes: one message
        sqs.send_message(QueueUrl=fifo, MessageBody="once", MessageGroupId="g")
    received = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ["once"]
    plain = sqs.create_queue(QueueName=f"{name}-plain.fifo", Attributes={"FifoQueue": "true"})
    with pytest.raises(ClientError):  # no content deduplication: an id is required
        sqs.send_message(QueueUrl=plain["QueueUrl"], MessageBody="x", MessageGroupId="g")


def test_connections_are_kept_alive_across_requests_of_every_shape(emulator: Emulator) -> None:
    """werkzeug, under moto's server, closed the connection after every response: a TCP
    connection and a server thread per request, and a socket in TIME_WAIT for a minute
    each (~500 a second at 200 students). The emulator keeps connections alive: a client
    sends body after body on one connection, including a body the server never reads (an
    upload to a missing bucket) and one announced with 100-continue, and every answer is
    its own request's."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    s3 = sync_client(settings, "s3")
    bucket = f"keep-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    closing: list[str] = []

    def answered(http_response: Any, **_: Any) -> None:  # every answer, errors included
        if http_response.headers.get("connection", "").lower() == "close":
            closing.append(http_response.url)

    s3.meta.events.register("after-call.s3", answered)
    s3.meta.events.register("after-call-error.s3", answered)
    body = bytes(range(256)) * 2_000  # 512 kB
    for n in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{n}", Body=body[n:])
        with pytest.raises(ClientError) as missing:
            s3.put_object(Bucket=f"{bucket}-missing", Key="k", Body=body)
        assert missing.value.response["Error"]["Code"] == "NoSuchBucket"
        s3.upload_fileobj(io.BytesIO(body[:n]), bucket, f"f{n}")  # a file: 100-continue
        assert s3.get_object(Bucket=bucket, Key=f"k{n}")["Body"].read() == body[n:]
        assert s3.get_object(Bucket=bucket, Key=f"f{n}")["Body"].read() == body[:n]
    assert closing == [], f"{len(closing)} of 25 answers closed their connection"


def test_receive_delete_and_visibility_cost_the_same_on_a_long_queue_and_answer_as_before(
    emulator: Emulator,
) -> None:
    """moto's ReceiveMessage listed every visible message of the queue and built all of its
    attributes, counting its messages, three times per message received; DeleteMessage and
    ChangeMessageVisibility asked every message whether it had the handle. At 3,000 messages
    a receive of ten cost ~2 s of the emulator's CPU (11 ms at 100), so the S3/SQS
    emulator of a 200-student soak fell further behind the more it was behind. The answers
    stay SQS's: order, visibility, redelivery, old and unknown handles, FIFO groups."""
    settings = Settings(endpoint_url=emulator.endpoint_url)
    sqs = sync_client(settings, "sqs")
    name = f"recv-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    operations = ("sqs.ReceiveMessage", "sqs.DeleteMessageBatch", "sqs.ChangeMessageVisibility")

    def send(count: int, tag: str) -> None:
        for start in range(0, count, 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "MessageBody": f"{tag}{start + n}"} for n in range(10)],
            )

    def cpu_per_call(rounds: int) -> dict[str, float]:
        before = _operations(emulator)
        for _ in range(rounds):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            assert len(messages) == 10
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=60
            )
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                       for n, m in enumerate(messages)]  # fmt: skip
            assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        after = _operations(emulator)
        return {
            op: (after[op]["cpu_s"] - before.get(op, {}).get("cpu_s", 0.0))
            / (after[op]["count"] - before.get(op, {}).get("count", 0))
            for op in operations
        }

    send(100, "s")
    short = cpu_per_call(10)
    send(1_000, "l")
    long = cpu_per_call(10)
    for op in operations:  # CPU time, not wall; a receive was ~0.6 s at 1,000 (11 ms at 100)
        assert long[op] < max(3 * short[op], short[op] + 0.002), (op, short[op], long[op])

    # the long queue's after the hundred received above, in the order sent
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in first] == [f"l{n}" for n in range(100, 110)]
    # received: not visible to the next receive; the next ten come instead
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in second] == [f"l{n}" for n in range(110, 120)]
    # made visible again: redelivered first, with a new handle and a second receive count
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    again = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert [m["Body"] for m in again] == ["l100"]
    assert again[0]["ReceiptHandle"] != first[0]["ReceiptHandle"]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    # deleting by its old handle deletes it (as moto did); deleting again is no error
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])
    for call in (
        lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="unknown"),
        lambda: sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=5
        ),  # the message is gone
    ):
        with pytest.raises(ClientError) as invalid:
            call()
        assert invalid.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    with pytest.raises(ClientError) as too_long:  # over SQS's 12 hours in total
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=second[0]["ReceiptHandle"], VisibilityTimeout=43_201
        )
    assert too_long.value.response["Error"]["Code"] == "InvalidParameterValue"
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "19"  # l101-l119
    assert counts["ApproximateNumberOfMessages"] == str(1_000 - 100 - 20)
    # redelivered when its visibility timeout runs out (a long poll, bounded)
    late = sqs.create_queue(QueueName=f"{name}-late")["QueueUrl"]
    sqs.send_message(QueueUrl=late, MessageBody="late")
    taken = sqs.receive_message(QueueUrl=late, VisibilityTimeout=1)["Messages"]
    assert not sqs.receive_message(QueueUrl=late).get("Messages")
    back = sqs.receive_message(QueueUrl=late, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in taken + back] == ["late", "late"]

    fifo = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for n in range(3):
        sqs.send_message(
            QueueUrl=fifo, MessageBody=f"f{n}", MessageGroupId="g", MessageDeduplicationId=str(n)
        )
    held = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=1)["Messages"]
    assert [m["Body"] for m in held] == ["f0"]
    assert not sqs.receive_message(QueueUrl=fifo).get("Messages")  # the group is in flight
    sqs.delete_message(QueueUrl=fifo, ReceiptHandle=held[0]["ReceiptHandle"])
    rest = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in rest] == ["f1", "f2"]


def test_messages_received_and_deleted_leave_nothing_behind_in_memory(emulator: Emulator) -> None:
    """moto kept every SQS message it ever made, and each copy a receive made of it, for its
    debugging page (~3.2 kB a message, never freed): every chunk's notification stayed in
    the emulator's memory. Messages sent, received and deleted now go (what is left is the
    deleted receipt handles moto remembers, ~0.3 kB a message). Bodies of 60 kB here, for a
    signal well above the noise of a process's resident size."""
    import psutil

    (process,) = [
        child
        for child in psutil.Process().children(recursive=True)
        if f"-p {emulator.port}" in " ".join(child.cmdline())
    ]
    sqs = sync_client(Settings(endpoint_url=emulator.endpoint_url), "sqs")
    url = sqs.create_queue(QueueName=f"mem-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    event = "x" * 60_000

    def through(count: int) -> None:
        for _ in range(count // 10):
            entries = [{"Id": str(n), "MessageBody": event} for n in range(10)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
            taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            handles = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                       for n, m in enumerate(taken)]  # fmt: skip
            sqs.delete_message_batch(QueueUrl=url, Entries=handles)

    through(100)  # the emulator's own allocations settle
    before = process.memory_info().rss
    through(300)
    grown = process.memory_info().rss - before
    assert grown < 8 * 2**20, f"{grown / 2**20:.0f} MiB kept for 300 messages of 60 kB"


def test_stored_bodies_live_on_disk_answer_as_before_and_go_when_the_emulator_stops() -> None:
    """moto kept every stored object's body in memory, so the 200-student soak's S3/SQS
    emulator held every ~600 kB chunk (13.8 GB by minute 18). The emulator keeps bodies above
    64 kB in files of their own, removed when it stops: storing 200 chunk-sized objects
    (120 MB) leaves its memory where it was, and every way of reading a body answers as
    before (whole, a range, a copy, a multipart upload, an older version)."""
    import psutil

    with Emulator() as running:
        (process,) = [
            child
            for child in psutil.Process().children(recursive=True)
            if f"-p {running.port}" in " ".join(child.cmdline())
        ]
        (bodies,) = Path(tempfile.gettempdir()).glob(f"{SPILL_PREFIX}{process.pid}-*")
        s3 = sync_client(Settings(endpoint_url=running.endpoint_url), "s3")
        s3.create_bucket(Bucket="chunks")
        s3.put_bucket_versioning(Bucket="chunks", VersioningConfiguration={"Status": "Enabled"})
        chunk = bytes(range(256)) * 2_400  # 600 kB
        s3.put_object(Bucket="chunks", Key="warm", Body=chunk)
        before = process.memory_info().rss
        for n in range(200):
            s3.put_object(Bucket="chunks", Key=f"c{n}", Body=chunk[n:])
        grown = process.memory_info().rss - before
        assert grown < 40 * 2**20, f"{grown / 2**20:.0f} MiB more for 120 MB stored"
        assert len(list(bodies.iterdir())) == 201  # a file each; small bodies stay in memory

        assert s3.get_object(Bucket="chunks", Key="c7")["Body"].read() == chunk[7:]
        part = s3.get_object(Bucket="chunks", Key="c7", Range="bytes=100-199")["Body"].read()
        assert part == chunk[107:207]
        first = s3.head_object(Bucket="chunks", Key="c7")
        s3.put_object(Bucket="chunks", Key="c7", Body=b"small")  # a second version, in memory
        old = s3.get_object(Bucket="chunks", Key="c7", VersionId=first["VersionId"])
        assert old["Body"].read() == chunk[7:]
        assert old["ETag"] == first["ETag"]
        assert s3.get_object(Bucket="chunks", Key="c7")["Body"].read() == b"small"
        s3.copy_object(Bucket="chunks", Key="copy", CopySource={"Bucket": "chunks", "Key": "c9"})
        assert s3.get_object(Bucket="chunks", Key="copy")["Body"].read() == chunk[9:]
        upload = s3.create_multipart_upload(Bucket="chunks", Key="big")["UploadId"]
        parts = [
            {
                "PartNumber": n,
                "ETag": s3.upload_part(
                    Bucket="chunks", Key="big", UploadId=upload, PartNumber=n, Body=body
                )["ETag"],
            }
            for n, body in ((1, chunk * 9), (2, chunk))  # parts of 5.4 MB and 600 kB
        ]
        s3.complete_multipart_upload(
            Bucket="chunks", Key="big", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        assert s3.get_object(Bucket="chunks", Key="big")["Body"].read() == chunk * 10
    assert not bodies.exists()


def test_a_killed_emulators_bodies_are_removed_when_the_next_one_starts(tmp_path: Path) -> None:
    """An emulator killed outright (SIGKILL when its parent dies) cannot remove its bodies'
    directory; the next emulator to start removes the directories of processes that are gone,
    never a running one's."""
    import subprocess
    import sys

    from infrastructure.moto_server import body_directory

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = tmp_path / f"{SPILL_PREFIX}{gone}-abc"
    left.mkdir()
    (left / "x.body").write_bytes(b"chunk")
    running = body_directory(tmp_path)  # this process's: alive
    assert not left.exists()
    assert running.exists() and running.name.startswith(f"{SPILL_PREFIX}{os.getpid()}-")
    assert body_directory(tmp_path).exists() and running.exists()


def test_the_benchmarks_name_a_presigned_chunk_get_as_the_s3_get_it_is() -> None:
    """``bench.stack_cpu`` reads the emulator's requests by operation: the consumer's chunk
    GET is presigned (its credential in the query, no Authorization header) and must count
    as ``s3.GET object`` beside the header-signed ones, not as a path of its own."""
    from infrastructure.moto_server import operation_of

    scope = "AKIA/20261207/us-east-1/{}/aws4_request"
    presigned = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/proctor-chunks/chunks/e/s/camera/000001_1.mp4",
        "QUERY_STRING": f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={scope.format('s3')}",
    }
    signed = {
        "REQUEST_METHOD": "PUT",
        "PATH_INFO": "/proctor-chunks/chunks/e/s/camera/000002_1.mp4",
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={scope.format('s3')}, X=y",
    }
    table = {
        "REQUEST_METHOD": "POST",
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={scope.format('dynamodb')}, X=y",
        "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.TransactWriteItems",
    }
    assert operation_of(presigned) == "s3.GET object"
    assert operation_of(signed) == "s3.PUT object"
    assert operation_of(table) == "dynamodb.TransactWriteItems"
