//! How refinements relate: discarding, accumulating, accumulating-and-retracting.
//!
//! [`fire`] turns one trigger firing of a window into the panes to emit, given the window's
//! full value and its [`PaneState`]:
//! * discarding emits only the elements since the previous pane;
//! * accumulating emits the full value;
//! * retracting first retracts the previously emitted value (same pane index, flagged as a
//!   retraction), then emits the full value.
//!
//! An on-time firing with nothing new still emits a pane by default ([`OnTime::Always`]).

use crate::aggregate::Acc;
use crate::spec::model::{AccumulationMode, OnTime};
use crate::trigger::{PaneState, Timing};

/// Emits the panes of one firing through `emit(value, retraction, index, timing)`. Returns
/// true when anything was emitted. Early and late firings with no new element emit nothing.
/// An `ON_TIME` firing with no new element emits a pane only with [`OnTime::Always`]
/// (Beam's `FIRE_ALWAYS`, the default): in discarding mode an empty pane, otherwise the
/// window's unchanged value.
pub fn fire(
    mode: AccumulationMode,
    on_time: OnTime,
    ps: &mut PaneState,
    full: &Acc,
    timing: Timing,
    mut emit: impl FnMut(&Acc, bool, u32, Timing),
) -> bool {
    let idx = ps.next_index;
    let wanted = ps.pending > 0 || (timing == Timing::OnTime && on_time == OnTime::Always);
    let fired = match mode {
        _ if !wanted => false,
        AccumulationMode::Discarding => {
            match ps.delta.take() {
                Some(d) => emit(&d, false, idx, timing),
                None => {
                    let mut empty = full.clone();
                    empty.clear();
                    emit(&empty, false, idx, timing);
                }
            }
            true
        }
        AccumulationMode::Accumulating => {
            if full.is_empty() {
                false
            } else {
                emit(full, false, idx, timing);
                true
            }
        }
        AccumulationMode::Retracting => {
            if full.is_empty() {
                false
            } else {
                if let Some(prev) = ps.last_emitted.take() {
                    emit(&prev, true, idx, timing);
                }
                emit(full, false, idx, timing);
                ps.last_emitted = Some(full.clone());
                true
            }
        }
    };
    ps.delta = None;
    ps.pending = 0;
    if fired {
        ps.next_index += 1;
    }
    fired
}

/// Records one new element in a pane's state (for discarding mode, its delta).
pub fn note_element(
    mode: AccumulationMode,
    ps: &mut PaneState,
    fields: usize,
    t: i64,
    values: &[Option<f64>],
) {
    ps.pending += 1;
    if mode == AccumulationMode::Discarding {
        ps.delta
            .get_or_insert_with(|| Acc::new(fields))
            .add(t, values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(v: f64) -> Acc {
        let mut a = Acc::new(1);
        a.add(0, &[Some(v)]);
        a
    }

    #[test]
    fn retracting_retracts_previous_value_with_same_index() {
        let mut ps = PaneState::default();
        let mut out = Vec::new();
        ps.pending = 1;
        fire(
            AccumulationMode::Retracting,
            OnTime::Always,
            &mut ps,
            &acc(3.0),
            Timing::Early,
            |a, r, i, _| out.push((a.cells[0].sum.value(), r, i)),
        );
        ps.pending = 1;
        fire(
            AccumulationMode::Retracting,
            OnTime::Always,
            &mut ps,
            &acc(5.0),
            Timing::OnTime,
            |a, r, i, _| out.push((a.cells[0].sum.value(), r, i)),
        );
        assert_eq!(out, vec![(3.0, false, 0), (3.0, true, 1), (5.0, false, 1)]);
    }

    #[test]
    fn discarding_emits_only_new_elements() {
        let mut ps = PaneState::default();
        let mut out = Vec::new();
        note_element(AccumulationMode::Discarding, &mut ps, 1, 0, &[Some(2.0)]);
        fire(
            AccumulationMode::Discarding,
            OnTime::IfNonEmpty,
            &mut ps,
            &acc(2.0),
            Timing::Early,
            |a, _, _, _| out.push(a.cells[0].sum.value()),
        );
        assert!(!fire(
            AccumulationMode::Discarding,
            OnTime::IfNonEmpty,
            &mut ps,
            &acc(2.0),
            Timing::OnTime,
            |_, _, _, _| {}
        ));
        note_element(AccumulationMode::Discarding, &mut ps, 1, 0, &[Some(4.0)]);
        fire(
            AccumulationMode::Discarding,
            OnTime::IfNonEmpty,
            &mut ps,
            &acc(6.0),
            Timing::Late,
            |a, _, _, _| out.push(a.cells[0].sum.value()),
        );
        assert_eq!(out, vec![2.0, 4.0]);
    }

    /// Beam's `FIRE_ALWAYS`: the on-time pane comes even with nothing new, and the next
    /// pane's index moves up by one.
    #[test]
    fn on_time_always_emits_an_empty_discarding_pane() {
        let mut ps = PaneState::default();
        let mut out = Vec::new();
        let mut push = |a: &Acc, _: bool, i: u32, t: Timing| out.push((a.rows, i, t));
        note_element(AccumulationMode::Discarding, &mut ps, 1, 0, &[Some(2.0)]);
        let d = AccumulationMode::Discarding;
        fire(
            d,
            OnTime::Always,
            &mut ps,
            &acc(2.0),
            Timing::Early,
            &mut push,
        );
        assert!(fire(
            d,
            OnTime::Always,
            &mut ps,
            &acc(2.0),
            Timing::OnTime,
            &mut push
        ));
        note_element(d, &mut ps, 1, 0, &[Some(4.0)]);
        fire(
            d,
            OnTime::Always,
            &mut ps,
            &acc(6.0),
            Timing::Late,
            &mut push,
        );
        assert_eq!(
            out,
            vec![
                (1, 0, Timing::Early),
                (0, 1, Timing::OnTime),
                (1, 2, Timing::Late)
            ]
        );
    }
}
