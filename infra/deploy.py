"""Deploys or updates one Eventide stack from infra/template.yaml, then checks it.

Run it through `infra/deploy` (which installs the pinned boto3 and aws-sam-translator).
Endpoints, region and credentials come only from the standard AWS environment
(AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, AWS_REGION, ...): with AWS_ENDPOINT_URL unset
it deploys to AWS, with it set (eval "$(localstack/env)") to local AWS.

Steps:
 1. ensure the code bucket (<prefix>-artifacts unless CodeBucket is given) and upload the
    Lambda zip under a content-addressed key (a new build changes CodeKey, so CloudFormation
    updates the functions; the same build changes nothing);
 2. transform the SAM template locally with aws-sam-translator (emulators' CloudFormation does
    not run the SAM transform; AWS gets the same plain CloudFormation);
 3. upload the pipeline spec to the stack's specs bucket (content-addressed, so a new spec
    changes EVENTIDE_PIPELINE_S3 and the functions restart with it);
 4. create or update the stack and wait for it;
 5. check every declared resource through its own service API (at the endpoint the runtime
    uses, e.g. AWS_ENDPOINT_URL_KINESIS for streams) and create through the API what an
    emulator's CloudFormation skipped, saying so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
MAX_TEMPLATE_BODY = 51_200


class DeployError(Exception):
    """A deploy step failed; the message says which and why."""


def say(msg: str) -> None:
    print(f"infra/deploy: {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# Template loading (CloudFormation short-form tags) and the SAM transform
# ---------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns `!Ref x` into {"Ref": x}, `!GetAtt a.b` into
    {"Fn::GetAtt": ["a", "b"]} and any other `!Fn` into {"Fn::Fn": value}."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


class _NoManagedPolicies:
    """The template names no AWS managed policies, so the SAM translator never needs
    IAM ListPolicies; if it ever asks, fail loudly rather than guess."""

    def load(self) -> dict[str, str]:
        raise DeployError("the SAM transform asked for AWS managed policies; the template should not use any")


def sam_transform(template: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    try:
        return transform(json.loads(json.dumps(template)), dict(params), _NoManagedPolicies())
    except Exception as e:  # samtranslator raises its own InvalidDocumentException tree
        causes = getattr(e, "causes", None) or []
        detail = "; ".join(str(getattr(c, "message", c)) for c in causes) or str(e)
        raise DeployError(f"SAM transform of infra/template.yaml failed: {detail}") from e


# ---------------------------------------------------------------------------------------
# Intrinsic functions, enough to name and rebuild this template's resources
# ---------------------------------------------------------------------------------------


class Resolver:
    """Evaluates the intrinsic functions this template uses (Ref, Fn::GetAtt of ARNs,
    Fn::Sub, Fn::Join, Fn::Split, Fn::Select, Fn::If, conditions) against the parameters
    and the deployed stack's physical ids."""

    def __init__(self, template: dict[str, Any], params: dict[str, str], pseudo: dict[str, str],
                 physical: dict[str, str], arn_of: Callable[[str, str], str]):
        self.template = template
        self.params = params
        self.pseudo = pseudo
        self.physical = physical
        self.arn_of = arn_of
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template.get("Conditions", {})[name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.physical:
            return self.physical[name]
        raise DeployError(f"cannot resolve Ref {name}")

    def getatt(self, logical: str, attr: str) -> str:
        return self.arn_of(logical, attr)

    def value(self, v: Any) -> Any:
        if isinstance(v, list):
            return [x for x in (self.value(i) for i in v) if x is not _NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                return _NO_VALUE if a == "AWS::NoValue" else self.ref(a)
            if k == "Fn::GetAtt":
                logical, attr = a if isinstance(a, list) else a.split(".", 1)
                return self.getatt(logical, attr)
            if k == "Fn::Sub":
                text, extra = (a, {}) if isinstance(a, str) else (a[0], self.value(a[1]))

                def sub(m: re.Match[str]) -> str:
                    name = m.group(1)
                    if name in extra:
                        return str(extra[name])
                    if "." in name:
                        return str(self.getatt(*name.split(".", 1)))
                    return str(self.ref(name))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if k == "Fn::Join":
                return str(self.value(a[0])).join(str(x) for x in self.value(a[1]))
            if k == "Fn::Split":
                return str(self.value(a[1])).split(self.value(a[0]))
            if k == "Fn::Select":
                return self.value(a[1])[int(self.value(a[0]))]
            if k == "Fn::If":
                return self.value(a[1] if self.condition(a[0]) else a[2])
            if k == "Fn::Equals":
                return str(self.value(a[0])) == str(self.value(a[1]))
            if k == "Fn::Not":
                return not self.value(a[0])
            if k == "Fn::And":
                return all(self.value(x) for x in a)
            if k == "Fn::Or":
                return any(self.value(x) for x in a)
            if k == "Condition":
                return self.condition(a)
        out = {}
        for key, x in v.items():
            r = self.value(x)
            if r is not _NO_VALUE:
                out[key] = r
        return out


_NO_VALUE = object()


# ---------------------------------------------------------------------------------------
# AWS helpers
# ---------------------------------------------------------------------------------------


def is_local() -> bool:
    return bool(os.environ.get("AWS_ENDPOINT_URL"))


def partition_of(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def ensure_code_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as e:
        if error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"code bucket {bucket}: {e}") from e
    say(f"creating code bucket s3://{bucket}")
    args: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**args)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if is_local():
        # moto applies a Deny with Principal "*" ignoring its Condition, so a TLS-only policy
        # would deny every request to the plain-HTTP emulator (localstack/README.md).
        say(f"local AWS: code bucket {bucket} gets no TLS-only policy (the emulator would deny everything)")
        return
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:{partition_of(region)}:s3:::{bucket}", f"arn:{partition_of(region)}:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }))


def upload_if_missing(s3: Any, bucket: str, key: str, body: bytes, what: str) -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        say(f"{what}: s3://{bucket}/{key} already there ({len(body)} bytes)")
        return
    except ClientError as e:
        if error_code(e) not in ("404", "NoSuchKey", "NotFound"):
            raise DeployError(f"{what}: s3://{bucket}/{key}: {e}") from e
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    say(f"{what}: uploaded s3://{bucket}/{key} ({len(body)} bytes)")


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError:
        return False


def stack_status(cfn: Any, name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def wait_stack(cfn: Any, name: str, since: float, poll: float, timeout: float) -> str:
    deadline = time.time() + timeout
    while True:
        status = stack_status(cfn, name) or "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.time() > deadline:
            raise DeployError(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(poll)
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        reasons = []
        try:
            for ev in cfn.describe_stack_events(StackName=name)["StackEvents"]:
                ts = ev.get("Timestamp")
                if ts is not None and ts.timestamp() < since - 5:
                    break
                if "FAILED" in ev.get("ResourceStatus", ""):
                    reasons.append(f"  {ev.get('LogicalResourceId')}: {ev.get('ResourceStatusReason')}")
        except ClientError:
            pass
        raise DeployError(f"stack {name} ended {status}" + ("\n" + "\n".join(reasons) if reasons else ""))
    return status


# ---------------------------------------------------------------------------------------
# Per-type checks through each service's own API, and fallbacks that create what an
# emulator's CloudFormation skipped
# ---------------------------------------------------------------------------------------


class Checker:
    def __init__(self, session: boto3.Session, resolver: Resolver, template: dict[str, Any]):
        self.session = session
        self.r = resolver
        self.template = template
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def prop(self, logical: str, name: str) -> Any:
        """One property of a declared resource, its intrinsics resolved (only that one, so
        references this resolver cannot follow elsewhere in the resource do not matter)."""
        raw = self.template["Resources"][logical].get("Properties", {})
        if name not in raw:
            raise DeployError(f"{logical} declares no {name}")
        return self.r.value(raw[name])

    def props(self, logical: str, *names: str) -> dict[str, Any]:
        raw = self.template["Resources"][logical].get("Properties", {})
        out = {n: self.prop(logical, n) for n in names if n in raw}
        return {n: v for n, v in out.items() if v is not _NO_VALUE}

    # Each check returns a short description of what was found, or None if missing.
    def check(self, logical: str, rtype: str, physical: str | None) -> str | None:
        fn = getattr(self, "check_" + rtype.replace("::", "_"), None)
        if fn is None:
            raise DeployError(f"{logical}: no API check for {rtype}; add one to infra/deploy.py")
        try:
            return fn(logical, physical)
        except ClientError as e:
            if error_code(e) in ("ResourceNotFoundException", "EntityNotFoundException", "NoSuchEntity",
                                  "NoSuchBucket", "404", "NotFound", "NotFoundException",
                                  "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                                  "NoSuchBucketPolicy"):
                return None
            raise DeployError(f"{logical} ({rtype}): {e}") from e

    def check_AWS_KMS_Key(self, logical: str, physical: str | None) -> str | None:
        # ListKeys rather than DescribeKey: moto stores a CloudFormation-made key's policy
        # as a dict and then fails every DescribeKey of it with a 500.
        if not physical:
            return None
        for page in self.client("kms").get_paginator("list_keys").paginate():
            for k in page["Keys"]:
                if physical in (k["KeyId"], k["KeyArn"]):
                    return f"key {k['KeyArn']}"
        return None

    def check_AWS_KMS_Alias(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "AliasName")
        for page in self.client("kms").get_paginator("list_aliases").paginate():
            for a in page["Aliases"]:
                if a["AliasName"] == name:
                    return f"alias {name}"
        return None

    def check_AWS_Kinesis_Stream(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "Name")
        s = self.client("kinesis").describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        return (f"stream {name} ({s['StreamStatus']}, {s.get('OpenShardCount', '?')} open shards, "
                f"{s.get('EncryptionType', 'NONE')})")

    def check_AWS_Kinesis_StreamConsumer(self, logical: str, physical: str | None) -> str | None:
        p = self.props(logical, "ConsumerName", "StreamARN")
        c = self.client("kinesis").describe_stream_consumer(
            StreamARN=p["StreamARN"], ConsumerName=p["ConsumerName"])["ConsumerDescription"]
        return f"EFO consumer {p['ConsumerName']} ({c['ConsumerStatus']})"

    def check_AWS_DynamoDB_Table(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "TableName")
        t = self.client("dynamodb").describe_table(TableName=name)["Table"]
        return f"table {name} ({t['TableStatus']})"

    def check_AWS_S3_Bucket(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "BucketName")
        s3 = self.client("s3")
        s3.head_bucket(Bucket=name)
        notes = []
        try:
            pab = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
            notes.append("public access blocked" if all(pab.values()) else "public access NOT fully blocked")
        except ClientError as e:
            if error_code(e) != "NoSuchPublicAccessBlockConfiguration":
                raise
            notes.append("no public access block")
        try:
            rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
            notes.append("SSE " + ",".join(r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules))
        except ClientError as e:
            if error_code(e) != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            notes.append("no default encryption")
        return f"bucket {name} ({', '.join(notes)})"

    def repair_AWS_S3_Bucket(self, logical: str) -> list[str]:
        """An emulator's CloudFormation may create a bucket but skip its public access block
        (moto 5.2 does): apply the declared one through the S3 API."""
        p = self.props(logical, "BucketName", "PublicAccessBlockConfiguration")
        if "PublicAccessBlockConfiguration" not in p:
            return []
        s3 = self.client("s3")
        try:
            s3.get_public_access_block(Bucket=p["BucketName"])
            return []
        except ClientError as e:
            if error_code(e) != "NoSuchPublicAccessBlockConfiguration":
                raise
        conf = {k: v in (True, "true", "True") for k, v in p["PublicAccessBlockConfiguration"].items()}
        s3.put_public_access_block(Bucket=p["BucketName"], PublicAccessBlockConfiguration=conf)
        return [f"public access block of bucket {p['BucketName']}"]

    def repair(self, logical: str, rtype: str) -> list[str]:
        fn = getattr(self, "repair_" + rtype.replace("::", "_"), None)
        return fn(logical) if fn else []

    def local_policy(self, logical: str) -> dict[str, Any]:
        """The bucket policy as applied on local AWS: without its TLS-only Deny statements,
        which moto enforces while ignoring their condition (see relax_tls_only_policies)."""
        doc = self.prop(logical, "PolicyDocument")
        return {**doc, "Statement": [st for st in doc.get("Statement", []) if not _is_tls_only_deny(st)]}

    def check_AWS_S3_BucketPolicy(self, logical: str, physical: str | None) -> str | None:
        bucket = self.prop(logical, "Bucket")
        try:
            policy = json.loads(self.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError as e:
            if error_code(e) == "NoSuchBucketPolicy" and is_local() and not self.local_policy(logical)["Statement"]:
                return (f"policy of {bucket}: only a TLS-only Deny, not applied on local AWS "
                        f"(the emulator ignores its condition and would deny every request)")
            raise
        n = len(policy.get("Statement", []))
        declared = len(self.prop(logical, "PolicyDocument").get("Statement", []))
        note = "" if n == declared else f" of {declared} declared; the TLS-only Deny is not applied on local AWS"
        return f"policy of {bucket} ({n} statements{note})"

    def check_AWS_Glue_Database(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "DatabaseInput")["Name"]
        self.client("glue").get_database(Name=name)
        return f"database {name}"

    def check_AWS_SQS_Queue(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "QueueName")
        url = self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        return f"queue {url}"

    def _queue_url(self, ref: str) -> str:
        # CloudFormation's physical id is the queue URL, which on an emulator may name AWS's
        # host; ask the SQS endpoint in use for its own URL of that queue.
        return self.client("sqs").get_queue_url(QueueName=ref.rstrip("/").rsplit("/", 1)[-1])["QueueUrl"]

    def check_AWS_SQS_QueuePolicy(self, logical: str, physical: str | None) -> str | None:
        sqs = self.client("sqs")
        found = []
        for ref in self.prop(logical, "Queues"):
            url = self._queue_url(ref)
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
            if "Policy" not in attrs:
                return None
            found.append(url.rsplit("/", 1)[-1])
        return "policy of " + ", ".join(found)

    def check_AWS_Logs_LogGroup(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "LogGroupName")
        for g in self.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]:
            if g["logGroupName"] == name:
                return f"log group {name} (retention {g.get('retentionInDays', 'never expires')} days)"
        return None

    def check_AWS_IAM_Role(self, logical: str, physical: str | None) -> str | None:
        if not physical:
            return None
        role = self.client("iam").get_role(RoleName=physical)["Role"]
        policies = self.client("iam").list_role_policies(RoleName=physical)["PolicyNames"]
        return f"role {role['RoleName']} (inline policies: {', '.join(policies) or 'none'})"

    def check_AWS_Lambda_Function(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "FunctionName")
        c = self.client("lambda").get_function(FunctionName=name)["Configuration"]
        return f"function {name} ({c.get('Runtime')}, {','.join(c.get('Architectures', []))}, {c.get('CodeSize')} bytes)"

    def check_AWS_Lambda_EventSourceMapping(self, logical: str, physical: str | None) -> str | None:
        fn = self.prop(logical, "FunctionName")
        lam = self.client("lambda")
        for m in lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]:
            if not physical or m["UUID"] == physical:
                return f"event source mapping {m['UUID']} ({m.get('State')}, batch {m.get('BatchSize')})"
        return None

    def check_AWS_Lambda_Permission(self, logical: str, physical: str | None) -> str | None:
        fn = self.prop(logical, "FunctionName")
        policy = json.loads(self.client("lambda").get_policy(FunctionName=fn)["Policy"])
        return f"invoke permission on {fn.rsplit(':', 1)[-1]} ({len(policy.get('Statement', []))} statements)"

    def check_AWS_Events_Rule(self, logical: str, physical: str | None) -> str | None:
        if not physical:
            return None
        rule = self.client("events").describe_rule(Name=physical.split("|")[-1])
        targets = self.client("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
        return f"rule {rule['Name']} ({rule.get('ScheduleExpression')}, {len(targets)} target(s))"

    def check_AWS_CloudWatch_Alarm(self, logical: str, physical: str | None) -> str | None:
        name = self.prop(logical, "AlarmName")
        alarms = self.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return f"alarm {name}" if alarms else None

    # --- creating what was skipped ------------------------------------------------------

    def create_AWS_Glue_Database(self, logical: str) -> str:
        p = self.props(logical, "DatabaseInput")
        self.client("glue").create_database(DatabaseInput=p["DatabaseInput"])
        return f"Glue database {p['DatabaseInput']['Name']}"

    def create_AWS_Kinesis_Stream(self, logical: str) -> str:
        p = self.props(logical, "Name", "StreamModeDetails", "ShardCount", "RetentionPeriodHours", "StreamEncryption")
        k = self.client("kinesis")
        args: dict[str, Any] = {"StreamName": p["Name"], "StreamModeDetails": p["StreamModeDetails"]}
        if "ShardCount" in p:
            args["ShardCount"] = int(p["ShardCount"])
        k.create_stream(**args)
        k.get_waiter("stream_exists").wait(StreamName=p["Name"], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        if "RetentionPeriodHours" in p and int(p["RetentionPeriodHours"]) > 24:
            k.increase_stream_retention_period(StreamName=p["Name"], RetentionPeriodHours=int(p["RetentionPeriodHours"]))
        enc = p.get("StreamEncryption")
        if enc:
            k.start_stream_encryption(StreamName=p["Name"], EncryptionType=enc["EncryptionType"], KeyId=enc["KeyId"])
            k.get_waiter("stream_exists").wait(StreamName=p["Name"], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        return f"Kinesis stream {p['Name']} ({args.get('ShardCount', 'on-demand')} shards, {enc['EncryptionType'] if enc else 'unencrypted'})"

    def create_AWS_Kinesis_StreamConsumer(self, logical: str) -> str:
        p = self.props(logical, "ConsumerName", "StreamARN")
        self.client("kinesis").register_stream_consumer(StreamARN=p["StreamARN"], ConsumerName=p["ConsumerName"])
        return f"EFO consumer {p['ConsumerName']}"

    def create_AWS_S3_BucketPolicy(self, logical: str) -> str:
        bucket = self.prop(logical, "Bucket")
        if is_local():
            doc = self.local_policy(logical)
            if doc["Statement"]:
                self.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))
            return f"policy of bucket {bucket} (on local AWS without its TLS-only Deny)"
        self.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(self.prop(logical, "PolicyDocument")))
        return f"policy of bucket {bucket}"

    def create_AWS_SQS_QueuePolicy(self, logical: str) -> str:
        p = self.props(logical, "Queues", "PolicyDocument")
        names = []
        for ref in p["Queues"]:
            url = self._queue_url(ref)
            self.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
            names.append(url.rsplit("/", 1)[-1])
        return "policy of queue " + ", ".join(names)

    def create_AWS_CloudWatch_Alarm(self, logical: str) -> str:
        keys = ("AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic",
                "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData",
                "AlarmActions", "OKActions", "InsufficientDataActions", "DatapointsToAlarm", "Unit")
        p = self.props(logical, *keys)
        for k in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if k in p:
                p[k] = int(p[k])
        if "Threshold" in p:
            p["Threshold"] = float(p["Threshold"])
        self.client("cloudwatch").put_metric_alarm(**p)
        return f"CloudWatch alarm {p['AlarmName']}"

    def create(self, logical: str, rtype: str) -> str | None:
        fn = getattr(self, "create_" + rtype.replace("::", "_"), None)
        return fn(logical) if fn else None


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def read_params_file(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return {p["ParameterKey"]: str(p["ParameterValue"]) for p in json.load(f)}


def infer_arch(zip_path: Path) -> str | None:
    for part in reversed(zip_path.parts):
        if part in ("x86_64", "arm64"):
            return part
    return None


def deploy(args: argparse.Namespace) -> int:
    t_start = time.time()
    params: dict[str, str] = {}
    if args.parameters:
        params.update(read_params_file(args.parameters))
    for kv in args.param:
        if "=" not in kv:
            raise DeployError(f"--param {kv!r}: expected Key=Value")
        k, v = kv.split("=", 1)
        params[k] = v
    if args.prefix:
        params["Prefix"] = args.prefix
    prefix = params.get("Prefix")
    if not prefix:
        raise DeployError("no Prefix: give --prefix or Prefix in --parameters")
    stack = args.stack_name or prefix
    params.setdefault("PipelineName", "reference")

    # boto3 reads AWS_DEFAULT_REGION only; the Rust SDK and the docs use AWS_REGION.
    session = boto3.Session(region_name=os.environ.get("AWS_REGION") or None)
    region = session.region_name
    if not region:
        raise DeployError("no region: set AWS_REGION (or AWS_DEFAULT_REGION)")
    target = f"local AWS at {os.environ['AWS_ENDPOINT_URL']}" if is_local() else f"AWS {region}"
    account = session.client("sts").get_caller_identity()["Account"]
    say(f"deploying stack {stack} (prefix {prefix}) to {target}, account {account}")
    s3 = session.client("s3")
    cfn = session.client("cloudformation")

    # 1. Code.
    zip_path = Path(args.zip)
    try:
        code = zip_path.read_bytes()
    except OSError as e:
        raise DeployError(f"--zip {zip_path}: {e}") from e
    arch = args.arch or infer_arch(zip_path)
    if arch is None:
        raise DeployError(f"--zip {zip_path}: cannot tell x86_64 from arm64 by its path; give --arch")
    params["LambdaArchitecture"] = arch
    code_bucket = params.setdefault("CodeBucket", args.code_bucket or f"{prefix}-artifacts")
    ensure_code_bucket(s3, code_bucket, region)
    params["CodeKey"] = f"eventide-consumer/{arch}/{hashlib.sha256(code).hexdigest()[:20]}.zip"
    upload_if_missing(s3, code_bucket, params["CodeKey"], code, "Lambda zip")

    # 2. Pipeline spec: content-addressed in the stack's specs bucket.
    spec_body = None
    if args.pipeline:
        spec_body = Path(args.pipeline).read_bytes()
        digest = hashlib.sha256(spec_body).hexdigest()[:20]
        params["PipelineSpecS3Uri"] = f"s3://{prefix}-specs/{params['PipelineName']}/{digest}.toml"
    elif "PipelineSpecS3Uri" not in params:
        raise DeployError("no pipeline: give --pipeline FILE (or PipelineSpecS3Uri in the parameters)")
    spec_bucket, spec_key = params["PipelineSpecS3Uri"][len("s3://"):].split("/", 1)
    # On AWS the spec must be there before UpdateStack points the functions at it; local
    # AWS runs no functions, and its bucket policy may still need relaxing (below).
    if spec_body is not None and not is_local() and bucket_exists(s3, spec_bucket):
        upload_if_missing(s3, spec_bucket, spec_key, spec_body, "pipeline spec")

    # 3. Transform.
    sam = load_template(HERE / "template.yaml")
    declared = set(sam.get("Parameters", {}))
    unknown = sorted(set(params) - declared)
    if unknown:
        raise DeployError(f"not parameters of the template: {', '.join(unknown)}")
    os.environ.setdefault("AWS_REGION", region)
    cfn_template = sam_transform(sam, params)
    body = json.dumps(cfn_template, separators=(",", ":"), sort_keys=True)
    say(f"SAM transform: {len(sam['Resources'])} template resources -> {len(cfn_template['Resources'])} CloudFormation resources ({len(body)} bytes)")
    template_arg: dict[str, Any]
    if len(body) <= MAX_TEMPLATE_BODY:
        template_arg = {"TemplateBody": body}
    else:
        key = f"templates/{stack}/{hashlib.sha256(body.encode()).hexdigest()[:20]}.json"
        upload_if_missing(s3, code_bucket, key, body.encode(), "transformed template")
        base = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        url = f"{base.rstrip('/')}/{code_bucket}/{key}" if base else f"https://{code_bucket}.s3.{region}.amazonaws.com/{key}"
        template_arg = {"TemplateURL": url}
    cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]

    # 4. Create or update.
    poll = 0.5 if is_local() else 5.0
    status = stack_status(cfn, stack)
    if status == "ROLLBACK_COMPLETE":
        say(f"stack {stack} is ROLLBACK_COMPLETE (a failed first create): deleting it before creating again")
        cfn.delete_stack(StackName=stack)
        wait_stack_deleted(cfn, stack, poll, args.timeout)
        status = None
    t_stack = time.time()
    if status is None:
        say(f"creating stack {stack}")
        cfn.create_stack(StackName=stack, Parameters=cfn_params, Capabilities=CAPABILITIES,
                         Tags=[{"Key": "eventide:prefix", "Value": prefix}], **template_arg)
        final = wait_stack(cfn, stack, t_stack, poll, args.timeout)
    else:
        say(f"updating stack {stack} (was {status})")
        try:
            cfn.update_stack(StackName=stack, Parameters=cfn_params, Capabilities=CAPABILITIES,
                             Tags=[{"Key": "eventide:prefix", "Value": prefix}], **template_arg)
            final = wait_stack(cfn, stack, t_stack, poll, args.timeout)
        except ClientError as e:
            if "No updates are to be performed" not in str(e):
                raise DeployError(f"update of stack {stack}: {e}") from e
            final = f"{status} (no changes)"
    say(f"stack {stack}: {final} in {time.time() - t_stack:.1f}s")

    # 5. Check every declared resource; create what an emulator skipped.
    created = verify(session, cfn, stack, cfn_template, params, region, account)
    if is_local():
        relax_tls_only_policies(s3, cfn_template, prefix)
    if spec_body is not None:
        upload_if_missing(s3, spec_bucket, spec_key, spec_body, "pipeline spec")
    say(f"done in {time.time() - t_start:.1f}s")
    if created:
        say("created through the service APIs because CloudFormation skipped them here: " + "; ".join(created))
    if is_local():
        print_local_worker_hint(params, args.pipeline)
    return 0


def _is_tls_only_deny(statement: dict[str, Any]) -> bool:
    cond = statement.get("Condition", {})
    return (statement.get("Effect") == "Deny" and statement.get("Principal") == "*"
            and list(cond) == ["Bool"] and list(cond["Bool"]) == ["aws:SecureTransport"])


def relax_tls_only_policies(s3: Any, template: dict[str, Any], prefix: str) -> None:
    """Local AWS only. moto 5 enforces a bucket policy's Deny statements with Principal "*"
    but ignores their Condition, so the template's "deny unless aws:SecureTransport" denies
    every request to the plain-HTTP emulator, the runtime's dead letters and the spec upload
    included. Where a probe (HEAD of a missing key: 403, not 404) shows that, drop just those
    statements from the deployed policy, and say so. AWS keeps the template's policies."""
    buckets = []
    for res in template["Resources"].values():
        if res["Type"] == "AWS::S3::Bucket":
            name = res.get("Properties", {}).get("BucketName")
            if isinstance(name, dict) and "Fn::Sub" in name and isinstance(name["Fn::Sub"], str):
                buckets.append(name["Fn::Sub"].replace("${Prefix}", prefix))
    for bucket in buckets:
        try:
            s3.head_object(Bucket=bucket, Key=".eventide-deploy-probe")
            continue
        except ClientError as e:
            if error_code(e) != "403":
                continue
        try:
            policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError:
            continue
        keep = [st for st in policy.get("Statement", []) if not _is_tls_only_deny(st)]
        if len(keep) == len(policy.get("Statement", [])):
            continue
        if keep:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": keep}))
        else:
            s3.delete_bucket_policy(Bucket=bucket)
        say(f"local AWS: removed the TLS-only Deny from the policy of {bucket}: the emulator "
            f"ignores its aws:SecureTransport condition and denied every request (AWS keeps it)")


def wait_stack_deleted(cfn: Any, stack: str, poll: float, timeout: float) -> None:
    deadline = time.time() + timeout
    while stack_status(cfn, stack) not in (None, "DELETE_COMPLETE"):
        if time.time() > deadline:
            raise DeployError(f"stack {stack} not deleted after {timeout:.0f}s")
        time.sleep(poll)


def verify(session: boto3.Session, cfn: Any, stack: str, template: dict[str, Any], params: dict[str, str],
           region: str, account: str) -> list[str]:
    listed = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        listed.extend(page["StackResourceSummaries"])
    in_stack = {r["LogicalResourceId"]: r for r in listed if r.get("LogicalResourceId")}
    physical = {k: r.get("PhysicalResourceId") for k, r in in_stack.items()}
    partition = partition_of(region)
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": partition,
              "AWS::StackName": stack, "AWS::URLSuffix": "amazonaws.com"}
    # Parameters the stack resolved by their Default.
    all_params = {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items() if "Default" in v}
    all_params.update(params)

    def arn_of(logical: str, attr: str) -> str:
        """The Fn::GetAtt values this template's checks and fallbacks need, built from the
        physical ids the way AWS documents them (no emulator-specific look-ups)."""
        rtype = template["Resources"][logical]["Type"]
        pid = physical.get(logical)
        if not pid:
            raise DeployError(f"cannot resolve {logical}.{attr}: not in the stack")
        base = f"arn:{partition}"
        if (rtype, attr) == ("AWS::KMS::Key", "Arn"):
            return pid if pid.startswith("arn:") else f"{base}:kms:{region}:{account}:key/{pid}"
        if (rtype, attr) == ("AWS::SQS::Queue", "QueueName"):
            return pid.rstrip("/").rsplit("/", 1)[-1]
        if (rtype, attr) == ("AWS::SQS::Queue", "Arn"):
            return f"{base}:sqs:{region}:{account}:{pid.rstrip('/').rsplit('/', 1)[-1]}"
        if (rtype, attr) == ("AWS::Kinesis::Stream", "Arn"):
            return f"{base}:kinesis:{region}:{account}:stream/{pid}"
        if (rtype, attr) == ("AWS::Kinesis::StreamConsumer", "ConsumerARN"):
            return pid  # a stream consumer's physical id is its ARN
        if (rtype, attr) == ("AWS::DynamoDB::Table", "Arn"):
            return f"{base}:dynamodb:{region}:{account}:table/{pid}"
        if (rtype, attr) == ("AWS::S3::Bucket", "Arn"):
            return f"{base}:s3:::{pid}"
        if (rtype, attr) == ("AWS::Logs::LogGroup", "Arn"):
            return f"{base}:logs:{region}:{account}:log-group:{pid}:*"
        raise DeployError(f"cannot resolve {logical}.{attr} ({rtype})")

    resolver = Resolver(template, all_params, pseudo, physical, arn_of)
    checker = Checker(session, resolver, template)
    created, missing, checked = [], [], 0
    say(f"checking the {len(template['Resources'])} declared resources through their service APIs:")
    for logical in sorted(template["Resources"]):
        res = template["Resources"][logical]
        rtype = res["Type"]
        cond = res.get("Condition")
        if cond and not resolver.condition(cond):
            print(f"  -      {logical:32} {rtype:34} not deployed (condition {cond} is false)")
            continue
        entry = in_stack.get(logical)
        state = entry["ResourceStatus"] if entry else "not listed by CloudFormation"
        found = checker.check(logical, rtype, physical.get(logical))
        if found is None:
            made = checker.create(logical, rtype)
            if made is None:
                missing.append(f"{logical} ({rtype}; {state})")
                print(f"  MISSING {logical:31} {rtype:34} {state}")
                continue
            created.append(made)
            found = checker.check(logical, rtype, physical.get(logical))
            if found is None:
                missing.append(f"{logical} ({rtype}): still missing after creating it through the API")
                continue
            print(f"  CREATED {logical:31} {rtype:34} {found}  <- CloudFormation: {state}; created through the API")
        else:
            repaired = checker.repair(logical, rtype)
            if repaired:
                created.extend(repaired)
                found = checker.check(logical, rtype, physical.get(logical))
                print(f"  FIXED  {logical:32} {rtype:34} {found}  <- created through the API: {'; '.join(repaired)}")
            else:
                print(f"  ok     {logical:32} {rtype:34} {found}")
        checked += 1
    if missing:
        raise DeployError("declared resources missing after the deploy: " + "; ".join(missing))
    say(f"all {checked} deployed resources exist ({len(created)} created through the API)")
    return created


def print_local_worker_hint(params: dict[str, str], pipeline: str | None) -> None:
    prefix = params["Prefix"]
    spec = pipeline or "<the pipeline TOML>"
    idle = params.get("IdleTimeoutMs", "10000")
    say("Lambda cannot run on local AWS, so run the functions as workers (one or more, each in its own shell):")
    print(f'  eval "$(localstack/env)"\n'
          f"  cargo run --release -p eventide-consumer -- worker --pipeline {spec} --name {params['PipelineName']} \\\n"
          f"    --prefix {prefix} --stream {prefix}-input --output-stream {prefix}-output --idle-timeout-ms {idle}\n"
          f"  # then write events: cargo run --release -p eventide -- put --stream {prefix}-input ...", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(prog="infra/deploy", description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--prefix", help="resource name prefix (the Prefix parameter); the default stack name")
    ap.add_argument("--stack-name", help="CloudFormation stack name (default: the prefix)")
    ap.add_argument("--zip", required=True, help="the Lambda zip from infra/package (infra/dist/<arch>/eventide-consumer.zip)")
    ap.add_argument("--arch", choices=["x86_64", "arm64"], help="the zip's architecture (default: from its path)")
    ap.add_argument("--pipeline", help="the pipeline TOML to upload to s3://<prefix>-specs/")
    ap.add_argument("--parameters", help="a CloudFormation parameter file, e.g. infra/parameters/local.json")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a template parameter (repeatable; wins over --parameters)")
    ap.add_argument("--code-bucket", help="bucket for the zip (default: CodeBucket parameter, else <prefix>-artifacts)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the stack (default 1800)")
    args = ap.parse_args()
    try:
        return deploy(args)
    except DeployError as e:
        print(f"infra/deploy: error: {e}", file=sys.stderr)
        return 1
    except ClientError as e:
        print(f"infra/deploy: error: {e}", file=sys.stderr)
        return 1
    except BotoCoreError as e:  # no credentials, no endpoint, a refused connection
        hint = "" if os.environ.get("AWS_ENDPOINT_URL") else ' (for local AWS: localstack/up && eval "$(localstack/env)")'
        print(f"infra/deploy: error: {e}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
