//! The long-running worker on AWS: `eventide_runtime::worker` (the KCL-like loop that
//! balances shard leases and runs a consumer per held shard) with its ports wired to
//! Kinesis ([`KinesisSource`], GetRecords polling, or with [`WorkerConfig::efo_consumer`]
//! [`EfoSource`], enhanced fan-out), the lease table ([`LeaseTable`](crate::leases::LeaseTable)) and the consumer's
//! resources, stopped by SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use eventide_engine::PipelineSpec;
use eventide_ports::clock::{Clock, SystemClock};
use eventide_ports::source::ShardSource;
use eventide_runtime::shard::RuntimeError;
use eventide_runtime::worker::{run_worker as run, WorkerExit, WorkerPorts, WorkerSettings};
use thiserror::Error;
use tracing::info;

use crate::config::Clients;
use crate::consumer::resources::Resources;
use crate::kinesis::efo::{EfoConfig, EfoSource, DEFAULT_RESUBSCRIBE_AFTER};
use crate::kinesis::KinesisSource;
use crate::AwsError;

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
    /// The most user records one KPL aggregate may carry (a larger one is a dead letter).
    pub kpl_max_records: usize,
    /// Read through this enhanced fan-out consumer (registered if missing) with
    /// SubscribeToShard instead of polling GetRecords.
    pub efo_consumer: Option<String>,
    /// With enhanced fan-out, replace each subscription after this long (AWS ends one
    /// after 5 minutes); see [`EfoConfig::resubscribe_after`].
    pub efo_resubscribe_after: Duration,
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
            kpl_max_records: eventide_ports::kpl::DEFAULT_MAX_RECORDS,
            efo_consumer: None,
            efo_resubscribe_after: DEFAULT_RESUBSCRIBE_AFTER,
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
    format!("{host}-{}-{}", std::process::id(), SystemClock.now_ms())
}

/// The worker could not run.
#[derive(Debug, Error)]
pub enum WorkerError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Runs the worker (see `eventide_runtime::worker`) on AWS until the input ends (finite
/// mode), SIGTERM or Ctrl-C arrives, or the safety bound elapses.
///
/// # Errors
/// Creating the resources (with [`WorkerConfig::create`]), registering the enhanced
/// fan-out consumer (with [`WorkerConfig::efo_consumer`]), loading the enrichment tables
/// or the rules file.
///
/// # Cancel safety
/// Dropping the future is a crash: see `eventide_runtime::worker::run_worker`.
pub async fn run_worker_with(
    clients: &Clients,
    config: WorkerConfig,
) -> Result<WorkerExit, WorkerError> {
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
        io.lookups =
            Some(crate::enrichment::Lookups::start_with(&config.spec, clients.clone()).await?);
    }
    if let Some(url) = &config.rules_s3 {
        io.rules = Some(Arc::new(crate::rules::LiveRules::new(
            clients.s3.clone(),
            url,
            config.spec.input.clone(),
            Duration::from_millis(config.rules_poll_ms),
        )?));
    }
    let source: Arc<dyn ShardSource> = match &config.efo_consumer {
        Some(consumer) => Arc::new(
            EfoSource::register(clients.kinesis.clone(), &config.stream, consumer)
                .await?
                .with_config(EfoConfig {
                    resubscribe_after: config.efo_resubscribe_after,
                    kpl_max_records: config.kpl_max_records,
                    ..EfoConfig::default()
                }),
        ),
        None => Arc::new(
            KinesisSource::new(clients.kinesis.clone(), &config.stream)
                .with_kpl_max_records(config.kpl_max_records),
        ),
    };
    let ports = WorkerPorts {
        io,
        leases: Arc::new(config.resources.leases(clients, &config.pipeline)),
        source,
    };
    let settings = WorkerSettings {
        worker_id: config.worker_id.clone(),
        max_leases: config.max_leases,
        lease_ms: config.lease_ms,
        poll_ms: config.poll_ms,
        finite_quiet_ms: config.finite_quiet_ms,
        stop_after_ms: config.stop_after_ms,
        batch_limit: usize::try_from(config.batch_limit).unwrap_or(1),
    };
    info!(worker = %config.worker_id, pipeline = %config.pipeline, stream = %config.stream,
        efo = ?config.efo_consumer, "worker on AWS");
    Ok(run(
        ports,
        config.spec,
        settings,
        eventide_ports::signal::shutdown(),
    )
    .await?)
}
