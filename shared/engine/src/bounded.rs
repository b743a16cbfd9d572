//! Key-by-key execution of a bounded input, for sinks that write rows in key order.
//!
//! A streaming run interleaves all keys in arrival order, so each record looks its key's
//! state up in a large table and each watermark step visits keys all over memory. When the
//! input is finite and the sinks want rows sorted by key anyway, the same results come out
//! of running one key at a time: a key's state changes only through its own records and
//! through time (the watermark and processing time), and time is the same for every key.
//!
//! So the input is decoded once into columns ([`Chunk`], one per slice of the input, built in
//! parallel, routed as [`crate::Pipeline`] routes records: [`crate::route`]), the global
//! time is computed once over the whole arrival order ([`Timeline`]: the watermark and
//! processing time each record meets, by the same rules as the pipeline's, [`crate::time`],
//! idle partitions and explicit watermarks included), and then every key replays its own
//! records against that timeline through the very same window operators ([`KeyRunner`]). A key's state stays in cache, and its rows come out together, so keys
//! split freely over threads and no output needs buffering for a final sort.
//!
//! This is the idea of Flink's batch execution mode (sort by key, then run one key at a
//! time), but the streaming watermark is kept: records are judged late, dropped, or fire
//! late panes exactly as in the streaming run, instead of all becoming on time.
//!
//! ```
//! use eventide_engine::bounded::{BoundedInput, Chunk, KeyOutput, KeyRunner};
//! use eventide_engine::pane::{Emit, Pane};
//! use eventide_engine::record::Line;
//! use eventide_engine::route::Routes;
//! use eventide_engine::spec::PipelineSpec;
//!
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { k = "string", v = "number" }
//!     [watermark]
//!     strategy = "bounded"
//!     max_out_of_orderness = "0ms"
//!     [[aggregation]]
//!     name = "sums"
//!     group_by = ["k"]
//!     window = { type = "tumbling", size = "10ms" }
//!     aggregates = [{ name = "sum", fn = "sum", field = "v" }]
//!     sink = { format = "csv", order = "key" }
//! "#).unwrap();
//! assert!(eventide_engine::bounded::supports(&spec));
//! let routes = Routes::new(&spec);
//! let decoder = eventide_engine::codec::Codec::new(&spec);
//! let mut chunk = Chunk::new(&routes);
//! let lines = [r#"{"k":"b","v":1,"t":1}"#, r#"{"k":"a","v":2,"t":12}"#, r#"{"k":"b","v":4,"t":3}"#];
//! for (i, line) in lines.iter().enumerate() {
//!     match decoder.decode(line.as_bytes()).unwrap() {
//!         Line::Event(rec) => chunk.push_event(&routes, &rec, i as u64),
//!         other => chunk.push_control(&other),
//!     }
//! }
//! let input = BoundedInput::new(&spec, routes, vec![chunk], 0);
//!
//! #[derive(Default)]
//! struct Rows(Vec<(String, i64, Option<f64>)>, Vec<u64>);
//! impl Emit for Rows {
//!     fn pane(&mut self, p: &Pane<'_>) { self.0.push((p.key.into(), p.window.start, p.values[0])); }
//! }
//! impl KeyOutput for Rows {
//!     fn late(&mut self, tag: u64) { self.1.push(tag) }
//! }
//! let mut runner = KeyRunner::new(&spec, 0);
//! let mut rows = Rows::default();
//! for rank in 0..input.keys(0) {
//!     runner.run_key(&input, rank, &mut rows);
//! }
//! // Keys in order; "b"'s record at t=3 came after the watermark passed 12: too late.
//! assert_eq!(rows.0, vec![("a".into(), 10, Some(2.0)), ("b".into(), 0, Some(1.0))]);
//! assert_eq!(rows.1, vec![2]);
//! ```

use std::hash::BuildHasher;
use std::ops::Range;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::error::RecordError;
use crate::key::encode_key;
use crate::operator::{family, Admit, Ctx, WindowOperator};
use crate::pane::Emit;
use crate::record::{Line, Record, Value};
use crate::route::Routes;
use crate::spec::model::PipelineSpec;
use crate::time::{Clock, Control, Moved};
use crate::watermark::{WM_MAX, WM_MIN};

/// Most aggregations a key-by-key run handles (their filters are a bit mask per record).
pub const MAX_AGGREGATIONS: usize = 64;

/// True when `spec` can run key by key: it has aggregations, at most
/// [`MAX_AGGREGATIONS`] of them, no rules (they fire alerts in time order across keys),
/// and no aggregate with a filter of its own (those run streaming).
pub fn supports(spec: &PipelineSpec) -> bool {
    spec.rules.is_empty()
        && !spec.aggregations.is_empty()
        && spec.aggregations.len() <= MAX_AGGREGATIONS
        && Routes::new(spec).plain()
}

/// Strings numbered in order of first sight, kept end to end in one buffer. The hash table
/// holds ids only: decoding streams the whole input through the cache, and a small table
/// over one compact buffer stays cached where a table of owned strings does not.
#[derive(Debug, Default)]
struct Interner {
    table: HashTable<u32>,
    /// Where each string ends in `text`.
    ends: Vec<usize>,
    text: String,
}

impl Interner {
    #[inline]
    fn id(&mut self, s: &str) -> u32 {
        let hash = FxBuildHasher.hash_one(s);
        let (ends, text) = (&self.ends, &self.text);
        if let Some(&id) = self.table.find(hash, |&id| name(ends, text, id) == s) {
            return id;
        }
        let id = self.ends.len() as u32;
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (ends, text) = (&self.ends, &self.text);
        self.table
            .insert_unique(hash, id, |&id| FxBuildHasher.hash_one(name(ends, text, id)));
        id
    }

    /// The strings, by id.
    fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len() as u32).map(|id| name(&self.ends, &self.text, id))
    }
}

/// String `id` of an [`Interner`]'s buffer.
#[inline]
fn name<'a>(ends: &[usize], text: &'a str, id: u32) -> &'a str {
    let id = id as usize;
    let from = if id == 0 { 0 } else { ends[id - 1] };
    text.get(from..ends[id]).unwrap_or_default()
}

/// A time control line, in arrival order among the events.
#[derive(Debug, Clone, Copy)]
struct ControlAt {
    /// Events before it.
    before: u32,
    control: Control,
}

/// Consecutive records of a bounded input, in columns. Chunks of different slices of the
/// input are built independently (in parallel) and joined in order by [`BoundedInput::new`].
#[derive(Debug)]
pub struct Chunk {
    time: Vec<i64>,
    tag: Vec<u64>,
    /// `groups` chunk-local key ids per event.
    keys: Vec<u32>,
    /// Per event: bit `a` set when aggregation `a`'s filter passes.
    mask: Vec<u64>,
    /// `cols` values per event.
    values: Vec<Option<f64>>,
    /// Chunk-local partition id per event (with a partition field only).
    part: Vec<u32>,
    controls: Vec<ControlAt>,
    dicts: Vec<Interner>,
    parts: Interner,
    key: String,
}

impl Chunk {
    /// An empty chunk for records routed by `routes`.
    pub fn new(routes: &Routes) -> Self {
        Chunk {
            time: Vec::new(),
            tag: Vec::new(),
            keys: Vec::new(),
            mask: Vec::new(),
            values: Vec::new(),
            part: Vec::new(),
            controls: Vec::new(),
            dicts: (0..routes.groups().len())
                .map(|_| Interner::default())
                .collect(),
            parts: Interner::default(),
            key: String::new(),
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// True when the chunk holds no event.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Appends an event. `tag` is the caller's handle on it (e.g. where its line starts),
    /// handed back by [`KeyOutput::late`] when the event is too late.
    pub fn push_event(&mut self, routes: &Routes, rec: &Record<'_>, tag: u64) {
        self.time.push(rec.time);
        self.tag.push(tag);
        for (g, fields) in routes.groups().iter().enumerate() {
            encode_key(&mut self.key, fields, rec);
            let id = self.dicts[g].id(&self.key);
            self.keys.push(id);
        }
        let mut mask = 0u64;
        for (a, route) in routes.iter().enumerate() {
            if route.admits(rec) {
                mask |= 1 << a;
            }
        }
        self.mask.push(mask);
        self.values
            .extend(routes.cols().iter().map(|&f| rec.values[f].as_num()));
        if let Some(p) = routes.partition() {
            let id = match &rec.values[p] {
                Value::Str(s) => self.parts.id(s),
                _ => self.parts.id(""),
            };
            self.part.push(id);
        }
    }

    /// Appends a control line (events are ignored here: see [`Chunk::push_event`]).
    pub fn push_control(&mut self, line: &Line<'_>) {
        if let Some(control) = Control::of(line) {
            self.controls.push(ControlAt {
                before: self.time.len() as u32,
                control,
            });
        }
    }
}

/// A processing-time advance, as every key must see it.
#[derive(Debug, Clone, Copy)]
struct Break {
    /// Events before it.
    before: u32,
    /// The watermark when it came, the new processing time, and the watermark after it
    /// (idle partitions may stop holding the watermark back).
    wm: i64,
    now: i64,
    wm_after: i64,
}

/// The global time of a bounded input: the processing-time advances between events, and
/// counters. (The watermark each event met is kept with the event.)
#[derive(Debug, Default)]
pub struct Timeline {
    breaks: Vec<Break>,
    final_now: i64,
    /// Control lines seen.
    pub controls: u64,
}

impl Timeline {
    /// Applies a control line to `clock` ([`Clock::control`], as [`crate::Pipeline`] does)
    /// and keeps the processing-time advances every key must see.
    fn control(&mut self, clock: &mut Clock, c: ControlAt) {
        self.controls += 1;
        if let Moved::ProcessingTime {
            now,
            wm_before,
            wm_after,
        } = clock.control(c.control)
        {
            self.breaks.push(Break {
                before: c.before,
                wm: wm_before,
                now,
                wm_after,
            });
        }
    }
}

/// The events of one group-by, laid out key after key in output order, so that running a
/// key reads consecutive memory.
#[derive(Debug, Default)]
struct Grouped {
    /// Key names by id, key ids by rank, and each rank's first event (plus the end).
    names: Vec<Box<str>>,
    ranked: Vec<u32>,
    offsets: Vec<u32>,
    /// Per event: arrival number, event time, the watermark and processing time it met
    /// (processing time only if the input advances it), filter bits and values.
    seq: Vec<u32>,
    time: Vec<i64>,
    wm: Vec<i64>,
    now: Vec<i64>,
    mask: Vec<u64>,
    values: Vec<Option<f64>>,
}

/// A bounded input ready to run key by key: per group-by, its keys in output order with
/// their events, each with the watermark it met on arrival.
#[derive(Debug)]
pub struct BoundedInput {
    routes: Routes,
    /// By arrival: the tag each event was pushed with.
    tag: Vec<u64>,
    timeline: Timeline,
    groups: Vec<Grouped>,
    future: Vec<(u64, RecordError)>,
}

impl BoundedInput {
    /// Joins the chunks of an input (in input order), computes its timeline with the spec's
    /// watermark strategy and groups its events by key.
    ///
    /// Only the timeline takes one pass over the arrival order; each group-by then reads
    /// the chunks on a thread of its own.
    ///
    /// An event dated further ahead of processing time than `[watermark] max_future_skew`
    /// is left out (it meets no window and does not move the watermark) and listed in
    /// [`BoundedInput::future`]. Processing time is the last `advance_processing_time`
    /// before the event, or `wall_ms` when none came before it.
    pub fn new(spec: &PipelineSpec, routes: Routes, chunks: Vec<Chunk>, wall_ms: i64) -> Self {
        let n: usize = chunks.iter().map(Chunk::len).sum();
        let mut tag = Vec::with_capacity(n);
        let mut clock = Clock::new(spec.watermark.tracker());
        clock.set_wall_clock(wall_ms);
        let mut tl = Timeline::default();
        let mut future = Vec::new();
        let mut skip = Vec::new();
        let moves_time = chunks.iter().any(|c| {
            c.controls
                .iter()
                .any(|c| matches!(c.control, Control::ProcessingTime(_)))
        });
        let mut met = ArrivalTimes {
            wm: Vec::with_capacity(n),
            now: Vec::with_capacity(if moves_time { n } else { 0 }),
            skip: Vec::new(),
        };
        for chunk in &chunks {
            let base = tag.len() as u32;
            let mut controls = chunk.controls.iter().peekable();
            for (i, &t) in chunk.time.iter().enumerate() {
                while let Some(c) = controls.next_if(|c| c.before as usize <= i) {
                    let before = base + c.before;
                    tl.control(&mut clock, ControlAt { before, ..*c });
                }
                if let Err(e) = clock.processing().check_future(&spec.future_guard, t) {
                    // Left out: it must not move the watermark.
                    if skip.is_empty() {
                        skip = vec![false; n];
                    }
                    skip[base as usize + i] = true;
                    future.push((chunk.tag[i], e));
                }
                met.wm.push(clock.watermark());
                if moves_time {
                    met.now.push(clock.now());
                }
                let part = match chunk.part.get(i) {
                    Some(&p) if (p as usize) < chunk.parts.ends.len() => {
                        name(&chunk.parts.ends, &chunk.parts.text, p)
                    }
                    _ => "",
                };
                if skip.get(base as usize + i) != Some(&true) {
                    clock.observe(part, t);
                }
            }
            for c in controls {
                let before = base + c.before;
                tl.control(&mut clock, ControlAt { before, ..*c });
            }
            tag.extend_from_slice(&chunk.tag);
        }
        tl.final_now = clock.now();
        met.skip = skip;
        if tl.breaks.is_empty() {
            // Processing time never moves: every event met 0.
            met.now = Vec::new();
        }
        let (chunks, met, routes_ref) = (&chunks, &met, &routes);
        let groups = std::thread::scope(|s| {
            let handles: Vec<_> = (0..routes_ref.groups().len())
                .map(|g| s.spawn(move || group(g, routes_ref, chunks, met)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        BoundedInput {
            routes,
            tag,
            timeline: tl,
            groups,
            future,
        }
    }

    /// The events left out as dated too far ahead of processing time, in arrival order: the
    /// tag each was pushed with, and the reason (for the dead letters).
    pub fn future(&self) -> &[(u64, RecordError)] {
        &self.future
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.tag.len()
    }

    /// True when the input holds no event.
    pub fn is_empty(&self) -> bool {
        self.tag.is_empty()
    }

    /// The input's global time.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn group_of(&self, agg: usize) -> Option<&Grouped> {
        self.groups.get(self.routes.route(agg)?.group)
    }

    /// Number of keys of aggregation `agg`'s group-by (some may have no event passing its
    /// filter, and then produce nothing).
    pub fn keys(&self, agg: usize) -> u32 {
        self.group_of(agg).map_or(0, |g| g.ranked.len() as u32)
    }

    /// Splits aggregation `agg`'s keys, in output order, into consecutive ranges of about
    /// `events` events each.
    pub fn split(&self, agg: usize, events: usize) -> Vec<Range<u32>> {
        let Some(off) = self.group_of(agg).map(|g| &g.offsets) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut from = 0u32;
        for rank in 1..off.len().saturating_sub(1) {
            if (off[rank] - off[from as usize]) as usize >= events.max(1) {
                out.push(from..rank as u32);
                from = rank as u32;
            }
        }
        let end = off.len().saturating_sub(1) as u32;
        if from < end {
            out.push(from..end);
        }
        out
    }
}

/// The watermark and processing time each event met, by arrival (`now` is empty when
/// processing time never moves).
struct ArrivalTimes {
    wm: Vec<i64>,
    now: Vec<i64>,
    /// Events left out (empty when none is).
    skip: Vec<bool>,
}

/// Lays out the events of group-by `g`: numbers its keys across the chunks, orders them as
/// key-ordered sinks write them (group-by values compared one by one) and puts each key's
/// events together, in arrival order.
fn group(g: usize, routes: &Routes, chunks: &[Chunk], met: &ArrivalTimes) -> Grouped {
    let ngroups = routes.groups().len();
    let ncols = routes.cols().len();
    // Chunk-local key ids to global ones, then every event's global key id.
    let mut dict = Interner::default();
    let mut keys = Vec::with_capacity(met.wm.len());
    for chunk in chunks {
        let remap: Vec<u32> = chunk.dicts[g].names().map(|k| dict.id(k)).collect();
        let local = chunk.keys.iter().skip(g).step_by(ngroups);
        keys.extend(local.map(|&k| remap[k as usize]));
    }
    let left_out = |seq: usize| met.skip.get(seq) == Some(&true);
    let names: Vec<Box<str>> = dict.names().map(Box::from).collect();
    let mut ranked: Vec<u32> = (0..names.len() as u32).collect();
    ranked.sort_unstable_by(|&a, &b| crate::key::cmp(&names[a as usize], &names[b as usize]));
    let mut rank_of = vec![0u32; names.len()];
    for (r, &k) in ranked.iter().enumerate() {
        rank_of[k as usize] = r as u32;
    }
    let mut offsets = vec![0u32; names.len() + 1];
    for (seq, &k) in keys.iter().enumerate() {
        if !left_out(seq) {
            offsets[rank_of[k as usize] as usize + 1] += 1;
        }
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let n = keys.len() - met.skip.iter().filter(|&&s| s).count();
    let mut out = Grouped {
        names,
        ranked,
        seq: vec![0; n],
        time: vec![0; n],
        wm: vec![0; n],
        now: vec![0; if met.now.is_empty() { 0 } else { n }],
        mask: vec![0; n],
        values: vec![None; n * ncols],
        offsets: Vec::new(),
    };
    // Read in arrival order, write each event to its key's next place.
    let mut fill = offsets.clone();
    let mut seq = 0usize;
    for chunk in chunks {
        for i in 0..chunk.len() {
            if left_out(seq) {
                seq += 1;
                continue;
            }
            let r = rank_of[keys[seq] as usize] as usize;
            let p = fill[r] as usize;
            fill[r] += 1;
            out.seq[p] = seq as u32;
            out.time[p] = chunk.time[i];
            out.wm[p] = met.wm[seq];
            if let Some(now) = met.now.get(seq) {
                out.now[p] = *now;
            }
            out.mask[p] = chunk.mask[i];
            out.values[p * ncols..(p + 1) * ncols]
                .copy_from_slice(&chunk.values[i * ncols..(i + 1) * ncols]);
            seq += 1;
        }
    }
    out.offsets = offsets;
    out
}

/// Where a key's results go: its panes, and its events too late for every window.
pub trait KeyOutput: Emit {
    /// An event later than the allowed lateness, by the tag it was pushed with.
    fn late(&mut self, tag: u64);
}

/// Runs one aggregation's keys, one at a time, with the streaming operator of that
/// aggregation. Reusable across keys and inputs of the same spec.
pub struct KeyRunner {
    agg: usize,
    op: Box<dyn WindowOperator>,
    /// The trigger reacts to processing time.
    processing_time: bool,
    /// Records dropped as too late so far.
    pub late: u64,
}

impl KeyRunner {
    /// A runner for aggregation `agg` of `spec`.
    pub fn new(spec: &PipelineSpec, agg: usize) -> Self {
        let a = &spec.aggregations[agg];
        let processing_time = a.trigger.uses_processing_time();
        KeyRunner {
            agg,
            op: family::build(agg, a),
            processing_time,
            late: 0,
        }
    }

    /// Runs the key of rank `rank` (see [`BoundedInput::keys`]) from its first event to the
    /// end of the input, where the watermark goes to +∞ and everything fires.
    pub fn run_key<O: KeyOutput>(&mut self, input: &BoundedInput, rank: u32, out: &mut O) {
        let Some(g) = input.group_of(self.agg) else {
            return;
        };
        let (Some(&id), Some(off)) = (
            g.ranked.get(rank as usize),
            g.offsets.get(rank as usize..rank as usize + 2),
        ) else {
            return;
        };
        let key: &str = &g.names[id as usize];
        let tl = &input.timeline;
        let bit = 1u64 << self.agg;
        let Some(route) = input.routes.route(self.agg) else {
            return;
        };
        let (cols, ncols) = (&route.cols, input.routes.cols().len());
        let mut values: SmallVec<[Option<f64>; 2]> = SmallVec::new();
        let mut wm = WM_MIN;
        let mut now = 0i64;
        let mut breaks: &[Break] = &[];
        let mut started = false;
        for p in off[0] as usize..off[1] as usize {
            if g.mask[p] & bit == 0 {
                continue;
            }
            let seq = g.seq[p];
            if !started {
                started = true;
                if self.processing_time {
                    // Before its first event a key has no state: earlier advances do nothing.
                    let from = tl.breaks.partition_point(|b| b.before <= seq);
                    breaks = &tl.breaks[from..];
                }
            }
            while let Some((b, rest)) = breaks.split_first() {
                if b.before > seq {
                    break;
                }
                self.apply(b, &mut wm, &mut now, out);
                breaks = rest;
            }
            let ctx = Ctx {
                wm: g.wm[p],
                now: g.now.get(p).copied().unwrap_or(0),
            };
            now = ctx.now;
            if ctx.wm > wm {
                wm = ctx.wm;
                self.op.on_watermark(ctx, out);
            }
            values.clear();
            let row = &g.values[p * ncols..(p + 1) * ncols];
            values.extend(cols.iter().map(|&c| row[c]));
            if self.op.on_record(key, g.time[p], &values, ctx, out) != Admit::Accepted {
                // Too late, or refused by `[limits] max_pending_rows`: both go to the late
                // output of a key-ordered run.
                self.late += 1;
                out.late(input.tag[seq as usize]);
            }
        }
        if !started {
            return;
        }
        for b in breaks {
            self.apply(b, &mut wm, &mut now, out);
        }
        self.op.on_watermark(
            Ctx {
                wm: WM_MAX,
                now: tl.final_now,
            },
            out,
        );
    }

    /// A processing-time advance, with the watermark before and after it.
    fn apply<O: KeyOutput>(&mut self, b: &Break, wm: &mut i64, now: &mut i64, out: &mut O) {
        if b.wm > *wm {
            *wm = b.wm;
            self.op.on_watermark(Ctx { wm: *wm, now: *now }, out);
        }
        *now = b.now;
        self.op.on_processing_time(Ctx { wm: *wm, now: *now }, out);
        if b.wm_after > *wm {
            *wm = b.wm_after;
            self.op.on_watermark(Ctx { wm: *wm, now: *now }, out);
        }
    }
}
