//! Sequence patterns per key: `A{3} within 10m`, `A B{2} C within 1h`.
//!
//! Semantics (Flink CEP's `followedBy` with `AfterMatchSkipStrategy.skipPastLastEvent()`):
//!
//! - A key's records are matched in **event-time order** (ties in arrival order). A record
//!   is buffered until the watermark reaches its time, so out-of-order records within the
//!   watermark's bound are put in their place; a record at or behind the watermark when it
//!   arrives is late and ignored, as Flink CEP drops it.
//! - **Relaxed contiguity**: records that match no step of the pattern, or not the step a
//!   partial match waits for, are skipped.
//! - `within T`: the last record of a match is less than `T` after its first.
//! - A partial match starts at every record that matches the first step and takes the next
//!   record that matches its current step. When one completes, the one that started first
//!   is emitted and every partial match is discarded, including any starting at the last
//!   record of the match (skip past the last event): **matches never overlap**, and each
//!   emits exactly one alert, timed at its last record.

use serde::{Deserialize, Serialize};

use super::alert::{key_pairs, Alert, MatchedEvent};
use super::model::{PatternRule, RuleKind, RuleSpec};
use crate::operator::{decode_state, EncodeError, Keyed, Reset, Timers};
use crate::record::Record;

/// A buffered record: its time, arrival number, which definitions it matches and its
/// captured values.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ev {
    t: i64,
    seq: u64,
    mask: u64,
    vals: Vec<Option<f64>>,
}

/// A record taken by a match: its time, the step and its captured values.
pub(crate) type Taken = (i64, usize, Vec<Option<f64>>);

/// A partial match: the step it waits for, how many records that step has, and the
/// records taken so far (time, step, captured values).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Partial {
    step: usize,
    count: u32,
    events: Vec<Taken>,
}

impl Partial {
    fn start(&self) -> i64 {
        self.events.first().map_or(i64::MAX, |e| e.0)
    }
}

/// A key's state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PatKey {
    /// Records not yet behind the watermark, in arrival order.
    buf: Vec<Ev>,
    /// Partial matches, oldest first.
    partials: Vec<Partial>,
    /// The armed timer (a watermark), `i64::MAX` when none.
    armed: i64,
    /// Arrival counter, for ties in event time.
    seq: u64,
}

impl Reset for PatKey {
    fn reset(&mut self) {
        self.buf.clear();
        self.partials.clear();
        self.armed = i64::MAX;
        self.seq = 0;
    }
}

/// The operator of one pattern rule.
pub(crate) struct PatOp {
    pub(crate) spec: RuleSpec,
    keys: Keyed<PatKey>,
    timers: Timers,
    pub(crate) late: u64,
    /// Bits of the definitions some step uses.
    used: u64,
}

fn new_key() -> PatKey {
    PatKey {
        armed: i64::MAX,
        ..PatKey::default()
    }
}

impl PatOp {
    pub(crate) fn new(spec: RuleSpec) -> Self {
        let used = match &spec.kind {
            RuleKind::Pattern(p) => p.steps.iter().fold(0, |m, s| m | 1u64 << s.def),
            RuleKind::Condition(_) => 0,
        };
        PatOp {
            spec,
            keys: Keyed::default(),
            timers: Timers::default(),
            late: 0,
            used,
        }
    }

    pub(crate) fn keys(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) -> Result<(), EncodeError> {
        self.keys.snapshot(out)
    }

    pub(crate) fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String> {
        let state: PatKey = decode_state(blob)?;
        let armed = state.armed;
        let slot = self.keys.insert_state(key, state);
        if armed != i64::MAX {
            self.timers.push(armed, slot);
        }
        Ok(())
    }

    /// Buffers a record of `key` if it matches a step. `wm` is the watermark before it.
    pub(crate) fn on_record(&mut self, key: &str, rec: &Record<'_>, wm: i64) {
        let RuleKind::Pattern(p) = &self.spec.kind else {
            return;
        };
        let mut mask = 0u64;
        for (i, (_, f)) in p.define.iter().enumerate() {
            if f.matches(rec) {
                mask |= 1 << i;
            }
        }
        if mask & self.used == 0 {
            return;
        }
        if rec.time <= wm {
            self.late += 1;
            return;
        }
        let vals = p.captured.iter().map(|&f| rec.values[f].as_num()).collect();
        let slot = self.keys.slot_or_insert(key, new_key);
        let Some(state) = self.keys.state_mut(slot) else {
            return;
        };
        state.seq += 1;
        state.buf.push(Ev {
            t: rec.time,
            seq: state.seq,
            mask,
            vals,
        });
        if rec.time < state.armed {
            state.armed = rec.time;
            self.timers.push(rec.time, slot);
        }
    }

    /// Matches every buffered record at or behind `wm`, in event-time order.
    pub(crate) fn on_watermark(&mut self, wm: i64, out: &mut dyn FnMut(Alert)) {
        let PatOp {
            spec, keys, timers, ..
        } = self;
        let RuleKind::Pattern(p) = &spec.kind else {
            return;
        };
        while let Some((t, slot)) = timers.pop_due(wm) {
            let Some((key, state)) = keys.get_mut(slot) else {
                continue;
            };
            if state.armed != t {
                continue;
            }
            state.buf.sort_by_key(|e| (e.t, e.seq));
            let n = state.buf.partition_point(|e| e.t <= wm);
            let due: Vec<Ev> = state.buf.drain(..n).collect();
            for ev in due {
                if let Some(m) = step(p, &mut state.partials, ev) {
                    out(Alert::pattern(spec, key.name, p, m));
                }
            }
            // A partial match no later record can extend is dropped.
            state
                .partials
                .retain(|x| x.start().saturating_add(p.within_ms - 1) > wm);
            let expiry = state
                .partials
                .iter()
                .map(|x| x.start().saturating_add(p.within_ms - 1))
                .min()
                .unwrap_or(i64::MAX);
            let next = state.buf.first().map_or(i64::MAX, |e| e.t).min(expiry);
            state.armed = next;
            if next == i64::MAX {
                keys.remove(slot);
            } else {
                timers.push(next, slot);
            }
        }
    }
}

/// Feeds one record to the partial matches; returns a completed match's records.
fn step(p: &PatternRule, partials: &mut Vec<Partial>, ev: Ev) -> Option<Vec<Taken>> {
    partials.retain(|x| ev.t - x.start() < p.within_ms);
    let mut done = None;
    for (i, x) in partials.iter_mut().enumerate() {
        let s = &p.steps[x.step];
        if ev.mask & (1 << s.def) == 0 {
            continue;
        }
        x.events.push((ev.t, x.step, ev.vals.clone()));
        x.count += 1;
        if x.count == s.times {
            x.step += 1;
            x.count = 0;
            if x.step == p.steps.len() {
                done = Some(i);
                break;
            }
        }
    }
    if let Some(i) = done {
        let m = partials.swap_remove(i);
        partials.clear();
        return Some(m.events);
    }
    let first = &p.steps[0];
    if ev.mask & (1 << first.def) != 0 {
        let mut x = Partial {
            step: 0,
            count: 1,
            events: vec![(ev.t, 0, ev.vals)],
        };
        if first.times == 1 {
            x.step = 1;
            x.count = 0;
        }
        if x.step == p.steps.len() {
            partials.clear();
            return Some(x.events);
        }
        partials.push(x);
    }
    None
}

impl Alert {
    /// The alert of a pattern match, timed at its last record.
    fn pattern(spec: &RuleSpec, key: &str, p: &PatternRule, events: Vec<Taken>) -> Alert {
        let time = events.last().map_or(0, |e| e.0);
        Alert {
            rule: spec.id.clone(),
            key: key_pairs(spec, key),
            time,
            values: Vec::new(),
            events: events
                .into_iter()
                .map(|(t, step, vals)| MatchedEvent {
                    time: t,
                    step: p.define[p.steps[step].def].0.clone(),
                    values: p.captured_names.iter().cloned().zip(vals).collect(),
                })
                .collect(),
        }
    }
}
