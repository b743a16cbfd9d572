//! The cost benchmark of the Kinesis path: the real [`ShardConsumer`] over the in-memory
//! ports, which bill every request as DynamoDB and S3 would and add a latency per request.
//! `eventide-consumer bench-aws` prints what [`measure`] returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventide_engine::PipelineSpec;
use eventide_ports::clock::ManualClock;
use eventide_ports::memory::{Env, MemoryControl, MemoryPanes, MemoryRecords, MemoryStateLog};
use eventide_ports::meter::Usage;
use eventide_ports::shard::ShardInfo;

use crate::shard::{ConsumerPorts, RuntimeError, ShardConsumer, Sinks};
use crate::state::SnapshotPolicy;
use eventide_ports::source::InputRecord;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: u64,
    pub batch: usize,
    /// Keys holding state at the end, all aggregations.
    pub keys: usize,
    /// Wall time of the whole run, latency included.
    pub seconds: f64,
    /// Billed usage by resource (`state`, `snapshots`, `control`, `results`, `panes`,
    /// `dead-letters`, `late`), for the whole run.
    pub usage: BTreeMap<String, Usage>,
    /// A warm Lambda invocation (one batch on a consumer kept from the previous one): state
    /// read units and wall time.
    pub warm: (f64, f64),
    /// A cold invocation (a new consumer rebuilds the state, then runs one batch): state
    /// read units, snapshot GETs and wall time.
    pub cold: (f64, u64, f64),
    /// Starting a consumer on the final state (rebuild only), ms.
    pub cold_start_ms: f64,
}

/// Runs `records` through one shard consumer in batches of `batch`, with `latency` added
/// to every request.
///
/// # Errors
/// A batch that fails (the in-memory ports fail only when told to, so: a bug).
pub async fn measure(
    spec: &PipelineSpec,
    records: &[InputRecord],
    batch: usize,
    latency: Duration,
) -> Result<BenchReport, RuntimeError> {
    let env = Env::with_latency(latency);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let io = ConsumerPorts {
        state: Arc::new(MemoryStateLog::new(env.clone(), "bench")),
        control: Arc::new(MemoryControl::new(env.clone())),
        dead_letters: Arc::new(MemoryRecords::new(env.clone(), "dead-letters")),
        late: Arc::new(MemoryRecords::new(env.clone(), "late")),
        sinks: Sinks {
            sinks: vec![Arc::new(MemoryPanes::new(env.clone()))],
            print: false,
        },
        snapshots: SnapshotPolicy::default(),
        idle_timeout_ms: 60_000,
        lookups: None,
        rules: None,
        clock: clock.clone(),
    };
    let shard = ShardInfo {
        shard_id: "shardId-000000000000".into(),
        parent_shard_id: None,
        adjacent_parent_shard_id: None,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        closed: false,
    };
    let batch = batch.max(1);
    // Keep the last two batches for the warm and cold invocations.
    let split = records.len().saturating_sub(2 * batch);
    let (main, tail) = records.split_at(split);
    let started = Instant::now();
    let mut consumer = ShardConsumer::start(&io, spec.clone(), &shard).await?;
    for b in main.chunks(batch) {
        clock.advance(1_000);
        consumer.process(&io, b, 0).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let usage = env.meter.usage();
    let keys = consumer.state_keys().iter().sum();
    let mut tails = tail.chunks(batch);

    let state_rru = |env: &Env| env.meter.usage().get("state").map_or(0.0, |u| u.rru);
    env.meter.reset();
    let t = Instant::now();
    if let Some(b) = tails.next() {
        clock.advance(1_000);
        consumer.process(&io, b, 0).await?;
    }
    let warm = (state_rru(&env), t.elapsed().as_secs_f64() * 1e3);

    drop(consumer);
    env.meter.reset();
    let t = Instant::now();
    let mut consumer = ShardConsumer::start(&io, spec.clone(), &shard).await?;
    if let Some(b) = tails.next() {
        clock.advance(1_000);
        consumer.process(&io, b, 0).await?;
    }
    let gets = env.meter.usage().get("snapshots").map_or(0, |u| u.gets);
    let cold = (state_rru(&env), gets, t.elapsed().as_secs_f64() * 1e3);
    drop(consumer);

    let t = Instant::now();
    let consumer = ShardConsumer::start(&io, spec.clone(), &shard).await?;
    let cold_start_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(consumer);
    Ok(BenchReport {
        events: main.len() as u64,
        batch,
        keys,
        seconds,
        usage,
        warm,
        cold,
        cold_start_ms,
    })
}

/// On-demand prices, us-east-1 (the issue's).
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    pub wru: f64,
    pub rru: f64,
    pub s3_put: f64,
    pub s3_get: f64,
    pub kinesis_shard_hour: f64,
    pub kinesis_put_unit: f64,
    pub lambda_request: f64,
    pub lambda_gb_second: f64,
    /// A worker's compute per hour (a Fargate task of 0.25 vCPU and 0.5 GB).
    pub worker_hour: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            wru: 0.625e-6,
            rru: 0.125e-6,
            s3_put: 0.005e-3,
            s3_get: 0.0004e-3,
            kinesis_shard_hour: 0.015,
            kinesis_put_unit: 0.014e-6,
            lambda_request: 0.2e-6,
            lambda_gb_second: 0.000_016_666_7,
            worker_hour: 0.25 * 0.040_48 + 0.5 * 0.004_445,
        }
    }
}

/// Dollars per million events of a run's usage, excluding the pane sinks (`results`,
/// `panes`); and the sinks' share on its own.
pub fn storage_cost(f: &BenchReport, p: &Prices) -> (f64, f64) {
    let per_m = 1e6 / f.events.max(1) as f64;
    let cost = |u: &Usage| {
        u.wru as f64 * p.wru + u.rru * p.rru + u.puts as f64 * p.s3_put + u.gets as f64 * p.s3_get
    };
    let mut state = 0.0;
    let mut sinks = 0.0;
    for (name, u) in &f.usage {
        if name == "results" || name == "panes" {
            sinks += cost(u);
        } else {
            state += cost(u);
        }
    }
    (state * per_m, sinks * per_m)
}

/// Kinesis per million events at `rate` events/s on one shard: the shard-hours and one PUT
/// payload unit per event.
pub fn kinesis_cost(rate: f64, p: &Prices) -> f64 {
    p.kinesis_shard_hour / (rate * 3600.0) * 1e6 + p.kinesis_put_unit * 1e6
}
