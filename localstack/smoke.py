#!/usr/bin/env python3
"""Smoke test for the local AWS emulators started by localstack/up.

    localstack/up
    localstack/.venv/bin/python localstack/smoke.py            # moto + kinesis-mock
    localstack/.venv/bin/python localstack/smoke.py --docker   # real LocalStack (docker-compose.yml)

Endpoints and credentials come from `localstack/env` (the same lines a user evals),
so this also checks that the standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_KINESIS
variables are honoured by the SDK. Every resource name is unique per run, so it can
be run repeatedly against long-running servers. Exit status 0 iff every check passed.
"""

import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def load_env(docker: bool) -> None:
    args = [os.path.join(HERE, "env")] + (["--docker"] if docker else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            os.environ[key] = value
        elif line.startswith("unset "):
            for key in line.split()[1:]:
                os.environ.pop(key, None)


load_env("--docker" in sys.argv[1:])

import boto3  # noqa: E402  (after the environment is set)
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

CFG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)
RUN = uuid.uuid4().hex[:8]
RESULTS = []


def client(name):
    return boto3.client(name, config=CFG)


def check(name):
    def deco(fn):
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # noqa: BLE001 - report every failure and continue
            ok, detail = False, f"{type(e).__name__}: {e}"
        dt = time.monotonic() - t0
        RESULTS.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name:<60} {dt:6.2f}s  {detail}", flush=True)
        return fn

    return deco


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}"
        return e
    raise AssertionError(f"expected {code}, call succeeded")


def wait_until(pred, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- 4566
print(f"endpoints: AWS_ENDPOINT_URL={os.environ.get('AWS_ENDPOINT_URL')} "
      f"AWS_ENDPOINT_URL_KINESIS={os.environ.get('AWS_ENDPOINT_URL_KINESIS')}  run={RUN}")

sts = client("sts")
ddb = client("dynamodb")
s3 = client("s3")
glue = client("glue")
kin = client("kinesis")
TABLE = f"smoke-{RUN}"


@check("sts get_caller_identity")
def _():
    return "account " + sts.get_caller_identity()["Account"]


@check("dynamodb create_table + put/get")
def _():
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "x"}})
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"N": "1"}}, ConsistentRead=True)["Item"]
    assert item["v"]["S"] == "x", item


@check("dynamodb conditional put fails when it should")
def _():
    expect_error("ConditionalCheckFailedException", ddb.put_item, TableName=TABLE,
                 Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "y"}},
                 ConditionExpression="attribute_not_exists(pk)")
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"]
    assert item["v"]["S"] == "x", "failed conditional put modified the item"


@check("dynamodb TransactWriteItems commit + cancel")
def _():
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}, "sk": {"N": "1"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                    "UpdateExpression": "SET c = if_not_exists(c, :z) + :one",
                    "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}}}},
    ])
    e = expect_error("TransactionCanceledException", ddb.transact_write_items, TransactItems=[
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t2"}, "sk": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                            "ConditionExpression": "c = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}}}},
    ])
    assert ddb.get_item(TableName=TABLE, Key={"pk": {"S": "t"}, "sk": {"N": "1"}}).get("Item"), "commit lost"
    assert not ddb.get_item(TableName=TABLE, Key={"pk": {"S": "t2"}, "sk": {"N": "1"}}).get("Item"), \
        "cancelled transaction wrote an item"
    reasons = [r.get("Code") for r in e.response.get("CancellationReasons", [])]
    return f"cancel reasons {reasons}"


@check("s3 create_bucket + put/get")
def _():
    bucket = f"smoke-{RUN}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/obj.json", Body=b'{"hello":1}')
    body = s3.get_object(Bucket=bucket, Key="dir/obj.json")["Body"].read()
    assert body == b'{"hello":1}', body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]]
    assert keys == ["dir/obj.json"], keys


@check("glue create_database/create_table/get_table")
def _():
    db = f"smoke_{RUN}"
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_table(DatabaseName=db, TableInput={
        "Name": "events",
        "StorageDescriptor": {
            "Columns": [{"Name": "id", "Type": "string"}, {"Name": "ts", "Type": "timestamp"}],
            "Location": f"s3://smoke-{RUN}/events/",
        },
        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "TableType": "EXTERNAL_TABLE",
    })
    t = glue.get_table(DatabaseName=db, Name="events")["Table"]
    cols = [c["Name"] for c in t["StorageDescriptor"]["Columns"]]
    assert cols == ["id", "ts"], cols


# --------------------------------------------------------------------------- Kinesis
STREAM = f"smoke-{RUN}"
state = {}


def shards(**kw):
    out, token = [], None
    while True:
        r = kin.list_shards(NextToken=token) if token else kin.list_shards(StreamName=STREAM, **kw)
        out += r["Shards"]
        token = r.get("NextToken")
        if not token:
            return out


def active():
    return kin.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


@check("kinesis create_stream (2 shards) until ACTIVE")
def _():
    kin.create_stream(StreamName=STREAM, ShardCount=2)
    t0 = time.monotonic()
    wait_until(active, what="stream ACTIVE")
    state["parents"] = [s["ShardId"] for s in shards()]
    assert len(state["parents"]) == 2, state["parents"]
    return f"ACTIVE after {time.monotonic() - t0:.2f}s"


@check("kinesis put_records + get_records")
def _():
    recs = [{"Data": f"r{i}".encode(), "PartitionKey": f"pk{i}"} for i in range(20)]
    r = kin.put_records(StreamName=STREAM, Records=recs)
    assert r["FailedRecordCount"] == 0, r
    got = []
    for sid in state["parents"]:
        it = kin.get_shard_iterator(StreamName=STREAM, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got += [x["Data"] for x in kin.get_records(ShardIterator=it, Limit=1000)["Records"]]
    assert sorted(got) == sorted(x["Data"] for x in recs), f"got {len(got)} of {len(recs)}"
    per_shard = {s: 0 for s in state["parents"]}
    for x in r["Records"]:
        per_shard[x["ShardId"]] += 1
    return f"per shard {list(per_shard.values())}"


@check("kinesis put_record ExplicitHashKey routing")
def _():
    for s in shards():
        rng = s["HashKeyRange"]
        mid = (int(rng["StartingHashKey"]) + int(rng["EndingHashKey"])) // 2
        for hk in (rng["StartingHashKey"], str(mid), rng["EndingHashKey"]):
            r = kin.put_record(StreamName=STREAM, Data=b"ehk", PartitionKey="ignored", ExplicitHashKey=hk)
            assert r["ShardId"] == s["ShardId"], f"hash {hk} -> {r['ShardId']}, want {s['ShardId']}"


@check("kinesis update_shard_count 2->4 until ACTIVE")
def _():
    t0 = time.monotonic()
    kin.update_shard_count(StreamName=STREAM, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    wait_until(active, what="stream ACTIVE after UpdateShardCount")
    dt = time.monotonic() - t0
    all_shards = shards()
    open_ = [s for s in all_shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    closed = [s["ShardId"] for s in all_shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert len(open_) == 4, f"{len(open_)} open shards"
    assert set(state["parents"]) <= set(closed), f"parents {state['parents']} not all closed: {closed}"
    state["open"] = {s["ShardId"] for s in open_}
    return f"ACTIVE after {dt:.2f}s; {len(all_shards)} shards, {len(closed)} closed"


@check("kinesis writes after reshard go to open children")
def _():
    recs = [{"Data": f"after{i}".encode(), "PartitionKey": f"k{i}"} for i in range(40)]
    r = kin.put_records(StreamName=STREAM, Records=recs)
    assert r["FailedRecordCount"] == 0, r
    used = {x["ShardId"] for x in r["Records"]}
    assert used <= state["open"], f"records went to closed shards {used - state['open']}"
    return f"{len(used)} child shards used"


@check("kinesis closed parent ends: next iterator null + ChildShards")
def _():
    out = []
    for sid in state["parents"]:
        it = kin.get_shard_iterator(StreamName=STREAM, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        n = 0
        for _ in range(50):  # bounded
            r = kin.get_records(ShardIterator=it, Limit=1000)
            n += len(r["Records"])
            it = r.get("NextShardIterator")
            if it is None:
                break
        assert it is None, f"{sid}: NextShardIterator never became null"
        children = [c["ShardId"] for c in r.get("ChildShards", [])]
        assert children and set(children) <= state["open"], f"{sid}: ChildShards={children}"
        out.append(f"{sid[-3:]}:{n}rec->{len(children)}children")
    return ", ".join(out)


@check("kinesis list_shards ShardFilter")
def _():
    latest = {s["ShardId"] for s in shards(ShardFilter={"Type": "AT_LATEST"})}
    assert latest == state["open"], f"AT_LATEST {sorted(latest)} != open {sorted(state['open'])}"
    horizon = {s["ShardId"] for s in shards(ShardFilter={"Type": "AT_TRIM_HORIZON"})}
    assert set(state["parents"]) <= horizon, f"AT_TRIM_HORIZON {sorted(horizon)}"
    after = {s["ShardId"] for s in shards(ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": state["parents"][0]})}
    assert state["parents"][0] not in after, f"AFTER_SHARD_ID includes the given shard: {sorted(after)}"
    return f"AT_LATEST={len(latest)} AT_TRIM_HORIZON={len(horizon)} AFTER_SHARD_ID={len(after)}"


@check("kinesis delete_stream")
def _():
    kin.delete_stream(StreamName=STREAM, EnforceConsumerDeletion=True)

    def gone():
        try:
            kin.describe_stream_summary(StreamName=STREAM)
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "ResourceNotFoundException"

    wait_until(gone, what="stream deleted")


passed, failed = RESULTS.count(True), RESULTS.count(False)
print(f"smoke: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
