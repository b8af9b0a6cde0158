"""Provision ``template.yaml`` into the local emulator, the way CloudFormation does in AWS.

The template goes through the emulator's own CloudFormation API with
``Target=local``: the template's ``IsAws`` condition leaves out everything
only AWS can run (Lambda functions, API Gateway, Cognito, ECS, CloudFront,
alarms), so the emulator creates the data plane: the key, buckets, queues,
stream, tables and topic. moto's CloudFormation creates those but drops three
properties that matter here, so this module applies them afterwards, read
from the same template:

- ``AWS::S3::Bucket`` ``NotificationConfiguration`` (S3 -> SQS chunk events);
- ``AWS::S3::Bucket`` ``CorsConfiguration`` (uploads from the app's origin);
- ``AWS::S3::Bucket`` ``VersioningConfiguration`` (the first upload of a chunk is kept);
- ``AWS::DynamoDB::Table`` ``TimeToLiveSpecification`` (retention).

Nothing else is created by hand: a resource missing from the template is
missing locally too.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import boto3
import structlog

from infrastructure import load_template
from infrastructure.emulator import StackError
from proctoring.aws import client_kwargs
from proctoring.settings import Settings

__all__ = ["add_user", "provision", "provision_identity", "sign_in"]

_log = structlog.get_logger(__name__)

# One boto3 session for every provisioning call: a new session loads the
# endpoint and service models again (~0.1 s per client), and tests provision a
# stack per test. boto3 sessions are not thread-safe, hence the lock.
_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def _client(settings: Settings, service: str) -> Any:
    """A boto3 client with the project's endpoint, timeouts and retries (proctoring.aws)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, **client_kwargs(settings, service))


def provision(settings: Settings, *, shard_count: int = 2) -> dict[str, str]:
    """Create the stack named ``settings.prefix`` unless it exists; return its outputs.

    Services served by emulator processes of their own (``settings.endpoint_urls``,
    ``proctor up --split``) find their resources there: each such emulator gets the whole
    stack too (the same names and ARNs), and each client goes to its service's process.
    """
    if not settings.endpoint_url:
        raise StackError("provision() is for the local emulator; deploy to AWS with CloudFormation")
    for url in sorted(set(settings.endpoint_urls.values()) - {settings.endpoint_url}):
        _provision_one(
            settings.model_copy(update={"endpoint_url": url, "endpoint_urls": {}}), shard_count
        )
    return _provision_one(settings.model_copy(update={"endpoint_urls": {}}), shard_count)


def _provision_one(settings: Settings, shard_count: int) -> dict[str, str]:
    template = load_template()
    parameters = {
        "Target": "local",
        "Prefix": settings.prefix,
        "ShardCount": str(shard_count),
        "RetentionDays": str(settings.retention_days),
    }
    cloudformation = _client(settings, "cloudformation")
    stack_name = settings.prefix
    existing = _describe(cloudformation, stack_name)
    if existing is None:
        try:
            cloudformation.create_stack(
                StackName=stack_name,
                TemplateBody=json.dumps(template),
                Parameters=[
                    {"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()
                ],
            )
        except cloudformation.exceptions.AlreadyExistsException:
            # botocore's retry of our own CreateStack, whose answer timed out on a loaded
            # machine after the emulator had made the stack: it is ours to finish
            _log.info("stack created by an earlier attempt", stack_name=stack_name)
        existing = _describe(cloudformation, stack_name)
        if existing is None or existing["StackStatus"] != "CREATE_COMPLETE":
            status = existing["StackStatus"] if existing else "missing"
            raise StackError(f"stack {stack_name} ended {status}")
        physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
            if "LogicalResourceId" in r  # types moto cannot create come back unnamed
        }
        resolver = _Resolver(settings, template, parameters, physical)
        _apply_ignored_properties(settings, template, resolver)
        _log.info("stack provisioned", stack_name=stack_name, resources=len(physical))
    return {o["OutputKey"]: o["OutputValue"] for o in existing.get("Outputs", [])}


def _describe(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def _apply_ignored_properties(
    settings: Settings, template: dict[str, Any], resolver: _Resolver
) -> None:
    s3 = _client(settings, "s3")
    dynamodb = _client(settings, "dynamodb")
    for logical, resource in template["Resources"].items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue  # not created for Target=local
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in props:
            config = resolver.resolve(props["NotificationConfiguration"])
            s3.put_bucket_notification_configuration(
                Bucket=resolver.physical[logical],
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {
                            "QueueArn": q["Queue"],
                            "Events": [q["Event"]],
                            **(
                                {"Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}}
                                if "Filter" in q
                                else {}
                            ),
                        }
                        for q in config.get("QueueConfigurations", [])
                    ]
                },
            )
        if resource["Type"] == "AWS::S3::Bucket" and "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=resolver.physical[logical],
                VersioningConfiguration={
                    "Status": resolver.resolve(props["VersioningConfiguration"])["Status"]
                },
            )
        if resource["Type"] == "AWS::S3::Bucket" and "CorsConfiguration" in props:
            rules = resolver.resolve(props["CorsConfiguration"])["CorsRules"]
            s3.put_bucket_cors(
                Bucket=resolver.physical[logical],
                CORSConfiguration={"CORSRules": [_cors_rule(rule) for rule in rules]},
            )
        if resource["Type"] == "AWS::DynamoDB::Table":
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=resolver.physical[logical],
                    TimeToLiveSpecification={
                        "Enabled": True,
                        "AttributeName": ttl["AttributeName"],
                    },
                )


_CORS_KEYS = {
    "Id": "ID",
    "AllowedOrigins": "AllowedOrigins",
    "AllowedMethods": "AllowedMethods",
    "AllowedHeaders": "AllowedHeaders",
    "ExposedHeaders": "ExposeHeaders",
    "MaxAge": "MaxAgeSeconds",
}


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation ``CorsRule`` in the S3 API's spelling."""
    return {_CORS_KEYS[key]: value for key, value in rule.items()}


class _Resolver:
    """Evaluates the few intrinsic functions and conditions the post-creation properties use."""

    def __init__(
        self,
        settings: Settings,
        template: dict[str, Any],
        parameters: dict[str, str],
        physical: dict[str, str],
    ):
        self._settings = settings
        self._conditions: dict[str, Any] = template.get("Conditions", {})
        defaults = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        self._values = {
            **defaults,
            **parameters,
            "AWS::Region": settings.region,
            "AWS::Partition": "aws",
            "AWS::AccountId": "123456789012",
        }
        self.physical = physical

    def condition(self, name: str) -> bool:
        """The value of one of the template's named conditions."""
        return self._truth(self._conditions[name])

    def _truth(self, value: Any) -> bool:
        (function, arguments), *_ = value.items()
        if function == "Condition":
            return self.condition(arguments)
        if function == "Fn::Equals":
            left, right = (self.resolve(a) for a in arguments)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self._truth(arguments[0])
        if function == "Fn::And":
            return all(self._truth(a) for a in arguments)
        if function == "Fn::Or":
            return any(self._truth(a) for a in arguments)
        raise StackError(f"cannot evaluate condition function {function} locally")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            name = value["Ref"]
            return self._values[name] if name in self._values else self.physical[name]
        if set(value) == {"Fn::Sub"}:
            return re.sub(
                r"\$\{([^}]+)\}", lambda m: str(self._values[m.group(1)]), value["Fn::Sub"]
            )
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            return self._arn(logical, attribute)
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.condition(name) else when_false)
        return {k: self.resolve(v) for k, v in value.items()}

    def _arn(self, logical: str, attribute: str) -> str:
        physical = self.physical[logical]
        if attribute == "Arn" and physical.startswith("http"):  # an SQS queue URL
            sqs = _client(self._settings, "sqs")
            arn: str = sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            return arn
        raise StackError(f"cannot resolve {logical}.{attribute} locally")


# ---- identity: the user pool, its groups and app client, from the template ------------------
_POOL_KEYS = (
    "UsernameAttributes",
    "AutoVerifiedAttributes",
    "AdminCreateUserConfig",
    "Policies",
    "AccountRecoverySetting",
)
_CLIENT_KEYS = (
    "ClientName",
    "GenerateSecret",
    "ExplicitAuthFlows",
    "ReadAttributes",
    "WriteAttributes",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
    "AccessTokenValidity",
    "IdTokenValidity",
    "RefreshTokenValidity",
    "TokenValidityUnits",
)


def provision_identity(settings: Settings) -> dict[str, str]:
    """Create the template's user pool, groups and app client in the emulator (once).

    moto's CloudFormation has no Cognito resources, so - like the ignored
    properties above - they are created through Cognito's own API from the
    template's ``UserPool``, ``*Group`` and ``UserPoolClient`` properties
    (``Target=aws`` conditions aside). Returns ``UserPoolId``,
    ``UserPoolClientId`` and ``JwksUrl`` (the emulator's, since its tokens name
    the AWS issuer).
    """
    if not settings.endpoint_url:
        raise StackError("provision_identity() is for the local emulator")
    template = load_template()
    resources = template["Resources"]
    resolver = _Resolver(settings, template, {"Target": "local", "Prefix": settings.prefix}, {})
    cognito = _client(settings, "cognito-idp")
    name = resolver.resolve(resources["UserPool"]["Properties"]["UserPoolName"])
    pools = cognito.list_user_pools(MaxResults=60)["UserPools"]
    existing = [p["Id"] for p in pools if p["Name"] == name]
    if existing:
        pool_id = existing[0]
        clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=10)
        client_id = clients["UserPoolClients"][0]["ClientId"]
    else:
        props = resources["UserPool"]["Properties"]
        pool_id = cognito.create_user_pool(
            PoolName=name, **{k: resolver.resolve(props[k]) for k in _POOL_KEYS if k in props}
        )["UserPool"]["Id"]
        for resource in resources.values():
            if resource["Type"] == "AWS::Cognito::UserPoolGroup":
                group = resource["Properties"]
                cognito.create_group(
                    UserPoolId=pool_id,
                    GroupName=group["GroupName"],
                    Description=group.get("Description", ""),
                    Precedence=group.get("Precedence", 0),
                )
        props = resources["UserPoolClient"]["Properties"]
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            **{k: resolver.resolve(props[k]) for k in _CLIENT_KEYS if k in props},
        )["UserPoolClient"]["ClientId"]
    return {
        "UserPoolId": pool_id,
        "UserPoolClientId": client_id,
        "JwksUrl": f"{settings.endpoint_url}/{pool_id}/.well-known/jwks.json",
    }


def add_user(
    settings: Settings, email: str, group: str, password: str, *, name: str | None = None
) -> str:
    """Create a confirmed user in the local pool's ``group``; return the user's ``sub``.

    ``name`` is the user's ``name`` attribute (what a proctor's console shows of a student).
    """
    if not settings.user_pool_id:
        raise StackError("PROCTOR_USER_POOL_ID is not set (provision_identity)")
    cognito = _client(settings, "cognito-idp")
    user = cognito.admin_create_user(
        UserPoolId=settings.user_pool_id,
        Username=email,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true"},
            *([{"Name": "name", "Value": name}] if name else []),
        ],
        MessageAction="SUPPRESS",
    )["User"]
    cognito.admin_set_user_password(
        UserPoolId=settings.user_pool_id, Username=email, Password=password, Permanent=True
    )
    cognito.admin_add_user_to_group(
        UserPoolId=settings.user_pool_id, Username=email, GroupName=group
    )
    return next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")


def sign_in(settings: Settings, email: str, password: str) -> dict[str, str]:
    """The user's tokens (``IdToken``, ``AccessToken``) from the pool, as the web app gets them."""
    cognito = _client(settings, "cognito-idp")
    result = cognito.admin_initiate_auth(
        UserPoolId=settings.user_pool_id,
        ClientId=settings.user_pool_client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )["AuthenticationResult"]
    return {"IdToken": result["IdToken"], "AccessToken": result["AccessToken"]}
