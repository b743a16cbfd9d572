//! KPL aggregated records end to end on local AWS: the reference workload is packed by AWS
//! Labs' own aggregation library (`aws-kinesis-agg`, pinned in `localstack/requirements.txt`,
//! run by `tests/kpl/aggregate.py`), mixed with plain records, a malformed record and a
//! corrupt aggregate, and put into kinesis-mock. The worker and the Lambda handler (fed the
//! stream's records as the event source mapping delivers them: aggregated) give the results
//! of `eventide replay` over the user records; a redelivered Lambda event, and one that
//! starts in the middle of the stream, change nothing.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use eventide_aws::config::Clients;
use eventide_aws::consumer::lambda::Handler;
use eventide_aws::consumer::resources::Resources;
use eventide_aws::kinesis::{KinesisRecord, PutEntry, ReaderConfig, ShardReader, StartPosition};
use eventide_e2e::*;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(240);
const SHARD: &str = "shardId-000000000000";

/// A Kinesis record to put.
struct Put {
    pk: String,
    ehk: Option<u128>,
    data: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Packs `lines` with `aws-kinesis-agg`: runs of 5 to 60 lines into aggregated records, every
/// third run as plain records.
fn kpl_records(lines: &[String]) -> Vec<Put> {
    let python = root().join("localstack/.venv/bin/python");
    assert!(
        python.exists(),
        "the test needs localstack/.venv (with aws-kinesis-agg): run localstack/up"
    );
    let mut input = String::new();
    let (mut i, mut run) = (0, 0usize);
    while i < lines.len() {
        run += 1;
        let n = 5 + (run * 37) % 56;
        let group = (run % 3 != 0).then_some(run);
        for l in &lines[i..(i + n).min(lines.len())] {
            input.push_str(&json!({"group": group, "pk": partition_key(l), "data": l}).to_string());
            input.push('\n');
        }
        i += n;
    }
    let mut child = Command::new(python)
        .arg(root().join("tests/kpl/aggregate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python runs");
    // Written from another thread: the script writes as it reads, so writing all of the
    // input before reading would fill both pipes and wait forever.
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("aggregate.py ends");
    writer
        .join()
        .expect("writer thread")
        .expect("write to aggregate.py");
    assert!(out.status.success(), "aggregate.py failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            Put {
                pk: v["pk"].as_str().unwrap_or_default().to_string(),
                ehk: v["ehk"].as_str().and_then(|h| h.parse().ok()),
                data: unhex(v["data"].as_str().unwrap_or_default()),
            }
        })
        .collect()
}

/// Every record of the stream's only shard, as stored (aggregates not expanded).
async fn read_all(c: &Clients, stream: &str) -> Vec<KinesisRecord> {
    let mut reader = ShardReader::new(
        c.kinesis.clone(),
        stream,
        SHARD,
        StartPosition::TrimHorizon,
        ReaderConfig::default(),
    );
    let mut out = Vec::new();
    loop {
        let batch = reader.next_batch().await.expect("GetRecords");
        let done = batch.records.is_empty() && batch.millis_behind_latest.unwrap_or(0) == 0;
        out.extend(batch.records);
        if done {
            return out;
        }
    }
}

/// A Kinesis event as the event source mapping delivers `records` of `stream`'s shard.
fn event(stream: &str, records: &[KinesisRecord]) -> KinesisEvent {
    let mut e = KinesisEvent::default();
    for r in records {
        let mut x = KinesisEventRecord::default();
        x.event_id = Some(format!("{SHARD}:{}", r.sequence_number));
        x.event_source = Some("aws:kinesis".into());
        x.event_source_arn = Some(format!(
            "arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"
        ));
        x.kinesis.partition_key = r.partition_key.clone();
        x.kinesis.sequence_number = r.sequence_number.clone();
        *x.kinesis.data = r.data.clone();
        // As Lambda passes it: the stream's arrival time, in seconds.
        let arrived = r.approximate_arrival_ms.unwrap_or_default() / 1_000;
        x.kinesis.approximate_arrival_timestamp =
            serde_json::from_value(json!(arrived)).expect("a timestamp");
        e.records.push(x);
    }
    e
}

/// The dead letters under `prefix`'s bucket, one JSON value each.
async fn dead_letters(c: &Clients, prefix: &str) -> Vec<Value> {
    let bucket = format!("{prefix}-data");
    let listed =
        c.s3.list_objects_v2()
            .bucket(&bucket)
            .prefix("dead-letters/")
            .send()
            .await
            .expect("list dead letters");
    let mut out = Vec::new();
    for o in listed.contents() {
        let body =
            c.s3.get_object()
                .bucket(&bucket)
                .key(o.key().unwrap_or_default())
                .send()
                .await
                .expect("get");
        let bytes = body.body.collect().await.expect("read").into_bytes();
        for l in String::from_utf8_lossy(&bytes).lines() {
            out.push(serde_json::from_str(l).expect("dead letter JSON"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn kpl_aggregates_by_aws_labs_library_equal_replay_on_the_worker_and_lambda() {
    let c = clients().await;
    let stream = unique("e2e-kpl");
    let lines = generate(900, 12, 21, 0.08);
    let mut puts = kpl_records(&lines);
    let aggregates = puts
        .iter()
        .filter(|p| eventide_ports::kpl::is_aggregated(&p.data))
        .count();
    assert!(
        aggregates >= 10 && puts.len() > aggregates + 100,
        "aggregates and plain records mixed: {aggregates} of {}",
        puts.len()
    );
    // A malformed plain record and a corrupt aggregate (its MD5 trailer broken): each is one
    // dead letter; the user records of the corrupt one are not in `lines`.
    let extra = &lines[..3];
    let users: Vec<(&str, &[u8])> = extra.iter().map(|l| ("x", l.as_bytes())).collect();
    let mut corrupt = eventide_ports::kpl::aggregate(&users);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    puts.insert(
        40,
        Put {
            pk: "x".into(),
            ehk: None,
            data: corrupt.clone(),
        },
    );
    puts.insert(
        70,
        Put {
            pk: "x".into(),
            ehk: None,
            data: b"not json".to_vec(),
        },
    );
    let entries: Vec<PutEntry> = puts
        .iter()
        .map(|p| PutEntry {
            data: p.data.clone(),
            partition_key: p.pk.clone(),
            explicit_hash_key: p.ehk,
        })
        .collect();
    stream_of(&c, &stream, 1, &entries).await;
    let spec = reference_spec();

    // The worker.
    let prefix = unique("e2e-kpl-w");
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
            "--batch-limit",
            "7",
        ],
    );
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut w, LIMIT))
        .await
        .expect("join");
    assert!(status.success(), "worker failed: {status}");
    let got = results_table(&c, &format!("{prefix}-results"), &spec).await;
    assert_same(&got, &replay(spec.clone(), &lines), "worker vs replay");
    let dead = dead_letters(&c, &prefix).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let kpl = dead
        .iter()
        .find(|d| d["reason"].as_str().is_some_and(|r| r.contains("KPL")))
        .expect("the corrupt aggregate is a dead letter");
    assert!(
        kpl["reason"].as_str().is_some_and(|r| r.contains("MD5")),
        "{kpl}"
    );
    let hex: String = corrupt.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        kpl["data_hex"].as_str(),
        Some(hex.as_str()),
        "its original bytes"
    );

    // The Lambda handler, fed what the event source mapping delivers.
    let prefix = unique("e2e-kpl-l");
    let resources = Resources::from_prefix(&prefix);
    resources.ensure_all(&c).await.expect("resources");
    let handler = Handler::new(
        resources.io(&c, "demo", None, 10_000),
        spec.clone(),
        "demo",
        c.clone(),
    );
    let stored = read_all(&c, &stream).await;
    assert_eq!(stored.len(), puts.len());
    let t0 = Instant::now();
    let events: Vec<KinesisEvent> = stored.chunks(9).map(|b| event(&stream, b)).collect();
    for (i, e) in events.iter().enumerate() {
        let r = handler.handle(e.clone()).await;
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
        // Lambda redelivers an event (an invocation that timed out after its commit), and
        // one that starts in the middle of the previous one, to a cold container.
        if i == 5 {
            let r = handler.handle(e.clone()).await;
            assert!(r.batch_item_failures.is_empty(), "{r:?}");
            handler.forget_warm_state().await;
            let overlap = event(&stream, &stored[i * 9 + 4..(i + 1) * 9 + 2]);
            let r = handler.handle(overlap).await;
            assert!(r.batch_item_failures.is_empty(), "{r:?}");
        }
    }
    eprintln!("lambda: {} events in {:?}", events.len(), t0.elapsed());
    let got = results_table(&c, &format!("{prefix}-results"), &spec).await;
    assert_same(&got, &replay_open(spec, &lines), "Lambda vs replay");
    assert_eq!(dead_letters(&c, &prefix).await.len(), 2);
    let _ = eventide_aws::kinesis::delete_stream(&c.kinesis, &stream).await;
}
