//! Count windows: the last N elements of a key, fired every `slide` elements.
//!
//! This is "the last 8 points" of a rolling average, as Flink's `countWindow(size, slide)`:
//! a pane fires every `slide` elements with the aggregate of the most recent `size`
//! elements in arrival order (fewer until `size` have arrived). The pane's window spans the
//! event times of those elements: `[min, max + 1)`. Count windows do not depend on the
//! watermark, so no element is late.

use std::collections::VecDeque;

use smallvec::SmallVec;

use super::{decode_state, Admit, Common, Ctx, EncodeError, Keyed, Reset, WindowOperator};
use crate::pane::Emit;
use crate::trigger::Timing;
use crate::window::Window;

/// The operator of a count window aggregation.
pub struct CountOperator {
    c: Common,
    size: usize,
    slide: u64,
    keys: Keyed<KeyState>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    last: VecDeque<(i64, SmallVec<[Option<f64>; 2]>)>,
    since_fire: u64,
    fired: u32,
}

impl Reset for KeyState {
    fn reset(&mut self) {
        self.last.clear();
        self.since_fire = 0;
        self.fired = 0;
    }
}

impl CountOperator {
    pub fn new(c: Common, size: u64, slide: u64) -> Self {
        CountOperator {
            c,
            size: usize::try_from(size).unwrap_or(usize::MAX),
            slide,
            keys: Keyed::default(),
        }
    }
}

impl WindowOperator for CountOperator {
    fn on_record(
        &mut self,
        key: &str,
        t: i64,
        values: &[Option<f64>],
        _ctx: Ctx,
        out: &mut dyn Emit,
    ) -> Admit {
        let slot = self.keys.slot_or_insert(key, || KeyState {
            last: VecDeque::new(),
            since_fire: 0,
            fired: 0,
        });
        let Some((key, ks)) = self.keys.get_mut(slot) else {
            return Admit::Accepted;
        };
        ks.last.push_back((t, values.iter().copied().collect()));
        if ks.last.len() > self.size {
            ks.last.pop_front();
        }
        ks.since_fire += 1;
        if ks.since_fire >= self.slide {
            ks.since_fire = 0;
            let mut acc = self.c.aggs.new_acc();
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            for (t, v) in &ks.last {
                acc.add(*t, v);
                lo = lo.min(*t);
                hi = hi.max(*t);
            }
            let w = Window {
                start: lo,
                end: hi.saturating_add(1),
            };
            self.c
                .emit(out, key, w, &acc, Timing::OnTime, ks.fired, false);
            ks.fired += 1;
        }
        Admit::Accepted
    }

    fn on_watermark(&mut self, _ctx: Ctx, _out: &mut dyn Emit) {}

    fn on_processing_time(&mut self, _ctx: Ctx, _out: &mut dyn Emit) {}

    fn keys(&self) -> usize {
        self.keys.len()
    }

    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) -> Result<(), EncodeError> {
        self.keys.snapshot(out)
    }

    fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String> {
        let state: KeyState = decode_state(blob)?;
        self.keys.insert_state(key, state);
        Ok(())
    }
}
