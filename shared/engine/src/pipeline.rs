//! A running pipeline: decodes records, routes them to each aggregation's window operator,
//! advances watermarks and processing time, and hands fired panes to an [`Output`].
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
//! struct Collect(Vec<(String, i64, Option<f64>)>);
//! impl Emit for Collect {
//!     fn pane(&mut self, p: &Pane<'_>) { self.0.push((p.key.to_string(), p.window.start, p.values[0])); }
//! }
//! impl Output for Collect {
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
//! let mut out = Collect::default();
//! for line in [r#"{"k":"a","v":1,"t":1}"#, r#"{"k":"a","v":2,"t":5}"#, r#"{"k":"a","v":4,"t":12}"#] {
//!     p.process_line(line.as_bytes(), "", &mut out).unwrap();
//! }
//! p.finish(&mut out);
//! assert_eq!(out.0, vec![("a".into(), 0, Some(3.0)), ("a".into(), 10, Some(4.0))]);
//! ```

use smallvec::SmallVec;

use crate::codec::Codec;
use crate::error::{RecordError, StateError};
use crate::filter::Filter;
use crate::operator::{self, Admit, Ctx, WindowOperator};
use crate::pane::Emit;
use crate::record::{Line, Record, Value};
use crate::spec::{PipelineSpec, WatermarkSpec};
use crate::watermark::{WatermarkTracker, WM_MAX};

/// Where a pipeline's results go: fired panes, and records dropped as too late.
pub trait Output: Emit {
    /// A record later than the allowed lateness of every window of `aggregation` it falls in.
    fn late(&mut self, aggregation: usize, raw: &[u8]);

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
    /// Records dropped as too late, per aggregation.
    pub late: Vec<u64>,
}

struct Route {
    group_by: Vec<usize>,
    filter: Option<Filter>,
    cells: Vec<crate::aggregate::CellSource>,
    /// Reuse the previous aggregation's key when the group-by is the same.
    same_key_as_prev: bool,
}

/// A pipeline instance with its state.
pub struct Pipeline {
    spec: PipelineSpec,
    /// Decodes records and adds the enrichments' columns.
    codec: Codec,
    routes: Vec<Route>,
    ops: Vec<Box<dyn WindowOperator>>,
    wm: WatermarkTracker,
    now: i64,
    /// Whether an `advance_processing_time` set `now`; until then the future guard measures
    /// against `wall_ms`.
    time_given: bool,
    wall_ms: Option<i64>,
    key: String,
    stats: Stats,
    /// `(index, count)`: only keys whose hash falls in this shard get state here.
    shard: Option<(u64, u64)>,
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
        let mut routes: Vec<Route> = Vec::with_capacity(spec.aggregations.len());
        for a in &spec.aggregations {
            let same = routes.last().is_some_and(|r| r.group_by == a.group_by);
            routes.push(Route {
                group_by: a.group_by.clone(),
                filter: a.filter.clone(),
                cells: crate::aggregate::CompiledAggregates::new(&a.aggregates).cells,
                same_key_as_prev: same,
            });
        }
        let ops = spec
            .aggregations
            .iter()
            .enumerate()
            .map(|(i, a)| operator::build(i, a))
            .collect();
        let wm = WatermarkTracker::for_spec(&spec.watermark);
        let stats = Stats {
            late: vec![0; spec.aggregations.len()],
            ..Stats::default()
        };
        Pipeline {
            spec,
            codec,
            routes,
            ops,
            wm,
            now: 0,
            time_given: false,
            wall_ms: None,
            key: String::new(),
            stats,
            shard: None,
            rules: crate::rules::Rules::new(&spec_rules),
        }
    }

    /// Builds shard `index` of `count` of a pipeline: it sees every record and keeps the same
    /// watermark, but aggregates only the keys that hash to this shard. The shards of a
    /// pipeline together emit exactly the panes (and late records) of the whole pipeline,
    /// each pane from one shard; only the order across keys differs.
    pub fn sharded(spec: PipelineSpec, index: usize, count: usize) -> Self {
        let mut p = Pipeline::new(spec);
        if count > 1 {
            p.shard = Some((index as u64, count as u64));
        }
        p
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
        self.wm.current()
    }

    /// The processing time.
    pub fn processing_time(&self) -> i64 {
        self.now
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

    /// Processes one line already decoded (e.g. once for several shards) with the schema of
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
                let now = if self.time_given {
                    Some(self.now)
                } else {
                    self.wall_ms
                };
                if let Some(now) = now {
                    self.spec.future_guard.check(rec.time, now)?;
                }
                self.process_record(rec, raw, partition, out);
            }
            Line::AdvanceProcessingTime(t) => {
                self.stats.controls += 1;
                self.advance_processing_time(t, out);
            }
            Line::AdvanceWatermark(t) => {
                self.stats.controls += 1;
                self.advance_watermark(t, out);
            }
        }
        Ok(())
    }

    /// The processing time that [`Pipeline::process_line`] measures events against (with
    /// `[watermark] max_future_skew`) until the input gives its own with
    /// `advance_processing_time`: a replay's wall clock. Without it, and without such lines,
    /// nothing is measured.
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.wall_ms = Some(now_ms);
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
            wm: self.wm.current(),
            now: self.now,
        };
        let mut mine = true;
        // The route whose group-by values `self.key` holds for this record.
        let mut encoded: Option<usize> = None;
        for (i, route) in self.routes.iter().enumerate() {
            if let Some(f) = &route.filter {
                if !f.matches(rec) {
                    continue;
                }
            }
            // The previous route's key is reusable only if it was encoded for this record.
            let reuse = route.same_key_as_prev && i > 0 && encoded == Some(i - 1);
            encoded = Some(i);
            if !reuse {
                encode_key(&mut self.key, &route.group_by, rec);
                if let Some((index, count)) = self.shard {
                    use std::hash::BuildHasher;
                    mine = (rustc_hash::FxBuildHasher.hash_one(self.key.as_str()) >> 32) % count
                        == index;
                }
            }
            if !mine || skip.is_some_and(|s| s.get(i).copied().unwrap_or(false)) {
                continue;
            }
            let values: SmallVec<[Option<f64>; 2]> =
                route.cells.iter().map(|c| c.value(rec)).collect();
            if self.ops[i].on_record(&self.key, rec.time, &values, ctx, out) == Admit::TooLate {
                self.stats.late[i] += 1;
                out.late(i, raw);
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
            // Past the aggregations, `skip` masks the rules (in [`Pipeline::rules`] order).
            match skip {
                Some(s) => {
                    let rules_skip = s.get(self.ops.len()..).unwrap_or(&[]);
                    self.rules
                        .on_record_masked(rec, ctx.wm, self.shard, rules_skip);
                }
                None => self.rules.on_record(rec, ctx.wm, self.shard),
            }
        }
        let before = ctx.wm;
        let after = self.wm.observe(part, rec.time, self.now);
        if after > before {
            self.fire_watermark(after, out);
        }
    }

    /// Moves processing time forward (it never goes back) and fires what is due.
    pub fn advance_processing_time<O: Output>(&mut self, t: i64, out: &mut O) {
        self.time_given = true;
        if t <= self.now {
            return;
        }
        self.now = t;
        let ctx = Ctx {
            wm: self.wm.current(),
            now: t,
        };
        for op in self.ops.iter_mut() {
            op.on_processing_time(ctx, out);
        }
        let before = ctx.wm;
        let after = self.wm.on_processing_time(t);
        if after > before {
            self.fire_watermark(after, out);
        }
    }

    /// Moves the watermark forward explicitly (a control record). It never goes back.
    pub fn advance_watermark<O: Output>(&mut self, wm: i64, out: &mut O) {
        let before = self.wm.current();
        let after = self.wm.advance_to(wm);
        if after > before {
            self.fire_watermark(after, out);
        }
    }

    /// Marks a partition finished, e.g. a shard that reached its end.
    pub fn finish_partition<O: Output>(&mut self, partition: &str, out: &mut O) {
        let before = self.wm.current();
        let after = self.wm.finish(partition, self.now);
        if after > before {
            self.fire_watermark(after, out);
        }
    }

    /// End of a finite input: the watermark goes to +∞ and everything fires.
    pub fn finish<O: Output>(&mut self, out: &mut O) {
        self.advance_watermark(WM_MAX, out);
    }

    fn fire_watermark<O: Output>(&mut self, wm: i64, out: &mut O) {
        let ctx = Ctx { wm, now: self.now };
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

/// Encodes the group-by values of a record as one key (see [`crate::key`]).
pub(crate) fn encode_key(buf: &mut String, fields: &[usize], rec: &Record<'_>) {
    buf.clear();
    for (j, &f) in fields.iter().enumerate() {
        if j > 0 {
            crate::key::push_sep(buf);
        }
        crate::key::push(buf, &rec.values[f]);
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
        p.wm = WatermarkTracker::external(bound);
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
            if route.filter.as_ref().is_some_and(|f| !f.matches(rec)) {
                continue;
            }
            encode_key(&mut key, &route.group_by, rec);
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
    pub fn snapshot(&self, out: &mut dyn FnMut(usize, &str, Vec<u8>)) {
        for (i, op) in self.ops.iter().enumerate() {
            op.snapshot(&mut |k, b| out(i, k, b));
        }
    }

    /// Resumes a partition at watermark `wm` (as if a record at `wm + bound` had been seen),
    /// after restoring state committed at that watermark.
    pub fn resume_partition(&mut self, partition: &str, wm: i64) {
        self.wm.resume(partition, wm, self.now);
    }

    /// The watermark of one partition from its own records, if it has any.
    pub fn partition_watermark(&self, partition: &str) -> Option<i64> {
        self.wm.partition_watermark(partition)
    }
}
