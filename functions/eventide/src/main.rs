//! `eventide`: run pipelines locally.
//!
//! * `eventide replay --pipeline P --input FILE --out DIR` runs a pipeline over files (JSON
//!   lines or CSV; plain, gzip or zip; with header and footer lines as `[input]` says).
//! * `eventide replay --sql Q.sql` runs a Flink SQL pipeline (its source and sink `'path'`
//!   options give the input and output unless `--input` / `--out` say otherwise).
//! * `eventide validate --pipeline P` checks a spec and prints what it will compute.
//! * `eventide explain P` prints the plan a SQL file (or a spec) compiles to, as a spec.
//! * `eventide bench --pipeline P --input FILE` measures events/s and peak memory.
//! * `eventide put --stream S --input FILE --key-field F` writes records into Kinesis.
//! * `eventide results --pipeline P --table T --out DIR` reads a results table back.
//! * `eventide status --name PIPELINE --prefix PREFIX` shows leases, watermarks and rates.

mod aws;
mod status;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use eventide_connectors::replay::{
    replay, replay_input, Execution, Input, ReplayOptions, ReplayReport,
};
use eventide_engine::PipelineSpec;
use eventide_sql::Pipeline;

#[derive(Parser)]
#[command(
    name = "eventide",
    version,
    about = "Eventide: Flink-grade stream processing on Kinesis, with no cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--execution` (see [`Execution`]).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExecutionArg {
    Auto,
    Streaming,
    /// The keys split by hash over threads (lanes), each reading the input decoded once.
    #[value(alias = "sharded")]
    Lanes,
    ByKey,
}

impl From<ExecutionArg> for Execution {
    fn from(e: ExecutionArg) -> Self {
        match e {
            ExecutionArg::Auto => Execution::Auto,
            ExecutionArg::Streaming => Execution::Streaming,
            ExecutionArg::Lanes => Execution::Lanes,
            ExecutionArg::ByKey => Execution::ByKey,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline over input files (events and TestStream control lines).
    Replay {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// The input in arrival order: a file, a directory (its files in name order), a
        /// glob, `s3://bucket/prefix/` (objects in key order), or `-` for stdin. Read as
        /// the spec's `[input]` says (format, compression, header and footer lines).
        /// Default: the SQL source table's `'path'`.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output directory: one file per aggregation, plus dead letters and late data.
        /// Default: the SQL sink tables' `'path'`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print a summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// A rules file (`[[rule]]` tables) replacing the spec's rules, reloaded when it
        /// changes; alerts go to `<out>/alerts.jsonl`.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// How to run: every way writes the same files. `by-key` (the default for a file
        /// whose sinks all write in key order) holds the input in memory; `lanes` (the
        /// default with rules; `sharded` is an alias) splits the keys over threads;
        /// `streaming` keeps only the state.
        #[arg(long, value_enum, default_value_t = ExecutionArg::Auto)]
        execution: ExecutionArg,
    },
    /// Check a pipeline spec and describe it.
    Validate {
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Print the plan a pipeline (SQL or TOML) compiles to, as a TOML spec, and describe it.
    Explain {
        /// The pipeline: `.sql` (Flink SQL) or `.toml` (a spec).
        file: PathBuf,
    },
    /// Measure replay throughput and peak memory (runs the replay in this process).
    Bench {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// The input (default: the SQL source table's `'path'`).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Where the outputs go (a scratch directory by default).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A rules file replacing the spec's rules. With rules, the bench also measures
        /// their cost per event: a run with rules only against a run with neither rules
        /// nor aggregations.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// How to run the replay (see `replay --execution`).
        #[arg(long, value_enum, default_value_t = ExecutionArg::Auto)]
        execution: ExecutionArg,
    },
    /// Write the records of input files into a Kinesis stream, in order.
    Put {
        #[arg(long)]
        stream: String,
        /// A file, a directory or a glob.
        #[arg(long)]
        input: PathBuf,
        /// Read the input as this pipeline's `[input]` says (CSV, zip, header and footer
        /// lines); without it, JSON lines (gzip or zip detected).
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// The field whose value is each record's partition key.
        #[arg(long)]
        key_field: String,
        /// Create the stream with this many shards first.
        #[arg(long)]
        create_shards: Option<i32>,
    },
    /// Read a pipeline's DynamoDB results table into the files `replay` writes.
    Results {
        #[arg(long)]
        pipeline: PathBuf,
        /// The results table (`<prefix>-results` for `eventide-consumer worker --prefix`).
        #[arg(long)]
        table: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Show a pipeline's shards: lease owners, checkpoints, watermarks, rates and lag.
    Status {
        /// The pipeline name (`eventide-consumer worker --name`).
        #[arg(long)]
        name: String,
        /// The table prefix: reads `<prefix>-control` and `<prefix>-leases`.
        #[arg(long)]
        prefix: String,
        /// Shards without new data for longer than this don't hold the global watermark.
        #[arg(long, default_value_t = 10_000)]
        idle_timeout_ms: i64,
    },
}

/// `--pipeline FILE` (TOML or SQL, by extension or content) or `--sql FILE`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct PipelineArg {
    /// The pipeline: a TOML spec, or Flink SQL (`.sql`, or text starting with CREATE, SET,
    /// INSERT, EXECUTE or BEGIN).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// A Flink SQL pipeline (the same as `--pipeline FILE.sql`).
    #[arg(long)]
    sql: Option<PathBuf>,
}

impl PipelineArg {
    /// The pipeline, refusing one that needs a decoder of its own (`'format' = 'custom'`),
    /// which `eventide` does not have: for `replay` and `bench`.
    fn load_runnable(&self) -> Result<Pipeline> {
        let p = self.load()?;
        if p.needs_decoder() {
            anyhow::bail!(
                "the pipeline's source has 'format' = 'custom': its records are decoded by a \
                 Decoder of your own (PipelineSpec::with_decoder), which `eventide` does not \
                 have; `eventide validate` checks it, a consumer binary built with \
                 eventide_consumer::main_with_decoder runs it"
            );
        }
        Ok(p)
    }

    fn load(&self) -> Result<Pipeline> {
        match (&self.pipeline, &self.sql) {
            (_, Some(sql)) => {
                let text = std::fs::read_to_string(sql)
                    .with_context(|| format!("cannot read SQL pipeline {}", sql.display()))?;
                // `--sql` is SQL whatever the file is called.
                let name = format!("{}.sql", sql.display());
                eventide_sql::load_pipeline_text(&name, &text).map_err(anyhow::Error::new)
            }
            (Some(p), None) => load_pipeline(p),
            (None, None) => anyhow::bail!("give --pipeline FILE or --sql FILE"),
        }
    }
}

fn load_pipeline(path: &Path) -> Result<Pipeline> {
    eventide_sql::load_pipeline(path).map_err(anyhow::Error::new)
}

fn load_spec(path: &Path) -> Result<PipelineSpec> {
    Ok(load_pipeline(path)?.spec)
}

/// `--input`, else the SQL source's `'path'`.
fn input_of(p: &Pipeline, input: Option<PathBuf>) -> Result<PathBuf> {
    input
        .or_else(|| p.input_path().map(PathBuf::from))
        .context("give --input (the pipeline names no source 'path')")
}

/// What each aggregation computes, a line each.
fn describe(spec: &PipelineSpec) -> Vec<String> {
    let mut lines = Vec::new();
    for a in &spec.aggregations {
        let keys: Vec<&str> = a
            .group_by
            .iter()
            .map(|&i| spec.input.fields[i].0.as_str())
            .collect();
        let aggs: Vec<&str> = a.aggregates.iter().map(|x| x.name.as_str()).collect();
        if matches!(a.window, eventide_engine::window::WindowSpec::Rows { .. }) {
            let cols: Vec<&str> = a.columns.iter().map(|c| c.name.as_str()).collect();
            lines.push(format!(
                "{}: partition by [{}], window {}, aggregates [{}], a row per input row when the \
                 watermark passes it, late at or before the key's last emitted time, columns \
                 [{}]{}",
                a.name,
                keys.join(", "),
                a.window,
                aggs.join(", "),
                cols.join(", "),
                if a.filter.is_some() { ", filtered" } else { "" },
            ));
            continue;
        }
        lines.push(format!(
            "{}: group by [{}], window {}, aggregates [{}], fires {}, allowed lateness {}, {}{}",
            a.name,
            keys.join(", "),
            a.window,
            aggs.join(", "),
            a.trigger,
            eventide_engine::duration::format_ms(a.allowed_lateness_ms),
            a.accumulation,
            if a.filter.is_some() { ", filtered" } else { "" },
        ));
    }
    lines
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs piped to a file or CI stay plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn print_report(r: &ReplayReport) {
    let secs = r.elapsed.as_secs_f64();
    eprintln!(
        "replayed {} lines ({} events, {} control) in {:.3} s: {:.0} events/s; {} dead letters",
        r.lines,
        r.events,
        r.controls,
        secs,
        r.events as f64 / secs.max(1e-9),
        r.dead_letters
    );
    for (name, panes, late) in &r.aggregations {
        eprintln!("  {name}: {panes} panes, {late} records too late");
    }
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Rule evaluation cost per event: the best of three runs with the rules only, minus the
/// best of three with neither rules nor aggregations (decoding and watermarks).
fn bench_rules(spec: PipelineSpec, input: &Path, out: &Path) -> Result<()> {
    let mut rules_only = spec;
    rules_only.aggregations.clear();
    let mut bare = rules_only.clone();
    bare.rules.clear();
    let best = |s: &PipelineSpec| -> Result<(f64, u64, u64)> {
        let mut best = (f64::MAX, 0, 0);
        for _ in 0..3 {
            let r = replay(s.clone(), input, out, &ReplayOptions::default())?;
            best.0 = best.0.min(r.elapsed.as_secs_f64());
            (best.1, best.2) = (r.events, r.alerts);
        }
        Ok(best)
    };
    let (with_rules, events, alerts) = best(&rules_only)?;
    let (without, _, _) = best(&bare)?;
    let per_event_ns = (with_rules - without).max(0.0) * 1e9 / (events.max(1) as f64);
    println!("rules: {}", rules_only.rules.len());
    println!("rule_alerts: {alerts}");
    println!("decode_and_watermark_seconds: {without:.3}");
    println!("rules_only_seconds: {with_rules:.3}");
    println!("rule_ns_per_event: {per_event_ns:.1}");
    Ok(())
}

fn main() -> Result<()> {
    init_logging();
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    };
    if matches!(
        cli.command,
        Command::Put { .. } | Command::Results { .. } | Command::Status { .. }
    ) {
        eventide_aws::config::check_environment().map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Put {
            stream,
            input,
            pipeline,
            key_field,
            create_shards,
        } => {
            let spec = pipeline.as_deref().map(load_spec).transpose()?;
            let n = runtime()?.block_on(aws::put(
                &stream,
                &input,
                spec.as_ref(),
                &key_field,
                create_shards,
            ))?;
            eprintln!("wrote {n} records to stream {stream}");
        }
        Command::Results {
            pipeline,
            table,
            out,
        } => {
            let spec = load_spec(&pipeline)?;
            let n = runtime()?.block_on(aws::results(&spec, &table, &out))?;
            eprintln!("read {n} panes from {table} into {}", out.display());
        }
        Command::Status {
            name,
            prefix,
            idle_timeout_ms,
        } => {
            runtime()?.block_on(status::status(&name, &prefix, idle_timeout_ms))?;
        }
        Command::Replay {
            pipeline,
            input,
            out,
            json,
            rules,
            execution,
        } => {
            let pipeline = pipeline.load_runnable()?;
            let input = input_of(&pipeline, input)?;
            let out = out
                .or_else(|| pipeline.out_dir().map(PathBuf::from))
                .context("give --out (the pipeline names no sink 'path')")?;
            let spec = pipeline.spec;
            let mut opts = ReplayOptions {
                progress: std::io::stderr().is_terminal(),
                rules_file: rules,
                execution: execution.into(),
                ..ReplayOptions::default()
            };
            if !spec.enrichments.is_empty() {
                // Local tables need no AWS: only S3 and Glue tables go through the adapters.
                opts.lookups = match eventide_connectors::tables::load_snapshot(&spec)
                    .context("loading the enrichment tables")?
                {
                    Some(snapshot) => snapshot,
                    None => {
                        let lookups = runtime()?
                            .block_on(eventide_aws::enrichment::Lookups::start(&spec))
                            .context("loading the enrichment tables")?;
                        if lookups.has_live() {
                            anyhow::bail!(
                                "replay cannot use a dynamodb enrichment (live lookups run in the consumer); \
                                 use a file, s3 or glue source"
                            );
                        }
                        lookups.snapshot()
                    }
                };
            }
            let s3 = input.to_str().filter(|i| i.starts_with("s3://"));
            let report = match s3 {
                Some(location) => {
                    eventide_aws::config::check_environment().map_err(anyhow::Error::msg)?;
                    let dir = std::env::temp_dir()
                        .join(format!("eventide-s3-input-{}", std::process::id()));
                    let files = runtime()?.block_on(aws::download(location, &dir))?;
                    let r = replay_input(spec, Input::Files(files), &out, &opts);
                    let _ = std::fs::remove_dir_all(&dir);
                    r
                }
                None => replay(spec, &input, &out, &opts),
            }
            .with_context(|| format!("replay of {} failed", input.display()))?;
            print_report(&report);
            if report.alerts > 0 {
                eprintln!(
                    "  {} alerts in {}",
                    report.alerts,
                    out.join("alerts.jsonl").display()
                );
            }
            if json {
                let aggs: Vec<String> = report
                    .aggregations
                    .iter()
                    .map(|(n, p, l)| format!("{{\"name\":{n:?},\"panes\":{p},\"late\":{l}}}"))
                    .collect();
                println!(
                    "{{\"lines\":{},\"events\":{},\"dead_letters\":{},\"seconds\":{:.3},\"aggregations\":[{}]}}",
                    report.lines,
                    report.events,
                    report.dead_letters,
                    report.elapsed.as_secs_f64(),
                    aggs.join(",")
                );
            }
            if report.events == 0 && report.dead_letters > 0 {
                anyhow::bail!(
                    "every line of {} is malformed ({} dead letters in {}): check [input] of the pipeline",
                    input.display(),
                    report.dead_letters,
                    out.join("dead_letters.jsonl").display()
                );
            }
        }
        Command::Validate { pipeline } => {
            let name = pipeline
                .pipeline
                .as_ref()
                .or(pipeline.sql.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let spec = pipeline.load()?.spec;
            println!("{name}: valid");
            for line in describe(&spec) {
                println!("  {line}");
            }
        }
        Command::Explain { file } => {
            let pipeline = load_pipeline(&file)?;
            println!("# {}: the plan, as a pipeline spec", file.display());
            if let eventide_sql::PipelineSource::Sql {
                source,
                out_dir,
                sinks,
                aws,
            } = &pipeline.source
            {
                println!(
                    "# source: connector {:?}{}{}",
                    source.connector,
                    source
                        .path
                        .as_ref()
                        .map(|p| format!(", path {p:?}"))
                        .unwrap_or_default(),
                    source
                        .stream
                        .as_ref()
                        .map(|s| format!(", stream {s:?}"))
                        .unwrap_or_default()
                );
                for s in sinks {
                    println!("# sink {}: connector {:?}", s.table, s.connector);
                }
                if let Some(d) = out_dir {
                    println!("# output directory: {d:?}");
                }
                for r in &aws.routes {
                    let to = match &r.sink {
                        eventide_sql::AwsSink::DynamoDb { table } => {
                            format!("results table {table:?}")
                        }
                        eventide_sql::AwsSink::S3 { path } => format!("the S3 panes in {path:?}"),
                        eventide_sql::AwsSink::Kinesis { stream } => format!("stream {stream:?}"),
                    };
                    println!(
                        "# on AWS: INSERT INTO {} writes to {to} only",
                        r.aggregation
                    );
                }
            }
            println!("{}", pipeline.toml.trim_end());
            println!();
            println!("# what it computes:");
            for line in describe(&pipeline.spec) {
                println!("#   {line}");
            }
        }
        Command::Bench {
            pipeline,
            input,
            out,
            rules,
            execution,
        } => {
            let pipeline = pipeline.load_runnable()?;
            let input = input_of(&pipeline, input)?;
            let mut spec = pipeline.spec;
            if let Some(path) = &rules {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read rules file {}", path.display()))?;
                spec.rules = eventide_engine::rules::parse_rules(&text, &spec.input)
                    .with_context(|| format!("invalid rules file {}", path.display()))?;
            }
            let out = out.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("eventide-bench-{}", std::process::id()))
            });
            let opts = ReplayOptions {
                execution: execution.into(),
                ..ReplayOptions::default()
            };
            let report = replay(spec.clone(), &input, &out, &opts)?;
            print_report(&report);
            let secs = report.elapsed.as_secs_f64();
            println!("events: {}", report.events);
            println!("seconds: {secs:.3}");
            println!(
                "events_per_second: {:.0}",
                report.events as f64 / secs.max(1e-9)
            );
            if let Some(mib) = peak_rss_mib() {
                println!("peak_rss_mib: {mib:.1}");
            }
            if !spec.rules.is_empty() {
                bench_rules(spec, &input, &out)?;
            }
        }
    }
    Ok(())
}
