//! `eventide replay`: runs a pipeline over a JSON-lines file with no AWS at all.
//!
//! Each line is an event or a TestStream-style control line. Panes go to one file per
//! aggregation under the output directory; malformed lines go to `dead_letters.jsonl` with
//! their line number and reason, and records later than the allowed lateness go to
//! `<aggregation>.late.jsonl`. A bad line never aborts the run. At the end of the input the
//! watermark goes to +∞ and every window fires.

use std::path::Path;
use std::time::{Duration, Instant};

use eventide_engine::pane::{Emit, Pane};
use eventide_engine::{Output, Pipeline, PipelineSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::ConnectorError;
use crate::sinks::dead_letter::{DeadLetter, LazyFile};
use crate::sinks::{open_file_sink, PaneSink};
use crate::sources::file::FileSource;
use crate::sources::LineSource;

/// Options of a replay run.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
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
    pub elapsed: Duration,
}

struct FileOutput {
    sinks: Vec<Box<dyn PaneSink>>,
    late: Vec<LazyFile>,
    panes: Vec<u64>,
    error: Option<ConnectorError>,
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
}

impl FileOutput {
    fn check(&mut self) -> Result<(), ConnectorError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Runs `spec` over `input`, writing results under `out_dir`.
pub fn replay(spec: PipelineSpec, input: &Path, out_dir: &Path, opts: &ReplayOptions) -> Result<ReplayReport, ConnectorError> {
    let started = Instant::now();
    std::fs::create_dir_all(out_dir).map_err(|source| ConnectorError::Write { path: out_dir.to_path_buf(), source })?;
    let mut src = FileSource::open(input)?;
    let mut sinks = Vec::with_capacity(spec.aggregations.len());
    let mut late = Vec::with_capacity(spec.aggregations.len());
    for agg in &spec.aggregations {
        sinks.push(open_file_sink(out_dir, &spec, agg)?);
        late.push(LazyFile::new(&out_dir.join(format!("{}.late.jsonl", agg.name))));
    }
    let names: Vec<String> = spec.aggregations.iter().map(|a| a.name.clone()).collect();
    let mut out = FileOutput { panes: vec![0; sinks.len()], sinks, late, error: None };
    let mut dead = LazyFile::new(&out_dir.join("dead_letters.jsonl"));
    let mut pipeline = Pipeline::new(spec);

    let bar = if opts.progress { progress_bar(src.progress().1) } else { ProgressBar::hidden() };
    let mut lines = 0u64;
    while let Some((n, line)) = src.next_line()? {
        lines += 1;
        if let Err(reason) = pipeline.process_line(line, "", &mut out) {
            dead.json(&DeadLetter { line: n, reason: reason.to_string(), raw: &String::from_utf8_lossy(line) })?;
        }
        if lines & 0xffff == 0 {
            out.check()?;
            bar.set_position(src.progress().0);
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
    dead.flush()?;
    let stats = pipeline.stats();
    Ok(ReplayReport {
        lines,
        events: stats.events,
        controls: stats.controls,
        dead_letters: dead.written,
        aggregations: names.into_iter().zip(out.panes.iter().copied()).zip(stats.late.iter().copied()).map(|((n, p), l)| (n, p, l)).collect(),
        elapsed: started.elapsed(),
    })
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})") {
        bar.set_style(style);
    }
    bar
}
