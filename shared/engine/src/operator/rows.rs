//! Rows windows: Flink SQL's `AGG(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN n
//! PRECEDING AND CURRENT ROW)`, one output row per input row.
//!
//! This follows Flink's `RowTimeRowsBoundedPrecedingFunction` step by step:
//!
//! * Each key buffers its rows under their event time until the watermark reaches that
//!   time (a timer at the time, due when `watermark >= time`, as every event-time timer of
//!   the engine). Then the rows of that time are emitted in arrival order, each with the
//!   aggregates over itself and the `n` rows before it in (event time, arrival) order of the
//!   key: fewer at the start. So on out-of-order input the frame is the rows that precede
//!   in event time, not in arrival.
//! * A row whose time is at or before the key's last emitted time is late: Flink drops it,
//!   the engine hands it to the late-data output ([`Admit::TooLate`]). Flink does not
//!   compare a row with the watermark: a row behind the watermark but after the key's last
//!   emitted time is buffered and comes out at the next watermark advance. A key that has
//!   emitted nothing yet has Flink's initial last time, 0 (the epoch): rows at or before it
//!   are late too.
//! * The aggregates are recomputed over the frame for each row, so they equal a fresh
//!   computation over those rows (SUM of no non-null value is NULL, COUNT(v) counts the
//!   non-null values, COUNT(*) the rows).
//!
//! Each emitted row is a [`crate::pane::Pane`] with window `[time, time + 1)` and, as its
//! pane index, its ordinal among the key's rows of that time: two rows of one key and one
//! time have distinct pane ids, and a redelivered row the same id. Its values are the
//! aggregates, then the input fields the aggregation carries (see
//! [`crate::spec::AggregationSpec::value_names`]).
//!
//! State per key: the rows waiting for the watermark (at most `[limits] max_pending_rows`;
//! a row beyond is refused with [`Admit::Full`]), the last `n` emitted rows and the last
//! emitted time. Like Flink's operator without a state TTL, a key that has emitted keeps
//! its frame and last time for good: a later row needs them.

use std::collections::{BTreeMap, VecDeque};

use smallvec::SmallVec;

use super::{
    decode_state, Admit, Common, Ctx, EncodeError, FireBatch, Keyed, Reset, Timers, WindowOperator,
};
use crate::pane::{Emit, Pane};
use crate::trigger::Timing;
use crate::window::Window;

/// The last emitted time of a key that has emitted nothing: Flink's initial
/// `lastTriggeringTs`.
const NOTHING_EMITTED: i64 = 0;

/// A row's values: the aggregates' cells, then the carried fields.
type Values = SmallVec<[Option<f64>; 2]>;

/// The operator of a rows window aggregation.
pub struct RowsOperator {
    c: Common,
    /// `n`: rows before the current one in its frame.
    preceding: usize,
    max_pending: u64,
    keys: Keyed<KeyState>,
    /// Event-time timers: each key's earliest waiting time.
    et: Timers,
    /// Keys being fired together (kept to reuse its allocations).
    batch: FireBatch,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    /// Rows waiting for the watermark, by event time, each time's in arrival order.
    pending: BTreeMap<i64, Vec<Values>>,
    /// Number of rows in `pending`.
    waiting: u64,
    /// The last `n` emitted rows, oldest first.
    frame: VecDeque<(i64, Values)>,
    /// The time of the last emitted rows (Flink's `lastTriggeringTs`).
    last: i64,
    /// The armed event-time timer, `i64::MAX` when none.
    timer: i64,
}

impl KeyState {
    fn new() -> Self {
        KeyState {
            pending: BTreeMap::new(),
            waiting: 0,
            frame: VecDeque::new(),
            last: NOTHING_EMITTED,
            timer: i64::MAX,
        }
    }

    /// True when the key has nothing to keep: nothing waiting and nothing emitted.
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.frame.is_empty() && self.last == NOTHING_EMITTED
    }
}

impl Reset for KeyState {
    fn reset(&mut self) {
        self.pending.clear();
        self.waiting = 0;
        self.frame.clear();
        self.last = NOTHING_EMITTED;
        self.timer = i64::MAX;
    }
}

impl RowsOperator {
    /// The operator of a rows window over the current row and `preceding` rows before it,
    /// holding at most `max_pending` rows per key until the watermark passes them.
    pub fn new(c: Common, preceding: u64, max_pending: u64) -> Self {
        RowsOperator {
            batch: FireBatch::new(c.index),
            c,
            preceding: usize::try_from(preceding).unwrap_or(usize::MAX),
            max_pending,
            keys: Keyed::default(),
            et: Timers::default(),
        }
    }

    /// Emits the key's rows whose time the watermark `wm` has reached, in (time, arrival)
    /// order, and re-arms its timer.
    fn fire_key(&mut self, slot: u32, wm: i64, out: &mut dyn Emit) {
        let (c, preceding) = (&self.c, self.preceding);
        let Some((key, ks)) = self.keys.get_mut(slot) else {
            return;
        };
        let cells = c.aggs.cells.len();
        while let Some(entry) = ks.pending.first_entry() {
            if *entry.key() > wm {
                break;
            }
            let (t, rows) = entry.remove_entry();
            ks.waiting = ks.waiting.saturating_sub(rows.len() as u64);
            let window = Window {
                start: t,
                end: t.saturating_add(1),
            };
            for (ordinal, row) in rows.into_iter().enumerate() {
                ks.frame.push_back((t, row));
                while ks.frame.len() > preceding.saturating_add(1) {
                    ks.frame.pop_front();
                }
                let mut acc = c.aggs.new_acc();
                for (ft, v) in &ks.frame {
                    acc.add(*ft, v);
                }
                let mut values = c.aggs.values(&acc);
                if let Some((_, row)) = ks.frame.back() {
                    values.extend(row.iter().skip(cells).copied());
                }
                out.pane(&Pane {
                    aggregation: c.index,
                    key: key.name,
                    key_id: key.id,
                    window,
                    timing: Timing::OnTime,
                    index: u32::try_from(ordinal).unwrap_or(u32::MAX),
                    retraction: false,
                    values: &values,
                });
            }
            ks.last = t;
        }
        while ks.frame.len() > preceding {
            ks.frame.pop_front();
        }
        ks.timer = ks.pending.first_key_value().map_or(i64::MAX, |(t, _)| *t);
        self.et.rearm(ks.timer, slot);
    }
}

impl WindowOperator for RowsOperator {
    fn on_record(
        &mut self,
        key: &str,
        t: i64,
        values: &[Option<f64>],
        _ctx: Ctx,
        _out: &mut dyn Emit,
    ) -> Admit {
        let slot = self.keys.slot_or_insert(key, KeyState::new);
        let Some(ks) = self.keys.state_mut(slot) else {
            return Admit::Accepted;
        };
        let refused = if t <= ks.last {
            Some(Admit::TooLate)
        } else if ks.waiting >= self.max_pending {
            Some(Admit::Full)
        } else {
            None
        };
        if let Some(r) = refused {
            if ks.is_empty() {
                self.keys.remove(slot);
            }
            return r;
        }
        ks.pending
            .entry(t)
            .or_default()
            .push(values.iter().copied().collect());
        ks.waiting += 1;
        if t < ks.timer {
            ks.timer = t;
            self.et.push(t, slot);
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
            |ks| ks.last,
            out,
        ) {
            for &slot in batch.slots() {
                self.fire_key(slot, ctx.wm, out);
            }
        }
        self.batch = batch;
    }

    fn on_processing_time(&mut self, _ctx: Ctx, _out: &mut dyn Emit) {}

    fn keys(&self) -> usize {
        self.keys.len()
    }

    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<u8>)) -> Result<(), EncodeError> {
        self.keys.snapshot(out)
    }

    fn restore_key(&mut self, key: &str, blob: &[u8]) -> Result<(), String> {
        let state: KeyState = decode_state(blob)?;
        let timer = state.timer;
        let slot = self.keys.insert_state(key, state);
        self.et.rearm(timer, slot);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PipelineSpec;

    fn operator(preceding: u64, max_pending: u64) -> RowsOperator {
        let spec = PipelineSpec::from_toml(&format!(
            "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", v = \"number\" }}\n\
             [[aggregation]]\nname = \"o\"\ngroup_by = [\"k\"]\n\
             window = {{ type = \"rows\", preceding = {preceding} }}\n\
             aggregates = [{{ name = \"s\", fn = \"sum\", field = \"v\" }}]\n"
        ))
        .unwrap();
        RowsOperator::new(
            Common::new(0, &spec.aggregations[0]),
            preceding,
            max_pending,
        )
    }

    type Rows = Vec<(i64, u32, Option<f64>)>;

    fn collect(rows: &mut Rows) -> impl FnMut(&Pane<'_>) + '_ {
        |p: &Pane<'_>| rows.push((p.window.start, p.index, p.values[0]))
    }

    fn ctx(wm: i64) -> Ctx {
        Ctx { wm, now: 0 }
    }

    #[test]
    fn rows_come_out_in_time_order_when_the_watermark_passes_them() {
        let mut op = operator(1, 100);
        let mut rows = Rows::new();
        for (t, v) in [(20, 2.0), (10, 1.0), (20, 3.0), (30, 4.0)] {
            let a = op.on_record("a", t, &[Some(v)], ctx(0), &mut collect(&mut rows));
            assert_eq!(a, Admit::Accepted);
        }
        assert!(rows.is_empty(), "nothing before the watermark");
        op.on_watermark(ctx(20), &mut collect(&mut rows));
        assert_eq!(
            rows,
            vec![(10, 0, Some(1.0)), (20, 0, Some(3.0)), (20, 1, Some(5.0))]
        );
        // At or before the last emitted time: late. After it, even behind the watermark:
        // buffered until the next advance (as Flink).
        let mut none = Rows::new();
        assert_eq!(
            op.on_record("a", 20, &[Some(9.0)], ctx(20), &mut collect(&mut none)),
            Admit::TooLate
        );
        assert_eq!(
            op.on_record("a", 25, &[Some(5.0)], ctx(20), &mut collect(&mut none)),
            Admit::Accepted
        );
        op.on_watermark(ctx(i64::MAX), &mut collect(&mut rows));
        assert_eq!(rows[3..], [(25, 0, Some(8.0)), (30, 0, Some(9.0))]);
    }

    #[test]
    fn a_key_holds_at_most_max_pending_rows_and_nothing_at_the_epoch() {
        let mut op = operator(0, 2);
        let mut rows = Rows::new();
        for t in [1, 2] {
            assert_eq!(
                op.on_record("a", t, &[None], ctx(0), &mut collect(&mut rows)),
                Admit::Accepted
            );
        }
        assert_eq!(
            op.on_record("a", 3, &[None], ctx(0), &mut collect(&mut rows)),
            Admit::Full
        );
        assert_eq!(
            op.on_record("b", 0, &[None], ctx(0), &mut collect(&mut rows)),
            Admit::TooLate
        );
        assert_eq!(op.keys(), 1, "a refused row of a new key leaves no state");
        op.on_watermark(ctx(5), &mut collect(&mut rows));
        assert_eq!(
            rows,
            vec![(1, 0, None), (2, 0, None)],
            "SUM of nulls is NULL"
        );
    }

    #[test]
    fn snapshot_and_restore_keep_waiting_rows_frame_and_last_time() {
        let mut op = operator(2, 100);
        let mut rows = Rows::new();
        for (t, v) in [(5, 1.0), (6, 2.0), (9, 4.0)] {
            op.on_record("a", t, &[Some(v)], ctx(0), &mut collect(&mut rows));
        }
        op.on_watermark(ctx(6), &mut collect(&mut rows));
        let mut blobs = Vec::new();
        op.snapshot(&mut |k, b| blobs.push((k.to_string(), b)))
            .unwrap();
        let mut restored = operator(2, 100);
        for (k, b) in &blobs {
            restored.restore_key(k, b).unwrap();
        }
        let rest = |op: &mut RowsOperator| {
            let mut out = Rows::new();
            assert_eq!(
                op.on_record("a", 6, &[Some(1.0)], ctx(6), &mut collect(&mut out)),
                Admit::TooLate
            );
            op.on_record("a", 8, &[Some(8.0)], ctx(6), &mut collect(&mut out));
            op.on_watermark(ctx(i64::MAX), &mut collect(&mut out));
            out
        };
        let (a, b) = (rest(&mut op), rest(&mut restored));
        assert_eq!(a, vec![(8, 0, Some(11.0)), (9, 0, Some(14.0))]);
        assert_eq!(a, b);
    }
}
