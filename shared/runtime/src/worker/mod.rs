//! The long-running worker: a KCL-like loop that balances shard leases among workers and
//! runs one [`ShardConsumer`](crate::shard::ShardConsumer) per held shard, over the ports (no AWS here; `eventide-aws`
//! wires the ports to Kinesis and DynamoDB and stops the worker on a signal).
//!
//! The main loop, every `poll_ms`:
//! - every few seconds lists the stream's shards and creates leases for new ones
//!   ([`LeaseKeeper::sync_shards`]); at once when a shard it consumed reached its end;
//! - every third of the lease duration renews the leases it holds (well before they
//!   expire) and balances them ([`LeaseKeeper::assign`]), starting a shard task for every
//!   newly held lease and stopping the tasks of leases it lost.
//!
//! A shard task reads its shard from the lease checkpoint and, per batch, runs
//! [`ShardConsumer::process`](crate::shard::ShardConsumer::process) (the exactly-once steps of `docs/aws-runtime.md`) and then
//! checkpoints the lease. A conflict from the state commit or the checkpoint means another
//! worker took the lease over: the task ends quietly and the shard is left to the new
//! owner. Any other failure ends the task too; its lease is still held, so the next
//! balancing round restarts the shard from its checkpoint with its state rebuilt from the
//! log (the in-memory state of a failed batch cannot be trusted).
//!
//! With [`WorkerSettings::finite_quiet_ms`] the stream is treated as finite (the demo and
//! tests): once every shard is caught up and quiet for that long, each worker fires
//! everything of its shards as if the watermark were +∞ (like `eventide replay` at the end
//! of its input), publishes `wm = i64::MAX`, and exits once every shard has done so. A
//! shard taken on after that (its owner died while its row looked quiet) is read to its
//! tip before it ends.
//!
//! Files: this one holds the main loop; `shard_task.rs` the shard task, `finite.rs` the
//! finite-input checks and `totals.rs` the totals it logs.

mod finite;
mod shard_task;
mod totals;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use eventide_engine::PipelineSpec;
use eventide_ports::control::ShardStatus;
use eventide_ports::lease::{InitialPosition, Lease, Leases};
use eventide_ports::shard::ShardInfo;
use eventide_ports::source::ShardSource;
use eventide_ports::PortError;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::lease::LeaseKeeper;
use crate::shard::{ConsumerPorts, RuntimeError};
use shard_task::{run_shard, Shared, TaskExit, TaskFlags};
use totals::RunTotals;

/// How often the worker logs its totals so far.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// How often the worker lists shards to find new ones.
const SHARD_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// What a worker talks to.
#[derive(Clone)]
pub struct WorkerPorts {
    /// The shard consumers' ports (state, control plane, sinks, clock).
    pub io: ConsumerPorts,
    /// The lease table.
    pub leases: Arc<dyn Leases>,
    /// The stream.
    pub source: Arc<dyn ShardSource>,
}

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This worker's id; unique per process incarnation, so a restarted worker never
    /// reuses its zombie predecessor's id.
    pub worker_id: String,
    /// The most leases this worker holds.
    pub max_leases: usize,
    /// How long a lease is held after each renewal, in ms.
    pub lease_ms: i64,
    /// How often each shard is polled when it has no new records, and the main loop's tick.
    pub poll_ms: u64,
    /// Treat the stream as finite: end the input after every shard has been caught up and
    /// quiet for this long, then exit.
    pub finite_quiet_ms: Option<u64>,
    /// Stop (gracefully) after this long whatever happens: a safety bound.
    pub stop_after_ms: Option<u64>,
    /// The most records per read.
    pub batch_limit: usize,
    /// Where shards that no lease records yet start (Flink's `source.init.position`).
    pub initial_position: InitialPosition,
}

impl WorkerSettings {
    /// The defaults of the `worker` command: up to 1000 leases of 10 s, polled every
    /// 200 ms, batches of up to 1000 records.
    pub fn new(worker_id: impl Into<String>) -> Self {
        WorkerSettings {
            worker_id: worker_id.into(),
            max_leases: 1000,
            lease_ms: 10_000,
            poll_ms: 200,
            finite_quiet_ms: None,
            stop_after_ms: None,
            batch_limit: 1000,
            initial_position: InitialPosition::TrimHorizon,
        }
    }
}

/// Why the worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Finite mode: the input ended and every shard fired everything.
    EndOfInput,
    /// The `stop` future resolved (SIGTERM or Ctrl-C on AWS).
    Stopped,
    /// [`WorkerSettings::stop_after_ms`] elapsed.
    Deadline,
}

/// A running shard task.
struct Active {
    /// The main loop's copy of the lease, for renewals and the release on shutdown.
    lease: Lease,
    flags: Arc<TaskFlags>,
    handle: JoinHandle<Result<TaskExit, RuntimeError>>,
}

/// The main loop's state.
struct Worker {
    shared: Arc<Shared>,
    settings: WorkerSettings,
    shards: Vec<ShardInfo>,
    active: BTreeMap<String, Active>,
    last_sync: Option<Instant>,
    last_assign: Option<Instant>,
    ending: bool,
}

/// Runs the worker loop (see the module docs) until the input ends (finite mode), `stop`
/// resolves or the safety bound elapses; then stops its shard tasks after their current
/// batch and releases its leases so other workers take them over at once.
///
/// Shard tasks run on a [`tokio::task::LocalSet`] (one thread, concurrent I/O): a
/// [`ShardConsumer`](crate::shard::ShardConsumer)'s futures are not `Send`, because the engine's window operators are
/// not `Sync`.
///
/// # Errors
/// None today: failures of a shard are logged and the shard restarted; the signature leaves
/// room for failures that stop the worker.
///
/// # Cancel safety
/// Dropping the future is a crash (kill -9): batches in flight are replayed by the next
/// owner of their leases once those expire; nothing committed is lost or counted twice.
pub async fn run_worker(
    ports: WorkerPorts,
    spec: PipelineSpec,
    settings: WorkerSettings,
    stop: impl Future<Output = ()>,
) -> Result<WorkerExit, RuntimeError> {
    tokio::task::LocalSet::new()
        .run_until(worker_loop(ports, spec, settings, stop))
        .await
}

async fn worker_loop(
    ports: WorkerPorts,
    spec: PipelineSpec,
    settings: WorkerSettings,
    stop: impl Future<Output = ()>,
) -> Result<WorkerExit, RuntimeError> {
    let leases = LeaseKeeper::new(ports.leases.clone(), settings.lease_ms)
        .starting_at(settings.initial_position);
    let shared = Arc::new(Shared {
        io: ports.io,
        source: ports.source,
        leases,
        spec,
        poll: Duration::from_millis(settings.poll_ms.max(1)),
        batch_limit: settings.batch_limit.clamp(1, 10_000),
        totals: RunTotals::default(),
    });
    let mut w = Worker {
        shared,
        settings,
        shards: Vec::new(),
        active: BTreeMap::new(),
        last_sync: None,
        last_assign: None,
        ending: false,
    };
    let worker = w.settings.worker_id.clone();
    info!(worker, finite = ?w.settings.finite_quiet_ms, "worker starting");
    let started = Instant::now();
    let mut last_progress = started;
    tokio::pin!(stop);
    let exit = loop {
        tokio::select! {
            _ = &mut stop => {
                info!(worker, "asked to stop");
                break WorkerExit::Stopped;
            }
            _ = tokio::time::sleep(w.shared.poll) => {}
        }
        if w.settings
            .stop_after_ms
            .is_some_and(|ms| started.elapsed() >= Duration::from_millis(ms))
        {
            warn!(worker, "stop_after_ms elapsed, stopping");
            break WorkerExit::Deadline;
        }
        if let Some(exit) = w.tick().await {
            break exit;
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            let f = &w.shared.totals;
            info!(
                worker,
                shards = w.active.len(),
                records = f.records.load(Ordering::Relaxed),
                panes = f.panes.load(Ordering::Relaxed),
                late = f.late.load(Ordering::Relaxed),
                "progress"
            );
        }
    };
    w.stop_all().await;
    w.shared.totals.log(&worker, exit, started.elapsed());
    Ok(exit)
}

impl Worker {
    fn now_ms(&self) -> i64 {
        self.shared.io.clock.now_ms()
    }

    /// One round of the main loop; `Some` when the worker should exit.
    async fn tick(&mut self) -> Option<WorkerExit> {
        self.reap().await;
        if self
            .last_sync
            .is_none_or(|t| t.elapsed() >= SHARD_SYNC_INTERVAL)
        {
            self.sync_shards().await;
        }
        let assign_every = Duration::from_millis((self.settings.lease_ms / 3).max(1) as u64);
        if self.last_assign.is_none_or(|t| t.elapsed() >= assign_every) {
            self.last_assign = Some(Instant::now());
            self.renew_all().await;
            self.balance().await;
        }
        let quiet_ms = self.settings.finite_quiet_ms?;
        if !self.ending {
            if self.all_quiet(quiet_ms as i64).await {
                info!(worker = %self.settings.worker_id, shards = self.active.len(), "input is quiet: ending it");
                for a in self.active.values() {
                    a.flags.end_input.store(true, Ordering::SeqCst);
                }
                self.ending = true;
            }
        } else if self
            .active
            .values()
            .all(|a| a.flags.flushed.load(Ordering::SeqCst))
            && self.all_ended().await
        {
            info!(worker = %self.settings.worker_id, "every shard reached the end of input");
            return Some(WorkerExit::EndOfInput);
        }
        None
    }

    /// Reaps ended shard tasks.
    async fn reap(&mut self) {
        let worker = self.settings.worker_id.as_str();
        let ended: Vec<String> = self
            .active
            .iter()
            .filter(|(_, a)| a.handle.is_finished())
            .map(|(s, _)| s.clone())
            .collect();
        for shard in ended {
            let Some(a) = self.active.remove(&shard) else {
                continue;
            };
            match a.handle.await {
                Ok(Ok(TaskExit::Finished)) => {
                    info!(worker, shard, "shard finished; looking for its children");
                    self.last_sync = None;
                    self.last_assign = None;
                }
                Ok(Ok(TaskExit::LeaseLost)) => info!(worker, shard, "lease lost"),
                Ok(Ok(TaskExit::Stopped)) => debug!(worker, shard, "shard task stopped"),
                Ok(Err(e)) => {
                    warn!(worker, shard, error = %e, "shard task failed; it restarts from its checkpoint")
                }
                Err(e) => warn!(worker, shard, error = %e, "shard task panicked or was aborted"),
            }
        }
    }

    /// Lists the shards and creates leases for new ones.
    async fn sync_shards(&mut self) {
        let worker = self.settings.worker_id.as_str();
        match self.shared.source.list_shards().await {
            Ok(listed) => match self.shared.leases.sync_shards(&listed).await {
                Ok(_) => {
                    self.shards = listed;
                    self.last_sync = Some(Instant::now());
                }
                Err(e) => warn!(worker, error = %e, "cannot sync shard leases"),
            },
            Err(e) => warn!(worker, error = %e, "cannot list shards"),
        }
    }

    /// Renews every held lease; a lease taken over stops its task.
    async fn renew_all(&mut self) {
        let now = self.now_ms();
        let worker = self.settings.worker_id.as_str();
        for (shard, a) in self.active.iter_mut() {
            match self.shared.leases.renew(&mut a.lease, now).await {
                Ok(()) => {}
                Err(PortError::Conflict { .. }) => {
                    info!(worker, shard, "lease taken over; stopping the shard");
                    a.flags.stop.store(true, Ordering::SeqCst);
                }
                Err(e) => warn!(worker, shard, error = %e, "cannot renew lease"),
            }
        }
    }

    /// Balances the leases, then starts a task for every held lease without one and stops
    /// the tasks of leases no longer held.
    async fn balance(&mut self) {
        let now = self.now_ms();
        let held = match self
            .shared
            .leases
            .assign(&self.settings.worker_id, self.settings.max_leases, now)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                warn!(worker = %self.settings.worker_id, error = %e, "cannot balance leases");
                return;
            }
        };
        for (shard, a) in &self.active {
            if !held.iter().any(|l| &l.shard_id == shard) {
                info!(shard, "lease no longer held; stopping the shard");
                a.flags.stop.store(true, Ordering::SeqCst);
            }
        }
        let by_id: HashMap<&str, &ShardInfo> = self
            .shards
            .iter()
            .map(|s| (s.shard_id.as_str(), s))
            .collect();
        for lease in held {
            if self.active.contains_key(&lease.shard_id) {
                continue;
            }
            let Some(info) = by_id.get(lease.shard_id.as_str()) else {
                debug!(shard = %lease.shard_id, "held lease of a shard not listed yet");
                continue;
            };
            let flags = Arc::new(TaskFlags::default());
            // A shard taken on (or restarted) after the input ended ends once it has read
            // what is left of it.
            flags.end_input.store(self.ending, Ordering::SeqCst);
            info!(shard = %lease.shard_id, counter = lease.counter, checkpoint = %lease.checkpoint, "starting shard");
            let handle = tokio::task::spawn_local(run_shard(
                self.shared.clone(),
                (*info).clone(),
                lease.clone(),
                flags.clone(),
            ));
            self.active.insert(
                lease.shard_id.clone(),
                Active {
                    lease,
                    flags,
                    handle,
                },
            );
        }
    }

    /// The leases and control rows, or `None` (logged) when either cannot be read.
    async fn leases_and_rows(&self) -> Option<(Vec<Lease>, Vec<ShardStatus>)> {
        match (
            self.shared.leases.list().await,
            self.shared.io.control.shards_status().await,
        ) {
            (Ok(all), Ok(rows)) => Some((all, rows)),
            (Err(e), _) | (_, Err(e)) => {
                warn!(worker = %self.settings.worker_id, error = %e, "cannot read leases or control rows");
                None
            }
        }
    }

    /// Finite mode: whether the input is over ([`finite::input_is_quiet`]), this worker's
    /// own shards judged by their tasks' flags.
    async fn all_quiet(&self, quiet_ms: i64) -> bool {
        let now = self.now_ms();
        let mine_quiet = self.active.values().all(|a| {
            let since = a.flags.quiet_since_ms.load(Ordering::SeqCst);
            since > 0 && now - since >= quiet_ms
        });
        if !mine_quiet {
            return false;
        }
        let Some((all, rows)) = self.leases_and_rows().await else {
            return false;
        };
        finite::input_is_quiet(
            &all,
            &rows,
            |shard| self.active.contains_key(shard),
            now,
            quiet_ms,
        )
    }

    /// Finite mode: whether every shard has ended ([`finite::input_has_ended`]).
    async fn all_ended(&self) -> bool {
        let Some((all, rows)) = self.leases_and_rows().await else {
            return false;
        };
        finite::input_has_ended(&all, &rows)
    }

    /// Stops every shard task after its current batch (aborting those that take longer
    /// than the lease duration) and releases the leases.
    ///
    /// An aborted task stops in the middle of a batch, at any await point: before its
    /// state commit (nothing of the batch happened), between the commit and the sinks (the
    /// entry is committed, some or none of its panes, dead letters and late records are
    /// written), or before the checkpoint. Exactly-once still holds: the next owner of the
    /// lease starts from the checkpoint, replays the newest log entry and writes its output
    /// again (the sinks upsert by pane id and batch id), and skips the records at or before
    /// the committed position. What an abort costs is latency (that batch's output waits
    /// for the next owner) and duplicates on the output stream, which has no upsert
    /// (downstream de-duplicates by `pane_id`).
    async fn stop_all(&mut self) {
        let worker = self.settings.worker_id.as_str();
        let grace = Duration::from_millis(self.settings.lease_ms.max(1000) as u64);
        for a in self.active.values() {
            a.flags.stop.store(true, Ordering::SeqCst);
        }
        for (shard, a) in std::mem::take(&mut self.active) {
            let abort = a.handle.abort_handle();
            match tokio::time::timeout(grace, a.handle).await {
                Ok(Ok(Ok(exit))) => debug!(worker, shard, ?exit, "shard task ended"),
                Ok(Ok(Err(e))) => {
                    warn!(worker, shard, error = %e, "shard task failed while stopping")
                }
                Ok(Err(e)) => warn!(worker, shard, error = %e, "shard task panicked"),
                Err(_) => {
                    // Safe for exactly-once (see above): the next owner replays the batch.
                    warn!(
                        worker,
                        shard, "shard task did not stop in time; aborting it"
                    );
                    abort.abort();
                }
            }
            match self.shared.leases.release(a.lease).await {
                Ok(()) => debug!(worker, shard, "released lease"),
                Err(PortError::Conflict { .. }) => {
                    debug!(worker, shard, "lease was taken over already")
                }
                Err(e) => warn!(worker, shard, error = %e, "cannot release lease"),
            }
        }
    }
}
