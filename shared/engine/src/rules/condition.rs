//! Incremental evaluation of a condition rule per key.
//!
//! A key's records are kept in slices one evaluation period (`every`) long, each holding one
//! accumulator per aggregate term (only the records that pass the term's `where`) and the
//! latest value of each field the rule reads bare. At each evaluation instant `T` (a
//! multiple of `every`) a term's value is the merge of the slices inside `[T - window, T)`:
//! exactly the sliding window of that length and slide `every` ending at `T`. The instant
//! is evaluated when the watermark reaches `T - 1`, as a window ending at `T` fires, so
//! out-of-order records within the watermark's bound are all counted.
//!
//! Slices older than the rule's longest window are evicted; a key whose longest window is
//! empty at the next instant is dropped, so state is bounded by `span / every` slices per
//! active key.
//!
//! Count, sum and avg terms are not re-merged at each instant: a running accumulator per
//! term merges the slices entering its window and subtracts those leaving it (and takes
//! late records into a slice already inside it), so an evaluation costs O(slices that
//! moved), not O(window / every). Sums are exact decimals, so the result is identical to
//! merging the window; when it could not be (a non-decimal or huge value), the term is
//! recomputed from its slices. Min, max, first and last keep their window as two stacks
//! ([`Stacks`]): amortised O(1) merges per evaluation. Neither is stored: after a restore
//! they are rebuilt from the slices at the next instant.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::expr::{Inputs, Term};
use super::{Alert, ConditionRule, RuleSpec};
use crate::aggregate::{Acc, Sum, MAX_SCALE};
use crate::operator::{decode_state, Keyed, Reset, Timers};
use crate::record::Record;

/// One evaluation period of a key's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slice {
    start: i64,
    /// One accumulator per term, over the records that pass its `where`.
    accs: Vec<Acc>,
    /// Per bare field: the (time, value) of the latest record with a value.
    latest: Vec<Option<(i64, f64)>>,
}

/// A key's state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CondKey {
    /// Slices with data, sorted by start.
    slices: VecDeque<Slice>,
    /// The next evaluation instant, `i64::MAX` when none is armed.
    next: i64,
    /// The last instant evaluated, `i64::MIN` when none.
    last: i64,
    /// The value at `last`.
    was_true: bool,
    /// Running totals of the invertible terms (not stored: rebuilt from the slices after a
    /// restore, so the stored format is the slices alone).
    #[serde(skip)]
    run: Option<Running>,
}

/// The invertible terms' (count, sum, avg) accumulators over their windows ending at `t`:
/// moving to the next instant merges the slices that enter a window and subtracts those that
/// leave it, so an evaluation costs O(slices that moved) rather than O(window / every).
///
/// Results stay identical to merging the window's slices: counts are integers and sums are
/// exact decimals ([`Sum::Exact`]), which add and subtract without rounding. Whenever a
/// running sum is not exact, or the window's slices could overflow the exact form when merged
/// one by one (`abs` bounds that), the term is recomputed from its slices instead.
#[derive(Debug, Clone)]
struct Running {
    t: i64,
    /// Per term (unused for the others): the accumulator of `[t - window, t)`.
    accs: Vec<Acc>,
    /// Per term: an upper bound on the sum of the window's slices' `|sum|`, in units of
    /// `10^-MAX_SCALE` (`i128::MAX` when unknown).
    abs: Vec<i128>,
    /// Per min/max/first/last term: its window as two stacks, `None` to rebuild.
    ext: Vec<Option<Stacks>>,
}

/// A min/max/first/last term's window `[t - window, t)` as two stacks: `front` holds, for
/// each slice in `[t - window, mid)`, the merge of it and every later slice before `mid`,
/// and `back` the merge of the slices in `[mid, t)`. The window's value is the merge of the
/// first `front` entry and `back`. A slice leaving drops its `front` entry; a slice entering
/// merges into `back`; when `front` runs out, the window's slices are folded into a new
/// `front` (each slice once), so an evaluation costs amortised O(1) merges. These merges
/// are order-insensitive (slices are disjoint in time), so the value is identical to
/// merging the window's slices oldest first.
#[derive(Debug, Clone)]
struct Stacks {
    mid: i64,
    front: VecDeque<(i64, Acc)>,
    back: Acc,
}

/// A min/max/first/last term's value at `t`, moving its stacks there from `from`.
fn stacks_value(
    st: &mut Option<Stacks>,
    slices: &VecDeque<Slice>,
    i: usize,
    term: &Term,
    from: i64,
    t: i64,
) -> Option<f64> {
    let lo = t - term.window_ms;
    let empty = || Acc::with_layout(usize::from(term.field.is_some()), true);
    if let Some(s) = st {
        while s.front.front().is_some_and(|(start, _)| *start < lo) {
            s.front.pop_front();
        }
        if s.front.is_empty() {
            *st = None;
        }
    }
    let s = match st {
        Some(s) => {
            // `front` still has a slice at or after `lo`, so `back` and every entering
            // slice (from `from >= mid`) are inside the window.
            let k = slices.partition_point(|x| x.start < from);
            for x in slices.range(k..) {
                if x.start >= t {
                    break;
                }
                s.back.merge(&x.accs[i]);
            }
            s
        }
        None => {
            let a = slices.partition_point(|x| x.start < lo);
            let b = slices.partition_point(|x| x.start < t);
            let mut front: VecDeque<(i64, Acc)> = VecDeque::with_capacity(b - a);
            for x in slices.range(a..b).rev() {
                let mut acc = x.accs[i].clone();
                if let Some((_, later)) = front.front() {
                    acc.merge(later);
                }
                front.push_front((x.start, acc));
            }
            st.insert(Stacks {
                mid: t,
                front,
                back: empty(),
            })
        }
    };
    match s.front.front() {
        Some((_, f)) => {
            let mut acc = f.clone();
            acc.merge(&s.back);
            term.value(&acc)
        }
        None => term.value(&s.back),
    }
}

/// `|s|` in units of `10^-9` (the finest exact scale), `None` for a float sum.
fn abs_units(s: Sum) -> Option<i128> {
    match s {
        Sum::Exact { units, scale } => Some(i128::from(units).abs() * pow10_to_finest(scale)),
        Sum::Float(_) => None,
    }
}

/// `10^(MAX_SCALE - scale)`: one unit at `scale` in the finest units.
fn pow10_to_finest(scale: u8) -> i128 {
    10i128.pow(u32::from(MAX_SCALE.saturating_sub(scale)))
}

fn add_abs(a: &mut i128, s: Sum) {
    *a = match abs_units(s) {
        Some(x) => a.saturating_add(x),
        None => i128::MAX,
    };
}

/// Takes out a slice's `|sum|` that [`add_abs`] added; an unknown bound stays unknown.
fn sub_abs(a: &mut i128, s: Sum) {
    if *a != i128::MAX {
        if let Some(x) = abs_units(s) {
            *a = (*a - x).max(0);
        }
    }
}

/// True when a running accumulator can stand for the merge of its window's slices: its sum
/// is exact and no partial merge of those slices can leave the exact range.
fn trusted(acc: &Acc, abs: i128) -> bool {
    match acc.cells.first().map(|c| c.sum) {
        None => true,
        Some(Sum::Float(_)) => false,
        Some(Sum::Exact { scale, .. }) => abs <= (1i128 << 53) * pow10_to_finest(scale),
    }
}

/// A term's accumulator over the slices in `[t - window, t)`, merged oldest first, and the
/// sum of their `|sum|` (see [`Running::abs`]).
fn merge_window(slices: &VecDeque<Slice>, i: usize, term: &Term, t: i64) -> (Acc, i128) {
    let mut acc = Acc::with_layout(usize::from(term.field.is_some()), term.extrema());
    let mut abs = 0i128;
    let from = slices.partition_point(|s| s.start < t - term.window_ms);
    for s in slices.range(from..) {
        if s.start >= t {
            break;
        }
        acc.merge(&s.accs[i]);
        if let Some(c) = s.accs[i].cells.first() {
            add_abs(&mut abs, c.sum);
        }
    }
    (acc, abs)
}

/// Pops the slices that start before `bound`, taking them out of the running totals.
fn evict(state: &mut CondKey, rule: &ConditionRule, bound: i64) {
    while state.slices.front().is_some_and(|s| s.start < bound) {
        let Some(s) = state.slices.pop_front() else {
            break;
        };
        let Some(run) = &mut state.run else {
            continue;
        };
        for (i, term) in rule.expr.terms.iter().enumerate() {
            if s.start < run.t - term.window_ms || s.start >= run.t {
                continue;
            }
            if term.func.invertible() {
                run.accs[i].subtract(&s.accs[i]);
                if let Some(c) = s.accs[i].cells.first() {
                    sub_abs(&mut run.abs[i], c.sum);
                }
            } else if let Some(st) = &mut run.ext[i] {
                if s.start >= st.mid {
                    run.ext[i] = None;
                } else {
                    while st.front.front().is_some_and(|(start, _)| *start <= s.start) {
                        st.front.pop_front();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests set it to recompute every term from its slices (the reference the running
    /// totals are compared with).
    pub(crate) static NAIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The terms' values at `t`, moving the running totals there.
fn term_values(state: &mut CondKey, rule: &ConditionRule, t: i64, out: &mut [Option<f64>]) {
    #[cfg(test)]
    if NAIVE.with(|n| n.get()) {
        state.run = None;
    }
    let terms = &rule.expr.terms;
    let (mut run, from) = match state.run.take() {
        Some(mut run) if run.t < t => {
            for (i, term) in terms.iter().enumerate() {
                if !term.func.invertible() {
                    continue;
                }
                let w = term.window_ms;
                let (acc, abs) = (&mut run.accs[i], &mut run.abs[i]);
                // Leaving: [run.t - w, min(run.t, t - w)); entering: [max(run.t, t - w), t).
                let (leave_to, enter_from) = (run.t.min(t - w), run.t.max(t - w));
                let from = state.slices.partition_point(|s| s.start < run.t - w);
                for s in state.slices.range(from..) {
                    if s.start >= t {
                        break;
                    }
                    if s.start < leave_to {
                        acc.subtract(&s.accs[i]);
                        if let Some(c) = s.accs[i].cells.first() {
                            sub_abs(abs, c.sum);
                        }
                    } else if s.start >= enter_from {
                        acc.merge(&s.accs[i]);
                        if let Some(c) = s.accs[i].cells.first() {
                            add_abs(abs, c.sum);
                        }
                    }
                }
                if !trusted(acc, *abs) {
                    (*acc, *abs) = merge_window(&state.slices, i, term, t);
                }
            }
            let from = run.t;
            run.t = t;
            (run, from)
        }
        _ => {
            let mut run = Running {
                t,
                accs: Vec::with_capacity(terms.len()),
                abs: Vec::with_capacity(terms.len()),
                ext: vec![None; terms.len()],
            };
            for (i, term) in terms.iter().enumerate() {
                let (acc, abs) = if term.func.invertible() {
                    merge_window(&state.slices, i, term, t)
                } else {
                    (Acc::with_layout(0, false), 0)
                };
                run.accs.push(acc);
                run.abs.push(abs);
            }
            (run, t)
        }
    };
    for (i, term) in terms.iter().enumerate() {
        out[i] = if term.func.invertible() {
            term.value(&run.accs[i])
        } else {
            stacks_value(&mut run.ext[i], &state.slices, i, term, from, t)
        };
    }
    #[cfg(test)]
    if NAIVE.with(|n| n.get()) {
        for (i, term) in terms.iter().enumerate() {
            out[i] = term.value(&merge_window(&state.slices, i, term, t).0);
        }
    }
    state.run = Some(run);
}

impl CondKey {
    fn new() -> Self {
        CondKey {
            slices: VecDeque::new(),
            next: i64::MAX,
            last: i64::MIN,
            was_true: false,
            run: None,
        }
    }
}

impl Reset for CondKey {
    fn reset(&mut self) {
        *self = CondKey::new();
    }
}

/// The operator of one condition rule.
pub(crate) struct CondOp {
    pub(crate) spec: RuleSpec,
    keys: Keyed<CondKey>,
    timers: Timers,
    /// Records too late for every future evaluation.
    pub(crate) late: u64,
}

/// The first multiple of `every` strictly greater than `x`.
fn boundary_after(x: i64, every: i64) -> i64 {
    x.div_euclid(every).saturating_add(1).saturating_mul(every)
}

impl CondOp {
    pub(crate) fn new(spec: RuleSpec) -> Self {
        CondOp {
            spec,
            keys: Keyed::default(),
            timers: Timers::default(),
            late: 0,
        }
    }

    fn rule(&self) -> &ConditionRule {
        match &self.spec.kind {
            super::RuleKind::Condition(c) => c,
            super::RuleKind::Pattern(_) => unreachable!("a condition operator holds a condition"),
        }
    }

    pub(crate) fn keys(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) {
        self.keys.snapshot(out);
    }

    pub(crate) fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String> {
        let state: CondKey = decode_state(blob)?;
        let next = state.next;
        let slot = self.keys.insert_state(key, state);
        if next != i64::MAX {
            self.timers.push(next, slot);
        }
        Ok(())
    }

    /// Adds a record of `key`. `wm` is the watermark before it.
    pub(crate) fn on_record(&mut self, key: &str, rec: &Record<'_>, wm: i64) {
        let (every, span) = (self.rule().every_ms, self.rule().span_ms);
        let start = rec.time.div_euclid(every).saturating_mul(every);
        // The record counts in the windows ending in [start + every, start + span]; those
        // ending at or before wm + 1 have been evaluated already.
        let first = boundary_after(wm.saturating_add(1), every).max(start + every);
        if first > start.saturating_add(span) {
            self.late += 1;
            return;
        }
        let CondOp {
            spec, keys, timers, ..
        } = self;
        let rule = match &spec.kind {
            super::RuleKind::Condition(c) => c,
            super::RuleKind::Pattern(_) => return,
        };
        let slot = keys.slot_or_insert(key, CondKey::new);
        let Some(state) = keys.state_mut(slot) else {
            return;
        };
        let pos = state.slices.partition_point(|s| s.start < start);
        if state.slices.get(pos).is_none_or(|s| s.start != start) {
            let accs = rule
                .expr
                .terms
                .iter()
                .map(|t| Acc::with_layout(usize::from(t.field.is_some()), t.extrema()))
                .collect();
            state.slices.insert(
                pos,
                Slice {
                    start,
                    accs,
                    latest: vec![None; rule.expr.fields.len()],
                },
            );
        }
        let slice = &mut state.slices[pos];
        for (i, (term, acc)) in rule
            .expr
            .terms
            .iter()
            .zip(slice.accs.iter_mut())
            .enumerate()
        {
            if term.filter.as_ref().is_some_and(|f| !f.matches(rec)) {
                continue;
            }
            let v = term.field.map(|f| rec.values[f].as_num());
            let values = v.as_slice();
            acc.add(rec.time, values);
            // A late record in a slice inside a running window joins that window too.
            if let Some(run) = &mut state.run {
                if start < run.t - term.window_ms || start >= run.t {
                    continue;
                }
                if term.func.invertible() {
                    run.accs[i].add(rec.time, values);
                    if let Some(Some(x)) = v {
                        let mut one = Sum::ZERO;
                        one.add(x);
                        add_abs(&mut run.abs[i], one);
                    }
                } else if let Some(st) = &mut run.ext[i] {
                    // In `back` it merges there; inside `front` the stacks are rebuilt.
                    if start >= st.mid {
                        st.back.add(rec.time, values);
                    } else {
                        run.ext[i] = None;
                    }
                }
            }
        }
        for (&f, latest) in rule.expr.fields.iter().zip(slice.latest.iter_mut()) {
            if let Some(v) = rec.values[f].as_num() {
                if latest.is_none_or(|(t, _)| rec.time >= t) {
                    *latest = Some((rec.time, v));
                }
            }
        }
        if first < state.next {
            state.next = first;
            timers.push(first, slot);
        }
    }

    /// Evaluates every instant `T` with `T - 1 <= wm`, emitting alerts on false → true.
    pub(crate) fn on_watermark(&mut self, wm: i64, out: &mut dyn FnMut(Alert)) {
        let CondOp {
            spec, keys, timers, ..
        } = self;
        let rule = match &spec.kind {
            super::RuleKind::Condition(c) => c,
            super::RuleKind::Pattern(_) => return,
        };
        let (every, span) = (rule.every_ms, rule.span_ms);
        let mut terms = vec![None; rule.expr.terms.len()];
        let mut fields = vec![None; rule.expr.fields.len()];
        // The window ending at `t` is due once `t - 1 <= wm`.
        while let Some((t, slot)) = timers.pop_due(wm.saturating_add(1)) {
            let Some((key, state)) = keys.get_mut(slot) else {
                continue;
            };
            if state.next != t {
                continue; // a stale timer
            }
            evict(state, rule, t - span);
            if state.slices.front().is_none_or(|s| s.start >= t) {
                // No record in the longest window: not an instant, false.
                state.was_true = false;
            } else {
                term_values(state, rule, t, &mut terms);
                for (j, v) in fields.iter_mut().enumerate() {
                    // Slices are disjoint and sorted by time: the latest value is in the
                    // newest slice before `t` that has one.
                    *v = state
                        .slices
                        .iter()
                        .rev()
                        .skip_while(|s| s.start >= t)
                        .find_map(|s| s.latest[j])
                        .map(|(_, v)| v);
                }
                let now = rule.expr.root.truth(&Inputs {
                    terms: &terms,
                    fields: &fields,
                });
                let before = state.was_true && state.last == t - every;
                if now && !before {
                    out(Alert::condition(spec, key.name, t, rule, &terms, &fields));
                }
                state.was_true = now;
                state.last = t;
            }
            // The next instant with data in the longest window, if any.
            let next = t + every;
            evict(state, rule, next - span);
            match state.slices.front() {
                // A key true now is kept until the next instant, which then counts as a
                // transition from true (and as false if no record arrives for it).
                None if state.was_true => {
                    state.next = next;
                    timers.push(next, slot);
                }
                None => keys.remove(slot),
                Some(s) => {
                    let n = next.max(s.start + every);
                    state.next = n;
                    timers.push(n, slot);
                }
            }
        }
    }
}
