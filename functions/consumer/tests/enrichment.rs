//! Enrichment through the consumer on local AWS: the Lambda handler's batches are enriched
//! from a slow table in S3 that is updated mid-stream. Batches keep being processed while
//! the new version loads (no pause), panes before the swap use the old version and panes
//! after it the new one, and a miss goes to the S3 dead letters with its reason.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_s3::primitives::ByteStream;
use eventide_aws::config::Clients;
use eventide_aws::consumer::lambda::Handler;
use eventide_aws::consumer::resources::Resources;
use eventide_aws::enrichment::Lookups;
use eventide_aws::kinesis::{create_stream_and_wait, delete_stream};
use eventide_engine::PipelineSpec;

mod common;

use common::unique;

/// A Kinesis event of `(sequence number, data)` records, all with partition key `k`.
fn kinesis_event(stream: &str, records: &[(String, Vec<u8>)]) -> KinesisEvent {
    let records: Vec<(String, String, Vec<u8>)> = records
        .iter()
        .map(|(seq, data)| (seq.clone(), "k".to_string(), data.clone()))
        .collect();
    common::kinesis_event(stream, &records)
}

/// `id,tier` rows: subscriber `s{i}` has tier `{version}-{a|b}`.
fn table(version: &str, rows: usize) -> Vec<u8> {
    let mut s = String::from("id,tier\n");
    for i in 0..rows {
        s.push_str(&format!(
            "s{i},{version}-{}\n",
            if i % 2 == 0 { "a" } else { "b" }
        ));
    }
    s.into_bytes()
}

/// On-time panes by (window start, tier) → count.
async fn counts(clients: &Clients, table: &str) -> BTreeMap<(i64, String), f64> {
    let mut out = BTreeMap::new();
    let page = clients
        .dynamodb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan results");
    for item in page.items() {
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let n = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let pk = s("pk").expect("pk");
        let tier = pk.strip_prefix("by_tier#").expect("pk").to_string();
        out.insert(
            (n("window_start").expect("start") as i64, tier),
            n("n").expect("n"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_swaps_a_slow_table_mid_stream_without_pausing() {
    eventide_testkit::require_local_aws();
    let clients = Clients::from_env().await;
    let prefix = unique("evc-enrich");
    let stream = format!("{prefix}-in");
    let resources = Resources::from_prefix(&prefix);
    create_stream_and_wait(&clients.kinesis, &stream, 1)
        .await
        .expect("stream");
    resources.ensure_all(&clients).await.expect("resources");
    let put = |body: Vec<u8>| {
        let (s3, bucket) = (clients.s3.clone(), resources.bucket.clone());
        async move {
            s3.put_object()
                .bucket(bucket)
                .key("ref/subs/part-0.csv")
                .body(ByteStream::from(body))
                .send()
                .await
                .expect("put table");
        }
    };
    put(table("v1", 10)).await;
    let spec = PipelineSpec::from_toml(&format!(
        r#"
        [input]
        event_time = {{ field = "t" }}
        fields = {{ sub = "string", v = "number" }}
        [[enrichment]]
        name = "subs"
        s3 = {{ location = "s3://{}/ref/subs/", format = "csv" }}
        join = [{{ field = "sub", column = "id" }}]
        columns = [{{ column = "tier", type = "string" }}]
        on_miss = "dead_letter"
        [[aggregation]]
        name = "by_tier"
        group_by = ["tier"]
        window = {{ type = "tumbling", size = "1m" }}
        aggregates = [{{ name = "n", fn = "count" }}]
        "#,
        resources.bucket
    ))
    .expect("spec");
    let lookups = Lookups::start(&spec).await.expect("load the table");
    let mut io = resources.io(&clients, "demo", None, 10_000);
    io.lookups = Some(lookups.clone());
    let handler = Handler::new(io, spec, "demo", clients.clone());

    let mut seq = 0u64;
    let mut batch = |minute: i64, n: usize| -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                seq += 1;
                let t = minute * 60_000 + (seq as i64 % 50_000);
                let line = format!(r#"{{"sub":"s{}","v":1,"t":{t}}}"#, i % 10);
                (format!("4960{seq:030}"), line.into_bytes())
            })
            .collect()
    };
    // Minute 0: v1.
    for _ in 0..2 {
        let r = handler.handle(kinesis_event(&stream, &batch(0, 20))).await;
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }
    // The table is updated; the consumer keeps processing minute-1 batches while the new
    // (larger) version loads in the background.
    put(table("v2", 200_000)).await;
    let done = Arc::new(AtomicBool::new(false));
    let reload = {
        let (l, done) = (Arc::clone(&lookups), Arc::clone(&done));
        tokio::spawn(async move {
            let r = l.refresh(0).await;
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let (mut during, mut minute1) = (0, 0);
    while !done.load(Ordering::SeqCst) {
        let r = handler.handle(kinesis_event(&stream, &batch(1, 10))).await;
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
        minute1 += 10;
        if !done.load(Ordering::SeqCst) {
            during += 1;
        }
    }
    let report = reload
        .await
        .expect("task")
        .expect("reload")
        .expect("new version");
    assert_eq!(report.rows, 200_000);
    assert!(during > 0, "no batch completed while the table reloaded");
    // Minute 2: v2, plus one subscriber missing from the table (a dead letter), then a
    // record at minute 5 moves the watermark past minutes 0 to 2.
    let mut last = batch(2, 20);
    last.push((
        "4960999999999999999999999999999998".into(),
        br#"{"sub":"nobody","v":1,"t":150000}"#.to_vec(),
    ));
    last.push((
        "4960999999999999999999999999999999".into(),
        br#"{"sub":"s1","v":1,"t":300000}"#.to_vec(),
    ));
    let r = handler.handle(kinesis_event(&stream, &last)).await;
    assert!(r.batch_item_failures.is_empty(), "{r:?}");

    let got = counts(&clients, &resources.results_table).await;
    let window = |start: i64| -> BTreeMap<String, f64> {
        got.iter()
            .filter(|((s, _), _)| *s == start)
            .map(|((_, t), n)| (t.clone(), *n))
            .collect()
    };
    let before = window(0);
    assert_eq!(
        before,
        BTreeMap::from([("v1-a".to_string(), 20.0), ("v1-b".to_string(), 20.0)])
    );
    let swapping = window(60_000);
    assert_eq!(
        swapping.values().sum::<f64>(),
        minute1 as f64,
        "{swapping:?}"
    );
    assert!(swapping
        .keys()
        .all(|t| t.starts_with("v1-") || t.starts_with("v2-")));
    let after = window(120_000);
    assert_eq!(
        after,
        BTreeMap::from([("v2-a".to_string(), 10.0), ("v2-b".to_string(), 10.0)])
    );
    eprintln!(
        "reload of {} rows: {:?}; {during} batches committed meanwhile",
        report.rows, report.elapsed
    );

    let mut dead = Vec::new();
    let list = clients
        .s3
        .list_objects_v2()
        .bucket(&resources.bucket)
        .prefix(eventide_aws::consumer::resources::DEAD_LETTER_PREFIX)
        .send()
        .await
        .expect("list");
    for o in list.contents() {
        let body = clients
            .s3
            .get_object()
            .bucket(&resources.bucket)
            .key(o.key().unwrap_or_default())
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        for l in String::from_utf8_lossy(&body).lines() {
            dead.push(serde_json::from_str::<serde_json::Value>(l).expect("json"));
        }
    }
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("enrichment `subs`: no row for key \"nobody\"")),
        "{}",
        dead[0]
    );
    let _ = delete_stream(&clients.kinesis, &stream).await;
}
