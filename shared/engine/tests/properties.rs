//! Property tests of the engine, driven through the public `Pipeline` API with JSON lines.
//!
//! Values are small integers so every sum, count and average is exact in `f64` and results
//! can be compared with `==`.

use std::collections::{BTreeMap, HashMap};

use eventide_engine::pane::{Emit, Pane};
use eventide_engine::trigger::Timing;
use eventide_engine::{Output, Pipeline, PipelineSpec, SpecError};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Row {
    agg: usize,
    key: String,
    start: i64,
    end: i64,
    timing: Timing,
    index: u32,
    retraction: bool,
    values: Vec<Option<f64>>,
}

/// What a run emitted: its panes as rows, and its late records.
#[derive(Default)]
struct Recorder {
    rows: Vec<Row>,
    late: Vec<(usize, String)>,
}

impl Emit for Recorder {
    fn pane(&mut self, p: &Pane<'_>) {
        self.rows.push(Row {
            agg: p.aggregation,
            key: p.key.to_string(),
            start: p.window.start,
            end: p.window.end,
            timing: p.timing,
            index: p.index,
            retraction: p.retraction,
            values: p.values.to_vec(),
        });
    }
}

impl Output for Recorder {
    fn late(&mut self, aggregation: usize, raw: &[u8]) {
        self.late
            .push((aggregation, String::from_utf8_lossy(raw).into_owned()));
    }
}

/// One event: key `k<k>`, event time `t` (ms), integer value `v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ev {
    k: u8,
    t: i64,
    v: i64,
}

impl Ev {
    fn key(&self) -> String {
        format!("k{}", self.k)
    }
    fn line(&self) -> String {
        format!(r#"{{"k":"k{}","t":{},"v":{}}}"#, self.k, self.t, self.v)
    }
}

/// A step of an input script.
#[derive(Debug, Clone, Copy)]
enum Op {
    Event(Ev),
    /// Moves the explicit watermark forward by this many ms.
    Watermark(i64),
    /// Moves processing time forward by this many ms.
    Proc(i64),
}

/// Runs a spec over events (in the given order), then `finish`.
fn run_events(spec: &str, events: &[Ev]) -> (Recorder, Vec<u64>) {
    let ops: Vec<Op> = events.iter().map(|e| Op::Event(*e)).collect();
    run_ops(spec, &ops)
}

/// Runs a spec over a script, then `finish`. Returns the output and the late counters.
fn run_ops(spec: &str, ops: &[Op]) -> (Recorder, Vec<u64>) {
    let spec = PipelineSpec::from_toml(spec).unwrap_or_else(|e| panic!("{e}\n{spec}"));
    let mut p = Pipeline::new(spec);
    let mut out = Recorder::default();
    let (mut wm, mut now) = (0i64, 0i64);
    for op in ops {
        let line = match op {
            Op::Event(e) => e.line(),
            Op::Watermark(d) => {
                wm += d;
                format!(r#"{{"advance_watermark":{wm}}}"#)
            }
            Op::Proc(d) => {
                now += d;
                format!(r#"{{"advance_processing_time":{now}}}"#)
            }
        };
        p.process_line(line.as_bytes(), "", &mut out)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    p.finish(&mut out);
    let late = p.stats().late.clone();
    (out, late)
}

fn spec(watermark: &str, aggregations: &[String]) -> String {
    format!(
        "[limits]\nmin_processing_time_period = \"1ms\"\n\
         [input]\nformat = \"json\"\nevent_time = {{ field = \"t\", format = \"epoch_ms\" }}\n\
         fields = {{ k = \"string\", v = \"number\" }}\n[watermark]\n{watermark}\n{}",
        aggregations.join("\n")
    )
}

const EXPLICIT: &str = "strategy = \"explicit\"";

fn bounded(bound_ms: i64) -> String {
    format!("strategy = \"bounded\"\nmax_out_of_orderness = \"{bound_ms}ms\"")
}

fn aggregation(name: &str, window: &Win, fns: &[&str], extra: &str) -> String {
    let aggs: Vec<String> = fns
        .iter()
        .map(|f| match *f {
            "count" => "{ name = \"count\", fn = \"count\" }".to_string(),
            f => format!("{{ name = \"{f}\", fn = \"{f}\", field = \"v\" }}"),
        })
        .collect();
    format!(
        "[[aggregation]]\nname = \"{name}\"\ngroup_by = [\"k\"]\nwindow = {}\naggregates = [{}]\n{extra}\n",
        window.toml(),
        aggs.join(", ")
    )
}

#[derive(Debug, Clone, Copy)]
enum Win {
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

impl Win {
    fn toml(&self) -> String {
        match self {
            Win::Sliding { size, slide } if size == slide => {
                format!("{{ type = \"tumbling\", size = \"{size}ms\" }}")
            }
            Win::Sliding { size, slide } => {
                format!("{{ type = \"sliding\", size = \"{size}ms\", slide = \"{slide}ms\" }}")
            }
            Win::Session { gap } => format!("{{ type = \"session\", gap = \"{gap}ms\" }}"),
        }
    }
}

const ALL_FNS: [&str; 7] = ["count", "sum", "min", "max", "avg", "first", "last"];
const INVERTIBLE_FNS: [&str; 3] = ["count", "sum", "avg"];

/// Statistics of a set of events, computed naively.
#[derive(Debug, Clone, Default)]
struct Naive {
    n: u64,
    sum: i64,
    min: Option<i64>,
    max: Option<i64>,
    first: Option<(i64, i64)>,
    last: Option<(i64, i64)>,
}

impl Naive {
    fn add(&mut self, e: &Ev) {
        self.n += 1;
        self.sum += e.v;
        self.min = Some(self.min.map_or(e.v, |m| m.min(e.v)));
        self.max = Some(self.max.map_or(e.v, |m| m.max(e.v)));
        // Events are de-duplicated by (key, t), so ties carry the same value.
        if self.first.is_none_or(|(t, _)| e.t < t) {
            self.first = Some((e.t, e.v));
        }
        if self.last.is_none_or(|(t, _)| e.t > t) {
            self.last = Some((e.t, e.v));
        }
    }

    fn values(&self, fns: &[&str]) -> Vec<Option<f64>> {
        fns.iter()
            .map(|f| match *f {
                "count" => Some(self.n as f64),
                _ if self.n == 0 => None,
                "sum" => Some(self.sum as f64),
                "min" => self.min.map(|x| x as f64),
                "max" => self.max.map(|x| x as f64),
                "avg" => Some(self.sum as f64 / self.n as f64),
                "first" => self.first.map(|(_, v)| v as f64),
                "last" => self.last.map(|(_, v)| v as f64),
                other => panic!("unknown fn {other}"),
            })
            .collect()
    }
}

type Results = BTreeMap<(String, i64, i64), Vec<Option<f64>>>;

/// Naive sliding windows: every window `[k*slide, k*slide + size)` containing `t`.
fn naive_sliding(events: &[Ev], size: i64, slide: i64, fns: &[&str]) -> Results {
    let mut m: BTreeMap<(String, i64, i64), Naive> = BTreeMap::new();
    for e in events {
        let mut k = (e.t - size).div_euclid(slide);
        loop {
            let start = k * slide;
            if start > e.t {
                break;
            }
            if start + size > e.t {
                m.entry((e.key(), start, start + size)).or_default().add(e);
            }
            k += 1;
        }
    }
    m.into_iter().map(|(w, n)| (w, n.values(fns))).collect()
}

/// Naive sessions: sort times per key; an element joins the current session `[s, e)` when
/// `t <= e` (touching sessions merge).
fn naive_sessions(events: &[Ev], gap: i64, fns: &[&str]) -> Results {
    let mut by_key: BTreeMap<String, Vec<Ev>> = BTreeMap::new();
    for e in events {
        by_key.entry(e.key()).or_default().push(*e);
    }
    let mut out = Results::new();
    for (key, mut evs) in by_key {
        evs.sort_by_key(|e| e.t);
        let mut cur: Option<(i64, i64, Naive)> = None;
        for e in &evs {
            match &mut cur {
                Some((_, end, n)) if e.t <= *end => {
                    *end = (*end).max(e.t + gap);
                    n.add(e);
                }
                _ => {
                    if let Some((s, end, n)) = cur.take() {
                        out.insert((key.clone(), s, end), n.values(fns));
                    }
                    let mut n = Naive::default();
                    n.add(e);
                    cur = Some((e.t, e.t + gap, n));
                }
            }
        }
        if let Some((s, end, n)) = cur {
            out.insert((key.clone(), s, end), n.values(fns));
        }
    }
    out
}

/// The panes of a single-pane-per-window aggregation as a map; fails on a duplicate window.
fn single_panes(rows: &[Row], agg: usize) -> Result<Results, TestCaseError> {
    let mut m = Results::new();
    for r in rows.iter().filter(|r| r.agg == agg) {
        prop_assert!(!r.retraction, "unexpected retraction {r:?}");
        let prev = m.insert((r.key.clone(), r.start, r.end), r.values.clone());
        prop_assert!(prev.is_none(), "window fired twice: {r:?}");
    }
    Ok(m)
}

/// Keeps the value of the first event of each (key, t), so first/last are well defined
/// whatever the arrival order.
fn dedupe_values(events: &mut [Ev]) {
    let mut seen: HashMap<(u8, i64), i64> = HashMap::new();
    for e in events.iter_mut() {
        e.v = *seen.entry((e.k, e.t)).or_insert(e.v);
    }
}

/// Arrival order with bounded disorder: sort by `t + jitter`, `jitter < bound`.
fn jittered(events: &[Ev], jitter: &[i64]) -> Vec<Ev> {
    let mut v: Vec<(i64, Ev)> = events
        .iter()
        .zip(jitter.iter().chain(std::iter::repeat(&0)))
        .map(|(e, j)| (e.t + j, *e))
        .collect();
    v.sort_by_key(|(k, _)| *k);
    v.into_iter().map(|(_, e)| e).collect()
}

fn events(max_len: usize, keys: u8, t_max: i64) -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (0..keys, 0..t_max, -20i64..20).prop_map(|(k, t, v)| Ev { k, t, v }),
        0..max_len,
    )
    .prop_map(|mut v| {
        dedupe_values(&mut v);
        v
    })
}

fn sliding_win() -> impl Strategy<Value = Win> {
    (1i64..=20)
        .prop_flat_map(|size| (Just(size), 1..=size))
        .prop_map(|(size, slide)| Win::Sliding { size, slide })
}

fn any_win() -> impl Strategy<Value = Win> {
    prop_oneof![
        3 => sliding_win(),
        1 => (1i64..=15).prop_map(|size| Win::Sliding { size, slide: size }),
        2 => (1i64..=15).prop_map(|gap| Win::Session { gap }),
    ]
}

fn script() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            6 => (0u8..2, 0i64..80, -9i64..10).prop_map(|(k, t, v)| Op::Event(Ev { k, t, v })),
            1 => (1i64..=15).prop_map(Op::Watermark),
            2 => (1i64..15).prop_map(Op::Proc),
        ],
        0..60,
    )
}

fn script_events(ops: &[Op]) -> Vec<Ev> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Event(e) => Some(*e),
            _ => None,
        })
        .collect()
}

/// A trigger and allowed lateness for multi-pane aggregations.
#[derive(Debug, Clone)]
struct Firing {
    early: Option<String>,
    late: Option<String>,
    lateness: i64,
    /// A trigger expression, instead of `early` and `late`.
    expr: Option<String>,
}

impl Firing {
    fn toml(&self, mode: &str) -> String {
        let mut s = format!(
            "allowed_lateness = \"{}ms\"\naccumulation = \"{mode}\"\n",
            self.lateness
        );
        let parts: Vec<String> = [
            self.early.as_ref().map(|e| format!("early = {e}")),
            self.late.as_ref().map(|l| format!("late = {l}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(e) = &self.expr {
            s.push_str(&format!("trigger = \"{e}\"\n"));
        } else if !parts.is_empty() {
            s.push_str(&format!("trigger = {{ {} }}\n", parts.join(", ")));
        }
        s
    }
}

/// Which late triggers to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LateKinds {
    Any,
    /// No `late = { after = … }`: see `engine_bug_*` below.
    NoDelayed,
    /// Only `late = { after = … }`, with allowed lateness > 0.
    DelayedOnly,
}

/// `huge_lateness`: nothing expires before the end of input, so session windows only grow.
fn firing(huge_lateness: bool, kinds: LateKinds) -> impl Strategy<Value = Firing> {
    let early = prop_oneof![
        1 => Just(None),
        2 => (1u64..=3).prop_map(|n| Some(format!("{{ every = {n} }}"))),
        2 => (1i64..=20, any::<bool>())
            .prop_map(|(d, a)| Some(format!("{{ after = \"{d}ms\", aligned = {a} }}"))),
    ];
    let delayed = (1i64..=20).prop_map(|d| Some(format!("{{ after = \"{d}ms\" }}")));
    let late = match kinds {
        LateKinds::Any => prop_oneof![
            1 => Just(None),
            2 => Just(Some("\"every\"".to_string())),
            1 => delayed,
        ]
        .boxed(),
        LateKinds::NoDelayed => {
            prop_oneof![1 => Just(None), 2 => Just(Some("\"every\"".to_string()))].boxed()
        }
        LateKinds::DelayedOnly => delayed.boxed(),
    };
    let lateness = if huge_lateness {
        Just(86_400_000i64).boxed()
    } else if kinds == LateKinds::DelayedOnly {
        (1i64..=30).boxed()
    } else {
        prop_oneof![1 => Just(0i64), 3 => 1i64..=30].boxed()
    };
    (early, late, lateness).prop_map(|(early, late, lateness)| Firing {
        early,
        late: if lateness == 0 { None } else { late },
        lateness,
        expr: None,
    })
}

/// A random trigger expression: counts and processing-time delays (unaligned, or aligned
/// with an offset) combined by `repeat`, `first`, `all`, `each`, `or_finally` and
/// `watermark(early, late)`, up to three levels deep.
fn trigger_tree() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (1u64..=3).prop_map(|n| format!("count({n})")),
        (1i64..=20).prop_map(|d| format!("after({d}ms)")),
        (1i64..=20, 0i64..20).prop_map(|(p, o)| format!("every({p}ms, offset = {o}ms)")),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        let two = (inner.clone(), inner.clone());
        prop_oneof![
            inner.clone().prop_map(|t| format!("repeat({t})")),
            two.clone().prop_map(|(a, b)| format!("first({a}, {b})")),
            two.clone().prop_map(|(a, b)| format!("all({a}, {b})")),
            two.clone().prop_map(|(a, b)| format!("each({a}, {b})")),
            two.prop_map(|(a, b)| format!("or_finally({a}, {b})")),
            (
                prop::option::of(inner.clone()),
                prop::option::of(prop_oneof![inner, Just("never".to_string())]),
            )
                .prop_map(|(e, l)| watermark_expr(e, l)),
        ]
    })
}

fn watermark_expr(early: Option<String>, late: Option<String>) -> String {
    let parts: Vec<String> = [
        early.map(|e| format!("early = {e}")),
        late.map(|l| format!("late = {l}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!("watermark({})", parts.join(", "))
}

/// A random trigger tree for any window. Sessions get a root that never finishes
/// (`repeat(…)`, or `watermark(…)` with late firings): a finished session is closed and a
/// later element in its range starts another one, which the naive session computation of
/// the checks does not model.
fn win_and_trigger_tree() -> impl Strategy<Value = (Win, Firing)> {
    any_win().prop_flat_map(|w| {
        let sessions = matches!(w, Win::Session { .. });
        let never_finishing = prop_oneof![
            trigger_tree().prop_map(|t| format!("repeat({t})")),
            (
                prop::option::of(trigger_tree()),
                prop_oneof![trigger_tree(), Just("never".to_string())]
            )
                .prop_map(|(e, l)| watermark_expr(e, Some(l))),
        ];
        let (root, lateness) = if sessions {
            (never_finishing.boxed(), Just(86_400_000i64).boxed())
        } else {
            (
                prop_oneof![trigger_tree(), never_finishing].boxed(),
                (1i64..=30).boxed(),
            )
        };
        (Just(w), root, lateness).prop_map(|(w, expr, lateness)| {
            (
                w,
                Firing {
                    early: None,
                    late: None,
                    lateness,
                    expr: Some(expr),
                },
            )
        })
    })
}

/// Any window; delayed late firings only for sessions (they expire only at the end of input).
fn win_and_firing() -> impl Strategy<Value = (Win, Firing)> {
    any_win().prop_flat_map(|w| {
        let sessions = matches!(w, Win::Session { .. });
        let kinds = if sessions {
            LateKinds::Any
        } else {
            LateKinds::NoDelayed
        };
        (Just(w), firing(sessions, kinds))
    })
}

/// Tumbling or sliding windows whose late panes are delayed in processing time, so panes
/// can still be pending when the window expires.
fn sliding_with_delayed_late_firing() -> impl Strategy<Value = (Win, Firing)> {
    (sliding_win(), firing(false, LateKinds::DelayedOnly))
}

fn timing_rank(t: Timing) -> u8 {
    match t {
        Timing::Early => 0,
        Timing::OnTime => 1,
        Timing::Late => 2,
    }
}

/// Per window of one aggregation: pane indices 0, 1, 2, … in firing order, timings
/// EARLY* ON_TIME? LATE*. Retraction rows are skipped.
fn check_pane_sequence(rows: &[Row], agg: usize) -> Result<(), TestCaseError> {
    let mut seen: HashMap<(String, i64, i64), (u32, u8, bool)> = HashMap::new();
    for r in rows.iter().filter(|r| r.agg == agg && !r.retraction) {
        let w = (r.key.clone(), r.start, r.end);
        let rank = timing_rank(r.timing);
        match seen.get(&w) {
            None => prop_assert_eq!(r.index, 0, "first pane of a window: {:?}", r),
            Some(&(idx, prev_rank, on_time)) => {
                prop_assert_eq!(r.index, idx + 1, "pane index not consecutive: {:?}", r);
                prop_assert!(rank >= prev_rank, "timing goes back: {:?}", r);
                prop_assert!(
                    !(on_time && r.timing == Timing::OnTime),
                    "two ON_TIME panes: {:?}",
                    r
                );
            }
        }
        let on_time = seen.get(&w).is_some_and(|s| s.2) || r.timing == Timing::OnTime;
        seen.insert(w, (r.index, rank, on_time));
    }
    Ok(())
}

fn add_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(x), Some(y)) => Some(x + y),
    }
}

fn fold_opt(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(x), Some(y)) => Some(f(x, y)),
    }
}

/// The window of `finals` (same key) containing `[start, end)`.
fn containing<'a>(
    finals: &'a Results,
    key: &str,
    start: i64,
    end: i64,
) -> Option<&'a (String, i64, i64)> {
    finals
        .keys()
        .find(|(k, s, e)| k == key && *s <= start && end <= *e)
}

/// The last pane of each window of an accumulating aggregation. For session windows
/// (nothing expired before the end), only maximal windows: swallowed sessions are dropped.
fn accumulating_finals(rows: &[Row], agg: usize, sessions: bool) -> Results {
    let mut last = Results::new();
    for r in rows.iter().filter(|r| r.agg == agg) {
        last.insert((r.key.clone(), r.start, r.end), r.values.clone());
    }
    if sessions {
        let all: Vec<_> = last.keys().cloned().collect();
        last.retain(|(k, s, e), _| {
            !all.iter()
                .any(|(k2, s2, e2)| k2 == k && s2 <= s && e <= e2 && (s2, e2) != (s, e))
        });
    }
    last
}

/// (c) One run with a discarding and an accumulating aggregation of the same window: the
/// discarding panes of a window add up (count, sum; min and max combine) to its final
/// accumulating pane. Session panes are attributed to the final session containing them.
fn check_discarding_adds_up(ops: &[Op], win: Win, fire: &Firing) -> Result<(), TestCaseError> {
    let fns = ["count", "sum", "min", "max"];
    let s = spec(
        EXPLICIT,
        &[
            aggregation("d", &win, &fns, &fire.toml("discarding")),
            aggregation("a", &win, &fns, &fire.toml("accumulating")),
        ],
    );
    let (out, late) = run_ops(&s, ops);
    prop_assert_eq!(late[0], late[1], "both aggregations drop the same records");
    check_pane_sequence(&out.rows, 0)?;
    check_pane_sequence(&out.rows, 1)?;
    let sessions = matches!(win, Win::Session { .. });
    let finals = accumulating_finals(&out.rows, 1, sessions);
    let mut sums: BTreeMap<(String, i64, i64), Vec<Option<f64>>> = BTreeMap::new();
    for r in out.rows.iter().filter(|r| r.agg == 0) {
        let w = containing(&finals, &r.key, r.start, r.end);
        prop_assert!(
            w.is_some(),
            "discarding pane outside every accumulating window: {:?}",
            r
        );
        let acc = sums
            .entry(w.cloned().unwrap_or_default())
            .or_insert_with(|| vec![None; 4]);
        acc[0] = add_opt(acc[0], r.values[0]);
        acc[1] = add_opt(acc[1], r.values[1]);
        acc[2] = fold_opt(acc[2], r.values[2], f64::min);
        acc[3] = fold_opt(acc[3], r.values[3], f64::max);
    }
    prop_assert_eq!(&sums, &finals);
    // Every accepted record is counted exactly once by the discarding aggregation.
    let events = script_events(ops).len() as f64;
    let counted: f64 = sums.values().filter_map(|v| v[0]).sum();
    if sessions || matches!(win, Win::Sliding { size, slide } if size == slide) {
        prop_assert_eq!(counted + late[0] as f64, events);
    }
    Ok(())
}

/// (d) One run with a retracting and an accumulating aggregation of the same window.
fn check_retractions_cancel(ops: &[Op], win: Win, fire: &Firing) -> Result<(), TestCaseError> {
    let fns = ["count", "sum"];
    let s = spec(
        EXPLICIT,
        &[
            aggregation("r", &win, &fns, &fire.toml("retracting")),
            aggregation("a", &win, &fns, &fire.toml("accumulating")),
        ],
    );
    let (out, late) = run_ops(&s, ops);
    let sessions = matches!(win, Win::Session { .. });
    // Replay the retracting stream: a value must be retracted before it is replaced, and
    // a retraction must retract exactly the value in place.
    let mut current: BTreeMap<(String, i64, i64), Vec<Option<f64>>> = BTreeMap::new();
    let mut net: BTreeMap<(String, i64, i64), (f64, f64)> = BTreeMap::new();
    for r in out.rows.iter().filter(|r| r.agg == 0) {
        let w = (r.key.clone(), r.start, r.end);
        let n = net.entry(w.clone()).or_default();
        let sign = if r.retraction { -1.0 } else { 1.0 };
        n.0 += sign * r.values[0].unwrap_or(0.0);
        n.1 += sign * r.values[1].unwrap_or(0.0);
        if r.retraction {
            let prev = current.remove(&w);
            prop_assert_eq!(
                prev.as_ref(),
                Some(&r.values),
                "retraction of a value not in place: {:?}",
                r
            );
        } else {
            prop_assert!(
                !current.contains_key(&w),
                "value replaced without a retraction: {:?}",
                r
            );
            current.insert(w, r.values.clone());
        }
    }
    // Σ non-retractions − Σ retractions == the last value of a live window, 0 otherwise.
    for (w, (count, sum)) in &net {
        let want = current
            .get(w)
            .map_or((0.0, 0.0), |v| (v[0].unwrap_or(0.0), v[1].unwrap_or(0.0)));
        prop_assert_eq!((*count, *sum), want, "window {:?}", w);
    }
    // What is left equals the final accumulating values.
    prop_assert_eq!(&current, &accumulating_finals(&out.rows, 1, sessions));
    // Tumbling and session windows admit a record for all its windows or for none.
    let all_or_nothing = sessions || matches!(win, Win::Sliding { size, slide } if size == slide);
    if late[0] == 0 && all_or_nothing {
        let evs = script_events(ops);
        let want = match win {
            Win::Sliding { size, slide } => naive_sliding(&evs, size, slide, &fns),
            Win::Session { gap } => naive_sessions(&evs, gap, &fns),
        };
        prop_assert_eq!(&current, &want);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(128))]

    /// (a) Sliced sliding windows equal a naive per-window recomputation.
    #[test]
    fn sliding_windows_equal_naive_recomputation(
        evs in events(40, 3, 60),
        win in sliding_win(),
        invertible_only in any::<bool>(),
        watermark in 0u8..3,
        jitter in prop::collection::vec(0i64..8, 40),
    ) {
        let Win::Sliding { size, slide } = win else { unreachable!() };
        let fns: &[&str] = if invertible_only { &INVERTIBLE_FNS } else { &ALL_FNS };
        // 0: explicit, watermark only at `finish`; 1: bounded, bound larger than the time
        // range; 2: bounded by the disorder of the arrival order, so windows fire mid-stream.
        let (wm, arrival) = match watermark {
            0 => (EXPLICIT.to_string(), evs.clone()),
            1 => (bounded(1_000), evs.clone()),
            _ => (bounded(8), jittered(&evs, &jitter)),
        };
        let s = spec(&wm, &[aggregation("a", &win, fns, "")]);
        let (out, late) = run_events(&s, &arrival);
        prop_assert!(out.late.is_empty(), "late: {:?}", out.late);
        prop_assert_eq!(late, vec![0]);
        let got = single_panes(&out.rows, 0)?;
        let want = naive_sliding(&evs, size, slide, fns);
        prop_assert_eq!(got, want, "size {} slide {} fns {:?}", size, slide, fns);
    }

    /// (b) With no late data, results do not depend on the arrival order within the bound.
    #[test]
    fn results_do_not_depend_on_disorder_within_the_bound(
        evs in events(40, 3, 80),
        win in any_win(),
        bound in 1i64..12,
        jitter in prop::collection::vec(0i64..12, 40),
    ) {
        // Session windows that just touch merge, and a window [s, e) has fired once the
        // watermark reaches e - 1. An element at exactly t = e is not late when its disorder
        // is bound - 1 (e.g. bound 1 and another key's element at e arrived first), yet it
        // opens a new session instead of extending the fired one (Flink behaves the same).
        // Keep one millisecond of margin for sessions: disorder <= bound - 2.
        let (bound, max_jitter) = match win {
            Win::Session { .. } => (bound.max(2), bound.max(2) - 1),
            Win::Sliding { .. } => (bound, bound),
        };
        let jitter: Vec<i64> = jitter.iter().map(|j| j % max_jitter).collect();
        let s = spec(&bounded(bound), &[aggregation("a", &win, &ALL_FNS, "")]);
        let mut sorted = evs.clone();
        sorted.sort_by_key(|e| e.t);
        let (ordered, _) = run_events(&s, &sorted);
        let (shuffled, _) = run_events(&s, &jittered(&evs, &jitter));
        prop_assert!(ordered.late.is_empty() && shuffled.late.is_empty());
        let a = single_panes(&ordered.rows, 0)?;
        let b = single_panes(&shuffled.rows, 0)?;
        prop_assert_eq!(&a, &b);
        let want = match win {
            Win::Sliding { size, slide } => naive_sliding(&evs, size, slide, &ALL_FNS),
            Win::Session { gap } => naive_sessions(&evs, gap, &ALL_FNS),
        };
        prop_assert_eq!(a, want);
    }

    /// (c) Discarding panes add up to the final accumulating value of the window.
    #[test]
    fn discarding_panes_add_up_to_accumulating_value(
        ops in script(),
        (win, fire) in win_and_firing(),
    ) {
        check_discarding_adds_up(&ops, win, &fire)?;
    }

    /// (d) Retractions cancel exactly, for sliding windows and for merging sessions.
    #[test]
    fn retractions_cancel_exactly(
        ops in script(),
        (win, fire) in win_and_firing(),
    ) {
        check_retractions_cancel(&ops, win, &fire)?;
    }

    /// (c) for random trigger trees (issue 12).
    #[test]
    fn discarding_panes_add_up_for_random_trigger_trees(
        ops in script(),
        (win, fire) in win_and_trigger_tree(),
    ) {
        check_discarding_adds_up(&ops, win, &fire)?;
    }

    /// (d) for random trigger trees (issue 12).
    #[test]
    fn retractions_cancel_for_random_trigger_trees(
        ops in script(),
        (win, fire) in win_and_trigger_tree(),
    ) {
        check_retractions_cancel(&ops, win, &fire)?;
    }

    /// (e) Session merging is order independent and equals a naive computation.
    #[test]
    fn sessions_do_not_depend_on_arrival_order(
        (evs, permuted) in events(30, 2, 100).prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle())),
        gap in 1i64..=20,
    ) {
        let fns = ["count", "sum", "min", "max", "first", "last"];
        let s = spec(EXPLICIT, &[aggregation("s", &Win::Session { gap }, &fns, "")]);
        let (a, _) = run_events(&s, &evs);
        let (b, _) = run_events(&s, &permuted);
        let a = single_panes(&a.rows, 0)?;
        let b = single_panes(&b.rows, 0)?;
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &naive_sessions(&evs, gap, &fns));
    }

    /// Records beyond the allowed lateness go to `Output::late` and none disappears:
    /// accepted + late == input events, per aggregation.
    #[test]
    fn late_records_are_reported_never_lost(ops in script(), lateness in 0i64..20, gap in 1i64..10, size in 1i64..15) {
        let fire = |mode: &str| format!("allowed_lateness = \"{lateness}ms\"\naccumulation = \"{mode}\"");
        let s = spec(EXPLICIT, &[
            aggregation("tumbling", &Win::Sliding { size, slide: size }, &["count"], &fire("discarding")),
            aggregation("session", &Win::Session { gap }, &["count"], &fire("discarding")),
        ]);
        let (out, late) = run_ops(&s, &ops);
        let events = script_events(&ops);
        for (agg, &dropped) in late.iter().enumerate() {
            let accepted: f64 = out.rows.iter().filter(|r| r.agg == agg).filter_map(|r| r.values[0]).sum();
            let reported = out.late.iter().filter(|(a, _)| *a == agg).count() as u64;
            prop_assert_eq!(reported, dropped, "stats and Output::late agree");
            prop_assert_eq!(accepted + reported as f64, events.len() as f64, "aggregation {}", agg);
        }
        // The late output holds the raw input lines.
        for (_, raw) in &out.late {
            prop_assert!(events.iter().any(|e| e.line() == *raw), "not an input line: {}", raw);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: pending late data when a sliced window expires
// ---------------------------------------------------------------------------------------------
//
// A window that expires while a delayed late pane (`late = { after = … }`) is still pending
// fires a closing LATE pane computed from its slices, so the slices must still be there.

#[test]
fn regression_pending_late_element_fires_when_window_expires() {
    for mode in ["discarding", "accumulating", "retracting"] {
        let s = spec(
            EXPLICIT,
            &[aggregation(
                "q",
                &Win::Sliding { size: 10, slide: 10 },
                &["sum"],
                &format!("allowed_lateness = \"20ms\"\naccumulation = \"{mode}\"\ntrigger = {{ late = {{ after = \"5ms\" }} }}"),
            )],
        );
        let lines = [
            r#"{"k":"a","t":1,"v":7}"#,
            r#"{"advance_watermark":15}"#, // [0,10) fires ON_TIME with 7
            r#"{"k":"a","t":2,"v":5}"#, // late, within the lateness (expiry 29): late pane due at now + 5ms
            r#"{"advance_watermark":40}"#, // the window expires first: its pending pane must fire
        ];
        let mut p = Pipeline::new(PipelineSpec::from_toml(&s).unwrap());
        let mut out = Recorder::default();
        for l in lines {
            p.process_line(l.as_bytes(), "", &mut out).unwrap();
        }
        p.finish(&mut out);
        let got: Vec<(Timing, bool, Option<f64>)> = out
            .rows
            .iter()
            .map(|r| (r.timing, r.retraction, r.values[0]))
            .collect();
        let want = match mode {
            "discarding" => vec![
                (Timing::OnTime, false, Some(7.0)),
                (Timing::Late, false, Some(5.0)),
            ],
            "accumulating" => vec![
                (Timing::OnTime, false, Some(7.0)),
                (Timing::Late, false, Some(12.0)),
            ],
            _ => vec![
                (Timing::OnTime, false, Some(7.0)),
                (Timing::Late, true, Some(7.0)),
                (Timing::Late, false, Some(12.0)),
            ],
        };
        assert_eq!(got, want, "{mode}");
    }
}

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(128))]

    /// (c) with tumbling/sliding windows and delayed late firings.
    #[test]
    fn regression_discarding_adds_up_with_delayed_late_firings(
        ops in script(),
        (win, fire) in sliding_with_delayed_late_firing(),
    ) {
        check_discarding_adds_up(&ops, win, &fire)?;
    }

    /// (d) with tumbling/sliding windows and delayed late firings.
    #[test]
    fn regression_retractions_cancel_with_delayed_late_firings(
        ops in script(),
        (win, fire) in sliding_with_delayed_late_firing(),
    ) {
        check_retractions_cancel(&ops, win, &fire)?;
    }
}

/// The lines of a script, as [`run_ops`] feeds them.
fn script_lines(ops: &[Op]) -> Vec<String> {
    let (mut wm, mut now) = (0i64, 0i64);
    ops.iter()
        .map(|op| match op {
            Op::Event(e) => e.line(),
            Op::Watermark(d) => {
                wm += d;
                format!(r#"{{"advance_watermark":{wm}}}"#)
            }
            Op::Proc(d) => {
                now += d;
                format!(r#"{{"advance_processing_time":{now}}}"#)
            }
        })
        .collect()
}

/// Rows as a key-ordered sink writes them: by aggregation, key, then window start, stably.
fn key_ordered(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| (a.agg, &a.key, a.start).cmp(&(b.agg, &b.key, b.start)));
    rows
}

#[derive(Default)]
struct KeyRows {
    rows: Vec<Row>,
    late: Vec<u64>,
    agg: usize,
}

impl Emit for KeyRows {
    fn pane(&mut self, p: &Pane<'_>) {
        let mut c = Recorder::default();
        c.pane(p);
        self.rows
            .extend(c.rows.into_iter().map(|r| Row { agg: self.agg, ..r }));
    }
}

impl eventide_engine::bounded::KeyOutput for KeyRows {
    fn late(&mut self, tag: u64) {
        self.late.push(tag);
    }
}

/// Runs a spec over script lines key by key, the input cut into two chunks at `cut`.
fn run_key_by_key(spec: &PipelineSpec, lines: &[String], cut: usize) -> (KeyRows, Vec<u64>) {
    use eventide_engine::bounded::{BoundedInput, Chunk, KeyRunner};
    use eventide_engine::record::Line;
    use eventide_engine::route::Routes;
    assert!(eventide_engine::bounded::supports(spec));
    let routes = Routes::new(spec);
    let decoder = eventide_engine::codec::Codec::new(spec);
    let mut chunks = vec![Chunk::new(&routes), Chunk::new(&routes)];
    for (i, l) in lines.iter().enumerate() {
        let chunk = &mut chunks[usize::from(i >= cut)];
        match decoder.decode(l.as_bytes()).expect("valid line") {
            Line::Event(rec) => chunk.push_event(&routes, &rec, i as u64),
            other => chunk.push_control(&other),
        }
    }
    let input = BoundedInput::new(spec, routes, chunks, i64::MAX);
    let mut out = KeyRows::default();
    let mut late = Vec::new();
    for agg in 0..spec.aggregations.len() {
        let mut runner = KeyRunner::new(spec, agg);
        out.agg = agg;
        for rank in 0..input.keys(agg) {
            runner.run_key(&input, rank, &mut out);
        }
        late.push(runner.late);
    }
    (out, late)
}

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(128))]

    /// (f) Running a bounded input one key at a time against its global timeline gives the
    /// streaming run's panes (in key order) and late records, whatever the windows,
    /// triggers, lateness, accumulation mode, filters and watermark strategy.
    #[test]
    fn key_by_key_run_equals_the_streaming_run(
        ops in script(),
        (win, fire) in win_and_firing(),
        mode in prop_oneof![Just("discarding"), Just("accumulating"), Just("retracting")],
        (count, count_slide) in (1u64..=4).prop_flat_map(|n| (Just(n), 1..=n)),
        watermark in 0u8..3,
        cut in 0usize..60,
    ) {
        let wm = match watermark {
            0 => EXPLICIT.to_string(),
            1 => bounded(5),
            _ => format!("{}\nidle_timeout = \"7ms\"", bounded(3)),
        };
        let s = spec(&wm, &[
            aggregation("a", &win, &ALL_FNS, &fire.toml(mode)),
            aggregation("b", &win, &["count", "sum"], "filter = 'v > 0'"),
            aggregation(
                "c",
                &Win::Sliding { size: 1, slide: 1 },
                &["count", "avg"],
                "",
            )
            .replace(
                "{ type = \"tumbling\", size = \"1ms\" }",
                &format!("{{ type = \"count\", size = {count}, slide = {count_slide} }}"),
            ),
        ]);
        let (streamed, late) = run_ops(&s, &ops);
        let spec = PipelineSpec::from_toml(&s).unwrap();
        let lines = script_lines(&ops);
        let (keyed, keyed_late) = run_key_by_key(&spec, &lines, cut.min(lines.len()));
        prop_assert_eq!(key_ordered(streamed.rows), key_ordered(keyed.rows));
        prop_assert_eq!(late, keyed_late);
        let mut want: Vec<&str> = streamed.late.iter().map(|(_, raw)| raw.as_str()).collect();
        let mut got: Vec<&str> = keyed.late.iter().map(|&i| lines[i as usize].as_str()).collect();
        want.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(want, got);
    }
}

// ---------------------------------------------------------------------------------------------
// Unit-style tests
// ---------------------------------------------------------------------------------------------

#[test]
fn late_record_goes_to_late_output_with_its_raw_line() {
    let s = spec(
        EXPLICIT,
        &[aggregation(
            "q",
            &Win::Sliding {
                size: 10,
                slide: 10,
            },
            &["count", "sum"],
            "allowed_lateness = \"5ms\"\ntrigger = { late = \"every\" }",
        )],
    );
    let spec = PipelineSpec::from_toml(&s).unwrap();
    let mut p = Pipeline::new(spec);
    let mut out = Recorder::default();
    let lines = [
        r#"{"k":"a","t":1,"v":1}"#,
        r#"{"advance_watermark":12}"#,
        r#"{"k":"a","t":2,"v":2}"#, // late, within the allowed lateness (expiry 14): LATE pane
        r#"{"advance_watermark":14}"#,
        r#"{"k":"a","t":3,"v":4}"#, // beyond the allowed lateness: late output
        r#"{"k":"a","t":15,"v":8}"#,
    ];
    for l in lines {
        p.process_line(l.as_bytes(), "", &mut out).unwrap();
    }
    p.finish(&mut out);
    assert_eq!(out.late, vec![(0, lines[4].to_string())]);
    assert_eq!(p.stats().late, vec![1]);
    assert_eq!(p.stats().events, 4);
    let got: Vec<(i64, Timing, u32, Vec<Option<f64>>)> = out
        .rows
        .iter()
        .map(|r| (r.start, r.timing, r.index, r.values.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Timing::OnTime, 0, vec![Some(1.0), Some(1.0)]),
            (0, Timing::Late, 1, vec![Some(1.0), Some(2.0)]),
            (10, Timing::OnTime, 0, vec![Some(1.0), Some(8.0)]),
        ]
    );
}

fn spec_error(aggregation_toml: &str) -> SpecError {
    let s = spec(EXPLICIT, &[aggregation_toml.to_string()]);
    match PipelineSpec::from_toml(&s) {
        Ok(_) => panic!("spec accepted:\n{s}"),
        Err(e) => e,
    }
}

fn assert_names_field(e: &SpecError, field: &str) {
    match e {
        SpecError::Invalid { field: f, .. } => assert!(
            f.ends_with(field),
            "error names `{f}`, expected `{field}`: {e}"
        ),
        other => panic!("expected an invalid field `{field}`, got {other}"),
    }
    assert!(
        e.to_string().contains(field),
        "message does not name `{field}`: {e}"
    );
}

#[test]
fn spec_error_names_slide_larger_than_size() {
    let e = spec_error(
        "[[aggregation]]\nname = \"x\"\nwindow = { type = \"sliding\", size = \"2h\", slide = \"3h\" }\n\
         aggregates = [{ name = \"c\", fn = \"count\" }]",
    );
    assert_names_field(&e, "window.slide");
    assert!(e.to_string().contains("aggregation[0]"), "{e}");
}

#[test]
fn spec_error_names_zero_session_gap() {
    let e = spec_error(
        "[[aggregation]]\nname = \"x\"\nwindow = { type = \"session\", gap = \"0ms\" }\n\
         aggregates = [{ name = \"c\", fn = \"count\" }]",
    );
    assert_names_field(&e, "window.gap");
}

#[test]
fn spec_error_names_unknown_group_by_field() {
    let e = spec_error(
        "[[aggregation]]\nname = \"x\"\ngroup_by = [\"k\", \"nope\"]\nwindow = { type = \"tumbling\", size = \"1m\" }\n\
         aggregates = [{ name = \"c\", fn = \"count\" }]",
    );
    assert_names_field(&e, "group_by[1]");
    assert!(e.to_string().contains("nope"), "{e}");
}
