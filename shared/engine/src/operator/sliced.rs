//! Tumbling, sliding, cumulate and global windows over slices.
//!
//! State per key is a sorted run of slices (`gcd(size, slide)` long), so it is bounded by
//! the slices one window spans plus the allowed lateness, never by the number of events.
//! A window's value is combined from its slices when it fires. For invertible aggregations
//! a running accumulator moves from one fired window to the next by adding the newest
//! slices and subtracting the evicted ones, so a 72 h window sliding by 1 h costs about as
//! much per event as a tumbling window.
//!
//! Firing follows Flink's rule: a window has fired once `end - 1 <= watermark`, and a record
//! is dropped for a window only if that window is past its allowed lateness.

use std::collections::{BTreeMap, VecDeque};

use super::{
    decode_state, Admit, Common, Ctx, EncodeError, FireBatch, Keyed, Reset, Timers, WindowOperator,
};
use crate::accumulation;
use crate::aggregate::Acc;
use crate::pane::{Emit, KeyRef};
use crate::trigger::{PaneState, Timing};
use crate::watermark::WM_MIN;
use crate::window::{Slicing, WindowSpec};

/// The operator of a tumbling, sliding or global window aggregation.
pub struct SlicedOperator {
    c: Common,
    sl: Slicing,
    keys: Keyed<KeyState>,
    /// Event-time timers, due when the watermark reaches them.
    et: Timers,
    /// Processing-time timers.
    pt: Timers,
    /// Keys being fired together (kept to reuse its allocations).
    batch: FireBatch,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    /// Non-empty slices, sorted by start.
    slices: VecDeque<(i64, Acc)>,
    /// Windows with `end - 1 <= horizon` are past their on-time firing.
    horizon: i64,
    /// The armed event-time timer (a watermark), `i64::MAX` when none.
    timer: i64,
    /// Pane state by window end, for windows that can fire again.
    panes: BTreeMap<i64, PaneState>,
    /// Cached value of the window ending at `.0`: the sum of the stored slices inside it.
    running: Option<(i64, Acc)>,
}

impl KeyState {
    fn new() -> Self {
        KeyState {
            slices: VecDeque::new(),
            horizon: WM_MIN,
            timer: i64::MAX,
            panes: BTreeMap::new(),
            running: None,
        }
    }
}

impl Reset for KeyState {
    fn reset(&mut self) {
        self.slices.clear();
        self.horizon = WM_MIN;
        self.timer = i64::MAX;
        self.panes.clear();
        self.running = None;
    }
}

impl SlicedOperator {
    pub fn new(c: Common, window: WindowSpec) -> Self {
        let sl = match window {
            WindowSpec::Sliding { size, slide } => Slicing::sliding(size, slide),
            WindowSpec::Cumulate { size, step } => Slicing::cumulate(size, step),
            _ => Slicing::global(),
        };
        SlicedOperator {
            batch: FireBatch::new(c.index),
            c,
            sl,
            keys: Keyed::default(),
            et: Timers::default(),
            pt: Timers::default(),
        }
    }
}

/// The smallest window end `e` with `e - 1 > horizon`, computed without overflow.
fn first_end_after_horizon(sl: &Slicing, horizon: i64) -> i64 {
    if sl.global {
        return crate::window::GLOBAL_END;
    }
    if horizon == WM_MIN {
        return i64::MIN;
    }
    // In i64 when nothing overflows (always, for real timestamps): i128 division is slow.
    // Cumulate windows end at every step: the ends of tumbling windows of one step.
    let (size, slide) = if sl.cumulate {
        (sl.slide, sl.slide)
    } else {
        (sl.size, sl.slide)
    };
    let fast = horizon.checked_add(1).and_then(|t| {
        let x = t.checked_sub(size)?;
        x.checked_sub(x.rem_euclid(slide))?
            .checked_add(slide)?
            .checked_add(size)
    });
    if let Some(e) = fast {
        return e;
    }
    let t = horizon as i128 + 1;
    let (size, slide) = (size as i128, slide as i128);
    let x = t - size;
    let e = x - x.rem_euclid(slide) + slide + size;
    e.min(i64::MAX as i128) as i64
}

/// Slices scanned in order before a binary search.
const SCAN: usize = 8;

/// The index of the first slice starting at or after `t`, for a `t` usually among the
/// oldest slices (window starts are: older slices are gone). A short scan from the front
/// touches consecutive memory instead of jumping around like a binary search.
#[inline]
fn lower_bound(slices: &VecDeque<(i64, Acc)>, t: i64) -> usize {
    for (i, (s, _)) in slices.iter().take(SCAN).enumerate() {
        if *s >= t {
            return i;
        }
    }
    if slices.len() <= SCAN {
        return slices.len();
    }
    slices.partition_point(|(s, _)| *s < t)
}

/// Like [`lower_bound`], for a `t` usually among the newest slices, so scanned from the back.
#[inline]
fn lower_bound_back(slices: &VecDeque<(i64, Acc)>, t: i64) -> usize {
    let mut i = slices.len();
    for (s, _) in slices.iter().rev().take(SCAN) {
        if *s < t {
            return i;
        }
        i -= 1;
    }
    if i == 0 {
        return 0;
    }
    slices.partition_point(|(s, _)| *s < t)
}

fn window_start(sl: &Slicing, e: i64) -> i64 {
    sl.window_ending(e).start
}

/// The value of the window ending at `e`, from the key's slices.
fn window_value(c: &Common, sl: &Slicing, ks: &mut KeyState, e: i64) -> Acc {
    let ws = window_start(sl, e);
    let from = lower_bound(&ks.slices, ws);
    if sl.global || sl.slide == sl.size {
        return match ks.slices.get(from) {
            Some((s, a)) if *s < e => a.clone(),
            _ => c.aggs.new_acc(),
        };
    }
    // The running window moves by adding and evicting slices of a fixed-size window; a
    // cumulate window's start jumps, so it is merged from its slices.
    let running = c.aggs.invertible && !sl.cumulate;
    if running {
        if let Some((re, racc)) = ks.running.as_mut() {
            if *re < e && e - *re < sl.size {
                let (old_end, old_start) = (*re, *re - sl.size);
                let add_from = lower_bound_back(&ks.slices, old_end);
                for (s, a) in ks.slices.range(add_from..) {
                    if *s >= e {
                        break;
                    }
                    racc.merge(a);
                }
                let sub_from = lower_bound(&ks.slices, old_start);
                for (s, a) in ks.slices.range(sub_from..) {
                    if *s >= ws {
                        break;
                    }
                    racc.subtract(a);
                }
                *re = e;
                return racc.clone();
            }
        }
    }
    let mut acc = c.aggs.new_acc();
    for (s, a) in ks.slices.range(from..) {
        if *s >= e {
            break;
        }
        acc.merge(a);
    }
    if running {
        let newer = ks.running.as_ref().is_none_or(|(re, _)| *re < e);
        if newer {
            ks.running = Some((e, acc.clone()));
        }
    }
    acc
}

/// Fires one pane of the window ending at `e`.
#[inline]
fn fire_window(
    c: &Common,
    sl: &Slicing,
    ks: &mut KeyState,
    key: KeyRef<'_>,
    e: i64,
    timing: Timing,
    out: &mut dyn Emit,
) {
    let w = sl.window_ending(e);
    let full = window_value(c, sl, ks, e);
    if !c.multi {
        if !full.is_empty() {
            c.emit(out, key, w, &full, Timing::OnTime, 0, false);
        }
        return;
    }
    let ps = ks.panes.entry(e).or_default();
    accumulation::fire(
        c.mode,
        c.on_time,
        ps,
        &full,
        timing,
        |acc, retraction, index, timing| c.emit(out, key, w, acc, timing, index, retraction),
    );
}

impl SlicedOperator {
    /// Fires the key's due on-time windows, collects garbage and re-arms its timer.
    fn process_key(&mut self, slot: u32, ctx: Ctx, out: &mut dyn Emit) {
        let (c, sl, wm) = (&self.c, &self.sl, ctx.wm);
        let pt = &mut self.pt;
        let Some((key, ks)) = self.keys.get_mut(slot) else {
            return;
        };
        let mut next_due: Option<i64> = None;
        let mut e = first_end_after_horizon(sl, ks.horizon);
        loop {
            let ws = if e == i64::MIN {
                i64::MIN
            } else {
                window_start(sl, e)
            };
            let idx = lower_bound(&ks.slices, ws);
            let Some(&(s, _)) = ks.slices.get(idx) else {
                break;
            };
            if e == i64::MIN || s >= e {
                e = sl.first_end_containing(s);
                continue;
            }
            if e - 1 > wm {
                next_due = Some(e - 1);
                break;
            }
            // One pane at the end of the window, or what the trigger says.
            let timing = if c.multi {
                let ps = ks.panes.entry(e).or_default();
                c.trigger
                    .on_end_of_window(ps, ctx.now, |d| pt.push(d, slot))
            } else {
                Some(Timing::OnTime)
            };
            if let Some(t) = timing {
                fire_window(c, sl, ks, key, e, t, out);
            }
            match e.checked_add(sl.slide) {
                Some(n) if !sl.global => e = n,
                _ => break,
            }
        }
        ks.horizon = ks.horizon.max(wm);
        // Close expired panes first: a closing pane is computed from the slices.
        while let Some((&e, _)) = ks.panes.first_key_value() {
            if c.expiry(e) > wm {
                break;
            }
            if let Some(mut ps) = ks.panes.remove(&e) {
                // Closing the window: fire what is still pending (Beam's FIRE_IF_NON_EMPTY).
                if let Some(timing) = c.trigger.on_close(&mut ps) {
                    let w = sl.window_ending(e);
                    let full = window_value(c, sl, ks, e);
                    accumulation::fire(
                        c.mode,
                        c.on_time,
                        &mut ps,
                        &full,
                        timing,
                        |acc, r, i, t| c.emit(out, key, w, acc, t, i, r),
                    );
                }
            }
        }
        // Then garbage: slices whose last window is past the allowed lateness.
        while let Some(&(s, _)) = ks.slices.front() {
            if c.expiry(sl.last_end_containing(s)) > wm {
                break;
            }
            if let Some((s, a)) = ks.slices.pop_front() {
                if let Some((re, racc)) = ks.running.as_mut() {
                    if s >= *re - sl.size && s < *re {
                        racc.subtract(&a);
                    }
                }
            }
        }
        if ks.slices.is_empty() && ks.panes.is_empty() {
            self.keys.remove(slot);
            return;
        }
        let mut timer = next_due.unwrap_or(i64::MAX);
        if c.lateness > 0 {
            if let Some(&(s, _)) = ks.slices.front() {
                timer = timer.min(c.expiry(sl.last_end_containing(s)));
            }
            if let Some((&e, _)) = ks.panes.first_key_value() {
                timer = timer.min(c.expiry(e));
            }
        }
        ks.timer = timer;
        self.et.rearm(timer, slot);
    }
}

impl WindowOperator for SlicedOperator {
    fn on_record(
        &mut self,
        key: &str,
        t: i64,
        values: &[Option<f64>],
        ctx: Ctx,
        out: &mut dyn Emit,
    ) -> Admit {
        let (c, sl) = (&self.c, &self.sl);
        let s = sl.slice_start(t);
        let last_e = sl.last_end_containing(s);
        if c.expiry(last_e) <= ctx.wm {
            return Admit::TooLate;
        }
        let fields = c.aggs.cells.len();
        let mut slot = self.keys.slot_or_insert(key, KeyState::new);
        if self
            .keys
            .state_mut(slot)
            .is_some_and(|ks| ks.timer <= ctx.wm)
        {
            // A key restored from a store with timers already due: fire them before this
            // record moves its horizon, as if they had fired on time.
            if let Some(ks) = self.keys.state_mut(slot) {
                ks.timer = i64::MAX;
            }
            self.process_key(slot, ctx, out);
            slot = self.keys.slot_or_insert(key, KeyState::new);
        }
        let (c, sl) = (&self.c, &self.sl);
        let Some((key, ks)) = self.keys.get_mut(slot) else {
            return Admit::Accepted;
        };
        ks.horizon = ks.horizon.max(ctx.wm);
        // Add to the slice.
        match ks.slices.back_mut() {
            Some((bs, a)) if *bs == s => a.add(t, values),
            Some((bs, _)) if *bs > s => {
                let i = ks.slices.partition_point(|(x, _)| *x < s);
                match ks.slices.get_mut(i) {
                    Some((x, a)) if *x == s => a.add(t, values),
                    _ => {
                        let mut a = c.aggs.new_acc();
                        a.add(t, values);
                        ks.slices.insert(i, (s, a));
                    }
                }
            }
            _ => {
                let mut a = c.aggs.new_acc();
                a.add(t, values);
                ks.slices.push_back((s, a));
            }
        }
        if let Some((re, racc)) = ks.running.as_mut() {
            if s >= *re - sl.size && s < *re {
                racc.add(t, values);
            }
        }
        // The trigger of each window of the record, unless it closed the window.
        let mut open = !c.multi;
        if c.multi {
            let first_e = sl.first_end_containing(s);
            let mut e = first_e;
            loop {
                if c.expiry(e) > ctx.wm {
                    let ps = ks.panes.entry(e).or_default();
                    if !ps.closed {
                        open = true;
                        accumulation::note_element(c.mode, ps, fields, t, values);
                        let eow = e - 1 <= ks.horizon;
                        let pt = &mut self.pt;
                        let fire_now = c.trigger.on_element(ps, eow, ctx.now, |d| pt.push(d, slot));
                        if let Some(timing) = fire_now {
                            fire_window(c, sl, ks, key, e, timing, out);
                        }
                    }
                }
                if e >= last_e || sl.global {
                    break;
                }
                e += sl.slide;
            }
        }
        // Event-time timer: the earliest window holding this record that has not fired yet.
        let fe = sl
            .first_end_containing(s)
            .max(first_end_after_horizon(sl, ks.horizon));
        let mut due = if fe <= last_e { fe - 1 } else { i64::MAX };
        if c.lateness > 0 {
            // Collect garbage on time: the slice's last window, and the earliest window
            // with pane state (it must close before later records reach its slices).
            due = due.min(c.expiry(last_e));
            if let Some((&e, _)) = ks.panes.first_key_value() {
                due = due.min(c.expiry(e));
            }
        }
        if due < ks.timer {
            ks.timer = due;
            self.et.push(due, slot);
        }
        if open {
            Admit::Accepted
        } else {
            // Every window of the record is closed by its trigger or expired.
            Admit::TooLate
        }
    }

    fn on_watermark(&mut self, ctx: Ctx, out: &mut dyn Emit) {
        let mut batch = std::mem::take(&mut self.batch);
        while batch.next(
            &mut self.et,
            &mut self.keys,
            ctx.wm,
            |ks| &mut ks.timer,
            |ks| ks.slices.front().map_or(0, |(s, _)| *s),
            out,
        ) {
            for &slot in batch.slots() {
                self.process_key(slot, ctx, out);
            }
        }
        self.batch = batch;
    }

    fn on_processing_time(&mut self, ctx: Ctx, out: &mut dyn Emit) {
        while let Some((_, slot)) = self.pt.pop_due(ctx.now) {
            let (c, sl) = (&self.c, &self.sl);
            let pt = &mut self.pt;
            let Some((key, ks)) = self.keys.get_mut(slot) else {
                continue;
            };
            let due: Vec<i64> = ks
                .panes
                .iter()
                .filter(|(_, ps)| ps.timer.is_some_and(|t| t <= ctx.now))
                .map(|(e, _)| *e)
                .collect();
            for e in due {
                let eow = e - 1 <= ks.horizon;
                let Some(ps) = ks.panes.get_mut(&e) else {
                    continue;
                };
                if let Some(timing) = c.trigger.on_timer(ps, eow, ctx.now, |d| pt.push(d, slot)) {
                    fire_window(c, sl, ks, key, e, timing, out);
                }
            }
        }
    }

    fn keys(&self) -> usize {
        self.keys.len()
    }

    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) -> Result<(), EncodeError> {
        self.keys.snapshot(out)
    }

    fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String> {
        let state: KeyState = decode_state(blob)?;
        let timer = state.timer;
        let pane_timers: Vec<i64> = state.panes.values().filter_map(|p| p.timer).collect();
        let slot = self.keys.insert_state(key, state);
        self.et.rearm(timer, slot);
        for t in pane_timers {
            self.pt.push(t, slot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_end_after_horizon_matches_exact_arithmetic() {
        for (size, slide) in [
            (10, 10),
            (7_200_000, 900_000),
            (259_200_000, 3_600_000),
            (5, 3),
        ] {
            let sl = Slicing::sliding(size, slide);
            let horizons = [
                i64::MIN + 1,
                -1_000_000,
                -1,
                0,
                1,
                1_767_225_600_123,
                i64::MAX - size,
                i64::MAX - 1,
                i64::MAX,
            ];
            for h in horizons.into_iter().chain(-50..50) {
                let t = h as i128 + 1;
                let x = t - size as i128;
                let e = x - x.rem_euclid(slide as i128) + slide as i128 + size as i128;
                let want = e.min(i64::MAX as i128) as i64;
                assert_eq!(
                    first_end_after_horizon(&sl, h),
                    want,
                    "size {size} slide {slide} h {h}"
                );
            }
        }
    }

    #[test]
    fn lower_bounds_agree_with_a_binary_search() {
        for n in [0usize, 1, 5, 8, 9, 30] {
            let slices: VecDeque<(i64, Acc)> =
                (0..n as i64).map(|i| (i * 10, Acc::new(1))).collect();
            for t in -5..(n as i64 * 10 + 5) {
                let want = slices.partition_point(|(s, _)| *s < t);
                assert_eq!(lower_bound(&slices, t), want, "n {n} t {t}");
                assert_eq!(lower_bound_back(&slices, t), want, "n {n} t {t}");
            }
        }
    }
}
