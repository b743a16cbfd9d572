//! The Kinesis path end to end on local AWS: `eventide-consumer worker` processes the
//! reference workload from a Kinesis stream into the DynamoDB results table, and the final
//! results equal `eventide replay` on the same input, also across a SIGKILL and with two
//! workers sharing four shards.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use eventide_e2e::*;

const LIMIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_path_equals_replay_with_late_data_and_dead_letters() {
    let c = clients().await;
    let (stream, prefix) = (unique("e2e-one"), unique("e2e-one"));
    let mut lines = generate(800, 12, 3, 0.10);
    let want = replay(reference_spec(), &lines);
    // Two malformed records: they go to the dead letters and change nothing.
    lines.insert(
        100,
        r#"{"subscriber_id":"s000001","counter":"x","value":"oops","event_time":1767225600000}"#
            .into(),
    );
    lines.insert(300, "not json".into());
    stream_with(&c, &stream, 1, &lines).await;

    let mut w = spawn_worker(
        "demo",
        &stream,
        &prefix,
        "w1",
        &[
            "--create",
            "--finite-quiet-ms",
            "1500",
            "--stop-after-ms",
            "200000",
        ],
    );
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut w, LIMIT))
        .await
        .expect("join");
    assert!(status.success(), "worker failed: {status}");

    let got = results_table(&c, &format!("{prefix}-results"), &reference_spec()).await;
    assert_same(&got, &want, "Kinesis path vs replay");

    let listed =
        c.s3.list_objects_v2()
            .bucket(format!("{prefix}-data"))
            .prefix("dead-letters/")
            .send()
            .await
            .expect("list dead letters");
    let mut dead = Vec::new();
    for o in listed.contents() {
        let body =
            c.s3.get_object()
                .bucket(format!("{prefix}-data"))
                .key(o.key().unwrap_or_default())
                .send()
                .await
                .expect("get");
        let bytes = body.body.collect().await.expect("read").into_bytes();
        dead.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_string));
    }
    assert_eq!(dead.len(), 2, "dead letters: {dead:?}");
    assert!(
        dead.iter()
            .any(|l| l.contains("`value`") && l.contains("sequence_number")),
        "{dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_and_restart_give_identical_results() {
    let c = clients().await;
    let (stream, prefix) = (unique("e2e-kill"), unique("e2e-kill"));
    let lines = generate(800, 12, 5, 0.0);
    let want = replay(reference_spec(), &lines);
    stream_with(&c, &stream, 2, &lines).await;

    // Let the first worker get into the stream, then kill it without warning.
    let mut w = spawn_worker(
        "demo",
        &stream,
        &prefix,
        "doomed",
        &["--create", "--batch-limit", "50"],
    );
    let control = format!("{prefix}-control");
    let t0 = Instant::now();
    loop {
        let rows = c
            .dynamodb
            .scan()
            .table_name(&control)
            .send()
            .await
            .map(|o| o.count())
            .unwrap_or(0);
        if rows > 0 || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = std::process::Command::new("kill")
        .args(["-9", &w.id().to_string()])
        .status();
    let _ = w.wait();

    // A new worker takes the leases over once they expire and finishes the stream.
    let mut w = spawn_worker(
        "demo",
        &stream,
        &prefix,
        "heir",
        &["--finite-quiet-ms", "1500", "--stop-after-ms", "200000"],
    );
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut w, LIMIT))
        .await
        .expect("join");
    assert!(status.success(), "worker failed: {status}");
    let got = results_table(&c, &format!("{prefix}-results"), &reference_spec()).await;
    assert_same(&got, &want, "after SIGKILL and restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_four_shards() {
    let c = clients().await;
    let (stream, prefix) = (unique("e2e-two"), unique("e2e-two"));
    let lines = generate(800, 16, 9, 0.0);
    let want = replay(reference_spec(), &lines);
    stream_with(&c, &stream, 4, &lines).await;

    let args = [
        "--create",
        "--finite-quiet-ms",
        "2500",
        "--stop-after-ms",
        "200000",
        "--batch-limit",
        "50",
    ];
    let mut a = spawn_worker("demo", &stream, &prefix, "wa", &args);
    let mut b = spawn_worker("demo", &stream, &prefix, "wb", &args);
    // Watch the lease table: every shard has one owner at a time, and both workers work.
    let leases = format!("{prefix}-leases");
    let mut owners_seen = std::collections::BTreeSet::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(out) = c.dynamodb.scan().table_name(&leases).send().await {
            for item in out.items() {
                if let Some(AttributeValue::S(o)) = item.get("owner") {
                    owners_seen.insert(o.clone());
                }
            }
        }
        if owners_seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (sa, sb) =
        tokio::task::spawn_blocking(move || (wait_exit(&mut a, LIMIT), wait_exit(&mut b, LIMIT)))
            .await
            .expect("join");
    assert!(sa.success() && sb.success(), "workers failed: {sa} {sb}");
    assert_eq!(
        owners_seen.len(),
        2,
        "both workers held leases: {owners_seen:?}"
    );
    let got = results_table(&c, &format!("{prefix}-results"), &reference_spec()).await;
    assert_same(&got, &want, "two workers, four shards");
}
