"""Runs a packaged Lambda zip the way Lambda would, against a stack on local AWS.

    eval "$(localstack/env)"
    infra/.venv-deploy/bin/python infra/smoke-zip.py --zip infra/dist/x86_64/eventide-consumer.zip

Local AWS cannot execute Lambda functions, so this plays the Lambda service's part: it deploys
a fresh stack with infra/deploy, unzips the package, serves the Lambda Runtime API on
127.0.0.1 (an ephemeral port) and starts `bootstrap` with the environment the deployed
function has, as provided.al2023 would. It then invokes:
  1. the ticker: a scheduled event -> {"heartbeats": <open shards>};
  2. the consumer: records put into the input stream and read back with GetRecords, shaped as
     the Kinesis event source mapping shapes them -> no batchItemFailures, window state in
     the state table and the shard's watermark in the control table;
  3. the autoscaler (EVENTIDE_ROLE=autoscaler): a scheduled event -> a decision (keep 1 shard).
Only for the host's architecture (x86_64 here). Prints `smoke-zip: N passed, N failed`.
Not part of ./test: it needs the release build of infra/package.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01): hands out queued events and records answers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.answers: dict[str, tuple[str, object]] = {}
        self.cond = threading.Condition()
        api = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                with api.cond:
                    while not api.events:
                        api.cond.wait()
                    rid, event = api.events.pop(0)
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:smoke")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                kind = parts[-1]  # response | error (invocation) or init/error
                rid = parts[-2] if len(parts) >= 2 else "?"
                try:
                    value = json.loads(body) if body else None
                except ValueError:
                    value = body.decode(errors="replace")
                with api.cond:
                    api.answers["init" if rid == "init" else rid] = (kind, value)
                    api.cond.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event: dict, timeout: float = 60) -> tuple[str, object]:
        rid = str(uuid.uuid4())
        with self.cond:
            self.events.append((rid, event))
            self.cond.notify_all()
            deadline = time.time() + timeout
            while rid not in self.answers and "init" not in self.answers:
                left = deadline - time.time()
                if left <= 0:
                    return ("timeout", None)
                self.cond.wait(left)
            return self.answers.get(rid) or self.answers["init"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", required=True)
    ap.add_argument("--records", type=int, default=200)
    args = ap.parse_args()
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print("smoke-zip: local AWS only: eval \"$(localstack/env)\" first", file=sys.stderr)
        return 2
    prefix = f"evt-smoke-{int(time.time())}-{os.getpid()}"
    subprocess.run([str(HERE / "deploy"), "--prefix", prefix, "--zip", args.zip, "--arch", "x86_64",
                    "--pipeline", str(ROOT / "examples/reference/pipeline.toml")],
                   check=True, stdout=subprocess.DEVNULL)
    lam, kin = boto3.client("lambda"), boto3.client("kinesis")
    passed = failed = 0

    def check(name: str, ok: bool, detail: object = "") -> None:
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"  {'PASS' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)

    apis: list[RuntimeApi] = []
    work = Path(tempfile.mkdtemp())
    with zipfile.ZipFile(args.zip) as z:
        z.extractall(work)
    for f in ("bootstrap", "eventide-consumer"):
        os.chmod(work / f, 0o755)
    procs = []

    def start(function: str) -> RuntimeApi:
        """One Runtime API per function instance, as in Lambda: a stopped instance's pending
        /next request must not take the next function's event."""
        api = RuntimeApi()
        apis.append(api)
        conf = lam.get_function_configuration(FunctionName=f"{prefix}-{function}")
        env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH", "HOME", "RUST_LOG"))}
        # str(): moto hands back Number parameters as JSON numbers; Lambda gives strings.
        env.update({k: str(v) for k, v in conf.get("Environment", {}).get("Variables", {}).items()})
        env.update({"AWS_LAMBDA_RUNTIME_API": api.address, "LAMBDA_TASK_ROOT": str(work),
                    "_HANDLER": conf["Handler"], "AWS_LAMBDA_FUNCTION_NAME": conf["FunctionName"],
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(conf["MemorySize"]),
                    "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{conf['FunctionName']}",
                    "AWS_LAMBDA_LOG_STREAM_NAME": "smoke"})
        p = subprocess.Popen([str(work / "bootstrap")], cwd=work, env=env,
                             stdout=subprocess.DEVNULL, stderr=open(work / f"{function}.log", "wb"))
        procs.append(p)
        return api

    try:
        stream = f"{prefix}-input"
        shards = kin.list_shards(StreamName=stream)["Shards"]

        # 1. The ticker.
        api = start("ticker")
        kind, value = api.invoke({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                                  "source": "aws.events", "time": "2026-01-01T00:00:00Z", "detail": {}})
        check("ticker answers a scheduled event with one heartbeat per shard",
              kind == "response" and value == {"heartbeats": len(shards)}, (kind, value))
        procs.pop().terminate()

        # 2. The consumer, on records read back from the stream as the event source mapping would.
        lines = subprocess.run([sys.executable, "/work/shared/reference/gen.py", "--n", str(args.records),
                                "--keys", "20", "--seed", "3"], check=True, capture_output=True,
                               text=True).stdout.splitlines() if Path("/work/shared/reference/gen.py").exists() else [
            json.dumps({"subscriber_id": f"s{i % 20:06d}", "counter": "x", "value": 1.0,
                        "event_time": 1767225600000 + i * 250}) for i in range(args.records)]
        for i in range(0, len(lines), 500):
            chunk = lines[i:i + 500]
            kin.put_records(StreamName=stream, Records=[
                {"Data": line.encode(), "PartitionKey": json.loads(line)["subscriber_id"]} for line in chunk])
        shard = shards[0]["ShardId"]
        it = kin.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = []
        while it and len(got) < len(lines) + len(shards):
            r = kin.get_records(ShardIterator=it, Limit=1000)
            got += r["Records"]
            if not r["Records"]:
                break
            it = r.get("NextShardIterator")
        arn = kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
        event = {"Records": [{
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": g["PartitionKey"],
                        "sequenceNumber": g["SequenceNumber"], "data": base64.b64encode(g["Data"]).decode(),
                        "approximateArrivalTimestamp": g["ApproximateArrivalTimestamp"].timestamp()},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": f"{shard}:{g['SequenceNumber']}", "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/smoke", "awsRegion": "us-east-1",
            "eventSourceARN": arn} for g in got]}
        api = start("consumer")
        kind, value = api.invoke(event, timeout=120)
        check(f"consumer takes a {len(got)}-record Kinesis batch with no batchItemFailures",
              kind == "response" and isinstance(value, dict) and value.get("batchItemFailures") == [], (kind, value))
        ddb = boto3.client("dynamodb")
        row = ddb.get_item(TableName=f"{prefix}-control",
                           Key={"pk": {"S": "reference"}, "sk": {"S": f"shard#{shard}"}}).get("Item", {})
        want_wm = max(json.loads(line)["event_time"] for line in lines)
        check("the shard's watermark published to the control table",
              "wm" in row and 0 < int(row["wm"]["N"]) <= want_wm, row)
        state = ddb.scan(TableName=f"{prefix}-state", Select="COUNT")["Count"]
        check("window state written to the state table", state > 0, state)
        procs.pop().terminate()

        # 3. The autoscaler: the same zip with EVENTIDE_ROLE=autoscaler, on a schedule. The
        # consumer above published this shard's rates; 200 records are far below one shard's
        # limits, so it keeps 1 shard (at MinShards).
        api = start("autoscaler")
        kind, value = api.invoke({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                                  "source": "aws.events", "time": "2026-01-01T00:00:00Z", "detail": {}})
        check("autoscaler answers a scheduled event with a decision: keep 1 shard",
              kind == "response" and isinstance(value, dict) and value.get("stream") == stream
              and value.get("open_shards") == 1 and value.get("action") == "keep" and value.get("called") is False,
              (kind, value))
    finally:
        for p in procs:
            p.terminate()
        for api in apis:
            api.server.shutdown()
        for s in ("input", "output"):
            try:
                kin.delete_stream(StreamName=f"{prefix}-{s}", EnforceConsumerDeletion=True)
            except Exception:  # noqa: BLE001 - best-effort cleanup of the shared emulator
                pass
    if failed:
        for log in sorted(work.glob("*.log")):
            print(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
    print(f"smoke-zip: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
