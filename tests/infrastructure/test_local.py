"""The local stack is provisioned from the same template that deploys to AWS."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from infrastructure import load_template
from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.aws import sync_client
from proctoring.settings import Settings


def test_every_template_resource_exists_in_the_emulator(settings: Settings) -> None:
    template = load_template()
    types = [r["Type"] for r in template["Resources"].values()]
    names = settings.names
    s3 = sync_client(settings, "s3")
    dynamodb = sync_client(settings, "dynamodb")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {names.chunks_bucket, names.frames_bucket} <= buckets
    assert types.count("AWS::S3::Bucket") == 2
    tables = set(dynamodb.list_tables()["TableNames"])
    expected = {
        names.results_table,
        names.alerts_table,
        names.sessions_table,
        names.faces_table,
        names.errors_table,
        names.leases_table,
    }
    assert expected <= tables
    assert types.count("AWS::DynamoDB::Table") == len(expected)
    for table in expected - {names.leases_table}:
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    shards = sync_client(settings, "kinesis").list_shards(StreamName=names.stream)["Shards"]
    assert len(shards) == 2
    sns = sync_client(settings, "sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=settings.alerts_topic_arn)
    assert [s["Protocol"] for s in subscriptions["Subscriptions"]] == ["sqs"]


def test_chunk_uploads_notify_the_chunk_events_queue(settings: Settings) -> None:
    s3 = sync_client(settings, "s3")
    sqs = sync_client(settings, "sqs")
    s3.put_object(
        Bucket=settings.names.chunks_bucket, Key="chunks/e/s/camera/000001_2.mp4", Body=b"x"
    )
    s3.put_object(Bucket=settings.names.chunks_bucket, Key="elsewhere/file.txt", Body=b"x")
    queue = sqs.get_queue_url(QueueName=settings.names.chunk_events_queue)["QueueUrl"]
    keys = []
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]:
        body = json.loads(message["Body"])
        keys += [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])]
    assert keys == ["chunks/e/s/camera/000001_2.mp4"], "only the chunks/ prefix is routed"


def test_provisioning_twice_keeps_the_stack(emulator: Emulator) -> None:
    settings = Settings(endpoint_url=emulator.endpoint_url, prefix="twice")
    first = provision(settings)
    assert provision(settings) == first
    assert first["ChunkStream"] == "twice-chunks"
