//! The shard task: one held shard consumed batch by batch until it ends, its lease is
//! lost, it is asked to stop, or a batch fails.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventide_engine::PipelineSpec;

use eventide_ports::lease::Lease;
use eventide_ports::shard::ShardInfo;
use eventide_ports::source::ShardSource;
use tracing::{debug, info};

use super::totals::RunTotals;
use crate::lease::LeaseKeeper;
use crate::shard::{ConsumerPorts, RuntimeError, ShardConsumer};

/// What every shard task shares with the others and with the main loop.
pub(super) struct Shared {
    /// The shard consumers' ports (state, control plane, sinks, clock).
    pub(super) io: ConsumerPorts,
    /// The stream.
    pub(super) source: Arc<dyn ShardSource>,
    /// The lease policy over the lease port.
    pub(super) leases: LeaseKeeper,
    pub(super) spec: PipelineSpec,
    /// How long to wait before polling a shard that had no new records.
    pub(super) poll: Duration,
    /// The most records per read.
    pub(super) batch_limit: usize,
    pub(super) totals: RunTotals,
}

/// How a shard task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskExit {
    /// The shard's end: everything committed and the lease finished.
    Finished,
    /// Another worker took the lease over.
    LeaseLost,
    /// Asked to stop.
    Stopped,
}

/// Flags shared between the main loop and a shard task.
#[derive(Debug, Default)]
pub(super) struct TaskFlags {
    /// The main loop asks the task to stop after its current batch.
    pub(super) stop: AtomicBool,
    /// Finite mode: the main loop asks the task to fire everything (end of input).
    pub(super) end_input: AtomicBool,
    /// The task has fired everything and published `wm = i64::MAX`.
    pub(super) flushed: AtomicBool,
    /// Since when (epoch ms) the shard is caught up with no new records; 0 when it is not.
    pub(super) quiet_since_ms: AtomicI64,
}

/// Consumes one shard until it ends, the lease is lost, it is asked to stop, or a batch
/// fails (the error is returned; the main loop restarts the shard from its checkpoint).
pub(super) async fn run_shard(
    shared: Arc<Shared>,
    shard: ShardInfo,
    mut lease: Lease,
    flags: Arc<TaskFlags>,
) -> Result<TaskExit, RuntimeError> {
    let lost = |e: RuntimeError| {
        if e.is_conflict() {
            Ok(TaskExit::LeaseLost)
        } else {
            Err(e)
        }
    };
    let io = &shared.io;
    let mut consumer = match ShardConsumer::start(io, shared.spec.clone(), &shard).await {
        Ok(c) => c,
        Err(e) => return lost(e),
    };
    let mut reader = shared
        .source
        .open(&shard.shard_id, &lease.checkpoint, shared.batch_limit);
    let mut caught_up = false;
    loop {
        if flags.stop.load(Ordering::SeqCst) {
            return Ok(TaskExit::Stopped);
        }
        if flags.flushed.load(Ordering::SeqCst) {
            // The input has ended for this shard; wait to be stopped.
            tokio::time::sleep(shared.poll).await;
            continue;
        }
        // The input ends for this shard only once it has been read to its tip: a shard
        // taken over after the others ended (its dead owner's row looked quiet) reads
        // what is left first.
        if caught_up && flags.end_input.load(Ordering::SeqCst) {
            match consumer.end_input(io).await {
                Ok(panes) => {
                    shared.totals.panes.fetch_add(panes, Ordering::Relaxed);
                    info!(shard = %shard.shard_id, panes, "end of input: fired everything");
                    flags.flushed.store(true, Ordering::SeqCst);
                    continue;
                }
                Err(e) => return lost(e),
            }
        }

        let batch = reader.next_batch().await?;
        let lag = batch.millis_behind_latest.unwrap_or(0);
        let report = match consumer.process(io, &batch.records, lag).await {
            Ok(r) => r,
            Err(e) => return lost(e),
        };
        shared.totals.add(&report);
        if let Some(last) = batch.records.last() {
            if let Err(e) = shared
                .leases
                .checkpoint(&mut lease, &last.sequence_number)
                .await
            {
                return lost(e.into());
            }
            debug!(shard = %shard.shard_id, records = report.records, panes = report.panes,
                skipped = report.skipped, dead_letters = report.dead_letters, lag, "batch checkpointed");
        }
        caught_up = batch.records.is_empty() && lag == 0;
        if caught_up {
            let now = io.clock.now_ms().max(1);
            let _ =
                flags
                    .quiet_since_ms
                    .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        } else {
            flags.quiet_since_ms.store(0, Ordering::SeqCst);
        }
        if let Some(children) = batch.shard_end {
            consumer.finish(io, &children).await?;
            if let Err(e) = shared.leases.finish(&mut lease).await {
                return lost(e.into());
            }
            info!(shard = %shard.shard_id, ?children, "shard end");
            return Ok(TaskExit::Finished);
        }
        if batch.records.is_empty() {
            tokio::time::sleep(shared.poll).await;
        }
    }
}
