//! Window operators: one per aggregation, keyed state plus timers.
//!
//! Each window family has its own operator behind the small [`WindowOperator`] trait:
//! [`sliced::SlicedOperator`] (tumbling, sliding, global), [`session::SessionOperator`] and
//! [`count::CountOperator`]. They share [`Keyed`], a slab of per-key state indexed by an
//! interned key, and [`Timers`], a min-heap of per-key timers with lazy deletion.

pub mod count;
pub mod session;
pub mod sliced;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::aggregate::{Acc, CompiledAggregates};
use crate::pane::{Emit, Pane};
use crate::spec::{AccumulationMode, AggregationSpec};
use crate::trigger::{Timing, TriggerSpec};
use crate::window::{Window, WindowSpec};

/// The time context of a call: the combined watermark and the processing time.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub wm: i64,
    pub now: i64,
}

/// What happened to a record offered to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Accepted,
    /// Later than the allowed lateness for every window it belongs to.
    TooLate,
}

/// A window operator: the state and timers of one aggregation.
pub trait WindowOperator: Send {
    /// Adds a record of `key` at event time `t` with the aggregation's field values.
    fn on_record(&mut self, key: &str, t: i64, values: &[Option<f64>], ctx: Ctx, out: &mut dyn Emit) -> Admit;
    /// Fires what the watermark `ctx.wm` makes due.
    fn on_watermark(&mut self, ctx: Ctx, out: &mut dyn Emit);
    /// Fires what processing time `ctx.now` makes due.
    fn on_processing_time(&mut self, ctx: Ctx, out: &mut dyn Emit);
    /// Number of keys holding state.
    fn keys(&self) -> usize;
}

/// Builds the operator for an aggregation.
pub fn build(index: usize, spec: &AggregationSpec) -> Box<dyn WindowOperator> {
    let common = Common::new(index, spec);
    match spec.window {
        WindowSpec::Sliding { .. } | WindowSpec::Global => Box::new(sliced::SlicedOperator::new(common, spec.window)),
        WindowSpec::Session { gap } => Box::new(session::SessionOperator::new(common, gap)),
        WindowSpec::Count { size, slide } => Box::new(count::CountOperator::new(common, size, slide)),
    }
}

/// Settings shared by all operators.
#[derive(Debug, Clone)]
pub struct Common {
    pub index: usize,
    pub aggs: CompiledAggregates,
    pub trigger: TriggerSpec,
    pub lateness: i64,
    pub mode: AccumulationMode,
    /// True when a window can fire more than once.
    pub multi: bool,
}

impl Common {
    fn new(index: usize, spec: &AggregationSpec) -> Self {
        Common {
            index,
            aggs: CompiledAggregates::new(&spec.aggregates),
            trigger: spec.trigger,
            lateness: spec.allowed_lateness_ms,
            mode: spec.accumulation,
            multi: spec.multi_pane(),
        }
    }

    /// Emits one pane of `acc`.
    #[inline]
    pub fn emit(&self, out: &mut dyn Emit, key: &str, window: Window, acc: &Acc, timing: Timing, index: u32, retraction: bool) {
        let values = self.aggs.values(acc);
        out.pane(&Pane { aggregation: self.index, key, window, timing, index, retraction, values: &values });
    }

    /// The watermark after which a window ending at `end` is garbage.
    #[inline]
    pub fn expiry(&self, end: i64) -> i64 {
        end.saturating_sub(1).saturating_add(self.lateness)
    }
}

/// Per-key state in a slab, found by key.
#[derive(Debug)]
pub struct Keyed<S> {
    index: FxHashMap<Box<str>, u32>,
    slots: Vec<Option<(Box<str>, S)>>,
    free: Vec<u32>,
}

impl<S> Default for Keyed<S> {
    fn default() -> Self {
        Keyed { index: FxHashMap::default(), slots: Vec::new(), free: Vec::new() }
    }
}

impl<S> Keyed<S> {
    /// The slot of `key`, created with `init` if absent.
    #[inline]
    pub fn slot_or_insert(&mut self, key: &str, init: impl FnOnce() -> S) -> u32 {
        if let Some(&s) = self.index.get(key) {
            return s;
        }
        let boxed: Box<str> = key.into();
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some((boxed.clone(), init()));
                s
            }
            None => {
                self.slots.push(Some((boxed.clone(), init())));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(boxed, slot);
        slot
    }

    /// The key and state in a slot, if the slot is in use.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<(&str, &mut S)> {
        match self.slots.get_mut(slot as usize) {
            Some(Some((k, s))) => Some((&**k, s)),
            _ => None,
        }
    }

    /// Frees a slot whose state became empty.
    pub fn remove(&mut self, slot: u32) {
        if let Some(Some((k, _))) = self.slots.get_mut(slot as usize).map(|s| s.take()) {
            self.index.remove(&k);
            self.free.push(slot);
        }
    }

    /// Number of keys with state.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// A min-heap of `(time, slot)` timers. Entries may be stale; owners re-check on pop.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl Timers {
    /// Schedules `slot` at `t`.
    #[inline]
    pub fn push(&mut self, t: i64, slot: u32) {
        self.heap.push(Reverse((t, slot)));
    }

    /// Pops the next timer with time `<= upto`.
    #[inline]
    pub fn pop_due(&mut self, upto: i64) -> Option<(i64, u32)> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= upto => self.heap.pop().map(|Reverse(x)| x),
            _ => None,
        }
    }
}
