//! `--execution streaming`: the whole pipeline on one thread, lines processed as they are
//! read; memory bounded by the state (plus the rows of key-ordered sinks). The only way for
//! stdin, and the default for sinks in firing order.

use std::path::Path;
use std::time::Instant;

use eventide_engine::codec::Codec;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::rules::Alert;
use eventide_engine::{Output, Pipeline, PipelineSpec};
use indicatif::ProgressBar;

use super::options::{ReplayOptions, ReplayReport};
use super::reader::progress_bar;
use crate::error::ConnectorError;
use crate::sinks::dead_letter::{DeadLetter, LazyFile};
use crate::sinks::{open_file_sink, PaneSink};
use crate::sources::LineSource;

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

/// Runs the whole pipeline on this thread, writing panes as sinks receive them.
pub(super) fn replay_streaming(
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

/// A record an enrichment dropped on purpose (`on_miss = "drop"`) is not a dead letter.
fn keep_dropped(e: eventide_engine::RecordError) -> Result<(), eventide_engine::RecordError> {
    match e {
        eventide_engine::RecordError::Dropped(_) => Ok(()),
        e => Err(e),
    }
}
