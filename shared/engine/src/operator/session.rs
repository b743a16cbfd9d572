//! Session windows with merging, early/late firings and retraction of merged sessions.
//!
//! A merge that changes a session's bounds makes a new window: its pane index restarts at
//! 0, and in retracting mode the sessions it swallowed that were already emitted are
//! retracted at its next firing, ordered by start, right before its new value.

use super::{decode_state, Admit, Common, Ctx, Keyed, Reset, Timers, WindowOperator};
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
    /// Keys being fired together (kept to reuse its allocation).
    batch: Vec<u32>,
    /// Their key ids, for [`Emit::upcoming`].
    batch_ids: Vec<u64>,
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
            c,
            gap,
            keys: Keyed::default(),
            et: Timers::default(),
            pt: Timers::default(),
            batch: Vec::new(),
            batch_ids: Vec::new(),
        }
    }
}

fn fire_session(c: &Common, s: &mut Session, key: KeyRef<'_>, timing: Timing, out: &mut dyn Emit) {
    if !c.multi {
        c.emit(out, key, s.w, &s.acc, Timing::OnTime, 0, false);
        return;
    }
    if timing == Timing::OnTime {
        s.ps.on_time_done = true;
    }
    let retractions = std::mem::take(&mut s.retractions);
    let w = s.w;
    let mut first = true;
    accumulation::fire(
        c.mode,
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
    fn process_key(&mut self, slot: u32, wm: i64, out: &mut dyn Emit) {
        let c = &self.c;
        let Some((key, ks)) = self.keys.get_mut(slot) else {
            return;
        };
        ks.sessions.sort_by_key(|s| s.w.start);
        for s in ks.sessions.iter_mut() {
            if !s.ps.on_time_done && s.w.fired_at(wm) {
                fire_session(c, s, key, Timing::OnTime, out);
            }
        }
        ks.sessions.retain_mut(|s| {
            if c.expiry(s.w.end) > wm {
                return true;
            }
            if c.multi && s.ps.pending > 0 {
                fire_session(c, s, key, Timing::Late, out);
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
        let fields = c.aggs.cell_fields.len();
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
            self.process_key(known, ctx.wm, out);
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
            if touches(ks.sessions[i].w, proto) {
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
            for p in parts {
                acc.merge(&p.acc);
                // The trigger state of the swallowed sessions carries over (Beam's onMerge):
                // counts add up and the earliest pending processing-time firing is kept, so
                // a pending early or late pane still fires when it was due.
                ps.pending += p.ps.pending;
                ps.timer = match (ps.timer, p.ps.timer) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
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
            let on_time_passed = session.w.fired_at(ctx.wm);
            let fire_now = c
                .trigger
                .on_element(&mut session.ps, on_time_passed, ctx.now, |d| {
                    pt.push(d, known)
                });
            if let Some(timing) = fire_now {
                fire_session(c, &mut session, key, timing, out);
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
        while self.et.pop_armed_batch(
            ctx.wm,
            &mut self.keys,
            |ks| &mut ks.timer,
            |ks| ks.sessions.first().map_or(0, |s| s.w.start),
            &mut batch,
        ) {
            self.keys.key_ids(&batch, &mut self.batch_ids);
            out.upcoming(self.c.index, &self.batch_ids);
            for &slot in &batch {
                self.process_key(slot, ctx.wm, out);
            }
        }
        self.batch = batch;
    }

    fn on_processing_time(&mut self, ctx: Ctx, out: &mut dyn Emit) {
        while let Some((_, slot)) = self.pt.pop_due(ctx.now) {
            let c = &self.c;
            let Some((key, ks)) = self.keys.get_mut(slot) else {
                continue;
            };
            ks.sessions.sort_by_key(|s| s.w.start);
            for s in ks.sessions.iter_mut() {
                if s.ps.timer.is_some_and(|t| t <= ctx.now) {
                    let timing = if s.ps.on_time_done {
                        Timing::Late
                    } else {
                        Timing::Early
                    };
                    fire_session(c, s, key, timing, out);
                }
            }
        }
    }

    fn keys(&self) -> usize {
        self.keys.len()
    }

    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) {
        self.keys.snapshot(out);
    }

    fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String> {
        let state: KeyState = decode_state(blob)?;
        let timer = state.timer;
        let pane_timers: Vec<i64> = state.sessions.iter().filter_map(|s| s.ps.timer).collect();
        let slot = self.keys.insert_state(key, state);
        if timer != i64::MAX {
            self.et.push(timer, slot);
        }
        for t in pane_timers {
            self.pt.push(t, slot);
        }
        Ok(())
    }
}
