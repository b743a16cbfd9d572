//! When in processing time: triggers and per-window pane state.
//!
//! Every window fires ON_TIME when the watermark passes its end. A trigger can add:
//! * EARLY panes a processing-time delay after the first element of a pane (unaligned, or
//!   aligned to multiples of the period), or every N elements;
//! * LATE panes for data that arrives after the on-time pane but within the allowed
//!   lateness: on every late element, or a processing-time delay after the first one.
//!
//! Processing time is injected (`advance_processing_time`), so runs are deterministic.
//!
//! ```
//! use eventide_engine::trigger::{EarlyTrigger, TriggerSpec};
//! let t = TriggerSpec { early: Some(EarlyTrigger::AfterProcessingTime { delay_ms: 60_000, aligned: true }), late: None };
//! // Aligned early firings happen on the minute grid.
//! assert_eq!(t.early_deadline(125_000), Some(180_000));
//! ```

use serde::{Deserialize, Serialize};

use crate::aggregate::Acc;

/// Early firings, before the watermark reaches the end of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyTrigger {
    AfterProcessingTime { delay_ms: i64, aligned: bool },
    EveryElements(u64),
}

/// Late firings, after the on-time pane and within the allowed lateness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateTrigger {
    EveryElement,
    AfterProcessingTime { delay_ms: i64 },
}

/// An aggregation's trigger. The default fires once, on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TriggerSpec {
    pub early: Option<EarlyTrigger>,
    pub late: Option<LateTrigger>,
}

/// The trigger in the spec's terms: `on time`, plus early and late firings.
///
/// ```
/// use eventide_engine::trigger::{EarlyTrigger, LateTrigger, TriggerSpec};
/// let t = TriggerSpec {
///     early: Some(EarlyTrigger::AfterProcessingTime { delay_ms: 60_000, aligned: true }),
///     late: Some(LateTrigger::EveryElement),
/// };
/// assert_eq!(t.to_string(), "early every 1m (aligned), on time, late on every element");
/// ```
impl std::fmt::Display for TriggerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::duration::format_ms;
        match self.early {
            Some(EarlyTrigger::AfterProcessingTime {
                delay_ms,
                aligned: true,
            }) => write!(f, "early every {} (aligned), ", format_ms(delay_ms))?,
            Some(EarlyTrigger::AfterProcessingTime {
                delay_ms,
                aligned: false,
            }) => write!(
                f,
                "early {} after a pane's first element, ",
                format_ms(delay_ms)
            )?,
            Some(EarlyTrigger::EveryElements(n)) => write!(f, "early every {n} elements, ")?,
            None => {}
        }
        write!(f, "on time")?;
        match self.late {
            Some(LateTrigger::EveryElement) => write!(f, ", late on every element"),
            Some(LateTrigger::AfterProcessingTime { delay_ms }) => write!(
                f,
                ", late {} after a late pane's first element",
                format_ms(delay_ms)
            ),
            None => Ok(()),
        }
    }
}

impl TriggerSpec {
    /// The processing time at which an early pane is due when its first element arrives at `now`.
    pub fn early_deadline(&self, now: i64) -> Option<i64> {
        match self.early? {
            EarlyTrigger::AfterProcessingTime {
                delay_ms,
                aligned: false,
            } => Some(now.saturating_add(delay_ms)),
            EarlyTrigger::AfterProcessingTime {
                delay_ms,
                aligned: true,
            } => Some(crate::window::floor_to(now, delay_ms).saturating_add(delay_ms)),
            EarlyTrigger::EveryElements(_) => None,
        }
    }

    /// The processing time at which a late pane is due when its first element arrives at `now`.
    pub fn late_deadline(&self, now: i64) -> Option<i64> {
        match self.late? {
            LateTrigger::AfterProcessingTime { delay_ms } => Some(now.saturating_add(delay_ms)),
            LateTrigger::EveryElement => None,
        }
    }

    /// What a new element (already counted in `ps.pending`) does to its window's pane.
    ///
    /// Before the on-time firing it may complete an early count (fire EARLY now) or arm an
    /// early processing-time timer; after it, the element is late and fires a LATE pane now
    /// (on every element, Beam's default) or arms the late timer. Returns the pane to fire
    /// now, if any; a newly armed timer is recorded in `ps.timer` and passed to `arm`.
    pub fn on_element(
        &self,
        ps: &mut PaneState,
        on_time_passed: bool,
        now: i64,
        mut arm: impl FnMut(i64),
    ) -> Option<Timing> {
        let deadline = if !on_time_passed {
            if self.early_count_reached(ps.pending) {
                return Some(Timing::Early);
            }
            self.early_deadline(now)
        } else {
            ps.on_time_done = true;
            match self.late {
                None | Some(LateTrigger::EveryElement) => return Some(Timing::Late),
                Some(LateTrigger::AfterProcessingTime { .. }) => self.late_deadline(now),
            }
        };
        if ps.timer.is_none() {
            if let Some(d) = deadline {
                ps.timer = Some(d);
                arm(d);
            }
        }
        None
    }

    /// True when an early pane is due after `pending` elements.
    pub fn early_count_reached(&self, pending: u64) -> bool {
        matches!(self.early, Some(EarlyTrigger::EveryElements(n)) if pending >= n)
    }
}

/// Which firing produced a pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Timing {
    Early,
    OnTime,
    Late,
}

impl Timing {
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Early => "EARLY",
            Timing::OnTime => "ON_TIME",
            Timing::Late => "LATE",
        }
    }
}

/// Per-window trigger and accumulation state, kept only for windows that can fire again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaneState {
    /// Index of the next pane.
    pub next_index: u32,
    /// Elements added since the last pane.
    pub pending: u64,
    /// Elements since the last pane, for discarding mode.
    pub delta: Option<Acc>,
    /// The last emitted value, for retracting mode.
    pub last_emitted: Option<Acc>,
    /// A processing-time timer armed for this window.
    pub timer: Option<i64>,
    /// True once the on-time pane has fired (or the watermark passed the window).
    pub on_time_done: bool,
}
