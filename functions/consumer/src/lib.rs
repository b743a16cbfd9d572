//! `eventide-consumer`: Eventide's shard consumer deployable.
//!
//! - `worker`: the long-running, KCL-like worker (ECS, EC2, a laptop): balances shard leases
//!   with other workers and consumes its shards exactly once.
//! - `tick`: puts one heartbeat into every open shard, so every shard's Lambda wakes up.
//! - `autoscale`: one autoscaler pass (or one every `--every`): reads the consumers' rates
//!   and lag from the control table and reshards with `UpdateShardCount` when they ask for it.
//! - `decision-table`: prints the autoscaler's decisions over the documented scenarios.
//! - `lambda`: the Lambda entry point. A Kinesis event (`{"Records": …}`) is consumed with
//!   `ReportBatchItemFailures` semantics; any other event (a schedule) ticks, or runs one
//!   autoscaler pass when `EVENTIDE_ROLE=autoscaler`.
//!
//! AWS endpoints, region and credentials come only from the SDK's standard environment.
//!
//! The binary is [`main`]. A consumer binary of your own, whose records are in a format you
//! decode in Rust, is [`main_with_decoder`] with your [`Decoder`]: the same commands, every
//! record decoded by it (see `examples/custom-decoder/consumer.rs`):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use eventide_engine::codec::Decoder;
//! # fn my_decoder() -> Arc<dyn Decoder> { unimplemented!() }
//! fn main() -> std::process::ExitCode {
//!     eventide_consumer::main_with_decoder(my_decoder())
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use aws_lambda_events::event::kinesis::KinesisEvent;
use clap::{Parser, Subcommand};

mod bench_aws;
use eventide_aws::config::Clients;
use eventide_aws::consumer::autoscaler::{run_pass, AutoscalerConfig};
use eventide_aws::consumer::lambda::Handler;
use eventide_aws::consumer::resources::{PaneDestination, PaneRoute, Resources, PANES_PREFIX};
use eventide_aws::consumer::worker::{default_worker_id, run_worker_with, WorkerConfig};
use eventide_aws::sdk::s3::S3Url;
use eventide_engine::codec::Decoder;
use eventide_engine::PipelineSpec;
use eventide_ports::clock::{Clock, SystemClock};
use eventide_ports::lease::InitialPosition;
use eventide_runtime::autoscale::ScalePolicy;
use eventide_runtime::worker::WorkerExit;
use eventide_sql::AwsSink;
use serde_json::Value;
use tokio::sync::OnceCell;

#[derive(Parser)]
#[command(
    name = "eventide-consumer",
    version,
    about = "Eventide's Kinesis shard consumer: worker, Lambda handler and heartbeat ticker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume a stream as one of a group of workers sharing the shards through leases.
    Worker {
        /// The pipeline: a TOML spec or Flink SQL (`.sql`).
        #[arg(long)]
        pipeline: PathBuf,
        /// The pipeline's name (key prefix in the state, lease and control tables).
        #[arg(long)]
        name: String,
        /// The input Kinesis stream (default: the SQL source table's `'stream'`).
        #[arg(long)]
        stream: Option<String>,
        /// The deployment prefix: tables `<prefix>-state|leases|control|results`, bucket `<prefix>-data`.
        #[arg(long)]
        prefix: String,
        /// This worker's id (default: hostname-pid-start time).
        #[arg(long)]
        worker_id: Option<String>,
        /// The most shards this worker consumes.
        #[arg(long, default_value_t = 1000)]
        max_leases: usize,
        /// How long a lease is held after each renewal, in ms.
        #[arg(long, default_value_t = 10_000)]
        lease_ms: i64,
        /// How often a shard without new records is polled, in ms.
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
        /// A shard with no new data for this long stops holding the watermark back, in ms.
        #[arg(long, default_value_t = 10_000)]
        idle_timeout_ms: i64,
        /// Also write fired panes to this Kinesis stream.
        #[arg(long)]
        output_stream: Option<String>,
        /// Where shards with no lease yet start: TRIM_HORIZON (the default), LATEST, or an
        /// RFC 3339 time (AT_TIMESTAMP). Overrides a SQL source's 'source.init.position'.
        /// Children of a shard already read always start at their oldest record.
        #[arg(long, value_name = "TRIM_HORIZON|LATEST|TIME")]
        initial_position: Option<String>,
        /// Create the tables and the bucket if they are missing.
        #[arg(long)]
        create: bool,
        /// Treat the stream as finite: once all shards are quiet this long, fire everything
        /// and exit 0.
        #[arg(long)]
        finite_quiet_ms: Option<u64>,
        /// Stop after this long whatever happens (exit 3 in finite mode).
        #[arg(long)]
        stop_after_ms: Option<u64>,
        /// The most records per GetRecords call.
        #[arg(long, default_value_t = 1000)]
        batch_limit: i32,
        /// Print every fired pane as a JSON line on stdout.
        #[arg(long)]
        print_panes: bool,
        /// A rules file in S3 (`s3://bucket/key`), hot-reloaded: checked by ETag every
        /// `--rules-poll-ms`, swapped in with no restart; an invalid file is rejected.
        #[arg(long)]
        rules_s3: Option<String>,
        /// How often the rules object is checked, in ms.
        #[arg(long, default_value_t = 10_000)]
        rules_poll_ms: u64,
        /// The most user records one KPL aggregated record may carry; a larger one goes to
        /// the dead letters (`EVENTIDE_KPL_MAX_RECORDS` under Lambda).
        #[arg(long, default_value_t = eventide_ports::kpl::DEFAULT_MAX_RECORDS)]
        kpl_max_records: usize,
        /// Read through this enhanced fan-out consumer of the stream (registered if it does
        /// not exist) with SubscribeToShard, instead of polling GetRecords: 2 MB/s per shard
        /// of its own, pushed (see docs/aws-runtime.md, "Enhanced fan-out").
        #[arg(long, env = "EVENTIDE_EFO_CONSUMER", value_name = "CONSUMER NAME")]
        efo: Option<String>,
        /// With --efo, replace each subscription after this long, in ms (AWS ends one after
        /// 5 minutes). For tests.
        #[arg(long, hide = true, default_value_t = eventide_aws::kinesis::efo::DEFAULT_RESUBSCRIBE_AFTER.as_millis() as u64)]
        efo_resubscribe_after_ms: u64,
    },
    /// Put one heartbeat record into every open shard of a stream.
    Tick {
        /// The stream.
        #[arg(long)]
        stream: String,
    },
    /// Run the autoscaler: read the consumers' load from the control table and reshard the
    /// stream (UpdateShardCount, UNIFORM_SCALING) when it asks for it. One pass, or one every
    /// `--every`.
    Autoscale {
        /// The pipeline's name (its partition of the control table).
        #[arg(long)]
        name: String,
        /// The deployment prefix (control table `<prefix>-control`).
        #[arg(long)]
        prefix: String,
        /// The stream to reshard.
        #[arg(long)]
        stream: String,
        /// Never fewer shards than this.
        #[arg(long, default_value_t = 1)]
        min_shards: u32,
        /// Never more shards than this.
        #[arg(long, default_value_t = 64)]
        max_shards: u32,
        /// Minimum time since the last call before scaling up (e.g. `5m`).
        #[arg(long, default_value = "5m")]
        cooldown_up: String,
        /// Minimum time since the last call before scaling down (e.g. `15m`).
        #[arg(long, default_value = "15m")]
        cooldown_down: String,
        /// Run a pass every this long (e.g. `1m`) until SIGTERM or Ctrl-C.
        #[arg(long)]
        every: Option<String>,
        /// Decide and print, but call and record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the autoscaler's decision table: its decisions over ramp, spike, flapping, lag,
    /// 24 h limit and bound scenarios (Markdown).
    DecisionTable,
    /// Run as an AWS Lambda function (configuration from EVENTIDE_* variables).
    Lambda,
    /// Measure the cost of the Kinesis path: the real shard consumer over in-memory ports
    /// that bill every request as DynamoDB and S3 would, with a latency per request. Prints
    /// requests and capacity units per 1,000 events, events/s, warm and cold invocations,
    /// and the cost per million events at 10 and 1,000 events/s (Markdown).
    BenchAws {
        /// The pipeline: a TOML spec or Flink SQL (`.sql`).
        #[arg(long)]
        pipeline: PathBuf,
        /// A workload of JSON lines (e.g. from `../shared/reference/gen.py`); repeat for
        /// several (e.g. 200 and 10,000 keys).
        #[arg(long, required = true)]
        input: Vec<PathBuf>,
        /// The field whose value is each record's partition key.
        #[arg(long, default_value = "subscriber_id")]
        key_field: String,
        /// Records per batch (GetRecords or Lambda batch size); comma-separated.
        #[arg(long, default_value = "100,1000,10000")]
        batches: String,
        /// Latency added to every request, in ms.
        #[arg(long, default_value_t = 5)]
        latency_ms: u64,
        /// Lambda memory, MB, for the duration cost.
        #[arg(long, default_value_t = 512)]
        lambda_memory_mb: u32,
        /// Lambda's MaximumBatchingWindowInSeconds: at a low rate, events per invocation are
        /// rate x window.
        #[arg(long, default_value_t = 1)]
        batching_window_s: u32,
    },
}

fn duration_ms(flag: &str, text: &str) -> Result<i64> {
    eventide_engine::duration::parse_ms(flag, text).with_context(|| format!("--{flag} {text:?}"))
}

/// A non-negative whole number from environment variable `name`, or `default` when unset.
fn env_u32(name: &str, default: u32) -> Result<u32> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// Logs to stderr: JSON lines under Lambda (CloudWatch), human-readable elsewhere.
/// `RUST_LOG` sets the filter (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder.json().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
}

/// A pipeline file, TOML or SQL (the loader every entry point shares).
fn load_pipeline(path: &Path) -> Result<eventide_sql::Pipeline> {
    eventide_sql::load_pipeline(path).map_err(anyhow::Error::new)
}

/// The pipeline spec at `path` (TOML or SQL), decoding with `decoder` when given.
fn load_spec(path: &Path, decoder: Option<&Arc<dyn Decoder>>) -> Result<PipelineSpec> {
    with_decoder(load_pipeline(path)?, decoder)
}

/// Sends each INSERT into an AWS sink table to that sink (a results table, the S3 panes,
/// an output stream), after checking what the consumer cannot move: the S3 pane location
/// and the region. The other aggregations keep the default sinks.
fn aws_sinks(pipeline: &eventide_sql::Pipeline, resources: &mut Resources) -> Result<()> {
    let sinks = pipeline.aws_sinks();
    let region = std::env::var("AWS_REGION").ok();
    sinks
        .check(&resources.bucket, PANES_PREFIX, region.as_deref())
        .map_err(anyhow::Error::msg)?;
    resources.routes = sinks
        .routes
        .into_iter()
        .map(|r| PaneRoute {
            aggregation: r.aggregation,
            to: match r.sink {
                AwsSink::DynamoDb { table } => PaneDestination::ResultsTable(table),
                AwsSink::S3 { .. } => PaneDestination::Panes,
                AwsSink::Kinesis { stream } => PaneDestination::Stream(stream),
            },
        })
        .collect();
    Ok(())
}

/// Checks a SQL source's start position against the Lambda event source mapping's
/// (`EVENTIDE_STARTING_POSITION`, set by the template from its `StartingPosition` and
/// `StartingPositionTimestamp` parameters; `TRIM_HORIZON` when unset): under Lambda the
/// mapping, not the function, chooses where the shards start.
fn lambda_starting_position(pipeline: &eventide_sql::Pipeline) -> Result<()> {
    let Some(start) = pipeline.init_position().map(|(p, ms)| (p.to_string(), ms)) else {
        return Ok(());
    };
    let want = sql_initial_position(&Some(start))?;
    let mapping =
        std::env::var("EVENTIDE_STARTING_POSITION").unwrap_or_else(|_| "TRIM_HORIZON".to_string());
    // The template gives AT_TIMESTAMP in epoch seconds.
    let have = match mapping.strip_prefix("AT_TIMESTAMP:") {
        Some(secs) => secs
            .parse::<f64>()
            .ok()
            .map(|s| InitialPosition::AtTimestamp((s * 1000.0).round() as i64)),
        None => InitialPosition::of_checkpoint(&mapping),
    };
    if have != Some(want) {
        bail!(
            "the pipeline's source starts at {} and the Lambda event source mapping at \
             {mapping} (EVENTIDE_STARTING_POSITION): set the template's StartingPosition \
             (and StartingPositionTimestamp, in epoch seconds) to match",
            want.checkpoint()
        );
    }
    Ok(())
}

/// `--initial-position`: `TRIM_HORIZON`, `LATEST` or an RFC 3339 time.
fn parse_initial_position(text: &str) -> Result<InitialPosition> {
    Ok(match text {
        "TRIM_HORIZON" => InitialPosition::TrimHorizon,
        "LATEST" => InitialPosition::Latest,
        t => InitialPosition::AtTimestamp(eventide_engine::record::parse_rfc3339(t).with_context(
            || format!("--initial-position {t:?}: give TRIM_HORIZON, LATEST or an RFC 3339 time"),
        )?),
    })
}

/// The start position a SQL source names (`TRIM_HORIZON` when it names none).
fn sql_initial_position(start: &Option<(String, Option<i64>)>) -> Result<InitialPosition> {
    Ok(match start {
        None => InitialPosition::TrimHorizon,
        Some((p, ms)) => match (p.as_str(), ms) {
            ("TRIM_HORIZON", _) => InitialPosition::TrimHorizon,
            ("LATEST", _) => InitialPosition::Latest,
            ("AT_TIMESTAMP", Some(ms)) => InitialPosition::AtTimestamp(*ms),
            _ => bail!("the source's start position {p:?} is not supported"),
        },
    })
}

/// The pipeline's spec, decoding with `decoder` when given.
///
/// # Errors
///
/// A SQL source with `'format' = 'custom'` and no decoder: its records have no built-in
/// format.
fn with_decoder(
    pipeline: eventide_sql::Pipeline,
    decoder: Option<&Arc<dyn Decoder>>,
) -> Result<PipelineSpec> {
    match decoder {
        Some(d) => Ok(pipeline.spec.with_decoder(d.clone())),
        None if pipeline.needs_decoder() => bail!(
            "the pipeline's source has 'format' = 'custom': its records are decoded by a \
             Decoder of your own, so run it with a consumer binary built with \
             eventide_consumer::main_with_decoder"
        ),
        None => Ok(pipeline.spec),
    }
}

/// `eventide-consumer`: parses the command line and runs the command (the binary's
/// `main`).
pub fn main() -> ExitCode {
    run_main(None)
}

/// [`main`] for a consumer binary of your own: every command decodes each record with
/// `decoder` instead of the spec's `[input] format` (see
/// [`PipelineSpec::with_decoder`]); leases, checkpoints, exactly-once positions, KPL
/// de-aggregation and dead letters work as for the built-in formats.
pub fn main_with_decoder(decoder: Arc<dyn Decoder>) -> ExitCode {
    run_main(Some(decoder))
}

fn run_main(decoder: Option<Arc<dyn Decoder>>) -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, decoder)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, decoder: Option<Arc<dyn Decoder>>) -> Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Worker { .. } | Command::Tick { .. } | Command::Autoscale { .. }
    ) {
        eventide_aws::config::check_environment().map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Worker {
            pipeline,
            name,
            stream,
            prefix,
            worker_id,
            max_leases,
            lease_ms,
            poll_ms,
            idle_timeout_ms,
            output_stream,
            initial_position,
            create,
            finite_quiet_ms,
            stop_after_ms,
            batch_limit,
            print_panes,
            rules_s3,
            rules_poll_ms,
            kpl_max_records,
            efo,
            efo_resubscribe_after_ms,
        } => {
            let pipeline = load_pipeline(&pipeline)?;
            let stream = stream
                .or_else(|| pipeline.stream().map(str::to_string))
                .context("give --stream (the pipeline names no kinesis source 'stream')")?;
            if let (Some(want), Ok(have)) = (pipeline.region(), std::env::var("AWS_REGION")) {
                if want != have {
                    bail!(
                        "the pipeline's source is in 'aws.region' = '{want}', and the consumer \
                         runs against {have} (AWS_REGION); set AWS_REGION={want}"
                    );
                }
            }
            let mut resources = Resources::from_prefix(&prefix);
            aws_sinks(&pipeline, &mut resources)?;
            let pipeline_start = pipeline.init_position().map(|(p, ms)| (p.to_string(), ms));
            let spec = with_decoder(pipeline, decoder.as_ref())?;
            let mut config = WorkerConfig::new(name, spec, stream, resources);
            config.worker.worker_id = worker_id.unwrap_or_else(default_worker_id);
            config.worker.max_leases = max_leases;
            config.worker.lease_ms = lease_ms;
            config.worker.poll_ms = poll_ms;
            config.idle_timeout_ms = idle_timeout_ms;
            config.output_stream = output_stream;
            config.create = create;
            config.worker.finite_quiet_ms = finite_quiet_ms;
            config.worker.stop_after_ms = stop_after_ms;
            config.worker.batch_limit = usize::try_from(batch_limit).unwrap_or(1);
            config.worker.initial_position = match initial_position {
                Some(p) => parse_initial_position(&p)?,
                None => sql_initial_position(&pipeline_start)?,
            };
            config.print_panes = print_panes;
            config.rules_s3 = rules_s3;
            config.rules_poll_ms = rules_poll_ms;
            config.kpl_max_records = kpl_max_records;
            config.efo_consumer = efo.filter(|name| !name.is_empty());
            config.efo_resubscribe_after =
                std::time::Duration::from_millis(efo_resubscribe_after_ms);
            let finite = finite_quiet_ms.is_some();
            let clients = Clients::from_env().await;
            let exit = run_worker_with(&clients, config)
                .await
                .context("worker failed")?;
            Ok(match exit {
                WorkerExit::Deadline if finite => ExitCode::from(3),
                _ => ExitCode::SUCCESS,
            })
        }
        Command::Tick { stream } => {
            let clients = Clients::from_env().await;
            let n = eventide_aws::consumer::ticker::tick(&clients, &stream)
                .await
                .with_context(|| format!("ticking stream {stream}"))?;
            println!("{n}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Autoscale {
            name,
            prefix,
            stream,
            min_shards,
            max_shards,
            cooldown_up,
            cooldown_down,
            every,
            dry_run,
        } => {
            if min_shards == 0 || min_shards > max_shards {
                bail!("--min-shards {min_shards} must be at least 1 and at most --max-shards {max_shards}");
            }
            let config = AutoscalerConfig {
                pipeline: name,
                stream,
                resources: Resources::from_prefix(&prefix),
                policy: ScalePolicy {
                    min_shards,
                    max_shards,
                    cooldown_up_ms: duration_ms("cooldown-up", &cooldown_up)?,
                    cooldown_down_ms: duration_ms("cooldown-down", &cooldown_down)?,
                    ..ScalePolicy::default()
                },
                dry_run,
            };
            let every = every.map(|e| duration_ms("every", &e)).transpose()?;
            autoscale(&config, every).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DecisionTable => {
            print!(
                "{}",
                eventide_runtime::autoscale::scenarios::decision_table()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Lambda => {
            run_lambda(decoder).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchAws {
            pipeline,
            input,
            key_field,
            batches,
            latency_ms,
            lambda_memory_mb,
            batching_window_s,
        } => {
            let spec = load_spec(&pipeline, decoder.as_ref())?;
            let batches: Vec<usize> = batches
                .split(',')
                .map(|b| {
                    b.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--batches: {b:?} is not a number"))
                })
                .collect::<Result<_>>()?;
            let settings = bench_aws::Settings {
                latency: std::time::Duration::from_millis(latency_ms),
                lambda_gb: f64::from(lambda_memory_mb) / 1024.0,
                batching_window_s: f64::from(batching_window_s),
            };
            print!(
                "{}",
                bench_aws::run(&spec, &input, &key_field, &batches, &settings).await?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One autoscaler pass, or one every `every_ms` until a signal (a failed pass is logged and
/// the loop goes on).
async fn autoscale(config: &AutoscalerConfig, every_ms: Option<i64>) -> Result<()> {
    let clients = Clients::from_env().await;
    let Some(every_ms) = every_ms else {
        let pass = run_pass(&clients, config, SystemClock.now_ms())
            .await
            .with_context(|| format!("autoscaling stream {}", config.stream))?;
        print!("{pass}");
        return Ok(());
    };
    let period = std::time::Duration::from_millis(every_ms.max(1000) as u64);
    loop {
        match run_pass(&clients, config, SystemClock.now_ms()).await {
            Ok(pass) => print!("{pass}"),
            Err(e) => tracing::warn!(stream = %config.stream, error = %e, "autoscaler pass failed"),
        }
        tokio::select! {
            _ = eventide_ports::signal::shutdown() => return Ok(()),
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// The autoscaler of a Lambda function with `EVENTIDE_ROLE=autoscaler`: `EVENTIDE_NAME`,
/// `EVENTIDE_PREFIX`, `EVENTIDE_STREAM`, and optionally `EVENTIDE_MIN_SHARDS` (1) and
/// `EVENTIDE_MAX_SHARDS` (64).
fn lambda_autoscaler() -> Result<AutoscalerConfig> {
    let min_shards = env_u32("EVENTIDE_MIN_SHARDS", 1)?;
    let max_shards = env_u32("EVENTIDE_MAX_SHARDS", 64)?;
    if min_shards == 0 || min_shards > max_shards {
        bail!("EVENTIDE_MIN_SHARDS={min_shards} must be at least 1 and at most EVENTIDE_MAX_SHARDS={max_shards}");
    }
    Ok(AutoscalerConfig {
        pipeline: env("EVENTIDE_NAME")?,
        stream: env("EVENTIDE_STREAM")?,
        resources: Resources::from_prefix(&env("EVENTIDE_PREFIX")?),
        policy: ScalePolicy {
            min_shards,
            max_shards,
            ..ScalePolicy::default()
        },
        dry_run: false,
    })
}

// ---------------------------------------------------------------------------------------
// Lambda
// ---------------------------------------------------------------------------------------

/// What a Lambda container keeps between invocations.
struct LambdaState {
    clients: Clients,
    /// The consumer, built on the first Kinesis event (the ticker needs no pipeline).
    handler: OnceCell<Handler>,
    /// A decoder of a consumer binary's own ([`main_with_decoder`]).
    decoder: Option<Arc<dyn Decoder>>,
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("environment variable {name} is not set"))
}

/// The pipeline from `EVENTIDE_PIPELINE_FILE` (a path in the package) or
/// `EVENTIDE_PIPELINE_S3` (`s3://bucket/key`): a TOML spec, or Flink SQL (`.sql`).
async fn lambda_pipeline(clients: &Clients) -> Result<eventide_sql::Pipeline> {
    if let Ok(path) = std::env::var("EVENTIDE_PIPELINE_FILE") {
        return load_pipeline(Path::new(&path));
    }
    let url = env("EVENTIDE_PIPELINE_S3")
        .context("set EVENTIDE_PIPELINE_FILE or EVENTIDE_PIPELINE_S3")?;
    let location = S3Url::object(&url).context("EVENTIDE_PIPELINE_S3")?;
    let object = clients
        .s3
        .get_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?;
    let bytes = object
        .body
        .collect()
        .await
        .with_context(|| format!("reading {url}"))?
        .into_bytes();
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{url} is not UTF-8"))?;
    eventide_sql::load_pipeline_text(&url, text).map_err(anyhow::Error::new)
}

/// Builds the consumer from `EVENTIDE_NAME`, `EVENTIDE_PREFIX`, the pipeline variables and
/// optionally `EVENTIDE_OUTPUT_STREAM`, `EVENTIDE_IDLE_TIMEOUT_MS` (default 10 s) and
/// `EVENTIDE_KPL_MAX_RECORDS` (default 100,000 user records per KPL aggregate).
async fn lambda_handler(clients: &Clients, decoder: Option<&Arc<dyn Decoder>>) -> Result<Handler> {
    let pipeline = lambda_pipeline(clients).await?;
    let name = env("EVENTIDE_NAME")?;
    let mut resources = Resources::from_prefix(&env("EVENTIDE_PREFIX")?);
    let output = std::env::var("EVENTIDE_OUTPUT_STREAM").ok();
    aws_sinks(&pipeline, &mut resources)?;
    lambda_starting_position(&pipeline)?;
    let spec = with_decoder(pipeline, decoder)?;
    let idle_timeout_ms = match std::env::var("EVENTIDE_IDLE_TIMEOUT_MS") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("EVENTIDE_IDLE_TIMEOUT_MS={v:?}"))?,
        Err(_) => 10_000,
    };
    let mut io = resources.io(clients, &name, output.as_deref(), idle_timeout_ms);
    if !spec.enrichments.is_empty() {
        io.lookups = Some(
            eventide_aws::enrichment::Lookups::start_with(&spec, clients.clone())
                .await
                .context("loading the enrichment tables")?,
        );
    }
    if let Ok(url) = std::env::var("EVENTIDE_RULES_S3") {
        let poll_ms = match std::env::var("EVENTIDE_RULES_POLL_MS") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("EVENTIDE_RULES_POLL_MS={v:?}"))?,
            Err(_) => 10_000,
        };
        io.rules = Some(Arc::new(
            eventide_aws::rules::LiveRules::new(
                clients.s3.clone(),
                &url,
                spec.input.clone(),
                std::time::Duration::from_millis(poll_ms),
            )
            .context("EVENTIDE_RULES_S3")?,
        ));
    }
    let kpl_max_records = env_u32(
        "EVENTIDE_KPL_MAX_RECORDS",
        u32::try_from(eventide_ports::kpl::DEFAULT_MAX_RECORDS).unwrap_or(u32::MAX),
    )?;
    Ok(Handler::new(io, spec, name, clients.clone())
        .with_kpl_max_records(usize::try_from(kpl_max_records).unwrap_or(usize::MAX)))
}

/// One invocation: a Kinesis event is consumed; anything else (a schedule) runs one
/// autoscaler pass when `EVENTIDE_ROLE=autoscaler`, and otherwise ticks `EVENTIDE_STREAM`.
async fn invoke(state: &LambdaState, payload: Value) -> Result<Value> {
    if payload.get("Records").is_some_and(Value::is_array) {
        let event: KinesisEvent = serde_json::from_value(payload).context("not a Kinesis event")?;
        let handler = state
            .handler
            .get_or_try_init(|| lambda_handler(&state.clients, state.decoder.as_ref()))
            .await?;
        let response = eventide_aws::consumer::lambda::handle(event, handler).await;
        serde_json::to_value(response).context("serializing the response")
    } else if std::env::var("EVENTIDE_ROLE").is_ok_and(|r| r == "autoscaler") {
        let config = lambda_autoscaler()?;
        let pass = run_pass(&state.clients, &config, SystemClock.now_ms())
            .await
            .with_context(|| format!("autoscaling stream {}", config.stream))?;
        Ok(pass.to_json())
    } else {
        let stream = env("EVENTIDE_STREAM")?;
        let n = eventide_aws::consumer::ticker::tick(&state.clients, &stream)
            .await
            .with_context(|| format!("ticking stream {stream}"))?;
        Ok(serde_json::json!({ "heartbeats": n }))
    }
}

async fn run_lambda(decoder: Option<Arc<dyn Decoder>>) -> Result<()> {
    let state = Rc::new(LambdaState {
        clients: Clients::from_env().await,
        handler: OnceCell::new(),
        decoder,
    });
    let service = lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| {
        let state = state.clone();
        async move {
            invoke(&state, event.payload)
                .await
                .map_err(|e| format!("{e:#}"))
        }
    });
    lambda_runtime::run(service)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the Lambda runtime stopped")
}
