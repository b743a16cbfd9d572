//! End-to-end tests against local AWS (`localstack/up && eval "$(localstack/env)"`): the
//! worker and the Lambda handler produce exactly the on-time panes of the engine replayed
//! over the same records, write malformed records to the S3 dead letters, and a redelivered
//! Lambda event changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use eventide_aws::config::Clients;
use eventide_aws::consumer::lambda::Handler;
use eventide_aws::consumer::resources::{Resources, DEAD_LETTER_PREFIX};
use eventide_aws::consumer::worker::{run_worker_with, WorkerConfig};
use eventide_aws::kinesis::{create_stream_and_wait, delete_stream, put_records, PutEntry};
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::{Output, Pipeline, PipelineSpec};
use eventide_runtime::processor::cmp_seq;
use eventide_runtime::worker::WorkerExit;
use serde_json::json;

mod common;

use common::{kinesis_event, unique, SHARD};

/// (aggregation, key, window start, window end) → aggregate values in spec order.
type Panes = BTreeMap<(String, String, i64, i64), Vec<Option<f64>>>;

fn spec() -> PipelineSpec {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/reference/pipeline.toml"
    );
    let text = std::fs::read_to_string(path).expect("reference pipeline");
    PipelineSpec::from_toml(&text).expect("valid pipeline")
}

/// Logs to the test output (`RUST_LOG`, default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

async fn clients() -> Clients {
    init_tracing();
    eventide_testkit::require_local_aws();
    Clients::from_env().await
}

/// `n` events in the reference format (some late by 20 minutes, if `late`) of `keys`
/// subscribers, with malformed lines at the positions in `bad`; returns (partition key, line).
fn workload(n: usize, bad: &[usize], keys: u64, late: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut x: u64 = 987_654_321;
    for i in 0..n {
        if bad.contains(&out.len()) {
            out.push(("bad".to_string(), b"{\"subscriber_id\": oops".to_vec()));
        }
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let sub = format!("s{:03}", (x >> 33) % keys);
        let counter = if (x >> 20) & 1 == 0 { "x" } else { "y" };
        let late = late && (x >> 40).is_multiple_of(8);
        let t = 1_767_225_600_000 + i as i64 * 61_000 - if late { 1_200_000 } else { 0 };
        let line = format!(
            r#"{{"subscriber_id":"{sub}","counter":"{counter}","value":{}.{:02},"event_time":{t}}}"#,
            (x >> 7) % 100,
            (x >> 3) % 100
        );
        out.push((sub, line.into_bytes()));
    }
    out
}

struct OnTimePanes<'a> {
    spec: &'a PipelineSpec,
    panes: Panes,
}

impl Emit for OnTimePanes<'_> {
    fn pane(&mut self, p: &Pane<'_>) {
        if p.timing.as_str() != "ON_TIME" || p.retraction {
            return;
        }
        let name = self.spec.aggregations[p.aggregation].name.clone();
        self.panes.insert(
            (name, p.key.to_string(), p.window.start, p.window.end),
            p.values.to_vec(),
        );
    }
}

impl Output for OnTimePanes<'_> {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {}
}

/// The on-time panes of the engine over `lines` in order, with or without the end of input.
fn replay(spec: &PipelineSpec, lines: &[Vec<u8>], finish: bool) -> Panes {
    let mut pipeline = Pipeline::new(spec.clone());
    let mut out = OnTimePanes {
        spec,
        panes: Panes::new(),
    };
    for line in lines {
        let _ = pipeline.process_line(line, SHARD, &mut out);
    }
    if finish {
        pipeline.finish(&mut out);
    }
    out.panes
}

/// The on-time panes in the results table.
async fn results(clients: &Clients, table: &str, spec: &PipelineSpec) -> Panes {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut panes = Panes::new();
    let mut start = None;
    loop {
        let page = clients
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan results");
        for item in page.items() {
            let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            let n = |k: &str| match item.get(k) {
                Some(AttributeValue::N(v)) => Some(v.parse::<f64>().expect("number")),
                _ => None,
            };
            if s("timing").as_deref() != Some("ON_TIME")
                || item.get("retraction").and_then(|v| v.as_bool().ok()) == Some(&true)
            {
                continue;
            }
            let agg = s("aggregation").expect("aggregation");
            let pk = s("pk").expect("pk");
            let key = pk
                .strip_prefix(&format!("{agg}#"))
                .expect("pk is <aggregation>#<key>")
                .to_string();
            let a = spec
                .aggregations
                .iter()
                .find(|a| a.name == agg)
                .expect("known aggregation");
            let values = a.aggregates.iter().map(|x| n(&x.name)).collect();
            let ws = n("window_start").expect("window_start") as i64;
            let we = n("window_end").expect("window_end") as i64;
            panes.insert((agg, key, ws, we), values);
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    panes
}

/// The dead-letter lines in the bucket.
async fn dead_letters(clients: &Clients, bucket: &str) -> Vec<serde_json::Value> {
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{DEAD_LETTER_PREFIX}/"))
        .send()
        .await
        .expect("list dead letters");
    let mut out = Vec::new();
    for obj in listed.contents() {
        let key = obj.key().expect("key");
        let body = clients
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("get dead letters")
            .body
            .collect()
            .await
            .expect("read dead letters")
            .into_bytes();
        for line in String::from_utf8_lossy(&body).lines() {
            out.push(serde_json::from_str(line).expect("dead letter JSON"));
        }
    }
    out
}

fn assert_same(got: &Panes, want: &Panes) {
    for (k, v) in want {
        assert_eq!(got.get(k), Some(v), "pane {k:?}");
    }
    for k in got.keys() {
        assert!(want.contains_key(k), "unexpected pane {k:?}");
    }
}

/// A fresh deployment named from `name`: a stream of `shards` shards, and the tables and
/// bucket of its resources (after `adjust`).
async fn deployment(
    clients: &Clients,
    name: &str,
    shards: i32,
    adjust: impl FnOnce(&mut Resources),
) -> (String, Resources) {
    let prefix = unique(name);
    let stream = format!("{prefix}-in");
    let mut resources = Resources::from_prefix(&prefix);
    adjust(&mut resources);
    create_stream_and_wait(&clients.kinesis, &stream, shards)
        .await
        .expect("stream");
    resources.ensure_all(clients).await.expect("resources");
    (stream, resources)
}

/// Puts `records` into `stream`; returns their lines in shard order, which is what the
/// consumer sees.
async fn put_in_order(
    clients: &Clients,
    stream: &str,
    records: Vec<(String, Vec<u8>)>,
) -> Vec<Vec<u8>> {
    let entries: Vec<PutEntry> = records
        .iter()
        .map(|(pk, data)| PutEntry::new(pk.clone(), data.clone()))
        .collect();
    let outcomes = put_records(&clients.kinesis, stream, &entries)
        .await
        .expect("put");
    let mut ordered: Vec<(String, Vec<u8>)> = outcomes
        .into_iter()
        .zip(records)
        .map(|(o, (_, data))| (o.sequence_number, data))
        .collect();
    ordered.sort_by(|a, b| cmp_seq(&a.0, &b.0));
    ordered.into_iter().map(|(_, d)| d).collect()
}

/// A finite worker `id` of pipeline "demo": 3 s leases, polls every 100 ms, ends once the
/// stream is quiet for `quiet_ms`, and stops after 45 s whatever happens.
fn worker_config(
    spec: &PipelineSpec,
    stream: &str,
    resources: &Resources,
    id: &str,
    quiet_ms: u64,
) -> WorkerConfig {
    let mut config = WorkerConfig::new("demo", spec.clone(), stream, resources.clone());
    config.worker.worker_id = id.into();
    config.worker.lease_ms = 3_000;
    config.worker.poll_ms = 100;
    config.worker.finite_quiet_ms = Some(quiet_ms);
    config.worker.stop_after_ms = Some(45_000);
    config
}

/// Runs a finite worker to the end of its input.
async fn run_to_end(clients: &Clients, config: WorkerConfig) {
    let exit = tokio::time::timeout(Duration::from_secs(55), run_worker_with(clients, config))
        .await
        .expect("the worker stops by itself")
        .expect("the worker runs");
    assert_eq!(exit, WorkerExit::EndOfInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_matches_the_engine_and_dead_letters_go_to_s3() {
    let clients = clients().await;
    let (stream, resources) = deployment(&clients, "evc-worker", 1, |_| {}).await;
    let lines = put_in_order(&clients, &stream, workload(200, &[50, 150], 6, true)).await;
    let spec = spec();
    let want = replay(&spec, &lines, true);
    assert!(want.len() > 50, "the workload fires panes: {}", want.len());

    run_to_end(
        &clients,
        worker_config(&spec, &stream, &resources, "test-worker", 1_500),
    )
    .await;

    let got = results(&clients, &resources.results_table, &spec).await;
    assert_same(&got, &want);

    let dead = dead_letters(&clients, &resources.bucket).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for d in &dead {
        assert_eq!(d["shard"], SHARD);
        assert!(d["raw"].as_str().is_some_and(|r| r.contains("oops")), "{d}");
    }
    let _ = delete_stream(&clients.kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_handler_is_exactly_once_under_redelivery() {
    let clients = clients().await;
    // The handler looks the shard's hash-key range up in the stream.
    let (stream, resources) = deployment(&clients, "evc-lambda", 1, |_| {}).await;

    let records: Vec<(String, String, Vec<u8>)> = workload(160, &[40], 6, true)
        .into_iter()
        .enumerate()
        .map(|(i, (pk, data))| (format!("4960{:030}", 1_000 + i * 7), pk, data))
        .collect();
    let (first, second) = records.split_at(90);
    let e1 = kinesis_event(&stream, first);
    let e2 = kinesis_event(&stream, second);
    let spec = spec();
    let io = resources.io(&clients, "demo", None, 10_000);
    let handler = Handler::new(io, spec.clone(), "demo", clients.clone());

    for event in [e1, e2.clone()] {
        let response = handler.handle(event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let lines: Vec<Vec<u8>> = records.iter().map(|r| r.2.clone()).collect();
    let want = replay(&spec, &lines, false);
    assert!(want.len() > 20, "the workload fires panes: {}", want.len());
    let got = results(&clients, &resources.results_table, &spec).await;
    assert_same(&got, &want);

    // Lambda redelivers the second batch (e.g. the invocation timed out after committing).
    let response = handler.handle(e2).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let again = results(&clients, &resources.results_table, &spec).await;
    assert_eq!(again, got, "a redelivered event changed the results");
    assert_eq!(dead_letters(&clients, &resources.bucket).await.len(), 1);

    // The response serializes as Lambda expects.
    let v = serde_json::to_value(&response).expect("serialize");
    assert_eq!(v, json!({ "batchItemFailures": [] }));
    let _ = delete_stream(&clients.kinesis, &stream).await;
}

/// Two Lambda containers take turns on one shard: each keeps its warm state, and the one
/// whose state went stale (the other processed the shard in between) rebuilds it from the
/// log instead of committing it. A warm invocation reads no state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_containers_keep_warm_state_and_never_commit_a_stale_one() {
    let clients = clients().await;
    let (stream, resources) = deployment(&clients, "evc-warm", 1, |_| {}).await;
    let records: Vec<(String, String, Vec<u8>)> = workload(240, &[], 6, true)
        .into_iter()
        .enumerate()
        .map(|(i, (pk, data))| (format!("4960{:030}", 1_000 + i * 7), pk, data))
        .collect();
    let events: Vec<_> = records
        .chunks(40)
        .map(|c| kinesis_event(&stream, c))
        .collect();
    let spec = spec();
    let a = Handler::new(
        resources.io(&clients, "demo", None, 10_000),
        spec.clone(),
        "demo",
        clients.clone(),
    );
    let b = Handler::new(
        resources.io(&clients, "demo", None, 10_000),
        spec.clone(),
        "demo",
        clients.clone(),
    );
    // a, a (warm), b (cold), a (stale: reloads), a (warm), b (stale: reloads)
    for (i, h) in [&a, &a, &b, &a, &a, &b].into_iter().enumerate() {
        let response = h.handle(events[i].clone()).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "batch {i}: {response:?}"
        );
    }
    let lines: Vec<Vec<u8>> = records.iter().map(|r| r.2.clone()).collect();
    let want = replay(&spec, &lines, false);
    let got = results(&clients, &resources.results_table, &spec).await;
    assert_same(&got, &want);
    let _ = delete_stream(&clients.kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_two_shards() {
    let clients = clients().await;
    let (stream, resources) = deployment(&clients, "evc-two", 2, |_| {}).await;

    // In event-time order: no record is late on either shard whatever the interleaving, so
    // the result must equal the engine's over all records.
    let records = workload(240, &[], 12, false);
    let entries: Vec<PutEntry> = records
        .iter()
        .map(|(pk, data)| PutEntry::new(pk.clone(), data.clone()))
        .collect();
    let outcomes = put_records(&clients.kinesis, &stream, &entries)
        .await
        .expect("put");
    let shards: std::collections::BTreeSet<&str> =
        outcomes.iter().map(|o| o.shard_id.as_str()).collect();
    assert_eq!(shards.len(), 2, "the keys spread over both shards");
    let lines: Vec<Vec<u8>> = records.into_iter().map(|(_, d)| d).collect();
    let spec = spec();
    let want = replay(&spec, &lines, true);

    let worker = |id: &str| {
        run_worker_with(
            &clients,
            worker_config(&spec, &stream, &resources, id, 2_000),
        )
    };
    let both = async { tokio::join!(worker("a"), worker("b")) };
    let (a, b) = tokio::time::timeout(Duration::from_secs(55), both)
        .await
        .expect("the workers stop by themselves");
    assert_eq!(a.expect("worker a runs"), WorkerExit::EndOfInput);
    assert_eq!(b.expect("worker b runs"), WorkerExit::EndOfInput);

    let got = results(&clients, &resources.results_table, &spec).await;
    assert_same(&got, &want);
    let _ = delete_stream(&clients.kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_finishes_the_parent_before_its_children() {
    let clients = clients().await;
    let (stream, resources) = deployment(&clients, "evc-split", 1, |_| {}).await;

    // In event-time order, half before and half after a split into two shards.
    let records = workload(240, &[], 12, false);
    let entries: Vec<PutEntry> = records
        .iter()
        .map(|(pk, data)| PutEntry::new(pk.clone(), data.clone()))
        .collect();
    let (before, after) = entries.split_at(120);
    put_records(&clients.kinesis, &stream, before)
        .await
        .expect("put");
    eventide_aws::kinesis::update_shard_count_and_wait(&clients.kinesis, &stream, 2)
        .await
        .expect("split");
    put_records(&clients.kinesis, &stream, after)
        .await
        .expect("put");
    let lines: Vec<Vec<u8>> = records.into_iter().map(|(_, d)| d).collect();
    let spec = spec();
    let want = replay(&spec, &lines, true);

    run_to_end(
        &clients,
        worker_config(&spec, &stream, &resources, "test-worker", 1_500),
    )
    .await;
    let got = results(&clients, &resources.results_table, &spec).await;
    assert_same(&got, &want);
    let _ = delete_stream(&clients.kinesis, &stream).await;
}

/// Alerts in the results table: (rule id, window end), each once.
async fn alerts(clients: &Clients, table: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = clients
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan results");
        for item in page.items() {
            let agg = item.get("aggregation").and_then(|v| v.as_s().ok());
            let end = item.get("window_end").and_then(|v| v.as_n().ok());
            if let (Some(rule), Some(end)) = (agg.and_then(|a| a.strip_prefix("alert:")), end) {
                out.push((rule.to_string(), end.parse().expect("window_end")));
            }
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    out.sort();
    out
}

/// Two events a second apart every five minutes, for one subscriber, from minute `from`.
fn bursts(from: i64, n: i64) -> Vec<PutEntry> {
    (from..from + n)
        .flat_map(|b| {
            let t = 1_767_225_600_000 + b * 300_000;
            [t, t + 1_000].map(|t| {
                let line = format!(
                    r#"{{"subscriber_id":"s1","counter":"x","value":1.0,"event_time":{t}}}"#
                );
                PutEntry::new("s1", line.into_bytes())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_rules_update_under_a_running_worker_is_rejected_and_the_old_rules_run_on() {
    let clients = clients().await;
    let (stream, resources) = deployment(&clients, "evc-rules", 1, |_| {}).await;
    let upload = |text: String| {
        let s3 = clients.s3.clone();
        let bucket = resources.bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key("rules/rules.toml")
                .body(text.into_bytes().into())
                .send()
                .await
                .expect("rules uploaded");
        }
    };
    let rules = |when: &str| {
        format!("[[rule]]\nid = \"busy\"\nkey = [\"subscriber_id\"]\nwhen = \"{when}\"\n")
    };
    upload(rules("count(1m) >= 2")).await;

    let mut config = worker_config(&spec(), &stream, &resources, "rules-worker", 4_000);
    config.rules_s3 = Some(format!("s3://{}/rules/rules.toml", resources.bucket));
    config.rules_poll_ms = 200;
    let feed = async {
        put_records(&clients.kinesis, &stream, &bursts(0, 10))
            .await
            .expect("put");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // 5,000 nested parentheses (10 KB): once enough to overflow the parser's stack and
        // abort the worker.
        let deep = format!("{}count(1m){} >= 2", "(".repeat(5_000), ")".repeat(5_000));
        upload(rules(&deep)).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        put_records(&clients.kinesis, &stream, &bursts(10, 10))
            .await
            .expect("put");
    };
    let run = tokio::time::timeout(Duration::from_secs(55), run_worker_with(&clients, config));
    let (exit, ()) = tokio::join!(run, feed);
    let exit = exit
        .expect("the worker stops by itself")
        .expect("the worker runs");
    assert_eq!(
        exit,
        WorkerExit::EndOfInput,
        "the worker survived the upload"
    );
    let got = alerts(&clients, &resources.results_table).await;
    // The old rule fired for the bursts after the hostile upload too.
    let late_start = 1_767_225_600_000 + 10 * 300_000;
    assert!(
        got.iter()
            .any(|(id, end)| id == "busy" && *end > late_start),
        "alerts after the hostile upload: {got:?}"
    );
    delete_stream(&clients.kinesis, &stream).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_insert_routed_to_its_own_sink_writes_there_only() {
    use eventide_aws::consumer::resources::{PaneDestination, PaneRoute};
    let clients = clients().await;
    let mut own_table = String::new();
    // q1 into a results table of its own, q3 into the S3 panes only; q2 and q4 keep the
    // defaults.
    let (stream, resources) = deployment(&clients, "evc-routes", 1, |r| {
        own_table = format!("{}-q1", r.results_table);
        r.routes = vec![
            PaneRoute {
                aggregation: "q1".into(),
                to: PaneDestination::ResultsTable(own_table.clone()),
            },
            PaneRoute {
                aggregation: "q3".into(),
                to: PaneDestination::Panes,
            },
        ];
    })
    .await;
    let lines = put_in_order(&clients, &stream, workload(150, &[], 6, false)).await;
    let spec = spec();
    let want = replay(&spec, &lines, true);
    let of = |names: &[&str]| -> Panes {
        want.iter()
            .filter(|((agg, ..), _)| names.contains(&agg.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert!(!of(&["q1"]).is_empty() && !of(&["q3"]).is_empty());

    run_to_end(
        &clients,
        worker_config(&spec, &stream, &resources, "test-worker", 1_500),
    )
    .await;

    assert_same(&results(&clients, &own_table, &spec).await, &of(&["q1"]));
    assert_same(
        &results(&clients, &resources.results_table, &spec).await,
        &of(&["q2", "q4"]),
    );
    // q3's panes are in S3 only; the S3 sink writes every other aggregation's too.
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(&resources.bucket)
        .prefix("panes/")
        .send()
        .await
        .expect("list panes");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    for agg in ["q2", "q3", "q4"] {
        assert!(
            keys.iter()
                .any(|k| k.contains(&format!("aggregation={agg}/"))),
            "{agg} in {keys:?}"
        );
    }
    assert!(
        !keys.iter().any(|k| k.contains("aggregation=q1/")),
        "q1 is routed to its own table only: {keys:?}"
    );
    let _ = delete_stream(&clients.kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_starts_new_shards_at_latest_or_at_a_timestamp() {
    use eventide_ports::lease::InitialPosition;
    let clients = clients().await;
    let spec = spec();
    let records = workload(240, &[], 6, false);
    let (before, after) = records.split_at(120);
    for latest in [false, true] {
        let (stream, resources) = deployment(&clients, "evc-start", 1, |_| {}).await;
        put_in_order(&clients, &stream, before.to_vec()).await;
        let mut config = worker_config(&spec, &stream, &resources, "test-worker", 4_000);
        let later = if latest {
            // The worker opens the shard at LATEST, then the later records arrive.
            config.worker.initial_position = InitialPosition::Latest;
            let produce = async {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                put_in_order(&clients, &stream, after.to_vec()).await
            };
            let ((), lines) = tokio::join!(run_to_end(&clients, config), produce);
            lines
        } else {
            // Kinesis stamps each record's arrival: start at the first of the later ones.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            let from = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64;
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            let lines = put_in_order(&clients, &stream, after.to_vec()).await;
            config.worker.initial_position = InitialPosition::AtTimestamp(from);
            run_to_end(&clients, config).await;
            lines
        };
        let want = replay(&spec, &later, true);
        assert!(!want.is_empty());
        assert_same(
            &results(&clients, &resources.results_table, &spec).await,
            &want,
        );
        let _ = delete_stream(&clients.kinesis, &stream).await;
    }
}
