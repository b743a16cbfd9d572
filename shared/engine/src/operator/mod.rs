//! Window operators: one per aggregation, keyed state plus timers.
//!
//! Each window family has its own operator behind the small [`WindowOperator`] trait:
//! [`sliced::SlicedOperator`] (tumbling, sliding, global), [`session::SessionOperator`] and
//! [`count::CountOperator`] and [`rows::RowsOperator`]. They share [`Keyed`], a slab of per-key state indexed by an
//! interned key, and [`Timers`], a min-heap of per-key timers with lazy deletion.
//! [`family::build`] picks the operator of an aggregation's window.

pub mod count;
pub mod family;
pub mod rows;
pub mod session;
pub mod sliced;

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::aggregate::{Acc, CompiledAggregates};
use crate::pane::{Emit, KeyRef, Pane};
use crate::spec::model::{AccumulationMode, AggregationSpec, OnTime};
use crate::trigger::{Program, Timing};
use crate::window::Window;

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
    /// Refused because its key holds as many rows waiting for the watermark as
    /// `[limits] max_pending_rows` allows (rows windows).
    Full,
}

/// Why a record was refused with [`Admit::Full`], naming the setting that raises the bound.
pub fn full_reason(max_pending_rows: u64) -> String {
    format!(
        "its key already holds {max_pending_rows} rows waiting for the watermark; raise [limits] \
         max_pending_rows"
    )
}

/// A window operator: the state and timers of one aggregation.
pub trait WindowOperator: Send + Sync {
    /// Adds a record of `key` at event time `t` with the aggregation's field values.
    fn on_record(
        &mut self,
        key: &str,
        t: i64,
        values: &[Option<f64>],
        ctx: Ctx,
        out: &mut dyn Emit,
    ) -> Admit;
    /// Fires what the watermark `ctx.wm` makes due.
    fn on_watermark(&mut self, ctx: Ctx, out: &mut dyn Emit);
    /// Fires what processing time `ctx.now` makes due.
    fn on_processing_time(&mut self, ctx: Ctx, out: &mut dyn Emit);
    /// Number of keys holding state.
    fn keys(&self) -> usize;
    /// Replaces a key's state with a serialized one (from [`WindowOperator::snapshot`])
    /// and re-arms its timers.
    fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String>;
    /// Hands over every key that holds state, serialized as for
    /// [`WindowOperator::restore_key`]: a snapshot of the operator.
    ///
    /// # Errors
    ///
    /// A key's state that cannot be serialized (never an empty blob, which would restore
    /// as no state).
    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) -> Result<(), EncodeError>;
}

/// A key's state that cannot be serialized for the state store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the state of key {key:?}: {reason}")]
pub struct EncodeError {
    pub key: String,
    pub reason: String,
}

/// Serializes a key's state for the state store.
pub(crate) fn encode_state<S: serde::Serialize>(key: &str, s: &S) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(s).map_err(|e| EncodeError {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// Decodes a key's state from the state store.
pub(crate) fn decode_state<S: serde::de::DeserializeOwned>(blob: &[u8]) -> Result<S, String> {
    serde_json::from_slice(blob).map_err(|e| format!("cannot decode stored state: {e}"))
}

/// Settings shared by all operators.
#[derive(Debug, Clone)]
pub struct Common {
    pub index: usize,
    pub aggs: CompiledAggregates,
    pub trigger: Program,
    pub lateness: i64,
    pub mode: AccumulationMode,
    pub on_time: OnTime,
    /// True when a window can fire more than once.
    pub multi: bool,
    /// The filter on emitted rows (`having`), over the aggregates' values.
    pub having: Option<crate::filter::Filter>,
}

impl Common {
    fn new(index: usize, spec: &AggregationSpec) -> Self {
        Common {
            index,
            aggs: CompiledAggregates::new(&spec.aggregates),
            trigger: Program::new(&spec.trigger),
            lateness: spec.allowed_lateness_ms,
            mode: spec.accumulation,
            on_time: spec.on_time,
            multi: spec.multi_pane(),
            having: spec.having.clone(),
        }
    }

    /// Emits one pane of `acc`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &self,
        out: &mut dyn Emit,
        key: KeyRef<'_>,
        window: Window,
        acc: &Acc,
        timing: Timing,
        index: u32,
        retraction: bool,
    ) {
        let values = self.aggs.values(acc);
        if let Some(h) = &self.having {
            let row = crate::record::Record {
                time: window.start,
                values: values
                    .iter()
                    .map(|v| v.map_or(crate::record::Value::Null, crate::record::Value::Num))
                    .collect(),
            };
            if !h.matches(&row) {
                return;
            }
        }
        out.pane(&Pane {
            aggregation: self.index,
            key: key.name,
            key_id: key.id,
            window,
            timing,
            index,
            retraction,
            values: &values,
        });
    }

    /// The watermark after which a window ending at `end` is garbage.
    #[inline]
    pub fn expiry(&self, end: i64) -> i64 {
        end.saturating_sub(1).saturating_add(self.lateness)
    }
}

/// Per-key state that can be emptied in place. When a key's state becomes empty its slot is
/// freed, and the next key to take the slot reuses the state's allocations: keys come and
/// go all the time in sparse streams.
pub trait Reset {
    /// Empties the state, keeping its allocations.
    fn reset(&mut self);
}

/// A key's encoded group-by values, stored inline when short so that comparing a key on
/// lookup touches the memory of its slot only.
type KeyName = SmallVec<[u8; 16]>;

/// The entry in one slot of a [`Keyed`] slab.
struct KeyEntry<S> {
    /// The key, `None` while the slot is free.
    key: Option<KeyName>,
    /// Grows each time the slot is freed.
    gen: u32,
    state: S,
}

/// Per-key state in a slab, found by key. Each key is stored once; the hash table holds
/// slot numbers only. A slot's generation grows each time it is freed, so `generation << 32
/// | slot` identifies one key's state for the whole run (see [`Pane::key_id`]).
pub struct Keyed<S> {
    table: HashTable<u32>,
    slots: Vec<KeyEntry<S>>,
    free: Vec<u32>,
    hasher: FxBuildHasher,
}

impl<S> Default for Keyed<S> {
    fn default() -> Self {
        Keyed {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hasher: FxBuildHasher,
        }
    }
}

/// The key as a string. Names are only ever built from `&str`, so this never fails.
#[inline]
fn key_str(k: &KeyName) -> &str {
    std::str::from_utf8(k).unwrap_or_default()
}

impl<S: Reset> Keyed<S> {
    /// The slot of `key`, created with `init` if absent (or taken over from a freed key).
    #[inline]
    pub fn slot_or_insert(&mut self, key: &str, init: impl FnOnce() -> S) -> u32 {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let eq =
            |&s: &u32| matches!(&slots[s as usize].key, Some(k) if k.as_slice() == key.as_bytes());
        if let Some(&s) = self.table.find(hash, eq) {
            return s;
        }
        let name = Some(KeyName::from_slice(key.as_bytes()));
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize].key = name;
                s
            }
            None => {
                self.slots.push(KeyEntry {
                    key: name,
                    gen: 0,
                    state: init(),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table
            .insert_unique(hash, slot, |&s| match &slots[s as usize].key {
                Some(k) => hasher.hash_one(key_str(k)),
                None => 0,
            });
        slot
    }

    /// The key and state in a slot, if the slot is in use.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<(KeyRef<'_>, &mut S)> {
        let sl = self.slots.get_mut(slot as usize)?;
        let k = sl.key.as_ref()?;
        Some((
            KeyRef {
                name: key_str(k),
                id: u64::from(sl.gen) << 32 | u64::from(slot),
            },
            &mut sl.state,
        ))
    }

    /// The state in a slot, if the slot is in use.
    #[inline]
    pub fn state_mut(&mut self, slot: u32) -> Option<&mut S> {
        match self.slots.get_mut(slot as usize) {
            Some(KeyEntry {
                key: Some(_),
                state,
                ..
            }) => Some(state),
            _ => None,
        }
    }

    /// Reads `peek` of the state of each of `slots` and discards the result. Keys fire in no
    /// particular memory order, so each one's state is a cache miss; reading the states of
    /// a batch up front lets those misses overlap, instead of each waiting for the previous
    /// key to be processed.
    #[inline]
    pub fn warm(&self, slots: &[u32], peek: impl Fn(&S) -> i64) {
        let mut x = 0i64;
        for &slot in slots {
            if let Some(sl) = self.slots.get(slot as usize) {
                x = x.wrapping_add(peek(&sl.state));
            }
        }
        std::hint::black_box(x);
    }

    /// The ids (see [`Pane::key_id`]) of the keys in `slots` that are in use.
    pub fn key_ids(&self, slots: &[u32], ids: &mut Vec<u64>) {
        ids.clear();
        for &slot in slots {
            if let Some(KeyEntry {
                key: Some(_), gen, ..
            }) = self.slots.get(slot as usize)
            {
                ids.push(u64::from(*gen) << 32 | u64::from(slot));
            }
        }
    }

    /// Frees a slot whose state became empty.
    pub fn remove(&mut self, slot: u32) {
        let Some(sl) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(k) = sl.key.take() else {
            return;
        };
        let hash = self.hasher.hash_one(key_str(&k));
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        sl.state.reset();
        sl.gen = sl.gen.wrapping_add(1);
        self.free.push(slot);
    }

    /// Number of keys with state.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Installs `state` as the state of `key`, replacing any.
    pub fn insert_state(&mut self, key: &str, state: S) -> u32 {
        let mut state = Some(state);
        let slot = self.slot_or_insert(key, || {
            state
                .take()
                .unwrap_or_else(|| unreachable!("init runs once"))
        });
        if let Some(s) = state {
            self.slots[slot as usize].state = s;
        }
        slot
    }

    /// Calls `out` with every key that holds state, serialized (see `restore_key`).
    ///
    /// # Errors
    ///
    /// The first key whose state cannot be serialized.
    pub fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) -> Result<(), EncodeError>
    where
        S: serde::Serialize,
    {
        for sl in &self.slots {
            if let Some(k) = &sl.key {
                let key = key_str(k);
                out(key, encode_state(key, &sl.state)?);
            }
        }
        Ok(())
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Most keys whose due timers are popped, and their state warmed, together.
pub const FIRE_BATCH: usize = 16;

/// The keys an operator fires together when the watermark passes their event-time timers,
/// at most [`FIRE_BATCH`] at a time; kept between watermarks to reuse its allocations.
#[derive(Debug, Default)]
pub struct FireBatch {
    /// The aggregation whose keys these are, for [`Emit::upcoming`].
    index: usize,
    slots: Vec<u32>,
    /// Their key ids, for [`Emit::upcoming`].
    ids: Vec<u64>,
}

impl FireBatch {
    /// An empty batch of aggregation `index`'s keys.
    pub fn new(index: usize) -> Self {
        FireBatch {
            index,
            ..FireBatch::default()
        }
    }

    /// Pops up to [`FIRE_BATCH`] due, armed timers like [`Timers::pop_armed`] (`armed` gives
    /// a key's armed time), warms the state of their keys with `peek` (see [`Keyed::warm`])
    /// and announces the keys to `out` ([`Emit::upcoming`]) before they fire. Returns false
    /// when none was due.
    pub fn next<S: Reset>(
        &mut self,
        et: &mut Timers,
        keys: &mut Keyed<S>,
        wm: i64,
        armed: impl Fn(&mut S) -> &mut i64,
        peek: impl Fn(&S) -> i64,
        out: &mut dyn Emit,
    ) -> bool {
        self.slots.clear();
        while self.slots.len() < FIRE_BATCH {
            match et.pop_armed(wm, keys, &armed) {
                Some(slot) => self.slots.push(slot),
                None => break,
            }
        }
        if self.slots.is_empty() {
            return false;
        }
        keys.warm(&self.slots, peek);
        keys.key_ids(&self.slots, &mut self.ids);
        out.upcoming(self.index, &self.ids);
        true
    }

    /// The keys' slots, in the order their timers were popped.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

/// Timers bucketed by due time. Window ends are aligned, so many keys share a due time and
/// a push or pop is O(1) amortized. Entries may be stale; owners re-check on pop.
#[derive(Debug, Default)]
pub struct Timers {
    buckets: BTreeMap<i64, VecDeque<u32>>,
}

impl Timers {
    /// Schedules `slot` at `t`.
    #[inline]
    pub fn push(&mut self, t: i64, slot: u32) {
        self.buckets.entry(t).or_default().push_back(slot);
    }

    /// Pops the next due timer that is still the one armed for its key (`armed` gives the
    /// key's armed time), and disarms it. Stale entries are skipped.
    pub fn pop_armed<S: Reset>(
        &mut self,
        upto: i64,
        keys: &mut Keyed<S>,
        armed: impl Fn(&mut S) -> &mut i64,
    ) -> Option<u32> {
        while let Some((t, slot)) = self.pop_due(upto) {
            if let Some(state) = keys.state_mut(slot) {
                let a = armed(state);
                if *a == t {
                    *a = i64::MAX;
                    return Some(slot);
                }
            }
        }
        None
    }

    /// Schedules `slot` at `t` unless `t` is `i64::MAX`, the time of a disarmed timer (a key
    /// with nothing due, or a restored key whose state records none).
    #[inline]
    pub fn rearm(&mut self, t: i64, slot: u32) {
        if t != i64::MAX {
            self.push(t, slot);
        }
    }

    /// Pops the next timer with time `<= upto`.
    #[inline]
    pub fn pop_due(&mut self, upto: i64) -> Option<(i64, u32)> {
        let mut e = self.buckets.first_entry()?;
        let t = *e.key();
        if t > upto {
            return None;
        }
        let slot = e.get_mut().pop_front();
        if e.get().is_empty() {
            e.remove();
        }
        slot.map(|s| (t, s))
    }
}
