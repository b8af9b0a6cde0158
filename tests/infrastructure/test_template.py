"""Security and wiring properties of the CloudFormation templates, read from the files.

These hold for what AWS would create (``Target=aws``); cfn-lint and checkov
(``make infra-check``) check the same files against the resource
specifications and their own rules. The local emulator's view is in
``test_local.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from infrastructure import BOOTSTRAP_PATH, TEMPLATE_PATH, load_template
from proctoring.metric_names import MetricName
from proctoring.settings import ResourceNames, Settings

TEMPLATE = load_template(TEMPLATE_PATH)
BOOTSTRAP = load_template(BOOTSTRAP_PATH)
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]

# Actions AWS offers no resource-level permission for: "*" is the only resource they take.
UNSCOPABLE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ecr:GetAuthorizationToken",
    "rekognition:DetectFaces",
    "rekognition:DetectLabels",
}


def _of_type(resource_type: str, template: dict[str, Any] = TEMPLATE) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def _props(logical: str) -> dict[str, Any]:
    props: dict[str, Any] = RESOURCES[logical].get("Properties", {})
    return props


def _refs(value: Any) -> set[str]:
    """Every logical id or parameter a value refers to (Ref, GetAtt, ${X} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(inner, str):
                    found |= _refs(inner[1])
            else:
                found |= _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _refs(inner)
    return found


def _leaves(value: Any) -> Iterator[Any]:
    """Every literal string in a value, through the branches of Fn::If."""
    if isinstance(value, list):
        for inner in value:
            yield from _leaves(inner)
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _leaves(inner)
    else:
        yield value


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    flat = statements if isinstance(statements, list) else [statements]
    out = []
    for statement in flat:
        if "Fn::If" in statement:  # conditional statement: check both branches
            out += [s for s in statement["Fn::If"][1:] if isinstance(s, dict) and "Effect" in s]
        else:
            out.append(statement)
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(template: dict[str, Any] = TEMPLATE) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical, role in _of_type("AWS::IAM::Role", template).items():
        for policy in role["Properties"].get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                yield logical, statement
    for logical, policy in _of_type("AWS::IAM::Policy", template).items():
        for statement in _statements(policy["Properties"]["PolicyDocument"]):
            yield logical, statement


def _actions(role: str) -> set[str]:
    return {
        action
        for logical, statement in _role_statements()
        if logical == role
        for action in _as_list(statement["Action"])
    }


def _sub_name(value: Any, prefix: str) -> str | None:
    """A name property ``!Sub "${Prefix}-x"`` evaluated for ``prefix``."""
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return str(value["Fn::Sub"]).replace("${Prefix}", prefix)
    return None


# ---- S3 --------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [TEMPLATE, BOOTSTRAP], ids=["template", "bootstrap"])
def test_every_bucket_is_encrypted_private_and_expires_objects(template: dict[str, Any]) -> None:
    buckets = _of_type("AWS::S3::Bucket", template)
    assert buckets
    for logical, bucket in buckets.items():
        props = bucket["Properties"]
        [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        algorithm = rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
        assert algorithm in ("aws:kms", "AES256"), logical
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical
        rules = props["LifecycleConfiguration"]["Rules"]
        assert all(r["Status"] == "Enabled" for r in rules), logical
        assert any("ExpirationInDays" in r or "NoncurrentVersionExpiration" in r for r in rules), (
            f"{logical} keeps objects forever"
        )
        assert any("AbortIncompleteMultipartUpload" in r for r in rules), logical


def test_recordings_and_frames_use_the_stack_key_and_the_retention_setting() -> None:
    for logical in ("ChunksBucket", "FramesBucket"):
        props = _props(logical)
        [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
            "Fn::GetAtt": ["DataKey", "Arn"]
        }
        assert rule["BucketKeyEnabled"] is True  # one KMS call per object, not per request
        retention = [r for r in props["LifecycleConfiguration"]["Rules"] if r["Id"] == "retention"]
        assert retention[0]["ExpirationInDays"] == {"Ref": "RetentionDays"}
    assert TEMPLATE["Resources"]["DataKey"]["Properties"]["EnableKeyRotation"] is True


@pytest.mark.parametrize("template", [TEMPLATE, BOOTSTRAP], ids=["template", "bootstrap"])
def test_every_bucket_refuses_plain_http(template: dict[str, Any]) -> None:
    policies = {
        next(iter(_refs(p["Properties"]["Bucket"]))): p["Properties"]["PolicyDocument"]
        for p in _of_type("AWS::S3::BucketPolicy", template).values()
    }
    for logical in _of_type("AWS::S3::Bucket", template):
        denies = [
            s
            for s in _statements(policies[logical])
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{logical} accepts plain HTTP"


def test_chunks_and_capture_video_notify_the_router_queue_and_nothing_else() -> None:
    uploads, capture = _props("ChunksBucket")["NotificationConfiguration"]["QueueConfigurations"]
    for queue in (uploads, capture):
        assert queue["Queue"] == {"Fn::GetAtt": ["ChunkEventsQueue", "Arn"]}
    assert uploads["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "chunks/"}]
    assert capture["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "capture/"},
        {"Name": "suffix", "Value": ".mp4"},  # video and mixed audio; not meeting-events .txt
    ]
    mapping = _props("ChunkRouterEventSource")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["ChunkEventsQueue", "Arn"]}
    assert mapping["FunctionName"] == {"Ref": "ChunkRouterFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    router_timeout = _props("ChunkRouterFunction")["Timeout"]
    assert _props("ChunkEventsQueue")["VisibilityTimeout"] >= 6 * router_timeout


def test_request_floods_meet_the_stage_throttle_and_a_capped_router() -> None:
    stage = _props("HttpApiStage")["DefaultRouteSettings"]
    assert (stage["ThrottlingRateLimit"], stage["ThrottlingBurstLimit"]) == (
        {"Ref": "ApiRateLimit"},
        {"Ref": "ApiBurstLimit"},
    )
    scaling = _props("ChunkRouterEventSource")["ScalingConfig"]
    assert scaling["MaximumConcurrency"] == {"Ref": "RouterMaxConcurrency"}


def test_the_router_is_invoked_as_soon_as_chunks_arrive_unless_told_to_wait() -> None:
    """Lambda's SQS poller waits up to ``MaximumBatchingWindowInSeconds`` to fill a batch:
    with the 1 s it had, a chunk waited up to a second before the router saw it while
    uploads were few, against the sub-second alert goal (issue 18). Default 0, a parameter."""
    window = _props("ChunkRouterEventSource")["MaximumBatchingWindowInSeconds"]
    assert window == {"Ref": "RouterBatchingWindow"}
    assert TEMPLATE["Parameters"]["RouterBatchingWindow"]["Default"] == 0


def test_cors_allows_only_the_app_origin() -> None:
    rules = [
        rule
        for bucket in _of_type("AWS::S3::Bucket").values()
        for rule in bucket["Properties"].get("CorsConfiguration", {}).get("CorsRules", [])
    ]
    origins = [rule["AllowedOrigins"] for rule in rules]
    origins.append(_props("HttpApi")["CorsConfiguration"]["AllowOrigins"])
    assert len(origins) == 3  # chunks (PUT), frames (GET), the API
    for allowed in origins:
        assert "AppOrigin" in _refs(allowed)
        literals = [v for v in _leaves(allowed) if isinstance(v, str)]
        assert "*" not in literals and not any(o.startswith("https://*") for o in literals)
        # without AppOrigin: the custom domain, else the distribution's own domain
        assert {"AppDomainName", "WebDistribution"} <= _refs(allowed)
    assert {tuple(r["AllowedMethods"]) for r in rules} == {("PUT", "POST"), ("GET", "HEAD")}


def test_the_web_app_is_served_only_through_cloudfront_with_origin_access_control() -> None:
    config = _props("WebDistribution")["DistributionConfig"]
    [origin] = config["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["WebOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy OAI
    oac = _props("WebOriginAccessControl")["OriginAccessControlConfig"]
    assert (oac["SigningBehavior"], oac["SigningProtocol"]) == ("always", "sigv4")
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    [allow] = [
        s
        for s in _statements(_props("WebBucketPolicy")["PolicyDocument"])
        if s["Effect"] == "Allow"
    ]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert "WebDistribution" in _refs(allow["Condition"]["StringEquals"]["AWS:SourceArn"])


# ---- IAM --------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [TEMPLATE, BOOTSTRAP], ids=["template", "bootstrap"])
def test_no_identity_policy_allows_everything(template: dict[str, Any]) -> None:
    statements = list(_role_statements(template))
    for logical, statement in statements:
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        assert statement["Effect"] == "Allow", logical
        assert not {"*", "*:*"} & set(actions), f"{logical} allows every action"
        assert not any(a.endswith(":*") for a in actions), f"{logical}: {actions}"
        if "*" in resources:
            assert set(actions) <= UNSCOPABLE_ACTIONS, f"{logical} {actions} on every resource"


def test_resource_policies_never_allow_every_action_to_anyone() -> None:
    documents = [
        p["Properties"]["PolicyDocument"]
        for kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy")
        for p in _of_type(kind).values()
    ] + [_props("DataKey")["KeyPolicy"]]
    for document in documents:
        for statement in _statements(document):
            if statement["Effect"] != "Allow":
                continue
            assert statement["Principal"] != "*"
            if statement["Action"] == "kms:*":  # key administration stays with the account
                assert statement["Principal"] == {
                    "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                }
            elif "Condition" in statement:
                continue  # pinned to its source
            elif statement["Principal"] == {"Service": "s3.amazonaws.com"}:
                # S3 -> encrypted queue: documented without conditions; the queue
                # policy pins the bucket and the account instead.
                assert set(_as_list(statement["Action"])) == {"kms:GenerateDataKey", "kms:Decrypt"}
                queue_policy = _statements(_props("ChunkEventsQueuePolicy")["PolicyDocument"])
                assert {"ArnLike", "StringEquals"} <= set(queue_policy[0]["Condition"])
            else:
                raise AssertionError(f"unpinned statement {statement}")


def test_one_role_per_function_and_per_task() -> None:
    roles = [
        next(iter(_refs(f["Properties"]["Role"])))
        for f in _of_type("AWS::Lambda::Function").values()
    ]
    task = _props("ConsumerTaskDefinition")
    roles += [next(iter(_refs(task["TaskRoleArn"]))), next(iter(_refs(task["ExecutionRoleArn"])))]
    assert len(roles) == len(set(roles)), "a role is shared"
    for role in roles:
        assert RESOURCES[role]["Type"] == "AWS::IAM::Role"
        [trust] = _props(role)["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
        assert "ManagedPolicyArns" not in _props(role), "inline, reviewable policies only"


def test_the_chunk_router_may_only_move_chunk_events() -> None:
    by_sid = {s["Sid"]: s for role, s in _role_statements() if role == "ChunkRouterRole"}
    assert by_sid["AttendeeToStudent"]["Action"] == "dynamodb:GetItem"
    assert by_sid["AttendeeToStudent"]["Resource"] == {"Fn::GetAtt": ["ExamsTable", "Arn"]}
    assert by_sid["RecordBadInput"]["Resource"] == {"Fn::GetAtt": ["ErrorsTable", "Arn"]}
    assert _actions("ChunkRouterRole") == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "kinesis:PutRecords",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def test_the_consumer_may_call_what_it_calls_on_what_it_touches() -> None:
    by_sid = {s["Sid"]: s for role, s in _role_statements() if role == "ConsumerTaskRole"}
    assert set(_as_list(by_sid["ReadStream"]["Action"])) == {
        "kinesis:ListShards",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
    }
    assert by_sid["ReadStream"]["Resource"] == {"Fn::GetAtt": ["ChunkStream", "Arn"]}
    # enhanced fan-out (only with FanOutConsumer): register on the stream, subscribe as it
    assert set(_as_list(by_sid["FanOutRegister"]["Action"])) == {
        "kinesis:RegisterStreamConsumer",
        "kinesis:DescribeStreamConsumer",
    }
    assert by_sid["FanOutRegister"]["Resource"] == {"Fn::GetAtt": ["ChunkStream", "Arn"]}
    assert set(_as_list(by_sid["FanOutSubscribe"]["Action"])) == {
        "kinesis:SubscribeToShard",
        "kinesis:DescribeStreamConsumer",
    }
    assert by_sid["FanOutSubscribe"]["Resource"] == {
        "Fn::Sub": "${ChunkStream.Arn}/consumer/${FanOutConsumer}:*"
    }
    assert by_sid["GetChunks"]["Action"] == "s3:GetObject"
    assert by_sid["GetChunks"]["Resource"] == {"Fn::Sub": "${ChunksBucket.Arn}/chunks/*"}
    assert by_sid["GetCaptureVideo"]["Action"] == "s3:GetObject"
    assert by_sid["GetCaptureVideo"]["Resource"] == {
        "Fn::Sub": "${ChunksBucket.Arn}/capture/*/video/*"
    }
    assert by_sid["PutFrames"]["Action"] == "s3:PutObject"
    assert by_sid["PutFrames"]["Resource"] == {"Fn::Sub": "${FramesBucket.Arn}/frames/*"}
    # of what registration keeps, the consumer reads the camera frame only, never the photo
    assert by_sid["EnrolmentFrame"]["Action"] == "s3:GetObject"
    assert by_sid["EnrolmentFrame"]["Resource"] == {
        "Fn::Sub": "${FramesBucket.Arn}/frames/*/*/registration/enrolment.jpg"
    }
    assert by_sid["PublishAlerts"] == {
        "Sid": "PublishAlerts",
        "Effect": "Allow",
        "Action": "sns:Publish",
        "Resource": {"Ref": "AlertsTopic"},
    }
    assert by_sid["SearchCollection"]["Resource"] == {"Fn::GetAtt": ["FaceCollection", "Arn"]}
    # conditional lease writes, scans for expired leases: the leases table only
    assert _refs(by_sid["LeasesAndCheckpoints"]["Resource"]) == {"LeasesTable"}
    assert "dynamodb:Scan" not in _as_list(by_sid["ResultsAlertsSessionsErrors"]["Action"])
    # its tables' reads coalesce (batch_reads): BatchGetItem wherever it reads through them
    assert "dynamodb:BatchGetItem" in _as_list(by_sid["ResultsAlertsSessionsErrors"]["Action"])
    assert set(_as_list(by_sid["RegisteredFaces"]["Action"])) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    }
    assert by_sid["ExamGate"]["Action"] == "dynamodb:GetItem"
    assert by_sid["ExamGate"]["Resource"] == {"Fn::GetAtt": ["ExamsTable", "Arn"]}
    services = {a.split(":")[0] for a in _actions("ConsumerTaskRole")}
    assert services == {"kinesis", "dynamodb", "s3", "sns", "rekognition", "kms"}


def test_each_role_may_make_only_the_rekognition_calls_its_code_makes() -> None:
    expected = {  # registration (frames checked by FaceId), analysis, erasure
        "RegisterRole": {
            "rekognition:CreateCollection",
            "rekognition:IndexFaces",
            "rekognition:SearchFaces",
            "rekognition:DeleteFaces",
        },
        "ConsumerTaskRole": {
            "rekognition:SearchFacesByImage",
            "rekognition:DetectFaces",
            "rekognition:DetectLabels",
        },
        "ExamServiceRole": {"rekognition:DeleteFaces"},
    }
    for role, actions in expected.items():
        assert {a for a in _actions(role) if a.startswith("rekognition:")} == actions, role
        for _, statement in (s for s in _role_statements() if s[0] == role):
            scoped = set(_as_list(statement["Action"])) - UNSCOPABLE_ACTIONS
            if any(a.startswith("rekognition:") for a in scoped):
                assert statement["Resource"] == {"Fn::GetAtt": ["FaceCollection", "Arn"]}, role


def test_only_cloudformation_creates_and_deletes_the_face_collection() -> None:
    creators = {
        role
        for role, statement in _role_statements()
        if "rekognition:DeleteCollection" in _as_list(statement["Action"])
    }
    assert creators == {"CollectionResourceRole"}


# ---- stream, tables, queues, topics ---------------------------------------------------------


def test_every_table_is_on_demand_encrypted_recoverable_and_expiring() -> None:
    tables = _of_type("AWS::DynamoDB::Table")
    assert len(tables) == 8  # results, alerts, sessions, faces, errors, leases, exams, audit
    for logical, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
        if logical == "LeasesTable":  # a lease lives as long as its shard
            assert "TimeToLiveSpecification" not in props
        else:
            assert props["TimeToLiveSpecification"] == {
                "AttributeName": "expires_at",
                "Enabled": True,
            }, logical


def test_the_stream_is_encrypted_and_its_capacity_mode_is_a_parameter() -> None:
    props = _props("ChunkStream")
    assert props["StreamEncryption"] == {
        "EncryptionType": "KMS",
        "KeyId": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert props["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert props["ShardCount"] == {
        "Fn::If": ["IsOnDemand", {"Ref": "AWS::NoValue"}, {"Ref": "ShardCount"}]
    }
    assert TEMPLATE["Parameters"]["StreamMode"]["AllowedValues"] == ["PROVISIONED", "ON_DEMAND"]


def test_queues_topics_and_log_groups_are_encrypted_with_the_stack_key() -> None:
    for queue in _of_type("AWS::SQS::Queue").values():
        assert queue["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
    for topic in _of_type("AWS::SNS::Topic").values():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
    for group in _of_type("AWS::Logs::LogGroup").values():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_asynchronously_invoked_function_keeps_its_failed_events() -> None:
    polled = {
        next(iter(_refs(m["Properties"]["FunctionName"])))
        for m in _of_type("AWS::Lambda::EventSourceMapping").values()
    }
    behind_api = {
        next(iter(_refs(i["Properties"]["IntegrationUri"])))
        for i in _of_type("AWS::ApiGatewayV2::Integration").values()
    }
    on_failure = {
        next(iter(_refs(c["Properties"]["FunctionName"])))
        for c in _of_type("AWS::Lambda::EventInvokeConfig").values()
        if "OnFailure" in c["Properties"].get("DestinationConfig", {})
    }
    asynchronous = set(_of_type("AWS::Lambda::Function")) - polled - behind_api
    assert "CollectionResourceFunction" in asynchronous  # CloudFormation invokes it async
    for logical in asynchronous:
        dead_letters = _props(logical).get("DeadLetterConfig", {}).get("TargetArn")
        assert dead_letters or logical in on_failure, f"{logical} drops failed events"
    for logical in polled:  # the poller's queue has a redrive policy instead
        queue = next(
            m["Properties"]["EventSourceArn"]
            for m in _of_type("AWS::Lambda::EventSourceMapping").values()
            if _refs(m["Properties"]["FunctionName"]) == {logical}
        )
        assert "RedrivePolicy" in _props(queue["Fn::GetAtt"][0])


# ---- consumer on ECS -----------------------------------------------------------------------


def test_the_consumer_stops_gracefully_on_sigterm() -> None:
    [container] = _props("ConsumerTaskDefinition")["ContainerDefinitions"]
    assert container["StopTimeout"] == 120  # Fargate's maximum: finish and checkpoint the batch
    assert container["LinuxParameters"]["InitProcessEnabled"] is True
    assert container["EntryPoint"] + container["Command"] == ["proctor", "consume"]
    assert container["ReadonlyRootFilesystem"] is True
    assert _props("ConsumerTaskDefinition")["RequiresCompatibilities"] == ["FARGATE"]
    service = _props("ConsumerService")
    assert service["LaunchType"] == "FARGATE"
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"] is True


def test_the_consumer_scales_on_iterator_age_and_cpu() -> None:
    target = _props("ConsumerScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        {"Ref": "ConsumerMinTasks"},
        {"Ref": "ConsumerMaxTasks"},
    )
    metrics = set()
    for policy in _of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values():
        config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        if "PredefinedMetricSpecification" in config:
            metrics.add(config["PredefinedMetricSpecification"]["PredefinedMetricType"])
        else:
            metrics.add(config["CustomizedMetricSpecification"]["MetricName"])
    assert metrics == {"ECSServiceAverageCPUUtilization", "GetRecords.IteratorAgeMilliseconds"}


def test_the_consumer_accepts_no_inbound_traffic() -> None:
    props = _props("ConsumerSecurityGroup")
    assert "SecurityGroupIngress" not in props
    assert [(r["FromPort"], r["ToPort"]) for r in props["SecurityGroupEgress"]] == [(443, 443)]


# ---- API and users --------------------------------------------------------------------------


def test_every_route_but_the_openapi_document_requires_a_cognito_token() -> None:
    routes = _of_type("AWS::ApiGatewayV2::Route")
    assert routes
    for logical, route in routes.items():
        if route["Properties"]["RouteKey"] == "GET /openapi.json":
            assert route["Properties"]["AuthorizationType"] == "NONE"
            continue
        assert route["Properties"]["AuthorizationType"] == "JWT", logical
        assert route["Properties"]["AuthorizerId"] == {"Ref": "HttpApiAuthorizer"}
    jwt = _props("HttpApiAuthorizer")["JwtConfiguration"]
    assert jwt["Audience"] == [{"Ref": "UserPoolClient"}]
    assert "UserPool" in _refs(jwt["Issuer"])


def test_the_api_routes_are_exactly_the_code_s_routes() -> None:
    from lambdas.api import ROUTER

    routes = _of_type("AWS::ApiGatewayV2::Route").values()
    deployed = {r["Properties"]["RouteKey"] for r in routes}
    served = {r.route_key for r in ROUTER.routes if not r.local_only}
    assert deployed == served
    registration = {  # the proctor's re-registration indexes a face too (issue 19)
        "POST /exams/{exam_id}/students/{student_id}/registration",
        "POST /exams/{exam_id}/students/{student_id}/reregistration",
    }
    for route in routes:  # registration on its own function (Rekognition rights), the rest one
        target = route["Properties"]["Target"]["Fn::Sub"]
        expected = (
            "RegisterIntegration"
            if route["Properties"]["RouteKey"] in registration
            else "ApiIntegration"
        )
        assert target == f"integrations/${{{expected}}}"
    for function in ("RegisterFunction", "ApiFunction"):
        assert _props(function)["Handler"] == "lambdas.api.handler"
        assert {"PROCTOR_USER_POOL_ID", "PROCTOR_USER_POOL_CLIENT_ID"} <= set(
            _props(function)["Environment"]["Variables"]
        )


def test_the_exam_service_reaches_only_what_it_serves() -> None:
    statements = {
        s["Sid"]: s
        for s in _props("ExamServiceRole")["Policies"][0]["PolicyDocument"]["Statement"]
        if "Sid" in s
    }
    assert _refs(statements["UploadFormsAndErasure"]["Resource"]) == {"ChunksBucket"}
    assert "chunks/*" in str(statements["UploadFormsAndErasure"]["Resource"])
    assert set(_as_list(statements["FaceErasure"]["Action"])) == {"rekognition:DeleteFaces"}
    # the registered photo (lambdas.api.photos): the registration function writes it, only
    # under a student's registration/; the exam service reads it (EvidenceAndErasure)
    register = {s["Sid"]: s for role, s in _role_statements() if role == "RegisterRole"}
    assert _as_list(register["RegisteredPhotos"]["Action"]) == ["s3:PutObject"]
    assert "frames/*/*/registration/*" in str(register["RegisteredPhotos"]["Resource"])
    assert _as_list(register["EnrolmentFrame"]["Action"]) == ["s3:DeleteObject"]
    assert str(register["EnrolmentFrame"]["Resource"]).endswith("registration/enrolment.jpg'}")
    assert set(_as_list(statements["Audit"]["Action"])) == {"dynamodb:PutItem", "dynamodb:Query"}
    forwarder = _actions("AlertForwarderRole")
    assert "chime:SendChannelMessage" in forwarder and "dynamodb:DeleteItem" not in forwarder
    mapping = _props("AlertForwarderEventSource")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["AlertsQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    rate = _props("AlertForwarderFunction")["Environment"]["Variables"]
    assert (
        mapping["ScalingConfig"]["MaximumConcurrency"]
        * float(rate["PROCTOR_CHANNEL_MESSAGES_PER_SECOND"])
        <= 30
    )  # Chime SDK messaging's SendChannelMessage limit


def test_the_user_pool_has_the_three_groups_and_a_browser_client() -> None:
    groups = {
        g["Properties"]["GroupName"] for g in _of_type("AWS::Cognito::UserPoolGroup").values()
    }
    assert groups == {"proctor", "student", "admin"}
    client = _props("UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert _props("UserPool")["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


# ---- observability ----------------------------------------------------------------------------


def _alarm_metrics() -> list[tuple[str, str, dict[str, Any]]]:
    """(alarm, metric name, dimensions) for every metric every alarm reads."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for logical, alarm in _of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if "MetricName" in props:
            dims = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
            out.append((logical, props["MetricName"], dims))
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                out.append((logical, metric["MetricName"], dims))
            else:
                assert "SEARCH" not in query["Expression"], "alarms cannot evaluate SEARCH"
    return out


def test_alarms_cover_lag_errors_throttles_and_dead_letters() -> None:
    metrics = _alarm_metrics()
    names = {name for _, name, _ in metrics}
    assert "GetRecords.IteratorAgeMilliseconds" in names
    assert {"Errors", "5xx"} <= names
    assert {
        "Throttles",
        "WriteProvisionedThroughputExceeded",
        "ReadProvisionedThroughputExceeded",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    } <= names
    assert "RecordsParked" in names, "a parked record wakes someone up"
    functions = {next(iter(_refs(d["FunctionName"]))) for _, n, d in metrics if n == "Errors"}
    assert functions == {
        "ChunkRouterFunction",
        "RegisterFunction",
        "ApiFunction",
        "AlertForwarderFunction",
    }
    dead_letter_queues = {
        name for name in _of_type("AWS::SQS::Queue") if name.endswith("DeadLetterQueue")
    }
    watched = {
        d["QueueName"]["Fn::GetAtt"][0]
        for _, n, d in metrics
        if n == "ApproximateNumberOfMessagesVisible"
    }
    assert watched == dead_letter_queues
    for logical, alarm in _of_type("AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "OpsTopic"}], logical


def test_every_table_has_its_throttles_alarmed() -> None:
    watched = {(name, d["TableName"]["Ref"]) for _, name, d in _alarm_metrics() if "TableName" in d}
    for table in _of_type("AWS::DynamoDB::Table"):
        assert {("ReadThrottleEvents", table), ("WriteThrottleEvents", table)} <= watched


def test_the_dashboard_shows_the_consumer_and_the_api() -> None:
    body, _ = _props("Dashboard")["DashboardBody"]["Fn::Sub"]
    rendered = re.sub(r"\$\{[^}]+\}", "x", body)
    widgets = json.loads(rendered)["widgets"]
    assert {w["type"] for w in widgets} == {"text", "metric", "alarm"}
    [alarms] = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) == len(_of_type("AWS::CloudWatch::Alarm"))
    for metric in ("ChunksProcessed", "ChunkLatencyMs", "AlertsRaised", "IteratorAgeMilliseconds"):
        assert metric in body
    assert '"AWS/ApiGateway", "5xx"' in body and '"AWS/ECS", "CPUUtilization"' in body


def test_alarms_and_the_dashboard_read_only_metrics_the_service_declares() -> None:
    """Every metric of the service's namespace an alarm or the dashboard reads is declared in
    proctoring.metric_names, so a renamed metric cannot leave an alarm watching nothing."""
    ours = {"Ref": "MetricsNamespace"}
    read = set()
    for alarm in _of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace") == ours:
            read.add(props["MetricName"])
        for query in props.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == ours:
                read.add(metric["MetricName"])
    body, _ = _props("Dashboard")["DashboardBody"]["Fn::Sub"]
    read |= set(re.findall(r'\["\$\{MetricsNamespace\}", "(\w+)"', body))
    read |= set(re.findall(r'\{\$\{MetricsNamespace\},[^}]*\} MetricName=\\?"(\w+)', body))
    assert sorted(read - {m.value for m in MetricName}) == []
    assert {"RecordsParked", "ChunksProcessed", "ChunkErrors"} <= read  # each way is read


# ---- names, settings, outputs, suppressions ---------------------------------------------------


def test_resource_names_derive_from_the_prefix_as_the_code_derives_them() -> None:
    named = {
        _sub_name(r["Properties"].get(key), "pfx")
        for r in RESOURCES.values()
        for key in ("BucketName", "QueueName", "Name", "TableName", "TopicName")
        if "Properties" in r
    }
    expected = {
        value
        for key, value in vars(ResourceNames("pfx")).items()
        if key != "prefix" and isinstance(value, str)
    }
    assert expected <= named


def test_the_face_collection_is_the_one_the_code_uses() -> None:
    collection = _sub_name(_props("FaceCollection")["CollectionId"], "pfx")
    assert collection == Settings(prefix="pfx").collection_id


def test_every_environment_variable_the_template_sets_is_a_setting() -> None:
    variables: set[str] = set()
    for function in _of_type("AWS::Lambda::Function").values():
        variables |= set(function["Properties"]["Environment"]["Variables"])
    for task in _of_type("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            for entry in container.get("Environment", []):  # an entry may be conditional
                branches = entry["Fn::If"][1:] if "Fn::If" in entry else [entry]
                variables |= {b["Name"] for b in branches if isinstance(b, dict) and "Name" in b}
    fields = {f"PROCTOR_{name.upper()}" for name in Settings.model_fields}
    assert variables and variables <= fields


def test_a_deployer_gets_the_outputs_they_need() -> None:
    assert {
        "WebUrl",
        "WebBucket",
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "AlertsTopicArn",
        "FaceCollectionId",
        "DashboardUrl",
        "OpsTopicArn",
    } <= set(TEMPLATE["Outputs"])
    assert {"ArtifactsBucket", "ConsumerRepositoryUri"} <= set(BOOTSTRAP["Outputs"])


@pytest.mark.parametrize("template", [TEMPLATE, BOOTSTRAP], ids=["template", "bootstrap"])
def test_every_scanner_suppression_says_why(template: dict[str, Any]) -> None:
    for logical, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"])
            assert len(skip.get("comment", "")) > 40, f"{logical} {skip['id']} has no reason"
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        # W1030: parameters empty by default for Target=local, required by the Rules for aws
        assert set(ignored) <= {"W1030"}, logical
        if ignored:
            assert _refs(resource["Properties"]) & {
                "CodeBucket",
                "ConsumerVpcId",
                "ConsumerSubnetIds",
            }


def test_everything_only_aws_can_run_is_left_out_of_the_local_stack() -> None:
    local = {k for k, v in RESOURCES.items() if "Condition" not in v}
    assert {RESOURCES[k]["Type"] for k in local} == {
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
        "AWS::Kinesis::Stream",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
    }
    for logical, resource in RESOURCES.items():
        if logical not in local:
            assert resource["Condition"] in ("IsAws", "HasAlarmEmail", "HasChimeCapture"), logical


def test_deploy_docs_list_every_parameter_and_suppression() -> None:
    docs = (TEMPLATE_PATH.parents[1] / "docs" / "deploy.md").read_text()
    missing = [p for p in TEMPLATE["Parameters"] if f"`{p}`" not in docs]
    assert missing == []
    for template in (TEMPLATE, BOOTSTRAP):
        for resource in template["Resources"].values():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                row = next((r for r in docs.splitlines() if r.startswith(f"| {skip['id']}")), "")
                assert row, f"{skip['id']} is not in docs/deploy.md"


def test_the_first_chunk_and_frame_are_kept_and_old_versions_expire_too() -> None:
    """Issue 19: a presigned POST cannot be conditional, so a student holding a form could
    POST a second chunk under its key; frames are put with If-None-Match, but a role that may
    write frames could put another. Both buckets are versioned (the stated choice over Object
    Lock, which would refuse erasure requests) and keep the first object; noncurrent versions
    expire with the retention setting."""
    for logical in ("ChunksBucket", "FramesBucket"):
        props = _props(logical)
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical
        assert "ObjectLockEnabled" not in props
        [noncurrent] = [
            r
            for r in props["LifecycleConfiguration"]["Rules"]
            if "NoncurrentVersionExpiration" in r
        ]
        assert noncurrent["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": {"Ref": "RetentionDays"}
        }
        assert noncurrent["Status"] == "Enabled" and noncurrent["ExpiredObjectDeleteMarker"] is True
    # erasure may delete versions, and the evidence links name the versions the alert recorded
    api = {s["Sid"]: s for role, s in _role_statements() if role == "ExamServiceRole"}
    assert {"s3:DeleteObjectVersion", "s3:GetObjectVersion"} <= set(
        _as_list(api["UploadFormsAndErasure"]["Action"])
    )
    assert {"s3:DeleteObjectVersion", "s3:GetObjectVersion"} <= set(
        _as_list(api["EvidenceAndErasure"]["Action"])
    )
    assert "s3:ListBucketVersions" in _as_list(api["ListForErasure"]["Action"])


def test_a_student_cannot_write_the_attributes_the_proctor_reads() -> None:
    client = _props("UserPoolClient")
    writable = set(client["WriteAttributes"])
    assert writable, "an empty list would leave every standard attribute writable"
    assert not writable & {"name", "email", "email_verified", "preferred_username", "nickname"}
    assert not any(a.startswith("custom:") for a in writable)
    assert "name" in client["ReadAttributes"]
