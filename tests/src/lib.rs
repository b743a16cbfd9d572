//! Harness of the end-to-end tests: local AWS resources with unique names, the reference
//! workload from `../shared/reference/gen.py`, the `eventide-consumer` binary as a child
//! process, and the expected results from the engine's file replay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use eventide_aws::config::Clients;
use eventide_aws::kinesis::{create_stream_and_wait, put_records, PutEntry};
use eventide_aws::sinks::PaneRow;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::{Output, Pipeline, PipelineSpec};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Clients for local AWS; fails clearly when it is not configured.
pub async fn clients() -> Clients {
    eventide_testkit::require_local_aws();
    Clients::from_env().await
}

pub use eventide_testkit::unique;

/// Generates the reference workload with `gen.py`: JSON lines in arrival order.
pub fn generate(n: u64, keys: u64, seed: u64, late_frac: f64) -> Vec<String> {
    let (n, keys, seed, late) = (
        n.to_string(),
        keys.to_string(),
        seed.to_string(),
        late_frac.to_string(),
    );
    let out = eventide_testkit::reference::python(
        "gen.py",
        &[
            &"--n",
            &n,
            &"--keys",
            &keys,
            &"--seed",
            &seed,
            &"--late-frac",
            &late,
        ],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The reference pipeline spec.
pub fn reference_spec() -> PipelineSpec {
    let text = std::fs::read_to_string(root().join("examples/reference/pipeline.toml"))
        .expect("reference pipeline");
    PipelineSpec::from_toml(&text).expect("valid spec")
}

/// The subscriber id of a reference line: its Kinesis partition key.
pub fn partition_key(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["subscriber_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| "malformed".into())
}

/// Creates a stream with `shards` shards and writes `lines` in order, keyed by subscriber.
pub async fn stream_with(c: &Clients, stream: &str, shards: i32, lines: &[String]) {
    stream_of(c, stream, shards, &line_entries(lines)).await;
}

/// Creates a stream with `shards` shards and writes `entries` in order.
pub async fn stream_of(c: &Clients, stream: &str, shards: i32, entries: &[PutEntry]) {
    create_stream_and_wait(&c.kinesis, stream, shards)
        .await
        .expect("stream created");
    put_entries(c, stream, entries).await;
}

/// Writes lines to a stream in order, keyed by subscriber.
pub async fn put_lines(c: &Clients, stream: &str, lines: &[String]) {
    put_entries(c, stream, &line_entries(lines)).await;
}

/// Writes entries to a stream in order (`put_records` batches them by the PutRecords limits).
pub async fn put_entries(c: &Clients, stream: &str, entries: &[PutEntry]) {
    put_records(&c.kinesis, stream, entries)
        .await
        .expect("records written");
}

/// Lines as stream entries, keyed by subscriber.
fn line_entries(lines: &[String]) -> Vec<PutEntry> {
    lines
        .iter()
        .map(|l| PutEntry::new(partition_key(l), l.as_bytes().to_vec()))
        .collect()
}

/// What the panes of a run look like: pane id → (aggregation, key, window, values).
pub type Results = BTreeMap<String, (String, String, i64, i64, Vec<Option<f64>>)>;

struct Rows(Vec<PaneRow>, PipelineSpec);

impl Emit for Rows {
    fn pane(&mut self, p: &Pane<'_>) {
        let a = &self.1.aggregations[p.aggregation];
        let group_by: Vec<String> = a
            .group_by
            .iter()
            .map(|&i| self.1.input.fields[i].0.clone())
            .collect();
        let names: Vec<String> = a.aggregates.iter().map(|x| x.name.clone()).collect();
        self.0
            .push(PaneRow::from_pane(p, &a.name, &group_by, &names));
    }
}

impl Output for Rows {
    fn late(&mut self, _: usize, _: &[u8]) {}
}

/// The panes of `eventide replay` over `lines` (the watermark goes to +∞ at the end).
pub fn replay(spec: PipelineSpec, lines: &[String]) -> Results {
    replay_with(spec, lines, true)
}

/// The panes that `eventide replay` over `lines` fires before the end of its input: what a
/// consumer with no end of input (Lambda) gives.
pub fn replay_open(spec: PipelineSpec, lines: &[String]) -> Results {
    replay_with(spec, lines, false)
}

fn replay_with(spec: PipelineSpec, lines: &[String], finish: bool) -> Results {
    let mut rows = Rows(Vec::new(), spec.clone());
    let mut p = Pipeline::new(spec);
    for l in lines {
        let _ = p.process_line(l.as_bytes(), "", &mut rows);
    }
    if finish {
        p.finish(&mut rows);
    }
    rows.0
        .into_iter()
        .map(|r| {
            let values = r.values.iter().map(|(_, v)| *v).collect();
            (
                r.pane_id.clone(),
                (
                    r.aggregation.clone(),
                    r.key(),
                    r.window_start,
                    r.window_end,
                    values,
                ),
            )
        })
        .collect()
}

/// The panes in a results table, in the same shape as [`replay`].
pub async fn results_table(c: &Clients, table: &str, spec: &PipelineSpec) -> Results {
    let mut out = Results::new();
    let mut start = None;
    loop {
        let page = c
            .dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan results");
        for item in page.items() {
            let s = |k: &str| match item.get(k) {
                Some(AttributeValue::S(v)) => v.clone(),
                _ => String::new(),
            };
            let n = |k: &str| match item.get(k) {
                Some(AttributeValue::N(v)) => v.parse::<f64>().ok(),
                _ => None,
            };
            let agg = s("aggregation");
            let Some(a) = spec.aggregation(&agg) else {
                continue;
            };
            let key: Vec<String> = a
                .group_by
                .iter()
                .map(|&i| s(&spec.input.fields[i].0))
                .collect();
            let values = a.aggregates.iter().map(|x| n(&x.name)).collect();
            let window = (
                n("window_start").unwrap_or(0.0) as i64,
                n("window_end").unwrap_or(0.0) as i64,
            );
            out.insert(
                s("pane_id"),
                (agg, key.join("\u{1f}"), window.0, window.1, values),
            );
        }
        match page.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    out
}

/// Asserts two result sets are equal, printing a few differences when not.
pub fn assert_same(got: &Results, want: &Results, what: &str) {
    if got == want {
        return;
    }
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, _)| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, _)| !want.contains_key(*k))
        .take(5)
        .collect();
    let differ: Vec<_> = want
        .iter()
        .filter_map(|(k, v)| got.get(k).filter(|g| *g != v).map(|g| (v, g)))
        .take(5)
        .collect();
    panic!(
        "{what}: {} panes, expected {}\n missing: {missing:?}\n extra: {extra:?}\n differ (want, got): {differ:?}",
        got.len(),
        want.len()
    );
}

/// The `eventide-consumer` binary, built on first use.
pub fn consumer_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        // The whole workspace's binaries, as `cargo test --workspace` builds them: the same
        // feature set, so nothing is compiled twice.
        .args(["build", "-q", "--workspace", "--bins"])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building eventide-consumer failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    target.join("debug/eventide-consumer")
}

/// A worker process over `stream` for the reference pipeline.
pub fn spawn_worker(
    name: &str,
    stream: &str,
    prefix: &str,
    worker_id: &str,
    extra: &[&str],
) -> Child {
    spawn_worker_with(&consumer_bin(), name, stream, prefix, worker_id, extra)
}

/// [`spawn_worker`] with a binary built beforehand (by [`consumer_bin`]), so starting
/// several workers does not wait for cargo in between.
pub fn spawn_worker_with(
    bin: &Path,
    name: &str,
    stream: &str,
    prefix: &str,
    worker_id: &str,
    extra: &[&str],
) -> Child {
    worker_command(bin, name, stream, prefix, worker_id, extra)
        .spawn()
        .expect("worker starts")
}

/// The command [`spawn_worker_with`] runs, for a test that changes its environment or
/// reads its log.
pub fn worker_command(
    bin: &Path,
    name: &str,
    stream: &str,
    prefix: &str,
    worker_id: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("worker")
        .args([
            "--pipeline",
            root()
                .join("examples/reference/pipeline.toml")
                .to_str()
                .unwrap_or_default(),
        ])
        .args([
            "--name",
            name,
            "--stream",
            stream,
            "--prefix",
            prefix,
            "--worker-id",
            worker_id,
        ])
        .args([
            "--poll-ms",
            "100",
            "--lease-ms",
            "3000",
            "--idle-timeout-ms",
            "3000",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// Waits for a child to exit, killing it after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("worker did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
