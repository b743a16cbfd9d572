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

use std::collections::VecDeque;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use super::expr::Inputs;
use super::{Alert, ConditionRule, RuleSpec};
use crate::aggregate::Acc;
use crate::operator::{decode_state, KeyDelta, Keyed, Reset, Timers};
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
}

impl CondKey {
    fn new() -> Self {
        CondKey {
            slices: VecDeque::new(),
            next: i64::MAX,
            last: i64::MIN,
            was_true: false,
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

    pub(crate) fn track_changes(&mut self) {
        self.keys.track_changes();
    }

    pub(crate) fn drain_dirty(&mut self, out: &mut dyn FnMut(KeyDelta)) {
        self.keys.drain_deltas(|s| s.next, out);
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
        for (term, acc) in rule.expr.terms.iter().zip(slice.accs.iter_mut()) {
            if term.filter.as_ref().is_some_and(|f| !f.matches(rec)) {
                continue;
            }
            match term.field {
                Some(f) => acc.add(rec.time, &[rec.values[f].as_num()]),
                None => acc.add(rec.time, &[]),
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
            while state.slices.front().is_some_and(|s| s.start < t - span) {
                state.slices.pop_front();
            }
            if state.slices.front().is_none_or(|s| s.start >= t) {
                // No record in the longest window: not an instant, false.
                state.was_true = false;
            } else {
                for (i, term) in rule.expr.terms.iter().enumerate() {
                    let mut acc =
                        Acc::with_layout(usize::from(term.field.is_some()), term.extrema());
                    for s in state.slices.iter() {
                        if s.start >= t {
                            break;
                        }
                        if s.start >= t - term.window_ms {
                            acc.merge(&s.accs[i]);
                        }
                    }
                    terms[i] = term.value(&acc);
                }
                for (j, v) in fields.iter_mut().enumerate() {
                    *v = state
                        .slices
                        .iter()
                        .take_while(|s| s.start < t)
                        .filter_map(|s| s.latest[j])
                        .max_by_key(|&(ts, _)| ts)
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
            while state.slices.front().is_some_and(|s| s.start < next - span) {
                state.slices.pop_front();
            }
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

/// True when `key` belongs to shard `index` of `count`, hashed as the pipeline does.
pub(crate) fn in_shard(key: &str, shard: Option<(u64, u64)>) -> bool {
    shard.is_none_or(|(index, count)| {
        (rustc_hash::FxBuildHasher.hash_one(key) >> 32) % count == index
    })
}
