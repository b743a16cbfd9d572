//! `eventide-consumer bench-aws`: the cost benchmark of the Kinesis path (see
//! `eventide_runtime::bench`), printed as Markdown.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use eventide_engine::PipelineSpec;
use eventide_ports::source::InputRecord;
use eventide_runtime::bench::{kinesis_cost, measure, storage_cost, BenchReport, Prices};

/// What the command was asked.
pub struct Settings {
    pub latency: Duration,
    pub lambda_gb: f64,
    pub batching_window_s: f64,
}

/// Reads JSON lines as the records of one shard, each keyed by `key_field`.
fn read(path: &PathBuf, key_field: &str) -> Result<Vec<InputRecord>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let key = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| {
                v.get(key_field)
                    .and_then(|k| k.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        out.push(InputRecord {
            sequence_number: format!("{}", 49_000_000_000_000u64 + i as u64),
            partition_key: key,
            data: line.to_vec(),
            arrival_ms: None,
            sub_sequence_number: None,
            malformed: None,
        });
    }
    Ok(out)
}

fn per_k(v: f64, f: &BenchReport) -> f64 {
    v * 1000.0 / f.events.max(1) as f64
}

/// Runs every input with every batch size and renders the report.
///
/// # Errors
/// An input that cannot be read, or a batch that fails over the in-memory ports.
pub async fn run(
    spec: &PipelineSpec,
    inputs: &[PathBuf],
    key_field: &str,
    batches: &[usize],
    s: &Settings,
) -> Result<String> {
    let p = Prices::default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# bench-aws: the real shard consumer over metered in-memory ports, {} ms per request\n",
        s.latency.as_millis()
    );
    for path in inputs {
        let records = read(path, key_field)?;
        let keys: std::collections::HashSet<&str> =
            records.iter().map(|r| r.partition_key.as_str()).collect();
        let _ = writeln!(
            out,
            "## {}: {} events, {} partition keys\n",
            path.display(),
            records.len(),
            keys.len()
        );
        let _ = writeln!(out, "Per 1,000 events. state: the DynamoDB log (requests, WRU, RRU) and its S3 snapshots; control: the control table; results: the DynamoDB results sink; panes: S3 pane objects.\n");
        let _ = writeln!(out, "| batch | events/s | state req | state WRU | state RRU | state bytes/event | snapshot PUT | control WRU | control RRU | late+dead PUT | results WRU | panes PUT | keys at end | warm: state RRU, ms | cold: state RRU, GETs, ms | cold start ms |");
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let mut at_1000: Option<BenchReport> = None;
        for &b in batches {
            let f = measure(spec, &records, b, s.latency)
                .await
                .context("bench run")?;
            let u = |n: &str| f.usage.get(n).cloned().unwrap_or_default();
            let (state, snaps, control, results, panes) = (
                u("state"),
                u("snapshots"),
                u("control"),
                u("results"),
                u("panes"),
            );
            let set_aside = u("late").puts + u("dead-letters").puts;
            let _ = writeln!(
                out,
                "| {b} | {:.0} | {:.2} | {:.3} | {:.3} | {:.1} | {:.4} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {} | {:.1}, {:.1} | {:.0}, {}, {:.0} | {:.0} |",
                f.events as f64 / f.seconds.max(1e-9),
                per_k(state.requests as f64, &f),
                per_k(state.wru as f64, &f),
                per_k(state.rru, &f),
                state.bytes_written as f64 / f.events.max(1) as f64,
                per_k(snaps.puts as f64, &f),
                per_k(control.wru as f64, &f),
                per_k(control.rru, &f),
                per_k(set_aside as f64, &f),
                per_k(results.wru as f64, &f),
                per_k(panes.puts as f64, &f),
                f.keys,
                f.warm.0,
                f.warm.1,
                f.cold.0,
                f.cold.1,
                f.cold.2,
                f.cold_start_ms,
            );
            if b == 1000 || at_1000.is_none() {
                at_1000 = Some(f);
            }
        }
        // A low rate: Lambda invocations of rate x batching window events.
        let low_batch = (10.0 * s.batching_window_s).max(1.0) as usize;
        let low_records = &records[..records.len().min(5_000)];
        let low = measure(spec, low_records, low_batch, s.latency)
            .await
            .context("bench run")?;
        let Some(high) = at_1000 else { continue };
        let _ = writeln!(out, "\nCost per million events (us-east-1 on demand: $0.625/M WRU, $0.125/M RRU, S3 $0.005/1k PUT; Kinesis $0.015/shard-hour + $0.014/M PUT units; Lambda $0.20/M requests + $0.0000166667/GB-s at {:.2} GB; a worker on Fargate 0.25 vCPU/0.5 GB ${:.4}/h). Sinks (results table and S3 panes) apart.\n", s.lambda_gb, p.worker_hour);
        let _ = writeln!(
            out,
            "| path | rate | batch | state + control | Kinesis | compute | total | sinks |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for (path_name, rate, f) in [
            ("worker", 1000.0, &high),
            ("Lambda", 1000.0, &high),
            ("worker (polls 1/s)", 10.0, &low),
            ("Lambda", 10.0, &low),
        ] {
            let (storage, sinks) = storage_cost(f, &p);
            let kinesis = kinesis_cost(rate, &p);
            let compute = if path_name.starts_with("worker") {
                p.worker_hour / (rate * 3600.0) * 1e6
            } else {
                let invocations = 1e6 / f.batch as f64;
                let batches = (f.events as f64 / f.batch as f64).max(1.0);
                let secs = f.seconds / batches;
                invocations * (p.lambda_request + secs * s.lambda_gb * p.lambda_gb_second)
            };
            let _ = writeln!(
                out,
                "| {path_name} | {rate:.0}/s | {} | ${storage:.4} | ${kinesis:.4} | ${compute:.4} | **${:.4}** | ${sinks:.4} |",
                f.batch,
                storage + kinesis + compute
            );
        }
        out.push('\n');
    }
    Ok(out)
}
