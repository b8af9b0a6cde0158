"""Provision ``template.yaml`` into the local emulator, the way CloudFormation does in AWS.

The template goes through the emulator's own CloudFormation API. moto's
CloudFormation creates the resources but drops two properties that matter
here, so this module applies them afterwards, read from the same template:

- ``AWS::S3::Bucket`` ``NotificationConfiguration`` (S3 -> SQS chunk events);
- ``AWS::DynamoDB::Table`` ``TimeToLiveSpecification`` (retention).

Nothing else is created by hand: a resource missing from the template is
missing locally too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import structlog

from infrastructure import load_template
from infrastructure.emulator import StackError
from proctoring.aws import sync_client
from proctoring.settings import Settings

__all__ = ["provision"]

_log = structlog.get_logger(__name__)


def provision(settings: Settings, *, shard_count: int = 2) -> dict[str, str]:
    """Create the stack named ``settings.prefix`` unless it exists; return its outputs."""
    if not settings.endpoint_url:
        raise StackError("provision() is for the local emulator; deploy to AWS with CloudFormation")
    template = load_template()
    parameters = {
        "Prefix": settings.prefix,
        "ShardCount": str(shard_count),
        "RetentionDays": str(settings.retention_days),
    }
    cloudformation = sync_client(settings, "cloudformation")
    stack_name = settings.prefix
    existing = _describe(cloudformation, stack_name)
    if existing is None:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        existing = _describe(cloudformation, stack_name)
        if existing is None or existing["StackStatus"] != "CREATE_COMPLETE":
            status = existing["StackStatus"] if existing else "missing"
            raise StackError(f"stack {stack_name} ended {status}")
        physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
            if "LogicalResourceId" in r  # types moto cannot create come back unnamed
        }
        resolver = _Resolver(settings, parameters, physical)
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
    s3 = sync_client(settings, "s3")
    dynamodb = sync_client(settings, "dynamodb")
    for logical, resource in template["Resources"].items():
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


class _Resolver:
    """Evaluates the few intrinsic functions the post-creation properties use."""

    def __init__(self, settings: Settings, parameters: dict[str, str], physical: dict[str, str]):
        self._settings = settings
        self._values = {
            **parameters,
            "AWS::Region": settings.region,
            "AWS::Partition": "aws",
            "AWS::AccountId": "123456789012",
        }
        self.physical = physical

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            name = value["Ref"]
            return self._values.get(name) or self.physical[name]
        if set(value) == {"Fn::Sub"}:
            return re.sub(
                r"\$\{([^}]+)\}", lambda m: str(self._values[m.group(1)]), value["Fn::Sub"]
            )
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            return self._arn(logical, attribute)
        return {k: self.resolve(v) for k, v in value.items()}

    def _arn(self, logical: str, attribute: str) -> str:
        physical = self.physical[logical]
        if attribute == "Arn" and physical.startswith("http"):  # an SQS queue URL
            sqs = sync_client(self._settings, "sqs")
            arn: str = sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            return arn
        raise StackError(f"cannot resolve {logical}.{attribute} locally")
