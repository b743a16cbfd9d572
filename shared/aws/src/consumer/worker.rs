//! The long-running worker: a KCL-like loop that balances shard leases among workers and
//! runs one [`ShardConsumer`] per held shard.
//!
//! The main loop, every `poll_ms`:
//! - every few seconds lists the stream's shards and creates leases for new ones
//!   ([`LeaseTable::sync_shards`]); at once when a shard it consumed reached SHARD_END;
//! - every third of the lease duration renews the leases it holds (well before they
//!   expire) and balances them ([`LeaseTable::assign`]), starting a shard task for every
//!   newly held lease and stopping the tasks of leases it lost.
//!
//! A shard task reads its shard from the lease checkpoint and, per batch, runs
//! [`ShardConsumer::process`] (the exactly-once steps of `docs/aws-runtime.md`) and then
//! checkpoints the lease. A [`AwsError::Conflict`] from the state commit or the checkpoint
//! means another worker took the lease over: the task ends quietly and the shard is left to
//! the new owner. Any other failure ends the task too; its lease is still held, so the next
//! balancing round restarts the shard from its checkpoint with state reloaded from the
//! store (the in-memory state of a failed batch cannot be trusted).
//!
//! With [`WorkerConfig::finite_quiet_ms`] the stream is treated as finite (the demo and
//! tests): once every shard is caught up and quiet for that long, each worker fires
//! everything of its shards as if the watermark were +∞ (like `eventide replay` at the end
//! of its input), publishes `wm = i64::MAX`, and exits once every shard has done so.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Clients;
use crate::kinesis::{list_shards, ReaderConfig, ShardInfo, ShardReader, StartPosition};
use crate::leases::{Lease, LeaseTable};
use crate::AwsError;
use eventide_engine::PipelineSpec;
use eventide_ports::PortError;
use thiserror::Error;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::consumer::resources::Resources;
use eventide_runtime::processor::InputRecord;
use eventide_runtime::shard::{Io, RuntimeError, ShardConsumer};

/// How often the worker lists shards to find new ones.
const SHARD_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// The current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The pipeline's name: the key prefix in the state, lease and control tables.
    pub pipeline: String,
    /// The pipeline.
    pub spec: PipelineSpec,
    /// The input stream.
    pub stream: String,
    /// The tables and bucket.
    pub resources: Resources,
    /// This worker's id; unique per process incarnation (see [`default_worker_id`]).
    pub worker_id: String,
    /// The most leases this worker holds.
    pub max_leases: usize,
    /// How long a lease is held after each renewal, in ms.
    pub lease_ms: i64,
    /// How often each shard is polled when it has no new records, and the main loop's tick.
    pub poll_ms: u64,
    /// A shard with no new data for this long stops holding the global watermark back.
    pub idle_timeout_ms: i64,
    /// Also write panes to this Kinesis stream.
    pub output_stream: Option<String>,
    /// Create the tables and the bucket first (tests, local demo).
    pub create: bool,
    /// Treat the stream as finite: end the input after every shard has been caught up and
    /// quiet for this long, then exit.
    pub finite_quiet_ms: Option<u64>,
    /// Stop (gracefully) after this long whatever happens: a safety bound.
    pub stop_after_ms: Option<u64>,
    /// The most records per GetRecords call (Kinesis allows up to 10,000).
    pub batch_limit: i32,
    /// Print every fired pane as a JSON line on stdout.
    pub print_panes: bool,
    /// A rules file in S3 (`s3://bucket/key`), hot-reloaded (see `eventide_aws::rules`).
    pub rules_s3: Option<String>,
    /// How often the rules object's ETag is checked, in ms.
    pub rules_poll_ms: u64,
}

impl WorkerConfig {
    /// Settings with the defaults of the `worker` command: up to 1000 leases of 10 s,
    /// polled every 200 ms, idle after 10 s.
    pub fn new(
        pipeline: impl Into<String>,
        spec: PipelineSpec,
        stream: impl Into<String>,
        resources: Resources,
    ) -> Self {
        WorkerConfig {
            pipeline: pipeline.into(),
            spec,
            stream: stream.into(),
            resources,
            worker_id: default_worker_id(),
            max_leases: 1000,
            lease_ms: 10_000,
            poll_ms: 200,
            idle_timeout_ms: 10_000,
            output_stream: None,
            create: false,
            finite_quiet_ms: None,
            stop_after_ms: None,
            batch_limit: 1000,
            print_panes: false,
            rules_s3: None,
            rules_poll_ms: 10_000,
        }
    }
}

/// `<hostname>-<pid>-<start ms>`: the start time keeps a restarted process (in a container
/// the pid is often 1 every time) from reusing its zombie predecessor's id.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}-{}", std::process::id(), now_ms())
}

/// Why the worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Finite mode: the input ended and every shard fired everything.
    EndOfInput,
    /// SIGTERM or Ctrl-C.
    Signal,
    /// [`WorkerConfig::stop_after_ms`] elapsed.
    Deadline,
}

/// The worker could not run.
#[derive(Debug, Error)]
pub enum WorkerError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// How a shard task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskExit {
    /// SHARD_END: everything committed and the lease finished.
    Finished,
    /// Another worker took the lease over.
    LeaseLost,
    /// Asked to stop.
    Stopped,
}

/// Flags shared between the main loop and a shard task.
#[derive(Debug, Default)]
struct TaskFlags {
    /// The main loop asks the task to stop after its current batch.
    stop: AtomicBool,
    /// Finite mode: the main loop asks the task to fire everything (end of input).
    end_input: AtomicBool,
    /// The task has fired everything and published `wm = i64::MAX`.
    flushed: AtomicBool,
    /// Since when (epoch ms) the shard is caught up with no new records; 0 when it is not.
    quiet_since_ms: AtomicI64,
}

/// What every shard task shares.
struct Shared {
    io: Io,
    leases: LeaseTable,
    clients: Clients,
    stream: String,
    spec: PipelineSpec,
    poll: Duration,
    batch_limit: i32,
    figures: Figures,
}

/// Totals of a worker run, for the summary it logs when it stops.
#[derive(Debug, Default)]
struct Figures {
    records: AtomicU64,
    state_writes: AtomicU64,
    state_bytes: AtomicU64,
    late: AtomicU64,
    panes: AtomicU64,
    batches_with_panes: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
}

/// A running shard task.
struct Active {
    /// The main loop's copy of the lease, for renewals and the release on shutdown.
    lease: Lease,
    flags: Arc<TaskFlags>,
    handle: JoinHandle<Result<TaskExit, RuntimeError>>,
}

fn is_conflict(e: &RuntimeError) -> bool {
    e.is_conflict()
}

/// Runs a worker with clients from the standard AWS environment; see [`run_worker_with`].
pub async fn run_worker(config: WorkerConfig) -> Result<WorkerExit, WorkerError> {
    let clients = Clients::from_env().await;
    run_worker_with(&clients, config).await
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the worker");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the worker loop (see the module docs) until the input ends (finite mode), a signal
/// arrives or the safety bound elapses; then stops its shard tasks after their current
/// batch and releases its leases so other workers take them over at once.
///
/// Shard tasks run on a [`tokio::task::LocalSet`] (one thread, concurrent I/O): a
/// [`ShardConsumer`]'s futures are not `Send`, because the engine's window operators are
/// not `Sync`.
pub async fn run_worker_with(
    clients: &Clients,
    config: WorkerConfig,
) -> Result<WorkerExit, WorkerError> {
    tokio::task::LocalSet::new()
        .run_until(worker_loop(clients, config))
        .await
}

async fn worker_loop(clients: &Clients, config: WorkerConfig) -> Result<WorkerExit, WorkerError> {
    if config.create {
        config.resources.ensure_all(clients).await?;
    }
    let mut io = config.resources.io(
        clients,
        &config.pipeline,
        config.output_stream.as_deref(),
        config.idle_timeout_ms,
    );
    io.sinks.print = config.print_panes;
    if !config.spec.enrichments.is_empty() {
        io.lookups = Some(crate::enrichment::Lookups::start(&config.spec).await?);
    }
    if let Some(url) = &config.rules_s3 {
        io.rules = Some(Arc::new(crate::rules::LiveRules::new(
            clients.s3.clone(),
            url,
            config.spec.input.clone(),
            Duration::from_millis(config.rules_poll_ms),
        )?));
    }
    let leases = config
        .resources
        .leases(clients, &config.pipeline, config.lease_ms);
    let shared = Arc::new(Shared {
        io,
        leases: leases.clone(),
        clients: clients.clone(),
        stream: config.stream.clone(),
        spec: config.spec.clone(),
        poll: Duration::from_millis(config.poll_ms.max(1)),
        batch_limit: config.batch_limit.clamp(1, 10_000),
        figures: Figures::default(),
    });
    let worker = config.worker_id.as_str();
    info!(worker, pipeline = %config.pipeline, stream = %config.stream, finite = ?config.finite_quiet_ms,
        "worker starting");

    let started = Instant::now();
    let assign_every = Duration::from_millis((config.lease_ms / 3).max(1) as u64);
    let mut shards: Vec<ShardInfo> = Vec::new();
    let mut last_sync: Option<Instant> = None;
    let mut last_assign: Option<Instant> = None;
    let mut active: BTreeMap<String, Active> = BTreeMap::new();
    let mut ending = false;
    let signal = shutdown_signal();
    tokio::pin!(signal);

    let exit = loop {
        tokio::select! {
            _ = &mut signal => {
                info!(worker, "signal received, stopping");
                break WorkerExit::Signal;
            }
            _ = tokio::time::sleep(shared.poll) => {}
        }
        if config
            .stop_after_ms
            .is_some_and(|ms| started.elapsed() >= Duration::from_millis(ms))
        {
            warn!(worker, "stop_after_ms elapsed, stopping");
            break WorkerExit::Deadline;
        }

        // Reap ended shard tasks.
        let ended: Vec<String> = active
            .iter()
            .filter(|(_, a)| a.handle.is_finished())
            .map(|(s, _)| s.clone())
            .collect();
        for shard in ended {
            let Some(a) = active.remove(&shard) else {
                continue;
            };
            match a.handle.await {
                Ok(Ok(TaskExit::Finished)) => {
                    info!(worker, shard, "shard finished; looking for its children");
                    last_sync = None;
                    last_assign = None;
                }
                Ok(Ok(TaskExit::LeaseLost)) => info!(worker, shard, "lease lost"),
                Ok(Ok(TaskExit::Stopped)) => debug!(worker, shard, "shard task stopped"),
                Ok(Err(e)) => {
                    warn!(worker, shard, error = %e, "shard task failed; it restarts from its checkpoint")
                }
                Err(e) => warn!(worker, shard, error = %e, "shard task panicked or was aborted"),
            }
        }

        // Find new shards.
        if last_sync.is_none_or(|t| t.elapsed() >= SHARD_SYNC_INTERVAL) {
            match list_shards(&clients.kinesis, &config.stream).await {
                Ok(listed) => {
                    if let Err(e) = leases.sync_shards(&listed).await {
                        warn!(worker, error = %e, "cannot sync shard leases");
                    } else {
                        shards = listed;
                        last_sync = Some(Instant::now());
                    }
                }
                Err(e) => warn!(worker, error = %e, "cannot list shards"),
            }
        }

        // Renew, then balance.
        if last_assign.is_none_or(|t| t.elapsed() >= assign_every) {
            last_assign = Some(Instant::now());
            renew_all(&leases, &mut active, worker).await;
            match leases.assign(worker, config.max_leases, now_ms()).await {
                Ok(held) => {
                    start_new(&shared, &shards, &mut active, held);
                    if ending {
                        // A shard taken on (or restarted) after the input ended ends at once.
                        for a in active.values() {
                            a.flags.end_input.store(true, Ordering::SeqCst);
                        }
                    }
                }
                Err(e) => warn!(worker, error = %e, "cannot balance leases"),
            }
        }

        // Finite mode: end the input once everything is quiet; exit once all shards ended.
        if let Some(quiet_ms) = config.finite_quiet_ms {
            if !ending {
                if all_quiet(&shared, &leases, &active, quiet_ms as i64, worker).await {
                    info!(worker, shards = active.len(), "input is quiet: ending it");
                    for a in active.values() {
                        a.flags.end_input.store(true, Ordering::SeqCst);
                    }
                    ending = true;
                }
            } else if active
                .values()
                .all(|a| a.flags.flushed.load(Ordering::SeqCst))
                && all_ended(&shared, &leases).await
            {
                info!(worker, "every shard reached the end of input");
                break WorkerExit::EndOfInput;
            }
        }
    };

    stop_all(
        &leases,
        active,
        worker,
        Duration::from_millis(config.lease_ms.max(1000) as u64),
    )
    .await;
    let f = &shared.figures;
    let (records, writes) = (
        f.records.load(Ordering::Relaxed),
        f.state_writes.load(Ordering::Relaxed),
    );
    let batches = f.batches_with_panes.load(Ordering::Relaxed).max(1);
    info!(
        worker,
        ?exit,
        records,
        panes = f.panes.load(Ordering::Relaxed),
        late = f.late.load(Ordering::Relaxed),
        state_writes = writes,
        state_bytes = f.state_bytes.load(Ordering::Relaxed),
        state_bytes_per_event =
            f.state_bytes.load(Ordering::Relaxed) as f64 / records.max(1) as f64,
        events_per_second = records as f64 / started.elapsed().as_secs_f64().max(1e-3),
        pane_latency_ms_mean =
            f.latency_us_sum.load(Ordering::Relaxed) as f64 / batches as f64 / 1e3,
        pane_latency_ms_max = f.latency_us_max.load(Ordering::Relaxed) as f64 / 1e3,
        "worker stopped"
    );
    Ok(exit)
}

/// Renews every held lease; a lease taken over stops its task.
async fn renew_all(leases: &LeaseTable, active: &mut BTreeMap<String, Active>, worker: &str) {
    let now = now_ms();
    for (shard, a) in active.iter_mut() {
        match leases.renew(&mut a.lease, now).await {
            Ok(()) => {}
            Err(AwsError::Conflict { .. }) => {
                info!(worker, shard, "lease taken over; stopping the shard");
                a.flags.stop.store(true, Ordering::SeqCst);
            }
            Err(e) => warn!(worker, shard, error = %e, "cannot renew lease"),
        }
    }
}

/// Starts a task for every held lease without one, and stops the tasks of leases no longer
/// held.
fn start_new(
    shared: &Arc<Shared>,
    shards: &[ShardInfo],
    active: &mut BTreeMap<String, Active>,
    held: Vec<Lease>,
) {
    let held_ids: Vec<&str> = held.iter().map(|l| l.shard_id.as_str()).collect();
    for (shard, a) in active.iter() {
        if !held_ids.contains(&shard.as_str()) {
            info!(shard, "lease no longer held; stopping the shard");
            a.flags.stop.store(true, Ordering::SeqCst);
        }
    }
    let by_id: HashMap<&str, &ShardInfo> =
        shards.iter().map(|s| (s.shard_id.as_str(), s)).collect();
    for lease in held {
        if active.contains_key(&lease.shard_id) {
            continue;
        }
        let Some(info) = by_id.get(lease.shard_id.as_str()) else {
            debug!(shard = %lease.shard_id, "held lease of a shard not listed yet");
            continue;
        };
        let flags = Arc::new(TaskFlags::default());
        info!(shard = %lease.shard_id, counter = lease.counter, checkpoint = %lease.checkpoint, "starting shard");
        let handle = tokio::task::spawn_local(run_shard(
            shared.clone(),
            (*info).clone(),
            lease.clone(),
            flags.clone(),
        ));
        active.insert(
            lease.shard_id.clone(),
            Active {
                lease,
                flags,
                handle,
            },
        );
    }
}

/// Finite mode: whether the input is over. Every lease must be finished or held by a
/// running consumer that has been caught up with no new records for `quiet_ms` — this
/// worker's own shards by their tasks' flags, other workers' by their control rows showing
/// no lag.
async fn all_quiet(
    shared: &Shared,
    leases: &LeaseTable,
    active: &BTreeMap<String, Active>,
    quiet_ms: i64,
    worker: &str,
) -> bool {
    let now = now_ms();
    let mine_quiet = active.values().all(|a| {
        let since = a.flags.quiet_since_ms.load(Ordering::SeqCst);
        since > 0 && now - since >= quiet_ms
    });
    if !mine_quiet {
        return false;
    }
    let (all, rows) = match (
        leases.list().await.map_err(PortError::from),
        shared.io.control.shards_status().await,
    ) {
        (Ok(all), Ok(rows)) => (all, rows),
        (Err(e), _) | (_, Err(e)) => {
            warn!(worker, error = %e, "cannot read leases or control rows");
            return false;
        }
    };
    !all.is_empty()
        && all.iter().all(|l| {
            if l.finished {
                return true;
            }
            if active.contains_key(&l.shard_id) {
                return true;
            }
            // Another worker's shard: held, and its consumer reports no lag for a while.
            l.is_held_by(l.owner.as_deref().unwrap_or_default(), now)
                && rows.iter().any(|r| {
                    r.shard_id == l.shard_id
                        && (r.wm == i64::MAX || (r.lag_ms == 0 && now - r.heartbeat_ms >= quiet_ms))
                })
        })
}

/// Finite mode: whether every shard is finished or has published `wm = i64::MAX`.
async fn all_ended(shared: &Shared, leases: &LeaseTable) -> bool {
    let (all, rows) = match (
        leases.list().await.map_err(PortError::from),
        shared.io.control.shards_status().await,
    ) {
        (Ok(all), Ok(rows)) => (all, rows),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot read leases or control rows");
            return false;
        }
    };
    all.iter().all(|l| {
        l.finished
            || rows
                .iter()
                .any(|r| r.shard_id == l.shard_id && (r.finished || r.wm == i64::MAX))
    })
}

/// Stops every shard task after its current batch (aborting those that take longer than
/// `grace`) and releases the leases.
async fn stop_all(
    leases: &LeaseTable,
    active: BTreeMap<String, Active>,
    worker: &str,
    grace: Duration,
) {
    for a in active.values() {
        a.flags.stop.store(true, Ordering::SeqCst);
    }
    for (shard, a) in active {
        let abort = a.handle.abort_handle();
        match tokio::time::timeout(grace, a.handle).await {
            Ok(Ok(Ok(exit))) => debug!(worker, shard, ?exit, "shard task ended"),
            Ok(Ok(Err(e))) => warn!(worker, shard, error = %e, "shard task failed while stopping"),
            Ok(Err(e)) => warn!(worker, shard, error = %e, "shard task panicked"),
            Err(_) => {
                // Safe: an interrupted batch is replayed from the checkpoint by the next owner.
                warn!(
                    worker,
                    shard, "shard task did not stop in time; aborting it"
                );
                abort.abort();
            }
        }
        match leases.release(a.lease).await {
            Ok(()) => debug!(worker, shard, "released lease"),
            Err(AwsError::Conflict { .. }) => debug!(worker, shard, "lease was taken over already"),
            Err(e) => warn!(worker, shard, error = %e, "cannot release lease"),
        }
    }
}

/// Consumes one shard until it ends, the lease is lost, it is asked to stop, or a batch
/// fails (the error is returned; the main loop restarts the shard from its checkpoint).
async fn run_shard(
    shared: Arc<Shared>,
    shard: ShardInfo,
    mut lease: Lease,
    flags: Arc<TaskFlags>,
) -> Result<TaskExit, RuntimeError> {
    let io = &shared.io;
    let mut consumer = match ShardConsumer::start(io, shared.spec.clone(), &shard, now_ms()).await {
        Ok(c) => c,
        Err(e) if is_conflict(&e) => return Ok(TaskExit::LeaseLost),
        Err(e) => return Err(e),
    };
    let mut reader = ShardReader::new(
        shared.clients.kinesis.clone(),
        &shared.stream,
        &shard.shard_id,
        StartPosition::from_checkpoint(&lease.checkpoint),
        ReaderConfig {
            limit: shared.batch_limit,
            ..ReaderConfig::default()
        },
    );
    loop {
        if flags.stop.load(Ordering::SeqCst) {
            return Ok(TaskExit::Stopped);
        }
        if flags.flushed.load(Ordering::SeqCst) {
            // The input has ended for this shard; wait to be stopped.
            tokio::time::sleep(shared.poll).await;
            continue;
        }
        if flags.end_input.load(Ordering::SeqCst) {
            match consumer.end_input(io, now_ms()).await {
                Ok(panes) => {
                    shared.figures.panes.fetch_add(panes, Ordering::Relaxed);
                    info!(shard = %shard.shard_id, panes, "end of input: fired everything");
                    flags.flushed.store(true, Ordering::SeqCst);
                    continue;
                }
                Err(e) if is_conflict(&e) => return Ok(TaskExit::LeaseLost),
                Err(e) => return Err(e),
            }
        }

        let batch = reader.next_batch().await?;
        let records: Vec<InputRecord> = batch
            .records
            .into_iter()
            .map(|r| InputRecord {
                sequence_number: r.sequence_number,
                partition_key: r.partition_key,
                data: r.data,
            })
            .collect();
        let lag = batch.millis_behind_latest.unwrap_or(0);
        let now = now_ms();
        let report = match consumer.process(io, &records, lag, now).await {
            Ok(r) => r,
            Err(e) if is_conflict(&e) => return Ok(TaskExit::LeaseLost),
            Err(e) => return Err(e),
        };
        let f = &shared.figures;
        f.records.fetch_add(report.records, Ordering::Relaxed);
        f.panes.fetch_add(report.panes, Ordering::Relaxed);
        f.late.fetch_add(report.late, Ordering::Relaxed);
        f.state_writes
            .fetch_add(report.state_writes, Ordering::Relaxed);
        f.state_bytes
            .fetch_add(report.state_bytes, Ordering::Relaxed);
        if let Some(ms) = report.pane_latency_ms {
            let us = (ms * 1e3) as u64;
            f.batches_with_panes.fetch_add(1, Ordering::Relaxed);
            f.latency_us_sum.fetch_add(us, Ordering::Relaxed);
            f.latency_us_max.fetch_max(us, Ordering::Relaxed);
        }
        if let Some(last) = records.last() {
            match shared
                .leases
                .checkpoint(&mut lease, &last.sequence_number)
                .await
            {
                Ok(()) => {}
                Err(AwsError::Conflict { .. }) => return Ok(TaskExit::LeaseLost),
                Err(e) => return Err(e.into()),
            }
            debug!(shard = %shard.shard_id, records = report.records, panes = report.panes,
                skipped = report.skipped, dead_letters = report.dead_letters, lag, "batch checkpointed");
        }
        if records.is_empty() && lag == 0 {
            let _ = flags.quiet_since_ms.compare_exchange(
                0,
                now.max(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        } else {
            flags.quiet_since_ms.store(0, Ordering::SeqCst);
        }
        if let Some(end) = batch.shard_end {
            consumer.finish(io, &end.child_shard_ids, now_ms()).await?;
            match shared.leases.finish(&mut lease).await {
                Ok(()) => {}
                Err(AwsError::Conflict { .. }) => return Ok(TaskExit::LeaseLost),
                Err(e) => return Err(e.into()),
            }
            info!(shard = %shard.shard_id, children = ?end.child_shard_ids, "shard end");
            return Ok(TaskExit::Finished);
        }
        if records.is_empty() {
            tokio::time::sleep(shared.poll).await;
        }
    }
}
