//! One shard consumer's I/O around the pure [`ShardProcessor`]: the exactly-once batch of
//! `docs/aws-runtime.md`, shared by the worker and the Lambda handler.
//!
//! Per batch: read the other shards' watermarks, load the state of uncached keys, run the
//! records, write fired panes to the sinks and malformed records to the dead letters, commit
//! each dirty key once (fenced), then publish this shard's watermark and throughput. The
//! caller checkpoints the lease last.

use std::time::Instant;

use eventide_aws::control::{ControlTable, ShardStatus};
use eventide_aws::dead_letter::DeadLetters;
use eventide_aws::kinesis::ShardInfo;
use eventide_aws::sinks::{DynamoDbSink, KinesisSink, PaneRow, S3Sink};
use eventide_aws::state_store::StateStore;
use eventide_aws::AwsError;
use eventide_engine::PipelineSpec;
use thiserror::Error;
use tracing::{debug, info};

use crate::processor::{BatchOutcome, InputRecord, ShardProcessor};

/// A failed batch. Nothing after the failing step happened, so the batch can be retried.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    State(#[from] eventide_engine::StateError),
}

/// Where fired panes go; each sink is optional.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub dynamodb: Option<DynamoDbSink>,
    pub s3: Option<S3Sink>,
    pub kinesis: Option<KinesisSink>,
    /// Also print every pane as a JSON line on stdout (the local demo).
    pub print: bool,
}

impl Sinks {
    /// Writes a batch of panes to every sink. Sinks are idempotent per `batch_id`.
    pub async fn write(&self, rows: &[PaneRow], batch_id: &str) -> Result<(), AwsError> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.print {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for r in rows {
                let _ = writeln!(out, "{}", r.to_json_string());
            }
        }
        if let Some(s) = &self.dynamodb {
            s.write(rows, batch_id).await?;
        }
        if let Some(s) = &self.s3 {
            s.write(rows, batch_id).await?;
        }
        if let Some(s) = &self.kinesis {
            s.write(rows, batch_id).await?;
        }
        Ok(())
    }
}

/// The AWS resources a consumer uses.
#[derive(Debug, Clone)]
pub struct Io {
    pub store: StateStore,
    pub control: ControlTable,
    pub dead_letters: DeadLetters,
    pub sinks: Sinks,
    /// A shard with no new data for this long stops holding the global watermark back.
    pub idle_timeout_ms: i64,
    /// The pipeline's enrichment tables, loaded at start and refreshed in the background;
    /// each batch runs with one snapshot of them.
    pub lookups: Option<std::sync::Arc<eventide_aws::enrichment::Lookups>>,
    /// Hot-reloaded rules (an S3 object), swapped in before a batch when they change.
    pub rules: Option<std::sync::Arc<eventide_aws::rules::LiveRules>>,
}

/// What one batch did, for logs and the control table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub records: u64,
    pub heartbeats: u64,
    pub dead_letters: u64,
    pub skipped: u64,
    pub panes: u64,
    pub state_writes: u64,
    pub watermark: Option<i64>,
    /// From the moment the batch's records moved the watermark (panes fired in memory) to
    /// the panes being in every sink, in ms; `None` when nothing fired.
    pub pane_latency_ms: Option<f64>,
}

/// The consumer of one shard.
pub struct ShardConsumer {
    processor: ShardProcessor,
    /// The last time the shard delivered data (epoch ms), for idleness.
    last_data_ms: i64,
    last_publish: Instant,
    records_since: u64,
    bytes_since: u64,
}

impl ShardConsumer {
    /// Starts consuming `shard`: resumes its published watermark (a child shard its parents')
    /// and loads the keys in its hash range that have pending timers, so their windows fire
    /// even if no record for them arrives again.
    pub async fn start(
        io: &Io,
        pipeline: &str,
        spec: PipelineSpec,
        shard: &ShardInfo,
        now_ms: i64,
    ) -> Result<Self, RuntimeError> {
        let mut processor = ShardProcessor::new(pipeline, &shard.shard_id, spec);
        // The live rules first: their keys with pending evaluations are stored under their
        // own versions' slots.
        if let Some(live) = &io.rules {
            if let Some(v) = live.current().await {
                processor.apply_rules(&v);
            }
        }
        let rows = io.control.shards_status().await?;
        // Resume where this shard (or, for a new child shard, its parents) left off.
        let parents = shard.parents();
        let resume = rows
            .iter()
            .filter(|r| r.shard_id == shard.shard_id || parents.contains(&r.shard_id))
            .map(|r| r.wm)
            .max();
        if let Some(wm) = resume.filter(|&w| w > i64::MIN) {
            processor.resume_watermark(wm);
        }
        let pending = io
            .store
            .pending_timers(pipeline, shard.starting_hash_key, shard.ending_hash_key)
            .await?;
        let pending = processor.uncached(pending);
        if !pending.is_empty() {
            let loaded = io.store.load(&pending).await?;
            processor.restore(&pending, &loaded)?;
            info!(shard = %shard.shard_id, keys = pending.len(), "loaded keys with pending timers");
        }
        Ok(ShardConsumer {
            processor,
            last_data_ms: now_ms,
            last_publish: Instant::now(),
            records_since: 0,
            bytes_since: 0,
        })
    }

    /// The shard.
    pub fn shard(&self) -> &str {
        self.processor.shard()
    }

    /// The minimum watermark of the other shards that are neither finished nor idle.
    async fn others(&self, io: &Io, now_ms: i64) -> Result<Option<i64>, AwsError> {
        let rows = io.control.shards_status().await?;
        Ok(rows
            .iter()
            .filter(|r| {
                r.shard_id != self.shard() && !r.finished && !r.is_idle(io.idle_timeout_ms, now_ms)
            })
            .map(|r| r.wm)
            .min())
    }

    /// Processes one batch exactly once (see the module docs). `fence` is the lease
    /// counter; `lag_ms` how far behind the tip the batch is.
    pub async fn process(
        &mut self,
        io: &Io,
        batch: &[InputRecord],
        fence: u64,
        lag_ms: i64,
        now_ms: i64,
    ) -> Result<BatchReport, RuntimeError> {
        if let Some(lookups) = &io.lookups {
            let snapshot = lookups
                .snapshot_for_batch(batch.iter().map(|r| r.data.as_slice()))
                .await?;
            self.processor.set_lookups(snapshot);
        }
        if let Some(live) = &io.rules {
            if let Some(v) = live.current().await {
                self.processor.apply_rules(&v);
            }
        }
        let others = self.others(io, now_ms).await?;
        self.processor.set_other_shards_watermark(others);
        let keys = self.processor.keys_to_load(batch);
        if !keys.is_empty() {
            let loaded = io.store.load(&keys).await?;
            self.processor.restore(&keys, &loaded)?;
        }
        let fired_at = Instant::now();
        let mut outcome: BatchOutcome = self.processor.apply(batch);
        // Catch up with the other shards: with no data (or only heartbeats), or when this
        // shard's last records were held back by a slower shard that has moved since.
        let target = match (others, self.processor.local_watermark()) {
            (Some(o), Some(l)) => Some(o.min(l)),
            (o, l) => o.or(l),
        };
        if let Some(t) = target {
            outcome.panes.extend(self.processor.advance_watermark(t));
        }
        outcome
            .panes
            .extend(self.processor.advance_processing_time(now_ms));
        let batch_id = match batch.first() {
            Some(r) => format!("{}-{}", self.shard(), r.sequence_number),
            // No records, only timers: name the batch by what it fired, so two such batches
            // never overwrite each other's sink objects and a repeat of one overwrites itself.
            None => {
                let ids: Vec<&str> = outcome.panes.iter().map(|p| p.pane_id.as_str()).collect();
                format!(
                    "{}-tick-{:032x}",
                    self.shard(),
                    eventide_aws::kinesis::hash_key(&ids.join("\n"))
                )
            }
        };
        io.sinks.write(&outcome.panes, &batch_id).await?;
        let pane_latency_ms =
            (!outcome.panes.is_empty()).then(|| fired_at.elapsed().as_secs_f64() * 1e3);
        if !outcome.dead_letters.is_empty() {
            io.dead_letters
                .write(self.shard(), &outcome.dead_letters)
                .await?;
        }
        let writes = self.processor.drain_writes(now_ms);
        let state_writes = writes.len() as u64;
        io.store.commit(writes, self.shard(), fence).await?;
        if outcome.records > 0 {
            // Active until this batch is committed: a slow commit (DynamoDB throttling, a
            // slow emulator) must not make the shard look idle to the others.
            self.last_data_ms = now_ms.saturating_add(fired_at.elapsed().as_millis() as i64);
        }
        self.records_since += outcome.records;
        self.bytes_since += outcome.bytes;
        self.publish(io, lag_ms, false).await?;
        let report = BatchReport {
            records: outcome.records,
            heartbeats: outcome.heartbeats,
            dead_letters: outcome.dead_letters.len() as u64,
            skipped: outcome.skipped,
            panes: outcome.panes.len() as u64,
            state_writes,
            watermark: self.processor.local_watermark(),
            pane_latency_ms,
        };
        debug!(shard = %self.shard(), ?report, "batch committed");
        Ok(report)
    }

    /// The shard reached SHARD_END and everything is committed: stands in for the child
    /// shards that have no control row yet (a row with this shard's watermark, which is
    /// where they resume), then publishes this shard as finished. In that order the global
    /// watermark never jumps ahead of a child and back, and a finished parent stops holding
    /// it back once its children are represented.
    pub async fn finish(
        &mut self,
        io: &Io,
        children: &[String],
        now_ms: i64,
    ) -> Result<(), AwsError> {
        if let Some(wm) = self.processor.local_watermark() {
            for child in children {
                let placeholder = ShardStatus {
                    shard_id: child.clone(),
                    wm,
                    heartbeat_ms: now_ms,
                    rps: 0.0,
                    bps: 0.0,
                    lag_ms: 0,
                    finished: false,
                };
                if io.control.publish_if_absent(&placeholder).await? {
                    debug!(shard = %self.shard(), child, wm, "control row for the child until it starts");
                }
            }
        }
        self.publish(io, 0, true).await
    }

    /// Publishes this shard's watermark, heartbeat and throughput to the control table.
    pub async fn publish(&mut self, io: &Io, lag_ms: i64, finished: bool) -> Result<(), AwsError> {
        let secs = self.last_publish.elapsed().as_secs_f64().max(1e-3);
        let status = ShardStatus {
            shard_id: self.shard().to_string(),
            wm: self.processor.local_watermark().unwrap_or(i64::MIN),
            heartbeat_ms: self.last_data_ms,
            rps: self.records_since as f64 / secs,
            bps: self.bytes_since as f64 / secs,
            lag_ms,
            finished,
        };
        io.control.publish(&status).await?;
        self.last_publish = Instant::now();
        self.records_since = 0;
        self.bytes_since = 0;
        Ok(())
    }
}
