//! The autoscaler on local AWS: `eventide-consumer autoscale` reads the consumers' rates
//! from the control table, doubles a 1-shard stream that is over its limit, records the
//! call in the control table, and a second pass within the cooldown does nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use eventide_aws::control::{ensure_table, ControlTable, ShardStatus};
use eventide_aws::kinesis::{create_stream_and_wait, delete_stream, stream_summary};
use eventide_aws::scale_log::ScaleLog;
use eventide_aws::AwsError;
use eventide_e2e::*;

/// Runs one autoscaler pass through the binary; returns its stdout.
fn pass(name: &str, prefix: &str, stream: &str) -> String {
    let out = Command::new(consumer_bin())
        .args(["autoscale", "--name", name, "--prefix", prefix])
        .args(["--stream", stream, "--max-shards", "8"])
        .output()
        .expect("eventide-consumer runs");
    assert!(
        out.status.success(),
        "autoscale failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn autoscaler_doubles_a_hot_stream_once_and_remembers_the_call() {
    let c = clients().await;
    let prefix = unique("e2e-scale");
    let stream = format!("{prefix}-in");
    let control = format!("{prefix}-control");
    create_stream_and_wait(&c.kinesis, &stream, 1)
        .await
        .expect("stream");
    ensure_table(&c.dynamodb, &control)
        .await
        .expect("control table");
    // The consumer of the only shard reports 1,500 records/s: 1.5 shards of load, which
    // wants ceil(1.5 / 0.7) = 3 shards; one call may only double, so 2.
    let rows = ControlTable::new(c.dynamodb.clone(), &control, "demo");
    rows.publish(&ShardStatus {
        shard_id: "shardId-000000000000".into(),
        wm: 1_767_225_600_000,
        heartbeat_ms: 1_767_225_600_000,
        rps: 1_500.0,
        bps: 150_000.0,
        lag_ms: 0,
        late: 0,
        finished: false,
    })
    .await
    .expect("publish");

    let first = pass("demo", &prefix, &stream);
    assert!(
        first.contains("1 open shard, 1500 rec/s"),
        "first pass: {first}"
    );
    assert!(
        first.contains("decision: scale 1 -> 2 (UpdateShardCount called)"),
        "first pass: {first}"
    );
    let t0 = Instant::now();
    loop {
        let s = stream_summary(&c.kinesis, &stream).await.expect("summary");
        if s.is_active() && s.open_shards == 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "stream not resharded to 2: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The call is in the control table, under the pipeline's partition.
    let log = ScaleLog::new(c.dynamodb.clone(), &control, "demo", &stream);
    let record = log.load().await.expect("log");
    assert_eq!(record.calls_ms.len(), 1, "{record:?}");
    assert!(
        record
            .last_decision
            .as_deref()
            .is_some_and(|d| d.starts_with("scale 1 -> 2")),
        "{record:?}"
    );
    // The shard rows are unaffected by the log item.
    assert_eq!(rows.shards_status().await.expect("rows").len(), 1);

    // A second pass (a new process: nothing in memory) still wants more, but the call is
    // within the up-cooldown: nothing happens.
    let second = pass("demo", &prefix, &stream);
    assert!(
        second.contains("2 open shards") && second.contains("1 call in 24 h"),
        "second pass: {second}"
    );
    assert!(
        second.contains("decision: keep 2: up-cooldown"),
        "second pass: {second}"
    );
    let s = stream_summary(&c.kinesis, &stream).await.expect("summary");
    assert_eq!((s.status.as_str(), s.open_shards), ("ACTIVE", 2));
    let after = log.load().await.expect("log");
    assert_eq!(after.calls_ms, record.calls_ms);
    assert!(after.version > record.version, "{after:?}");

    // Two passes that read the same version cannot both record a call.
    let mut calls = after.calls_ms.clone();
    calls.push(after.calls_ms[0] + 1);
    log.save(after.version, &calls, "scale 2 -> 4: test", 1)
        .await
        .expect("first writer wins");
    let lost = log
        .save(after.version, &calls, "scale 2 -> 4: test", 1)
        .await;
    assert!(matches!(lost, Err(AwsError::Conflict { .. })), "{lost:?}");
    let _ = delete_stream(&c.kinesis, &stream).await;
}
