//! A running pipeline: decodes records, routes them to each aggregation's window operator
//! ([`crate::route`]), advances watermarks and processing time ([`crate::time`]), and hands
//! fired panes to an [`Output`].
//!
//! The same `Pipeline` runs in `eventide replay`, in the Kinesis worker and in Lambda; only
//! where lines come from and where panes go differ.
//!
//! ```
//! use eventide_engine::pipeline::{Output, Pipeline};
//! use eventide_engine::pane::{Emit, Pane};
//! use eventide_engine::spec::PipelineSpec;
//!
//! #[derive(Default)]
//! struct Recorder(Vec<(String, i64, Option<f64>)>);
//! impl Emit for Recorder {
//!     fn pane(&mut self, p: &Pane<'_>) { self.0.push((p.key.to_string(), p.window.start, p.values[0])); }
//! }
//! impl Output for Recorder {
//!     fn late(&mut self, _aggregation: usize, _raw: &[u8]) {}
//! }
//!
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { k = "string", v = "number" }
//!     [[aggregation]]
//!     name = "sums"
//!     group_by = ["k"]
//!     window = { type = "tumbling", size = "10ms" }
//!     aggregates = [{ name = "sum", fn = "sum", field = "v" }]
//! "#).unwrap();
//! let mut p = Pipeline::new(spec);
//! let mut out = Recorder::default();
//! for line in [r#"{"k":"a","v":1,"t":1}"#, r#"{"k":"a","v":2,"t":5}"#, r#"{"k":"a","v":4,"t":12}"#] {
//!     p.process_line(line.as_bytes(), "", &mut out).unwrap();
//! }
//! p.finish(&mut out);
//! assert_eq!(out.0, vec![("a".into(), 0, Some(3.0)), ("a".into(), 10, Some(4.0))]);
//! ```

use smallvec::SmallVec;

use crate::codec::Codec;
use crate::error::{RecordError, StateError};
use crate::key::encode_key;
use crate::operator::{family, Admit, Ctx, WindowOperator};
use crate::pane::Emit;
use crate::record::{Line, Record, Value};
use crate::route::Routes;
use crate::spec::model::{PipelineSpec, WatermarkSpec};
use crate::time::{Clock, Control, Moved};
use crate::watermark::{WatermarkTracker, WM_MAX};

/// Where a pipeline's results go: fired panes, and records dropped as too late.
pub trait Output: Emit {
    /// A record later than the allowed lateness of every window of `aggregation` it falls in.
    fn late(&mut self, aggregation: usize, raw: &[u8]);

    /// A record `aggregation` could not keep for `reason` (a bound of `[limits]` that the
    /// reason names). By default it goes where late records go.
    fn refused(&mut self, aggregation: usize, raw: &[u8], reason: &str) {
        let _ = reason;
        self.late(aggregation, raw);
    }

    /// A rule's alert (see [`crate::rules`]). Ignored by default.
    fn alert(&mut self, alert: &crate::rules::Alert) {
        let _ = alert;
    }
}

/// Counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub controls: u64,
    /// Records dropped as too late (or refused by a bound), per aggregation.
    pub late: Vec<u64>,
}

/// Which keys a pipeline keeps state for (see [`Pipeline::set_key_filter`]).
type KeyFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// A pipeline instance with its state.
pub struct Pipeline {
    spec: PipelineSpec,
    /// Decodes records and adds the enrichments' columns.
    codec: Codec,
    routes: Routes,
    ops: Vec<Box<dyn WindowOperator>>,
    /// Processing time and the watermark.
    clock: Clock,
    key: String,
    stats: Stats,
    /// Only keys it accepts get state here (all without one).
    keep: Option<KeyFilter>,
    /// The running rules and their per-key state.
    rules: crate::rules::Rules,
}

impl Pipeline {
    /// Builds a pipeline with empty state.
    pub fn new(spec: PipelineSpec) -> Self {
        let codec = Codec::new(&spec);
        Pipeline::with_codec(spec, codec)
    }

    /// Builds a pipeline with empty state that decodes with `codec` (e.g. a format of your
    /// own, [`Codec::with_decoder`]).
    pub fn with_codec(spec: PipelineSpec, codec: Codec) -> Self {
        let spec_rules = spec.rules.clone();
        let routes = Routes::new(&spec);
        let ops = spec
            .aggregations
            .iter()
            .enumerate()
            .map(|(i, a)| family::build(i, a))
            .collect();
        let clock = Clock::new(spec.watermark.tracker());
        let stats = Stats {
            late: vec![0; spec.aggregations.len()],
            ..Stats::default()
        };
        Pipeline {
            spec,
            codec,
            routes,
            ops,
            clock,
            key: String::new(),
            stats,
            keep: None,
            rules: crate::rules::Rules::new(&spec_rules),
        }
    }

    /// Keeps state only for the keys (of aggregations and rules) that `keep` accepts: the
    /// pipeline still sees every record and keeps the same watermark. Pipelines whose
    /// filters split the keys between them together emit exactly the panes, late records
    /// and alerts of one whole pipeline; only the order across keys differs. (A replay
    /// splits the keys over threads this way.)
    pub fn set_key_filter(&mut self, keep: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.keep = Some(Box::new(keep));
    }

    /// The spec this pipeline runs.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The combined watermark.
    pub fn watermark(&self) -> i64 {
        self.clock.watermark()
    }

    /// The processing time.
    pub fn processing_time(&self) -> i64 {
        self.clock.now()
    }

    /// Number of keys holding state, per aggregation.
    pub fn state_keys(&self) -> Vec<usize> {
        self.ops.iter().map(|o| o.keys()).collect()
    }

    /// Decodes and processes one input line of `partition`. A malformed line changes nothing
    /// and returns the reason; the caller sends it to the dead-letter output.
    pub fn process_line<O: Output>(
        &mut self,
        line: &[u8],
        partition: &str,
        out: &mut O,
    ) -> Result<(), RecordError> {
        let parsed = self.decode(line)?;
        self.process_decoded(&parsed, line, partition, out)
    }

    /// Processes one line already decoded (e.g. once for several pipelines) with the schema of
    /// this pipeline's input; `raw` is its text.
    ///
    /// # Errors
    ///
    /// [`RecordError::Future`] for an event dated too far ahead of processing time (see
    /// [`Pipeline::set_wall_clock`]); it changes nothing and goes to the dead letters.
    pub fn process_decoded<O: Output>(
        &mut self,
        parsed: &Line<'_>,
        raw: &[u8],
        partition: &str,
        out: &mut O,
    ) -> Result<(), RecordError> {
        match *parsed {
            Line::Event(ref rec) => {
                self.clock
                    .processing()
                    .check_future(&self.spec.future_guard, rec.time)?;
                self.process_record(rec, raw, partition, out);
            }
            Line::AdvanceProcessingTime(t) => {
                self.stats.controls += 1;
                self.control(Control::ProcessingTime(t), out);
            }
            Line::AdvanceWatermark(t) => {
                self.stats.controls += 1;
                self.control(Control::Watermark(t), out);
            }
        }
        Ok(())
    }

    /// The processing time that [`Pipeline::process_line`] measures events against (with
    /// `[watermark] max_future_skew`) until the input gives its own with
    /// `advance_processing_time`: a replay's wall clock. Without it, and without such lines,
    /// nothing is measured.
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.clock.set_wall_clock(now_ms);
    }

    /// Processes one decoded event. `raw` is what goes to the late-data output if it is late.
    pub fn process_record<O: Output>(
        &mut self,
        rec: &Record<'_>,
        raw: &[u8],
        partition: &str,
        out: &mut O,
    ) {
        self.process_record_inner(rec, raw, partition, out, None);
    }

    /// Like [`Pipeline::process_record`], but leaves out the aggregations `i` with
    /// `skip[i]`: their state already includes this record (a redelivery). Entries past
    /// the aggregations mask the rules: `skip[aggregations + r]` leaves out rule `r`.
    pub fn process_record_masked<O: Output>(
        &mut self,
        rec: &Record<'_>,
        raw: &[u8],
        partition: &str,
        out: &mut O,
        skip: &[bool],
    ) {
        self.process_record_inner(rec, raw, partition, out, Some(skip));
    }

    fn process_record_inner<O: Output>(
        &mut self,
        rec: &Record<'_>,
        raw: &[u8],
        partition: &str,
        out: &mut O,
        skip: Option<&[bool]>,
    ) {
        self.stats.events += 1;
        let ctx = Ctx {
            wm: self.clock.watermark(),
            now: self.clock.now(),
        };
        let mut mine = true;
        // The group whose key `self.key` holds for this record: encoded once per group.
        let mut encoded: Option<usize> = None;
        for (i, route) in self.routes.iter().enumerate() {
            if !route.admits(rec) {
                continue;
            }
            if encoded != Some(route.group) {
                encoded = Some(route.group);
                encode_key(&mut self.key, &self.routes.groups()[route.group], rec);
                mine = self.keep.as_ref().is_none_or(|keep| keep(&self.key));
            }
            if !mine || skip.is_some_and(|s| s.get(i).copied().unwrap_or(false)) {
                continue;
            }
            let values: SmallVec<[Option<f64>; 2]> =
                route.cells.iter().map(|c| c.value(rec)).collect();
            match self.ops[i].on_record(&self.key, rec.time, &values, ctx, out) {
                Admit::Accepted => {}
                Admit::TooLate => {
                    self.stats.late[i] += 1;
                    out.late(i, raw);
                }
                Admit::Full => {
                    self.stats.late[i] += 1;
                    let max = self.spec.aggregations[i].max_pending_rows;
                    out.refused(i, raw, &crate::operator::full_reason(max));
                }
            }
        }
        let part: &str = match self.spec.input.partition {
            Some(p) => match &rec.values[p] {
                Value::Str(s) => s,
                _ => partition,
            },
            None => partition,
        };
        if !self.rules.is_empty() {
            let keep = self.keep.as_deref().map(|k| k as &dyn Fn(&str) -> bool);
            // Past the aggregations, `skip` masks the rules (in [`Pipeline::rules`] order).
            match skip {
                Some(s) => {
                    let rules_skip = s.get(self.ops.len()..).unwrap_or(&[]);
                    self.rules.on_record_masked(rec, ctx.wm, keep, rules_skip);
                }
                None => self.rules.on_record(rec, ctx.wm, keep),
            }
        }
        if let Some(wm) = self.clock.observe(part, rec.time) {
            self.fire_watermark(wm, out);
        }
    }

    /// Moves processing time forward (it never goes back) and fires what is due.
    pub fn advance_processing_time<O: Output>(&mut self, t: i64, out: &mut O) {
        self.control(Control::ProcessingTime(t), out);
    }

    /// Moves the watermark forward explicitly (a control record). It never goes back.
    pub fn advance_watermark<O: Output>(&mut self, wm: i64, out: &mut O) {
        self.control(Control::Watermark(wm), out);
    }

    /// Applies a control line ([`Clock::control`]) and fires what it makes due: operators
    /// see a processing-time advance at the watermark before it, then the watermark that
    /// idle partitions may release.
    fn control<O: Output>(&mut self, c: Control, out: &mut O) {
        match self.clock.control(c) {
            Moved::Nothing => {}
            Moved::Watermark { to } => self.fire_watermark(to, out),
            Moved::ProcessingTime {
                now,
                wm_before,
                wm_after,
            } => {
                let ctx = Ctx { wm: wm_before, now };
                for op in self.ops.iter_mut() {
                    op.on_processing_time(ctx, out);
                }
                if wm_after > wm_before {
                    self.fire_watermark(wm_after, out);
                }
            }
        }
    }

    /// End of a finite input: the watermark goes to +∞ and everything fires.
    pub fn finish<O: Output>(&mut self, out: &mut O) {
        self.advance_watermark(WM_MAX, out);
    }

    fn fire_watermark<O: Output>(&mut self, wm: i64, out: &mut O) {
        let ctx = Ctx {
            wm,
            now: self.clock.now(),
        };
        for op in self.ops.iter_mut() {
            op.on_watermark(ctx, out);
        }
        if !self.rules.is_empty() {
            self.rules.on_watermark(wm, &mut |a| out.alert(&a));
        }
    }

    /// Swaps the running rules for `rules` (a hot reload): unchanged rules keep their
    /// state, new or changed ones start empty. Returns the ids of the rules that started.
    pub fn set_rules(&mut self, rules: &[crate::rules::RuleSpec]) -> Vec<String> {
        self.spec.rules = rules.to_vec();
        self.rules.replace(rules)
    }

    /// The running rules.
    pub fn rules(&self) -> &crate::rules::Rules {
        &self.rules
    }
}

/// Keyed state for a runtime that keeps it in a store (the Kinesis consumers): the keys a
/// record touches, restoring and draining per-key state, and an externally driven watermark.
impl Pipeline {
    /// A pipeline whose watermark moves only through [`Pipeline::advance_watermark`] (the
    /// global watermark agreed through the control table), while it still tracks each
    /// partition's own watermark ([`Pipeline::partition_watermark`]) to publish.
    pub fn with_external_watermark(spec: PipelineSpec) -> Self {
        let mut p = Pipeline::new(spec);
        let bound = match p.spec.watermark {
            WatermarkSpec::Bounded { bound_ms, .. } => bound_ms,
            WatermarkSpec::Explicit => 0,
        };
        p.clock = Clock::new(WatermarkTracker::external(bound));
        p
    }

    /// The running rules, mutable: to restore and drain their per-key state.
    pub fn rules_mut(&mut self) -> &mut crate::rules::Rules {
        &mut self.rules
    }

    /// Decodes one line against the pipeline's input schema and enriches it with the
    /// installed lookup snapshot ([`Pipeline::set_lookups`]).
    pub fn decode<'a>(&self, line: &'a [u8]) -> Result<Line<'a>, RecordError> {
        self.codec.decode(line)
    }

    /// The codec this pipeline decodes with.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Installs the enrichment tables the following records see: one version of each, for
    /// a whole batch (see [`crate::enrich`]).
    pub fn set_lookups(&mut self, snapshot: crate::enrich::Snapshot) {
        self.codec.set_lookups(snapshot);
    }

    /// The enricher, e.g. to collect a batch's keys for live lookups.
    pub fn enricher(&self) -> &crate::enrich::Enricher {
        self.codec.enricher()
    }

    /// The (aggregation index, key) pairs a record updates: aggregations whose filter it
    /// passes, with its encoded group-by values.
    pub fn keys_of(&self, rec: &Record<'_>) -> Vec<(usize, String)> {
        let mut out = Vec::with_capacity(self.routes.len());
        let mut key = String::new();
        for (i, route) in self.routes.iter().enumerate() {
            if !route.admits(rec) {
                continue;
            }
            encode_key(&mut key, &self.routes.groups()[route.group], rec);
            out.push((i, key.clone()));
        }
        out
    }

    /// Replaces the state of `key` in aggregation `aggregation` with a stored one.
    pub fn restore_key(
        &mut self,
        aggregation: usize,
        key: &str,
        blob: &[u8],
    ) -> Result<(), StateError> {
        let err = |reason: String| StateError {
            aggregation: self
                .spec
                .aggregations
                .get(aggregation)
                .map_or_else(|| aggregation.to_string(), |a| a.name.clone()),
            key: key.to_string(),
            reason,
        };
        let op = self
            .ops
            .get_mut(aggregation)
            .ok_or_else(|| err("no such aggregation".into()))?;
        op.restore_key(key, blob).map_err(err)
    }

    /// Calls `out` with (aggregation, key, serialized state) for every key that holds state
    /// in any aggregation, serialized as for [`Pipeline::restore_key`]: a snapshot of the
    /// window state (the rules' is [`crate::rules::Rules::snapshot`]).
    ///
    /// # Errors
    ///
    /// A key's state that cannot be serialized, naming the aggregation and the key.
    pub fn snapshot(&self, out: &mut dyn FnMut(usize, &str, Vec<u8>)) -> Result<(), StateError> {
        for (i, op) in self.ops.iter().enumerate() {
            op.snapshot(&mut |k, b| out(i, k, b))
                .map_err(|e| StateError {
                    aggregation: self.spec.aggregations[i].name.clone(),
                    key: e.key,
                    reason: e.reason,
                })?;
        }
        Ok(())
    }

    /// Resumes a partition at watermark `wm` (as if a record at `wm + bound` had been seen),
    /// after restoring state committed at that watermark.
    pub fn resume_partition(&mut self, partition: &str, wm: i64) {
        let now = self.clock.now();
        self.clock.tracker_mut().resume(partition, wm, now);
    }

    /// The watermark of one partition from its own records, if it has any.
    pub fn partition_watermark(&self, partition: &str) -> Option<i64> {
        self.clock.tracker().partition_watermark(partition)
    }
}
