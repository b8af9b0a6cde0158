"""The local stack is provisioned from the same template that deploys to AWS."""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import unquote_plus, urlsplit

import pytest
import requests

from dashboard.server import LocalServer
from infrastructure import load_template, local
from infrastructure.emulator import Emulator, StackError, emulators, split_groups
from infrastructure.local import provision
from infrastructure.moto_server import STATS_PATH
from lambdas.api import Api
from proctoring.aws import sync_client
from proctoring.settings import Settings

# Types in the local stack's part of the template that moto's CloudFormation skips:
# its SQS queues accept every sender, so the queue policies have nothing to do there.
_NOT_EMULATED = {"AWS::SQS::QueuePolicy"}


def test_the_local_stack_is_the_templates_data_plane(settings: Settings) -> None:
    template = load_template()
    local = {
        logical: r["Type"]
        for logical, r in template["Resources"].items()
        if "Condition" not in r and r["Type"] not in _NOT_EMULATED
    }
    cloudformation = sync_client(settings, "cloudformation")
    created = {
        r["LogicalResourceId"]: r["ResourceType"]
        for r in cloudformation.describe_stack_resources(StackName=settings.prefix)[
            "StackResources"
        ]
        if "LogicalResourceId" in r
    }
    assert created == local
    outputs = cloudformation.describe_stacks(StackName=settings.prefix)["Stacks"][0]["Outputs"]
    assert {o["OutputKey"] for o in outputs} == {
        k for k, v in template["Outputs"].items() if "Condition" not in v
    }


def test_every_template_resource_exists_in_the_emulator(settings: Settings) -> None:
    names = settings.names
    s3 = sync_client(settings, "s3")
    dynamodb = sync_client(settings, "dynamodb")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {names.chunks_bucket, names.frames_bucket} <= buckets
    expected = {
        names.results_table,
        names.alerts_table,
        names.sessions_table,
        names.faces_table,
        names.errors_table,
        names.leases_table,
    }
    for table in expected:  # describe each: ListTables pages at 100 in a shared emulator
        assert dynamodb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    for table in expected - {names.leases_table}:
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
        description = dynamodb.describe_table(TableName=table)["Table"]
        assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    shards = sync_client(settings, "kinesis").list_shards(StreamName=names.stream)["Shards"]
    assert len(shards) == 2
    sns = sync_client(settings, "sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=settings.alerts_topic_arn)
    assert [s["Protocol"] for s in subscriptions["Subscriptions"]] == ["sqs"]


def test_stores_are_encrypted_with_the_stacks_key(settings: Settings) -> None:
    outputs = provision(settings)  # the stack exists: this only reads its outputs
    key_id = outputs["DataKeyArn"].rsplit("/", 1)[1]
    s3 = sync_client(settings, "s3")
    for bucket in (settings.names.chunks_bucket, settings.names.frames_bucket):
        [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": outputs["DataKeyArn"],
        }
    sqs = sync_client(settings, "sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=outputs["ChunkEventsQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["KmsMasterKeyId"] == key_id
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{settings.names.chunk_events_queue}-dlq")
    topic = sync_client(settings, "sns").get_topic_attributes(TopicArn=outputs["AlertsTopicArn"])
    assert topic["Attributes"]["KmsMasterKeyId"] == key_id


def test_uploads_are_allowed_from_the_local_app_origin_only(settings: Settings) -> None:
    s3 = sync_client(settings, "s3")
    [chunks] = s3.get_bucket_cors(Bucket=settings.names.chunks_bucket)["CORSRules"]
    assert (chunks["AllowedOrigins"], chunks["AllowedMethods"]) == (
        ["http://127.0.0.1:*"],
        ["PUT", "POST"],
    )
    [frames] = s3.get_bucket_cors(Bucket=settings.names.frames_bucket)["CORSRules"]
    assert frames["AllowedMethods"] == ["GET", "HEAD"]


def test_chunks_and_frames_keep_their_versions_locally_too(settings: Settings) -> None:
    s3 = sync_client(settings, "s3")
    for bucket in (settings.names.chunks_bucket, settings.names.frames_bucket):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled", bucket


def test_the_emulator_and_the_local_server_listen_on_loopback_only(emulator: Emulator) -> None:
    """What a local stack serves can be forged (moto's bundled signing key) and is not
    policed (moto ignores POST policies): it must not be reachable from the network."""
    assert urlsplit(emulator.endpoint_url).hostname == "127.0.0.1"
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(StackError, match="loopback only"):
            Emulator(host)
        with pytest.raises(ValueError, match="loopback only"):
            LocalServer(Api(None), host=host, config={})


def test_moto_takes_a_post_that_breaks_its_policy(settings: Settings) -> None:
    """Issue 19, finding 5: locally a presigned POST's conditions (content type, size) are
    not enforced, unlike S3; the consumer's own checks (size, codec) are what hold there."""
    s3 = sync_client(settings, "s3")
    form = s3.generate_presigned_post(
        Bucket=settings.names.chunks_bucket,
        Key="chunks/ex/st/camera/000000000_1.webm",
        Fields={"Content-Type": "video/webm"},
        Conditions=[{"Content-Type": "video/webm"}, ["content-length-range", 1, 10]],
        ExpiresIn=60,
    )
    fields = {**form["fields"], "Content-Type": "text/html"}
    posted = requests.post(
        form["url"], data=fields, files={"file": ("x", b"<p>" * 100, "text/html")}, timeout=30
    )
    assert posted.status_code in (200, 204), "S3 would answer 403"


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


def test_a_create_retried_after_the_stack_was_made_still_provisions_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine CreateStack's answer can time out after the emulator made the
    stack, and botocore's retry is answered AlreadyExists: provisioning still finishes the
    stack (the properties moto drops are applied: chunk uploads reach the queue)."""
    settings = Settings(endpoint_url=emulator.endpoint_url, prefix="retried")
    parameters = {"Target": "local", "Prefix": "retried", "ShardCount": "2", "RetentionDays": "30"}
    sync_client(settings, "cloudformation").create_stack(  # the first attempt, answer lost
        StackName="retried",
        TemplateBody=json.dumps(load_template()),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    looked = []
    describe = local._describe

    def before_the_first_attempt(cloudformation: object, name: str) -> object:
        looked.append(name)
        return None if len(looked) == 1 else describe(cloudformation, name)

    monkeypatch.setattr(local, "_describe", before_the_first_attempt)
    outputs = provision(settings)
    assert outputs["ChunkStream"] == "retried-chunks"
    s3 = sync_client(settings, "s3")
    notification = s3.get_bucket_notification_configuration(Bucket=settings.names.chunks_bucket)
    assert notification.get("QueueConfigurations"), "chunk uploads reach the chunk events queue"


def _counts(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}{STATS_PATH}", timeout=5) as answer:  # loopback
        return {name: row["count"] for name, row in json.loads(answer.read()).items()}


def test_split_services_are_served_by_an_emulator_process_of_their_own() -> None:
    """`proctor up --split dynamodb,kinesis`: one moto process answers on one core at most,
    so DynamoDB and Kinesis get a process of their own. Each gets the whole stack; every
    client reaches its service's process (Settings.endpoint_urls), and S3's notifications
    still reach SQS in the main one."""
    with emulators(split=split_groups(["dynamodb,kinesis"])) as (main, endpoints):
        assert set(endpoints) == {"dynamodb", "kinesis"}
        (other,) = set(endpoints.values())
        assert other != main.endpoint_url
        settings = Settings(endpoint_url=main.endpoint_url, endpoint_urls=endpoints, prefix="sp")
        outputs = provision(settings)
        assert outputs["ChunkStream"] == "sp-chunks"
        row = {"session_id": {"S": "e#s"}, "chunk_id": {"S": "camera#000001"}}
        sync_client(settings, "dynamodb").put_item(TableName=settings.names.results_table, Item=row)
        sync_client(settings, "kinesis").put_record(
            StreamName=settings.names.stream, Data=b"event", PartitionKey="e#s"
        )
        sync_client(settings, "s3").put_object(
            Bucket=settings.names.chunks_bucket, Key="chunks/e/s/camera/000001_2.mp4", Body=b"x"
        )

        alone = Settings(endpoint_url=other, prefix="sp")
        at_main = Settings(endpoint_url=main.endpoint_url, prefix="sp")
        key = {"TableName": settings.names.results_table, "Key": row}
        assert "Item" in sync_client(alone, "dynamodb").get_item(**key)
        assert "Item" not in sync_client(at_main, "dynamodb").get_item(**key)
        assert _counts(other).get("kinesis.PutRecord") == 1
        assert "kinesis.PutRecord" not in _counts(main.endpoint_url)
        assert "dynamodb.PutItem" not in _counts(main.endpoint_url)
        sqs = sync_client(settings, "sqs")
        queue = sqs.get_queue_url(QueueName=settings.names.chunk_events_queue)["QueueUrl"]
        assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5).get("Messages")


def test_only_services_that_cross_no_other_can_be_split() -> None:
    assert split_groups(["dynamodb", " Kinesis "]) == [("dynamodb",), ("kinesis",)]
    with pytest.raises(StackError, match="S3, SQS and SNS"):
        split_groups(["sqs"])
    with pytest.raises(StackError, match="two --split groups"):
        split_groups(["dynamodb,kinesis", "kinesis"])
