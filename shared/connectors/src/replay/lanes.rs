//! `--execution lanes` (formerly `sharded`): a key-ordered pipeline split by key hash over
//! lanes, one thread each. One thread reads and decodes the input once
//! ([`super::decoded`]) and hands every batch to every lane, so that all lanes see the same
//! watermarks; each lane aggregates only its share of the keys
//! ([`Pipeline::set_key_filter`]) into compact per-key buffers, which are merged in key
//! order at the end. Alerts are merged by time and late records by input position, so the
//! output is the same as a single-threaded run's. It is the default with rules, which
//! alert in time order across keys and so cannot run key by key.
//!
//! (A lane is a share of the keys within one replay; a shard is a Kinesis shard only.)

use std::hash::BuildHasher;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use eventide_engine::codec::Codec;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::record::Line;
use eventide_engine::rules::Alert;
use eventide_engine::time::ProcessingTime;
use eventide_engine::watermark::FutureGuard;
use eventide_engine::{Output, Pipeline, PipelineSpec};
use indicatif::ProgressBar;

use super::decoded::Batch;
use super::options::{ReplayOptions, ReplayReport};
use super::reader::progress_bar;
use crate::error::ConnectorError;
use crate::sinks::dead_letter::{DeadLetter, LazyFile};
use crate::sinks::open_row_writer;
use crate::sinks::ordered::{KeyBuffer, RowWriter};
use crate::sources::LineSource;

/// Most lanes a run is split over.
pub(super) const MAX_LANES: usize = 4;

/// The lane of `count` that `key` belongs to.
fn lane_of(key: &str, count: u64) -> u64 {
    (rustc_hash::FxBuildHasher.hash_one(key) >> 32) % count
}

/// What one lane of a key-ordered run produced.
struct LaneRun {
    stats: eventide_engine::pipeline::Stats,
    panes: Vec<u64>,
    buffers: Vec<KeyBuffer>,
    /// Per aggregation: the line number and text of each late record.
    late: Vec<Vec<(u64, Box<[u8]>)>>,
    alerts: Vec<Alert>,
}

/// The output of a lane: panes go to per-key buffers, late records are kept with their
/// line number so the lanes' lists can be merged in input order.
struct LaneOutput {
    buffers: Vec<KeyBuffer>,
    late: Vec<Vec<(u64, Box<[u8]>)>>,
    panes: Vec<u64>,
    line: u64,
    alerts: Vec<Alert>,
}

impl Emit for LaneOutput {
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

impl Output for LaneOutput {
    fn late(&mut self, aggregation: usize, raw: &[u8]) {
        self.late[aggregation].push((self.line, raw.into()));
    }

    fn alert(&mut self, alert: &Alert) {
        self.alerts.push(alert.clone());
    }
}

/// Runs lane `index` of `count` over the decoded input arriving in `batches`.
fn run_lane(
    spec: PipelineSpec,
    batches: Receiver<Arc<Batch>>,
    index: usize,
    count: usize,
) -> LaneRun {
    let n = spec.aggregations.len();
    let mut out = LaneOutput {
        buffers: spec
            .aggregations
            .iter()
            .map(|a| KeyBuffer::new(a.value_count()))
            .collect(),
        late: vec![Vec::new(); n],
        panes: vec![0; n],
        line: 0,
        alerts: Vec::new(),
    };
    let mut pipeline = Pipeline::new(spec);
    if count > 1 {
        let (index, count) = (index as u64, count as u64);
        pipeline.set_key_filter(move |key| lane_of(key, count) == index);
    }
    for batch in batches {
        batch.for_each(|line_no, raw, line| {
            out.line = line_no;
            // The decoding thread has sent future-dated events to the dead letters already.
            let _ = pipeline.process_decoded(line, raw, "", &mut out);
        });
    }
    pipeline.finish(&mut out);
    LaneRun {
        stats: pipeline.stats().clone(),
        panes: out.panes,
        buffers: out.buffers,
        late: out.late,
        alerts: out.alerts,
    }
}

/// Lines per decoded batch handed to the lanes.
const BATCH_LINES: usize = 4096;

/// Batches decoded ahead of the slowest lane.
const BATCHES_AHEAD: usize = 4;

/// What the decoding thread counted.
struct ReadCounts {
    lines: u64,
    dead_letters: u64,
}

/// Reads and decodes the input once, sending batches to every lane and malformed lines to
/// `dead_letters.jsonl`.
fn read_batches(
    codec: &Codec,
    guard: FutureGuard,
    wall_ms: i64,
    src: &mut dyn LineSource,
    out_dir: &Path,
    lanes: &[SyncSender<Arc<Batch>>],
    bar: &ProgressBar,
) -> Result<ReadCounts, ConnectorError> {
    let mut dead = LazyFile::new(&out_dir.join("dead_letters.jsonl"));
    let mut lines = 0u64;
    let mut batch = Batch::default();
    let send = |batch: Batch| {
        let batch = Arc::new(batch);
        // A lane stops receiving only by panicking, which the caller re-raises.
        lanes.iter().all(|tx| tx.send(Arc::clone(&batch)).is_ok())
    };
    // The processing time the future guard measures against, as the lanes' pipelines keep it.
    let mut time = ProcessingTime::new(Some(wall_ms));
    while let Some((line_no, raw)) = src.next_line()? {
        lines += 1;
        let bad = match codec.decode(raw).and_then(|line| match &line {
            Line::Event(rec) => time.check_future(&guard, rec.time).map(|()| line),
            _ => Ok(line),
        }) {
            // Ordered by their place in the whole input (line numbers restart per file).
            Ok(line) => {
                if let Line::AdvanceProcessingTime(t) = line {
                    time.advance(t);
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

/// Runs a key-ordered pipeline split by key over `lanes` threads, fed by one decoding
/// thread (this one).
pub(super) fn replay_lanes(
    spec: PipelineSpec,
    codec: &Codec,
    mut src: Box<dyn LineSource>,
    out_dir: &Path,
    opts: &ReplayOptions,
    lanes: usize,
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
        let (senders, handles): (Vec<_>, Vec<_>) = (0..lanes)
            .map(|i| {
                let (tx, rx) = sync_channel(BATCHES_AHEAD);
                let spec = spec.clone();
                (tx, s.spawn(move || run_lane(spec, rx, i, lanes)))
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
        let runs: Vec<LaneRun> = handles
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
    let mut buffers: Vec<Vec<KeyBuffer>> = (0..n).map(|_| Vec::with_capacity(lanes)).collect();
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
    // Alerts by time, then rule and key (the lanes fire in their own orders).
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
