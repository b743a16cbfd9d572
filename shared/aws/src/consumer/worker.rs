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
    /// The worker loop's settings: its id (by default [`default_worker_id`]), leases, polling,
    /// finite-input mode, safety bound and records per read.
    pub worker: WorkerSettings,
    /// A shard with no new data for this long stops holding the global watermark back.
    pub idle_timeout_ms: i64,
    /// Also write panes to this Kinesis stream.
    pub output_stream: Option<String>,
    /// Create the tables and the bucket first (tests, local demo).
    pub create: bool,
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
    /// Settings with the defaults of the `worker` command: those of [`WorkerSettings::new`]
    /// with [`default_worker_id`], idle after 10 s.
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
            worker: WorkerSettings::new(default_worker_id()),
            idle_timeout_ms: 10_000,
            output_stream: None,
            create: false,
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
    info!(worker = %config.worker.worker_id, pipeline = %config.pipeline, stream = %config.stream,
        efo = ?config.efo_consumer, "worker on AWS");
    Ok(run(
        ports,
        config.spec,
        config.worker,
        eventide_ports::signal::shutdown(),
    )
    .await?)
}
