"""The emulator as the local stack runs it: moto's server, with its Kinesis writes serialised."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from infrastructure.emulator import Emulator
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
