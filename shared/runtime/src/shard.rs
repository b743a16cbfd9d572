//! One shard consumer: the exactly-once batch of `docs/aws-runtime.md` around the pure
//! [`ShardProcessor`], over the ports of `eventide-ports`. The worker and the Lambda handler
//! share it.
//!
//! Per batch: read the other shards' watermarks, run the records in memory, commit the
//! batch's log entry (conditional on the version the state was built on), then write fired
//! panes to the sinks, malformed records to the dead letters and late records to the late
//! output, and publish this shard's watermark and throughput. The caller checkpoints its
//! source last. Committing first means a consumer whose state went stale writes nothing:
//! its commit conflicts. A consumer that crashed after a commit and before writing the
//! output leaves it to the next one, which replays the newest entry when it starts and
//! writes its output again (the sinks are idempotent).
//!
//! After any error the consumer must be dropped: its memory may be ahead of what was
//! committed. A new one rebuilds the state from the log ([`ShardConsumer::start`]).

use std::sync::Arc;
use std::time::Instant;

use eventide_engine::record::{Line, Record};
use eventide_engine::PipelineSpec;
use eventide_ports::clock::Clock;
use eventide_ports::control::{ControlPlane, ShardStatus};
use eventide_ports::enrich::Enrichment;
use eventide_ports::rows::PaneRow;
use eventide_ports::rules::RulesSource;
use eventide_ports::shard::{hash_key, ShardInfo};
use eventide_ports::sink::{PaneSink, RecordSink};
use eventide_ports::state::StateLog;
use eventide_ports::PortError;
use thiserror::Error;
use tracing::{debug, info};

use eventide_ports::source::InputRecord;

use crate::processor::{BatchOutcome, ShardProcessor};
use crate::state::snapshot::Snapshot;
use crate::state::{LogError, Recovered, ShardLog, SnapshotPolicy, StateError};

/// A failed batch. Nothing after the failing step happened; drop the consumer and retry
/// the batch with a new one.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<LogError> for RuntimeError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Port(p) => RuntimeError::Port(p),
            LogError::State(s) => RuntimeError::State(s),
        }
    }
}

impl From<eventide_engine::StateError> for RuntimeError {
    fn from(e: eventide_engine::StateError) -> Self {
        RuntimeError::State(StateError::Engine(e))
    }
}

impl RuntimeError {
    /// True when another writer won a conditional write: this consumer's view is stale
    /// (its lease was taken over, or another Lambda container processed the shard).
    pub fn is_conflict(&self) -> bool {
        matches!(self, RuntimeError::Port(PortError::Conflict { .. }))
    }
}

/// Where fired panes go: every sink, in order; each is idempotent per batch id.
#[derive(Clone, Default)]
pub struct Sinks {
    pub sinks: Vec<Arc<dyn PaneSink>>,
    /// Also print every pane as a JSON line on stdout (the local demo).
    pub print: bool,
}

impl Sinks {
    /// Writes a batch of panes to every sink.
    ///
    /// # Errors
    /// The first sink that fails.
    ///
    /// # Cancel safety
    /// A cancelled write may have reached some sinks; the batch's retry overwrites them.
    pub async fn write(&self, rows: &[PaneRow], batch_id: &str) -> Result<(), PortError> {
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
        for s in &self.sinks {
            s.write(rows, batch_id).await?;
        }
        Ok(())
    }
}

/// The ports a consumer uses.
#[derive(Clone)]
pub struct ConsumerPorts {
    /// The shards' state logs and snapshots.
    pub state: Arc<dyn StateLog>,
    pub control: Arc<dyn ControlPlane>,
    pub dead_letters: Arc<dyn RecordSink>,
    /// Records too late for an aggregation.
    pub late: Arc<dyn RecordSink>,
    pub sinks: Sinks,
    /// When a commit carries a snapshot.
    pub snapshots: SnapshotPolicy,
    /// A shard with no new data for this long stops holding the global watermark back.
    pub idle_timeout_ms: i64,
    /// The pipeline's enrichment tables, loaded at start and refreshed in the background;
    /// each batch runs with one snapshot of them.
    pub lookups: Option<Arc<dyn Enrichment>>,
    /// Hot-reloaded rules (an S3 object), swapped in before a batch when they change.
    pub rules: Option<Arc<dyn RulesSource>>,
    /// Processing time: batches start at its reading, heartbeats and idleness follow it.
    pub clock: Arc<dyn Clock>,
}

/// What one batch did, for logs and the control table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub records: u64,
    pub heartbeats: u64,
    pub dead_letters: u64,
    pub late: u64,
    pub skipped: u64,
    pub panes: u64,
    /// Bytes of the committed log entry (0: nothing changed, nothing written).
    pub state_bytes: u64,
    /// State items written (log entries).
    pub state_writes: u64,
    pub watermark: Option<i64>,
    /// From the moment the batch's records moved the watermark (panes fired in memory) to
    /// the panes being in every sink, in ms; `None` when nothing fired.
    pub pane_latency_ms: Option<f64>,
}

/// The consumer of one shard.
pub struct ShardConsumer {
    processor: ShardProcessor,
    log: ShardLog,
    /// The last time the shard delivered data (epoch ms), for idleness.
    last_data_ms: i64,
    last_publish: Instant,
    records_since: u64,
    bytes_since: u64,
    late_since: u64,
}

impl ShardConsumer {
    /// Starts consuming `shard`: rebuilds its state from its log. A shard with no log yet
    /// takes over the keys of its hash-key range from its parents' final states (a child
    /// after a split or merge; its first commit is a snapshot) and resumes the watermark it
    /// or its parents published.
    ///
    /// # Errors
    /// A failed read, or a log that cannot be replayed.
    ///
    /// # Cancel safety
    /// Reads only.
    pub async fn start(
        io: &ConsumerPorts,
        spec: PipelineSpec,
        shard: &ShardInfo,
    ) -> Result<Self, RuntimeError> {
        let mut processor = ShardProcessor::new(&shard.shard_id, spec.clone());
        let (mut log, recovered) = ShardLog::open(
            io.state.clone(),
            &shard.shard_id,
            io.snapshots,
            &mut processor,
        )
        .await?;
        if let Some(Recovered { batch_id, output }) = &recovered {
            // The last writer may have crashed before writing the newest entry's output.
            write_output(io, &shard.shard_id, output, batch_id).await?;
        }
        if recovered.is_none() {
            let mut parents: Vec<Snapshot> = Vec::new();
            for parent in shard.parents() {
                let mut p = ShardProcessor::new(&parent, spec.clone());
                let (_, had) =
                    ShardLog::open(io.state.clone(), &parent, io.snapshots, &mut p).await?;
                if had.is_some() {
                    parents.push(p.snapshot()?);
                }
            }
            if !parents.is_empty() {
                processor.adopt(&parents, shard.starting_hash_key, shard.ending_hash_key)?;
                log.require_snapshot();
                info!(shard = %shard.shard_id, parents = parents.len(),
                    keys = processor.state_keys().iter().sum::<usize>(), "took over the parents' keys");
            }
            // Resume where this shard (or, for a new child shard, its parents) left off.
            let rows = io.control.shards_status().await?;
            let ids = shard.parents();
            let resume = rows
                .iter()
                .filter(|r| r.shard_id == shard.shard_id || ids.contains(&r.shard_id))
                .map(|r| r.wm)
                .chain(processor.local_watermark())
                .max();
            if let Some(wm) = resume.filter(|&w| w > i64::MIN) {
                processor.resume_watermark(wm);
            }
        }
        Ok(ShardConsumer {
            processor,
            log,
            last_data_ms: io.clock.now_ms(),
            last_publish: Instant::now(),
            records_since: 0,
            bytes_since: 0,
            late_since: 0,
        })
    }

    /// The shard.
    pub fn shard(&self) -> &str {
        self.processor.shard()
    }

    /// The version of the last committed log entry.
    pub fn version(&self) -> u64 {
        self.log.version()
    }

    /// Keys holding state, per aggregation.
    pub fn state_keys(&self) -> Vec<usize> {
        self.processor.state_keys()
    }

    /// The minimum watermark of the other shards that are neither finished nor idle.
    async fn others(&self, io: &ConsumerPorts, now_ms: i64) -> Result<Option<i64>, PortError> {
        let rows = io.control.shards_status().await?;
        Ok(eventide_ports::control::others_watermark(
            &rows,
            self.shard(),
            io.idle_timeout_ms,
            now_ms,
        ))
    }

    /// Processes one batch exactly once (see the module docs); `lag_ms` is how far behind
    /// the tip the batch is.
    ///
    /// # Errors
    /// Any failed step. [`RuntimeError::is_conflict`]: another writer committed this
    /// shard's state first. Either way, drop this consumer.
    ///
    /// # Cancel safety
    /// Not cancel safe: drop the consumer if the future is dropped.
    pub async fn process(
        &mut self,
        io: &ConsumerPorts,
        batch: &[InputRecord],
        lag_ms: i64,
    ) -> Result<BatchReport, RuntimeError> {
        let now_ms = io.clock.now_ms();
        let before = self
            .log
            .wants_snapshot()
            .then(|| self.processor.snapshot())
            .transpose()?;
        // Each record is parsed once: the live lookups read the decoded events, and the
        // processor enriches and runs them.
        let decoded = self.processor.decode_batch(batch);
        if let Some(lookups) = &io.lookups {
            let records: Vec<&Record<'_>> = decoded
                .iter()
                .filter_map(|d| match d {
                    Some(Ok(Line::Event(r))) => Some(r),
                    _ => None,
                })
                .collect();
            let snapshot = lookups.snapshot_for_batch(&records).await?;
            self.processor.set_lookups(snapshot);
        }
        if let Some(live) = &io.rules {
            if let Some(v) = live.current().await {
                self.processor.apply_rules(&v);
            }
        }
        let others = self.others(io, now_ms).await?;
        let mut panes = self.processor.begin(others, now_ms);
        let fired_at = Instant::now();
        let mut outcome: BatchOutcome = self.processor.apply_decoded(batch, decoded);
        panes.append(&mut outcome.panes);
        // Catch up with the other shards: with no data (or only heartbeats), or when this
        // shard's last records were held back by a slower shard that has moved since.
        let target = match (others, self.processor.local_watermark()) {
            (Some(o), Some(l)) => Some(o.min(l)),
            (o, l) => o.or(l),
        };
        if let Some(t) = target {
            panes.extend(self.processor.advance_watermark(t));
        }
        outcome.panes = panes;
        let batch_id = match batch.first() {
            Some(r) => format!("{}-{}", self.shard(), r.position()),
            // No records, only timers: name the batch by what it fired, so two such batches
            // never overwrite each other's sink objects and a repeat of one overwrites itself.
            None => {
                let ids: Vec<&str> = outcome.panes.iter().map(|p| p.pane_id.as_str()).collect();
                format!("{}-tick-{:032x}", self.shard(), hash_key(&ids.join("\n")))
            }
        };
        let committed = self
            .log
            .commit(&mut self.processor, &batch_id, before)
            .await?;
        write_output(io, self.shard(), &outcome, &batch_id).await?;
        let pane_latency_ms =
            (!outcome.panes.is_empty()).then(|| fired_at.elapsed().as_secs_f64() * 1e3);
        if outcome.records > 0 {
            // Active until this batch is committed: a slow commit (DynamoDB throttling, a
            // slow emulator) must not make the shard look idle to the others.
            self.last_data_ms = now_ms.saturating_add(fired_at.elapsed().as_millis() as i64);
        }
        self.records_since += outcome.records;
        self.bytes_since += outcome.bytes;
        self.late_since += outcome.late.len() as u64;
        self.publish(io, lag_ms, false).await?;
        let report = BatchReport {
            records: outcome.records,
            heartbeats: outcome.heartbeats,
            dead_letters: outcome.dead_letters.len() as u64,
            late: outcome.late.len() as u64,
            skipped: outcome.skipped,
            panes: outcome.panes.len() as u64,
            state_bytes: committed.bytes as u64,
            state_writes: u64::from(committed.version.is_some()),
            watermark: self.processor.local_watermark(),
            pane_latency_ms,
        };
        debug!(shard = %self.shard(), ?report, "batch committed");
        Ok(report)
    }

    /// The end of a finite input (the demo and tests): fires every pending window as if the
    /// watermark were +∞, commits, and publishes `wm = i64::MAX`. Returns how many panes
    /// fired.
    ///
    /// # Errors
    /// As [`ShardConsumer::process`].
    ///
    /// # Cancel safety
    /// Not cancel safe, as [`ShardConsumer::process`].
    pub async fn end_input(&mut self, io: &ConsumerPorts) -> Result<u64, RuntimeError> {
        let before = self
            .log
            .wants_snapshot()
            .then(|| self.processor.snapshot())
            .transpose()?;
        let panes = self.processor.advance_watermark(i64::MAX);
        let batch_id = format!("{}-end", self.shard());
        self.log
            .commit(&mut self.processor, &batch_id, before)
            .await?;
        io.sinks.write(&panes, &batch_id).await?;
        io.control
            .publish(&ShardStatus {
                shard_id: self.shard().to_string(),
                wm: i64::MAX,
                heartbeat_ms: io.clock.now_ms(),
                rps: 0.0,
                bps: 0.0,
                lag_ms: 0,
                late: 0,
                finished: false,
            })
            .await?;
        Ok(panes.len() as u64)
    }

    /// The shard reached SHARD_END and everything is committed: stands in for the child
    /// shards that have no control row yet (a row with this shard's watermark, which is
    /// where they resume), then publishes this shard as finished. In that order the global
    /// watermark never jumps ahead of a child and back, and a finished parent stops holding
    /// it back once its children are represented.
    ///
    /// # Errors
    /// A failed control-plane write.
    pub async fn finish(
        &mut self,
        io: &ConsumerPorts,
        children: &[String],
    ) -> Result<(), PortError> {
        let now_ms = io.clock.now_ms();
        if let Some(wm) = self.processor.local_watermark() {
            for child in children {
                let placeholder = ShardStatus {
                    shard_id: child.clone(),
                    wm,
                    heartbeat_ms: now_ms,
                    rps: 0.0,
                    bps: 0.0,
                    lag_ms: 0,
                    late: 0,
                    finished: false,
                };
                if io.control.publish_if_absent(&placeholder).await? {
                    debug!(shard = %self.shard(), child, wm, "control row for the child until it starts");
                }
            }
        }
        self.publish(io, 0, true).await
    }

    /// Publishes this shard's watermark, heartbeat, throughput and late records.
    ///
    /// # Errors
    /// A failed control-plane write.
    pub async fn publish(
        &mut self,
        io: &ConsumerPorts,
        lag_ms: i64,
        finished: bool,
    ) -> Result<(), PortError> {
        let secs = self.last_publish.elapsed().as_secs_f64().max(1e-3);
        let status = ShardStatus {
            shard_id: self.shard().to_string(),
            wm: self.processor.local_watermark().unwrap_or(i64::MIN),
            heartbeat_ms: self.last_data_ms,
            rps: self.records_since as f64 / secs,
            bps: self.bytes_since as f64 / secs,
            lag_ms,
            late: self.late_since,
            finished,
        };
        io.control.publish(&status).await?;
        self.last_publish = Instant::now();
        self.records_since = 0;
        self.bytes_since = 0;
        self.late_since = 0;
        Ok(())
    }
}

/// Writes a batch's output: panes to every sink, dead letters and late records to theirs.
async fn write_output(
    io: &ConsumerPorts,
    shard: &str,
    out: &BatchOutcome,
    batch_id: &str,
) -> Result<(), PortError> {
    io.sinks.write(&out.panes, batch_id).await?;
    io.dead_letters.write(shard, &out.dead_letters).await?;
    io.late.write(shard, &out.late).await
}
