//! `eventide replay`: runs a pipeline over input files with no AWS at all.
//!
//! The input is read by the file layer ([`crate::input`]: files, directories, globs, gzip,
//! zip, header and footer lines) and each record decoded by the pipeline's codec
//! ([`eventide_engine::codec`]: JSON lines, or CSV). A JSON record is an event or a
//! TestStream-style control line. Panes go to one file per
//! aggregation under the output directory; malformed lines go to `dead_letters.jsonl` with
//! their line number and reason, and records later than the allowed lateness go to
//! `<aggregation>.late.jsonl`. A bad line never aborts the run. At the end of the input the
//! watermark goes to +∞ and every window fires.
//!
//! When every sink writes in key order and the input is a file, the input is run one key at
//! a time (see [`crate::by_key`]); with rules, which alert in time order across keys, the
//! run is split by key over the machine's cores instead: each thread reads and decodes the whole input (so all see the
//! same watermarks) but aggregates only its share of the keys into compact per-key buffers,
//! which are merged in key order at the end. The output is the same as a single-threaded
//! run's.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventide_engine::codec::Codec;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::record::Line;
use eventide_engine::rules::Alert;
use eventide_engine::watermark::FutureGuard;
use eventide_engine::{Output, Pipeline, PipelineSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use eventide_engine::spec::SinkOrder;

use crate::decoded::Batch;
use crate::error::ConnectorError;
use crate::input::{is_plain, resolve, InputFile, InputSource};
use crate::sinks::dead_letter::{DeadLetter, LazyFile};
use crate::sinks::ordered::{KeyBuffer, RowWriter};
use crate::sinks::{open_file_sink, open_row_writer, PaneSink};
use crate::sources::file::FileSource;
use crate::sources::LineSource;

/// Options of a replay run.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// A rules file (`[[rule]]` tables) that replaces the spec's rules; a streaming run
    /// reloads it when it changes (see [`crate::rules_file`]).
    pub rules_file: Option<std::path::PathBuf>,
    /// The enrichment tables every record is joined with (loaded by the caller).
    pub lookups: eventide_engine::enrich::Snapshot,
    /// How the run is executed; every way writes the same files.
    pub execution: Execution,
    /// The processing time that `[watermark] max_future_skew` measures events against
    /// until the input gives its own with `advance_processing_time` lines; `None` is the
    /// wall clock when the run starts.
    pub wall_ms: Option<i64>,
}

impl ReplayOptions {
    /// [`ReplayOptions::wall_ms`], or the wall clock now.
    pub fn wall_ms(&self) -> i64 {
        self.wall_ms.unwrap_or_else(|| {
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }
}

/// How a replay runs. Every way writes the same bytes; they differ in speed and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Execution {
    /// Key by key when every sink writes in key order and the input is a file without rules;
    /// key-sharded threads when it has rules; one streaming thread otherwise.
    #[default]
    Auto,
    /// One thread, lines processed as they are read: memory bounded by the state (plus the
    /// rows of key-ordered sinks), and the only way for stdin.
    Streaming,
    /// Key-sharded threads, each reading the whole decoded input (see [`crate::decoded`]).
    Sharded,
    /// Key by key ([`crate::by_key`]): the fastest; holds the input file in memory.
    ByKey,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub lines: u64,
    pub events: u64,
    pub controls: u64,
    pub dead_letters: u64,
    /// Per aggregation: name, panes written, records dropped as too late.
    pub aggregations: Vec<(String, u64, u64)>,
    /// Rule alerts written to `alerts.jsonl`.
    pub alerts: u64,
    pub elapsed: Duration,
}

struct FileOutput {
    sinks: Vec<Box<dyn PaneSink + Send>>,
    late: Vec<LazyFile>,
    panes: Vec<u64>,
    error: Option<ConnectorError>,
    /// Rule alerts, as they fire.
    alerts: LazyFile,
}

impl Emit for FileOutput {
    #[inline]
    fn pane(&mut self, pane: &Pane<'_>) {
        self.panes[pane.aggregation] += 1;
        if let Err(e) = self.sinks[pane.aggregation].write(pane) {
            self.error.get_or_insert(e);
        }
    }
}

impl Output for FileOutput {
    fn late(&mut self, aggregation: usize, raw: &[u8]) {
        if let Err(e) = self.late[aggregation].raw_line(raw) {
            self.error.get_or_insert(e);
        }
    }

    fn alert(&mut self, alert: &Alert) {
        if let Err(e) = self.alerts.json(&alert.to_json()) {
            self.error.get_or_insert(e);
        }
    }
}

impl FileOutput {
    fn check(&mut self) -> Result<(), ConnectorError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What a replay reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input, streamed (plain lines only).
    Stdin,
    /// Files in order (see [`crate::input::resolve`]).
    Files(Vec<InputFile>),
}

/// How the records are read: one plain file (or stdin) streamed or split as it is, or
/// anything else through the file layer.
pub(crate) enum Reader {
    Plain(PathBuf),
    Framed(Box<InputSource>),
}

impl Reader {
    /// The reader as a source of lines.
    fn into_source(self, max_line: u64) -> Result<Box<dyn LineSource>, ConnectorError> {
        Ok(match self {
            Reader::Plain(path) => Box::new(FileSource::with_max_line(&path, max_line)?),
            Reader::Framed(src) => src,
        })
    }
}

/// Runs `spec` over `input` (`-` for stdin, a file, a directory or a glob), writing results
/// under `out_dir`.
pub fn replay(
    spec: PipelineSpec,
    input: &Path,
    out_dir: &Path,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ConnectorError> {
    let input = if input.as_os_str() == "-" {
        Input::Stdin
    } else {
        Input::Files(resolve(input)?)
    };
    replay_input(spec, input, out_dir, opts)
}

/// Runs `spec` over `input`, writing results under `out_dir`.
pub fn replay_input(
    spec: PipelineSpec,
    input: Input,
    out_dir: &Path,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ConnectorError> {
    let started = Instant::now();
    let mut spec = spec;
    if let Some(path) = &opts.rules_file {
        match crate::rules_file::RulesFile::new(path).poll(&spec.input) {
            Some(Ok(rules)) => spec.rules = rules,
            Some(Err(e)) => return Err(ConnectorError::Rules(e.to_string())),
            None => {}
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|source| ConnectorError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    clear_outputs(&spec, out_dir)?;
    let all_key_ordered = !spec.aggregations.is_empty()
        && spec
            .aggregations
            .iter()
            .all(|a| a.sink.order == SinkOrder::Key);
    let file = input != Input::Stdin;
    let csv_header = matches!(&spec.format, eventide_engine::spec::Format::Csv(c) if c.header);
    let reader = match input {
        Input::Stdin if !spec.files.is_plain() || csv_header => {
            return Err(ConnectorError::Unsupported(
                "stdin is read as plain lines: [input] compression, header_lines, footer and \
                 csv.header need a file"
                    .into(),
            ))
        }
        Input::Stdin => Reader::Plain(PathBuf::from("-")),
        Input::Files(files) => match files.as_slice() {
            [f] if is_plain(&files, &spec)? => Reader::Plain(f.path.clone()),
            _ => Reader::Framed(Box::new(InputSource::open(files, &spec)?)),
        },
    };
    let mut codec = Codec::new(&spec);
    if let Reader::Framed(src) = &reader {
        if let Some(columns) = src.csv_columns() {
            codec = codec.with_csv_columns(&spec, columns);
        }
    }
    codec.set_lookups(opts.lookups.clone());
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_SHARDS);
    let layout = eventide_engine::bounded::Layout::new(&spec);
    let execution = match opts.execution {
        Execution::Auto if all_key_ordered && file && layout.is_some() => Execution::ByKey,
        Execution::Auto if all_key_ordered && file && cores > 1 => Execution::Sharded,
        Execution::Auto => Execution::Streaming,
        Execution::ByKey | Execution::Sharded if !file => {
            return Err(ConnectorError::Unsupported(
                "only a file can be replayed key by key or sharded, not stdin".into(),
            ))
        }
        Execution::ByKey | Execution::Sharded if !all_key_ordered => {
            return Err(ConnectorError::Unsupported(
                "a key-by-key or sharded replay needs every sink to write in key order \
                 (sink.order = \"key\")"
                    .into(),
            ))
        }
        other => other,
    };
    if execution == Execution::ByKey {
        let layout = layout.ok_or_else(|| {
            ConnectorError::Unsupported(format!(
                "a pipeline with rules or more than {} aggregations can't run key by key",
                eventide_engine::bounded::MAX_AGGREGATIONS
            ))
        })?;
        return crate::by_key::replay_by_key(
            &spec, layout, &codec, reader, out_dir, opts, cores, started,
        );
    }
    let src = reader.into_source(spec.files.max_line_bytes)?;
    if execution == Execution::Sharded {
        replay_sharded(spec, &codec, src, out_dir, opts, cores.max(2), started)
    } else {
        replay_streaming(spec, codec, src, out_dir, opts, started)
    }
}

/// Removes every file this run may write in `out_dir`, so that nothing of an earlier run
/// (a `dead_letters.jsonl` this run has no reason to write) is mistaken for its output.
/// Files that no run of this pipeline writes are left alone.
fn clear_outputs(spec: &PipelineSpec, out_dir: &Path) -> Result<(), ConnectorError> {
    let mut names = vec!["dead_letters.jsonl".to_string(), "alerts.jsonl".to_string()];
    for a in &spec.aggregations {
        for ext in ["csv", "jsonl", "late.jsonl"] {
            names.push(format!("{}.{ext}", a.name));
        }
    }
    for name in names {
        let path = out_dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ConnectorError::Write { path, source: e })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Most threads a key-ordered run is split over.
const MAX_SHARDS: usize = 4;

/// Runs the whole pipeline on this thread, writing panes as sinks receive them.
fn replay_streaming(
    spec: PipelineSpec,
    codec: Codec,
    mut src: Box<dyn LineSource>,
    out_dir: &Path,
    opts: &ReplayOptions,
    started: Instant,
) -> Result<ReplayReport, ConnectorError> {
    let mut sinks = Vec::with_capacity(spec.aggregations.len());
    let mut late = Vec::with_capacity(spec.aggregations.len());
    for agg in &spec.aggregations {
        sinks.push(open_file_sink(out_dir, &spec, agg)?);
        late.push(LazyFile::new(
            &out_dir.join(format!("{}.late.jsonl", agg.name)),
        ));
    }
    let names: Vec<String> = spec.aggregations.iter().map(|a| a.name.clone()).collect();
    let mut out = FileOutput {
        panes: vec![0; sinks.len()],
        sinks,
        late,
        error: None,
        alerts: LazyFile::new(&out_dir.join("alerts.jsonl")),
    };
    let mut rules_file = opts.rules_file.as_deref().map(|p| {
        let mut f = crate::rules_file::RulesFile::new(p);
        let _ = f.poll(&spec.input); // loaded by `replay` already
        f
    });
    let mut dead = LazyFile::new(&out_dir.join("dead_letters.jsonl"));
    let mut pipeline = Pipeline::with_codec(spec, codec);
    pipeline.set_wall_clock(opts.wall_ms());

    let bar = if opts.progress {
        progress_bar(src.progress().1)
    } else {
        ProgressBar::hidden()
    };
    let mut lines = 0u64;
    while let Some((n, line)) = src.next_line()? {
        lines += 1;
        let done = pipeline.process_line(line, "", &mut out);
        if let Err(reason) = done.or_else(keep_dropped) {
            // Rare: copy the line so that the source can say where it is.
            let raw = line.to_vec();
            dead.json(&DeadLetter::new(n, reason.to_string(), &raw).at(src.location()))?;
        }
        if lines & 0xffff == 0 {
            out.check()?;
            bar.set_position(src.progress().0);
            if let Some(f) = rules_file.as_mut() {
                match f.poll(&pipeline.spec().input) {
                    Some(Ok(rules)) => {
                        let started = pipeline.set_rules(&rules);
                        tracing::info!(line = lines, ?started, "rules reloaded");
                    }
                    Some(Err(e)) => tracing::error!("{e}; the previous rules keep running"),
                    None => {}
                }
            }
        }
    }
    pipeline.finish(&mut out);
    out.check()?;
    bar.finish_and_clear();
    for s in out.sinks.iter_mut() {
        s.finish()?;
    }
    for l in out.late.iter_mut() {
        l.flush()?;
    }
    out.alerts.flush()?;
    dead.flush()?;
    let stats = pipeline.stats();
    Ok(ReplayReport {
        lines,
        events: stats.events,
        controls: stats.controls,
        dead_letters: dead.written,
        aggregations: names
            .into_iter()
            .zip(out.panes.iter().copied())
            .zip(stats.late.iter().copied())
            .map(|((n, p), l)| (n, p, l))
            .collect(),
        alerts: out.alerts.written,
        elapsed: started.elapsed(),
    })
}

/// What one shard of a key-ordered run produced.
struct ShardRun {
    stats: eventide_engine::pipeline::Stats,
    panes: Vec<u64>,
    buffers: Vec<KeyBuffer>,
    /// Per aggregation: the line number and text of each late record.
    late: Vec<Vec<(u64, Box<[u8]>)>>,
    alerts: Vec<Alert>,
}

/// The output of a shard: panes go to per-key buffers, late records are kept with their
/// line number so the shards' lists can be merged in input order.
struct ShardOutput {
    buffers: Vec<KeyBuffer>,
    late: Vec<Vec<(u64, Box<[u8]>)>>,
    panes: Vec<u64>,
    line: u64,
    alerts: Vec<Alert>,
}

impl Emit for ShardOutput {
    #[inline]
    fn pane(&mut self, pane: &Pane<'_>) {
        self.panes[pane.aggregation] += 1;
        self.buffers[pane.aggregation].push(pane);
    }

    #[inline]
    fn upcoming(&mut self, aggregation: usize, key_ids: &[u64]) {
        if let Some(b) = self.buffers.get(aggregation) {
            b.warm(key_ids);
        }
    }
}

impl Output for ShardOutput {
    fn late(&mut self, aggregation: usize, raw: &[u8]) {
        self.late[aggregation].push((self.line, raw.into()));
    }

    fn alert(&mut self, alert: &Alert) {
        self.alerts.push(alert.clone());
    }
}

/// Runs shard `index` of `count` over the decoded input arriving in `batches`.
fn run_shard(
    spec: PipelineSpec,
    batches: Receiver<Arc<Batch>>,
    index: usize,
    count: usize,
) -> ShardRun {
    let n = spec.aggregations.len();
    let mut out = ShardOutput {
        buffers: spec
            .aggregations
            .iter()
            .map(|a| KeyBuffer::new(a.aggregates.len()))
            .collect(),
        late: vec![Vec::new(); n],
        panes: vec![0; n],
        line: 0,
        alerts: Vec::new(),
    };
    let mut pipeline = Pipeline::sharded(spec, index, count);
    for batch in batches {
        batch.for_each(|line_no, raw, line| {
            out.line = line_no;
            // The decoding thread has sent future-dated events to the dead letters already.
            let _ = pipeline.process_decoded(line, raw, "", &mut out);
        });
    }
    pipeline.finish(&mut out);
    ShardRun {
        stats: pipeline.stats().clone(),
        panes: out.panes,
        buffers: out.buffers,
        late: out.late,
        alerts: out.alerts,
    }
}

/// Lines per decoded batch handed to the shards.
const BATCH_LINES: usize = 4096;

/// Batches decoded ahead of the slowest shard.
const BATCHES_AHEAD: usize = 4;

/// What the decoding thread counted.
struct ReadCounts {
    lines: u64,
    dead_letters: u64,
}

/// Reads and decodes the input once, sending batches to every shard and malformed lines to
/// `dead_letters.jsonl`.
fn read_batches(
    codec: &Codec,
    guard: FutureGuard,
    wall_ms: i64,
    src: &mut dyn LineSource,
    out_dir: &Path,
    shards: &[SyncSender<Arc<Batch>>],
    bar: &ProgressBar,
) -> Result<ReadCounts, ConnectorError> {
    let mut dead = LazyFile::new(&out_dir.join("dead_letters.jsonl"));
    let mut lines = 0u64;
    let mut batch = Batch::default();
    let send = |batch: Batch| {
        let batch = Arc::new(batch);
        // A shard stops receiving only by panicking, which the caller re-raises.
        shards.iter().all(|tx| tx.send(Arc::clone(&batch)).is_ok())
    };
    // Processing time for the future guard: the input's own once it gives one.
    let mut given: Option<i64> = None;
    while let Some((line_no, raw)) = src.next_line()? {
        lines += 1;
        let now = given.unwrap_or(wall_ms);
        let bad = match codec.decode(raw).and_then(|line| match &line {
            Line::Event(rec) => guard.check(rec.time, now).map(|()| line),
            _ => Ok(line),
        }) {
            // Ordered by their place in the whole input (line numbers restart per file).
            Ok(line) => {
                if let Line::AdvanceProcessingTime(t) = line {
                    given = Some(given.map_or(t, |g| g.max(t)));
                }
                batch.push(lines, raw, &line);
                None
            }
            // Dropped on purpose by an enrichment (`on_miss = "drop"`): not a dead letter.
            Err(eventide_engine::RecordError::Dropped(_)) => None,
            // Rare: copied, so that the source can then say where the line is.
            Err(reason) => Some((reason.to_string(), raw.to_vec())),
        };
        if let Some((reason, raw)) = bad {
            dead.json(&DeadLetter::new(line_no, reason, &raw).at(src.location()))?;
        }
        if batch.len() >= BATCH_LINES {
            if !send(std::mem::take(&mut batch)) {
                break;
            }
            bar.set_position(src.progress().0);
        }
    }
    if !batch.is_empty() {
        send(batch);
    }
    dead.flush()?;
    Ok(ReadCounts {
        lines,
        dead_letters: dead.written,
    })
}

/// Runs a key-ordered pipeline split by key over `shards` threads, fed by one decoding
/// thread (this one).
fn replay_sharded(
    spec: PipelineSpec,
    codec: &Codec,
    mut src: Box<dyn LineSource>,
    out_dir: &Path,
    opts: &ReplayOptions,
    shards: usize,
    started: Instant,
) -> Result<ReplayReport, ConnectorError> {
    let mut writers: Vec<Box<dyn RowWriter + Send>> = Vec::with_capacity(spec.aggregations.len());
    for agg in &spec.aggregations {
        writers.push(open_row_writer(out_dir, &spec, agg)?);
    }
    let bar = if opts.progress {
        progress_bar(src.progress().1)
    } else {
        ProgressBar::hidden()
    };
    let (read, runs) = std::thread::scope(|s| {
        let (senders, handles): (Vec<_>, Vec<_>) = (0..shards)
            .map(|i| {
                let (tx, rx) = sync_channel(BATCHES_AHEAD);
                let spec = spec.clone();
                (tx, s.spawn(move || run_shard(spec, rx, i, shards)))
            })
            .unzip();
        let read = read_batches(
            codec,
            spec.future_guard,
            opts.wall_ms(),
            src.as_mut(),
            out_dir,
            &senders,
            &bar,
        );
        drop(senders);
        let runs: Vec<ShardRun> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (read, runs)
    });
    let ReadCounts {
        lines,
        dead_letters,
    } = read?;
    bar.finish_and_clear();
    let n = spec.aggregations.len();
    let (events, controls) = runs
        .first()
        .map_or((0, 0), |r| (r.stats.events, r.stats.controls));
    let mut panes = vec![0u64; n];
    let mut late_counts = vec![0u64; n];
    let mut buffers: Vec<Vec<KeyBuffer>> = (0..n).map(|_| Vec::with_capacity(shards)).collect();
    let mut late: Vec<Vec<(u64, Box<[u8]>)>> = vec![Vec::new(); n];
    let mut alerts: Vec<Alert> = Vec::new();
    for mut run in runs {
        alerts.append(&mut run.alerts);
        for i in 0..n {
            panes[i] += run.panes.get(i).copied().unwrap_or(0);
            late_counts[i] += run.stats.late.get(i).copied().unwrap_or(0);
        }
        for (i, b) in run.buffers.into_iter().enumerate() {
            buffers[i].push(b);
        }
        for (i, l) in run.late.into_iter().enumerate() {
            late[i].extend(l);
        }
    }
    // Alerts by time, then rule and key (the shards fire in their own orders).
    alerts.sort_by(|a, b| (a.time, &a.rule, &a.key).cmp(&(b.time, &b.rule, &b.key)));
    let mut alerts_file = LazyFile::new(&out_dir.join("alerts.jsonl"));
    for a in &alerts {
        alerts_file.json(&a.to_json())?;
    }
    alerts_file.flush()?;
    // Late records in input order, as a single-threaded run writes them.
    for (agg, mut records) in spec.aggregations.iter().zip(late) {
        let mut file = LazyFile::new(&out_dir.join(format!("{}.late.jsonl", agg.name)));
        records.sort_by_key(|(line, _)| *line);
        for (_, raw) in &records {
            file.raw_line(raw)?;
        }
        file.flush()?;
    }
    // The sorted writes of the aggregations are independent: run them side by side.
    let written: Vec<Result<(), ConnectorError>> = std::thread::scope(|s| {
        let handles: Vec<_> = writers
            .into_iter()
            .zip(buffers)
            .map(|(mut w, b)| s.spawn(move || KeyBuffer::write_sorted(b, &mut *w)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    written.into_iter().collect::<Result<Vec<()>, _>>()?;
    let names = spec.aggregations.iter().map(|a| a.name.clone());
    Ok(ReplayReport {
        lines,
        events,
        controls,
        dead_letters,
        aggregations: names
            .zip(panes)
            .zip(late_counts)
            .map(|((n, p), l)| (n, p, l))
            .collect(),
        alerts: alerts_file.written,
        elapsed: started.elapsed(),
    })
}

/// A record an enrichment dropped on purpose (`on_miss = "drop"`) is not a dead letter.
fn keep_dropped(e: eventide_engine::RecordError) -> Result<(), eventide_engine::RecordError> {
    match e {
        eventide_engine::RecordError::Dropped(_) => Ok(()),
        e => Err(e),
    }
}

pub(crate) fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
    ) {
        bar.set_style(style);
    }
    bar
}
