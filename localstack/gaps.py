#!/usr/bin/env python3
"""Re-check the emulator gaps listed in localstack/README.md ("Emulator gaps").

    localstack/up
    localstack/.venv/bin/python localstack/gaps.py

Each probe prints GAP (the gap is still there), OK (the emulator now behaves like AWS:
update the README) or ERR (the probe itself broke). Always exits 0: this is a report,
not a test. Takes ~15 s.
"""

import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
out = subprocess.run([os.path.join(HERE, "env")], check=True, capture_output=True, text=True).stdout
for line in out.splitlines():
    if line.startswith("export "):
        k, _, v = line[7:].partition("=")
        os.environ[k] = v

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

MOTO = os.environ["AWS_ENDPOINT_URL"]
KMOCK = os.environ["AWS_ENDPOINT_URL_KINESIS"]
CFG = Config(retries={"max_attempts": 1}, read_timeout=30)
RUN = uuid.uuid4().hex[:8]


def report(kind, name, detail):
    print(f"{kind:<4} {name}: {detail}", flush=True)


def probe(name):
    def deco(fn):
        try:
            gap, detail = fn()
            report("GAP" if gap else "OK", name, detail)
        except Exception as e:  # noqa: BLE001
            report("ERR", name, f"{type(e).__name__}: {e}")
        return fn

    return deco


def wait_active(k, s, timeout=30):
    end = time.monotonic() + timeout
    while k.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.monotonic() > end:
            raise TimeoutError("stream not ACTIVE")
        time.sleep(0.1)


def reshard_probe(k, stream):
    """Returns dict of observations after 2 -> 4 UpdateShardCount."""
    k.create_stream(StreamName=stream, ShardCount=2)
    wait_active(k, stream)
    parents = [s["ShardId"] for s in k.list_shards(StreamName=stream)["Shards"]]
    k.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": f"p{i}"} for i in range(10)])
    k.update_shard_count(StreamName=stream, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    wait_active(k, stream)
    shards = k.list_shards(StreamName=stream)["Shards"]
    closed = {s["ShardId"] for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]}
    r = k.put_records(StreamName=stream, Records=[{"Data": b"y", "PartitionKey": f"q{i}"} for i in range(40)])
    to_closed = sum(1 for x in r["Records"] if x.get("ShardId") in closed)
    latest = k.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    it = k.get_shard_iterator(StreamName=stream, ShardId=parents[0], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    ended, children = False, []
    for _ in range(10):
        g = k.get_records(ShardIterator=it)
        it = g.get("NextShardIterator")
        if it is None:
            ended, children = True, g.get("ChildShards", [])
            break
    return {"shards": len(shards), "closed": len(closed), "writes_to_closed": to_closed,
            "at_latest": len(latest), "parent_ends": ended, "child_shards": len(children)}


@probe("moto Kinesis resharding (why kinesis-mock is used)")
def _():
    o = reshard_probe(boto3.client("kinesis", endpoint_url=MOTO, config=CFG), f"gap-{RUN}")
    gap = o["writes_to_closed"] > 0 or o["at_latest"] != 4 or not o["parent_ends"] or o["child_shards"] == 0
    return gap, json.dumps(o)


@probe("kinesis-mock resharding (reference, same probe)")
def _():
    o = reshard_probe(boto3.client("kinesis", config=CFG), f"gap-{RUN}")
    gap = o["writes_to_closed"] > 0 or o["at_latest"] != 4 or not o["parent_ends"] or o["child_shards"] == 0
    return gap, json.dumps(o)


@probe("moto CloudFormation + AWS::Glue::* resources")
def _():
    cfn = boto3.client("cloudformation", config=CFG)
    glue = boto3.client("glue", config=CFG)
    db = f"gapdb_{RUN}"
    tpl = {
        "Resources": {
            "Db": {"Type": "AWS::Glue::Database",
                   "Properties": {"CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseInput": {"Name": db}}},
            "Tbl": {"Type": "AWS::Glue::Table",
                    "Properties": {"CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseName": {"Ref": "Db"},
                                   "TableInput": {"Name": "t", "StorageDescriptor": {
                                       "Columns": [{"Name": "a", "Type": "string"}]}}}},
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": f"gap-{RUN}"}},
        }
    }
    cfn.create_stack(StackName=f"gap-{RUN}", TemplateBody=json.dumps(tpl))
    st = cfn.describe_stacks(StackName=f"gap-{RUN}")["Stacks"][0]["StackStatus"]
    # moto lists unsupported resource types as entries with no LogicalResourceId.
    res = [r.get("LogicalResourceId", "<unnamed>") + ":" + r.get("ResourceType", "?")
           for r in cfn.describe_stack_resources(StackName=f"gap-{RUN}")["StackResources"]]
    try:
        glue.get_database(Name=db)
        have_db = True
    except ClientError:
        have_db = False
    return not have_db, f"stack {st}, resources {res}, glue database created: {have_db}"


@probe("moto DynamoDB write throughput")
def _():
    ddb = boto3.client("dynamodb", config=CFG)
    t = f"gap-{RUN}"
    ddb.create_table(TableName=t, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 3.0:
        ddb.put_item(TableName=t, Item={"pk": {"S": f"k{n}"}, "v": {"S": "x" * 100}})
        n += 1
    put_rate = n / (time.monotonic() - t0)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 3.0:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": t, "Item": {"pk": {"S": f"tx{n}"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}}])
        n += 1
    tx_rate = n / (time.monotonic() - t0)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 3.0:
        ddb.get_item(TableName=t, Key={"pk": {"S": f"k{n % 50}"}})
        n += 1
    get_rate = n / (time.monotonic() - t0)
    detail = (f"sequential, 1 client: put_item {put_rate:.0f}/s, "
              f"1-item transact_write_items {tx_rate:.0f}/s, get_item {get_rate:.0f}/s")
    return put_rate < 500, detail


@probe("kinesis-mock put_record throughput (reference)")
def _():
    k = boto3.client("kinesis", config=CFG)
    s = f"gapt-{RUN}"
    k.create_stream(StreamName=s, ShardCount=1)
    wait_active(k, s)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 2.0:
        k.put_record(StreamName=s, Data=b"x" * 100, PartitionKey=str(n))
        n += 1
    single = n / (time.monotonic() - t0)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 2.0:
        k.put_records(StreamName=s, Records=[{"Data": b"x" * 100, "PartitionKey": str(i)} for i in range(500)])
        n += 500
    return False, f"sequential put_record {single:.0f}/s; put_records x500 {n / (time.monotonic() - t0):.0f} records/s"


@probe("moto Lambda invoke (needs Docker)")
def _():
    iam = boto3.client("iam", config=CFG)
    lam = boto3.client("lambda", config=CFG)
    role = iam.create_role(RoleName=f"gap-{RUN}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho hi\n")
    lam.create_function(FunctionName=f"gap-{RUN}", Runtime="provided.al2023", Role=role, Handler="bootstrap",
                        Code={"ZipFile": buf.getvalue()})
    try:
        r = lam.invoke(FunctionName=f"gap-{RUN}", Payload=b"{}")
        body = r["Payload"].read()[:160]
        return True, f"create_function OK; invoke did not run the code: {r.get('FunctionError')} {body!r}"
    except ClientError as e:
        return True, f"create_function OK; invoke failed: {e.response['Error']['Code']}: {e}"[:300]
    except Exception as e:  # noqa: BLE001 - e.g. server-side 500 / read timeout
        return True, f"create_function OK; invoke failed: {type(e).__name__}: {e}"[:300]


@probe("kinesis-mock SubscribeToShard (enhanced fan-out)")
def _():
    k = boto3.client("kinesis", config=CFG)
    s = f"gapefo-{RUN}"
    k.create_stream(StreamName=s, ShardCount=1)
    wait_active(k, s)
    arn = k.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]["StreamARN"]
    c = k.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]
    time.sleep(0.5)
    try:
        r = k.subscribe_to_shard(ConsumerARN=c["ConsumerARN"], ShardId="shardId-000000000000",
                                 StartingPosition={"Type": "TRIM_HORIZON"})
        for _ev in r["EventStream"]:
            return False, "SubscribeToShard streamed an event"
        return True, "SubscribeToShard returned no events"
    except Exception as e:  # noqa: BLE001
        return True, f"register_stream_consumer OK ({arn.split(':')[4]}); SubscribeToShard: {type(e).__name__}: {e}"[:300]


if __name__ == "__main__":
    sys.exit(0)
