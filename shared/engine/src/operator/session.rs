//! Session windows with merging, early/late firings and retraction of merged sessions.
//!
//! A merge that changes a session's bounds makes a new window: its pane index restarts at
//! 0, and in retracting mode the sessions it swallowed that were already emitted are
//! retracted at its next firing, ordered by start, right before its new value. The trigger
//! state of the swallowed sessions carries over (see [`crate::trigger::Program::merge_into`]):
//! a pending early or late firing still comes when it was due.
//!
//! A session whose trigger finished is closed and dropped at once: it takes part in no
//! merge, and an element in its range starts a new session (as Beam's closed windows).

use super::{
    decode_state, Admit, Common, Ctx, EncodeError, FireBatch, Keyed, Reset, Timers, WindowOperator,
};
use crate::accumulation;
use crate::aggregate::Acc;
use crate::pane::{Emit, KeyRef};
use crate::trigger::{PaneState, Timing};
use crate::window::session::{cover, touches};
use crate::window::Window;

/// The operator of a session window aggregation.
pub struct SessionOperator {
    c: Common,
    gap: i64,
    keys: Keyed<KeyState>,
    et: Timers,
    pt: Timers,
    /// Keys being fired together (kept to reuse its allocations).
    batch: FireBatch,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    w: Window,
    acc: Acc,
    ps: PaneState,
    /// Emitted values of swallowed sessions, retracted at the next firing.
    retractions: Vec<(Window, Acc)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    sessions: Vec<Session>,
    timer: i64,
}

impl Reset for KeyState {
    fn reset(&mut self) {
        self.sessions.clear();
        self.timer = i64::MAX;
    }
}

impl SessionOperator {
    pub fn new(c: Common, gap: i64) -> Self {
        SessionOperator {
            batch: FireBatch::new(c.index),
            c,
            gap,
            keys: Keyed::default(),
            et: Timers::default(),
            pt: Timers::default(),
        }
    }
}

fn fire_session(c: &Common, s: &mut Session, key: KeyRef<'_>, timing: Timing, out: &mut dyn Emit) {
    if !c.multi {
        c.emit(out, key, s.w, &s.acc, Timing::OnTime, 0, false);
        return;
    }
    let retractions = std::mem::take(&mut s.retractions);
    let w = s.w;
    let mut first = true;
    accumulation::fire(
        c.mode,
        c.on_time,
        &mut s.ps,
        &s.acc,
        timing,
        |acc, retraction, index, timing| {
            if first {
                for (rw, racc) in &retractions {
                    c.emit(out, key, *rw, racc, timing, index, true);
                }
                first = false;
            }
            c.emit(out, key, w, acc, timing, index, retraction)
        },
    );
}

impl SessionOperator {
    fn process_key(&mut self, slot: u32, ctx: Ctx, out: &mut dyn Emit) {
        let (c, wm) = (&self.c, ctx.wm);
        let pt = &mut self.pt;
        let Some((key, ks)) = self.keys.get_mut(slot) else {
            return;
        };
        ks.sessions.sort_by_key(|s| s.w.start);
        for s in ks.sessions.iter_mut() {
            if !s.w.fired_at(wm) {
                continue;
            }
            if !c.multi {
                if !s.ps.on_time_done {
                    fire_session(c, s, key, Timing::OnTime, out);
                }
            } else if let Some(t) = c
                .trigger
                .on_end_of_window(&mut s.ps, ctx.now, |d| pt.push(d, slot))
            {
                fire_session(c, s, key, t, out);
            }
        }
        ks.sessions.retain_mut(|s| {
            if s.ps.closed {
                return false;
            }
            if c.expiry(s.w.end) > wm {
                return true;
            }
            if c.multi {
                // Closing the session: fire what is still pending (Beam's FIRE_IF_NON_EMPTY).
                if let Some(t) = c.trigger.on_close(&mut s.ps) {
                    fire_session(c, s, key, t, out);
                }
            }
            false
        });
        if ks.sessions.is_empty() {
            self.keys.remove(slot);
            return;
        }
        let timer = ks
            .sessions
            .iter()
            .map(|s| {
                if s.ps.on_time_done {
                    c.expiry(s.w.end)
                } else {
                    s.w.end - 1
                }
            })
            .min()
            .unwrap_or(i64::MAX);
        ks.timer = timer;
        self.et.push(timer, slot);
    }
}

impl WindowOperator for SessionOperator {
    fn on_record(
        &mut self,
        key: &str,
        t: i64,
        values: &[Option<f64>],
        ctx: Ctx,
        out: &mut dyn Emit,
    ) -> Admit {
        let c = &self.c;
        let proto = Window {
            start: t,
            end: t.saturating_add(self.gap),
        };
        let fields = c.aggs.cells.len();
        let new_state = || KeyState {
            sessions: Vec::new(),
            timer: i64::MAX,
        };
        let mut known = self.keys.slot_or_insert(key, new_state);
        if self
            .keys
            .state_mut(known)
            .is_some_and(|ks| ks.timer <= ctx.wm)
        {
            // A key restored from a store with timers already due: fire them first.
            if let Some(ks) = self.keys.state_mut(known) {
                ks.timer = i64::MAX;
            }
            self.process_key(known, ctx, out);
            known = self.keys.slot_or_insert(key, new_state);
        }
        let c = &self.c;
        let Some((key, ks)) = self.keys.get_mut(known) else {
            return Admit::Accepted;
        };
        let mut merged_w = proto;
        let mut parts: Vec<Session> = Vec::new();
        let mut i = 0;
        while i < ks.sessions.len() {
            if !ks.sessions[i].ps.closed && touches(ks.sessions[i].w, proto) {
                let s = ks.sessions.swap_remove(i);
                merged_w = cover(merged_w, s.w);
                parts.push(s);
            } else {
                i += 1;
            }
        }
        if parts.is_empty() && c.expiry(proto.end) <= ctx.wm {
            if ks.sessions.is_empty() {
                self.keys.remove(known);
            }
            return Admit::TooLate;
        }
        parts.sort_by_key(|s| s.w.start);
        let mut session = if parts.len() == 1 && parts[0].w == merged_w {
            // The element falls inside an existing session: same window, same panes.
            parts.remove(0)
        } else {
            let mut acc = c.aggs.new_acc();
            let mut ps = PaneState::default();
            let mut retractions = Vec::new();
            let eow = merged_w.fired_at(ctx.wm);
            for mut p in parts {
                acc.merge(&p.acc);
                if c.multi {
                    c.trigger.merge_into(&mut ps, &mut p.ps, eow);
                }
                if let Some(d) = &p.ps.delta {
                    ps.delta.get_or_insert_with(|| c.aggs.new_acc()).merge(d);
                }
                retractions.extend(p.retractions);
                if let Some(prev) = p.ps.last_emitted {
                    retractions.push((p.w, prev));
                }
            }
            retractions.sort_by_key(|(w, _)| w.start);
            Session {
                w: merged_w,
                acc,
                ps,
                retractions,
            }
        };
        session.acc.add(t, values);
        if c.multi {
            accumulation::note_element(c.mode, &mut session.ps, fields, t, values);
            let pt = &mut self.pt;
            let eow = session.w.fired_at(ctx.wm);
            let fire_now = c
                .trigger
                .on_element(&mut session.ps, eow, ctx.now, |d| pt.push(d, known));
            if let Some(timing) = fire_now {
                fire_session(c, &mut session, key, timing, out);
            }
            if session.ps.closed {
                // Its trigger finished: the session emits nothing more.
                if ks.sessions.is_empty() {
                    self.keys.remove(known);
                }
                return Admit::Accepted;
            }
        }
        let due = if session.ps.on_time_done {
            c.expiry(session.w.end)
        } else {
            session.w.end - 1
        };
        ks.sessions.push(session);
        if due < ks.timer {
            ks.timer = due;
            self.et.push(due, known);
        }
        Admit::Accepted
    }

    fn on_watermark(&mut self, ctx: Ctx, out: &mut dyn Emit) {
        let mut batch = std::mem::take(&mut self.batch);
        while batch.next(
            &mut self.et,
            &mut self.keys,
            ctx.wm,
            |ks| &mut ks.timer,
            |ks| ks.sessions.first().map_or(0, |s| s.w.start),
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
            let c = &self.c;
            let pt = &mut self.pt;
            let Some((key, ks)) = self.keys.get_mut(slot) else {
                continue;
            };
            ks.sessions.sort_by_key(|s| s.w.start);
            for s in ks.sessions.iter_mut() {
                if s.ps.timer.is_some_and(|t| t <= ctx.now) {
                    let eow = s.w.fired_at(ctx.wm);
                    if let Some(timing) = c
                        .trigger
                        .on_timer(&mut s.ps, eow, ctx.now, |d| pt.push(d, slot))
                    {
                        fire_session(c, s, key, timing, out);
                    }
                }
            }
            ks.sessions.retain(|s| !s.ps.closed);
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
        let pane_timers: Vec<i64> = state.sessions.iter().filter_map(|s| s.ps.timer).collect();
        let slot = self.keys.insert_state(key, state);
        self.et.rearm(timer, slot);
        for t in pane_timers {
            self.pt.push(t, slot);
        }
        Ok(())
    }
}
