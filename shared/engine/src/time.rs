//! Time as a pipeline runs it: processing time and the watermark, moved by records and by
//! the input's control lines. This is the one home of those rules; the streaming
//! [`crate::Pipeline`], the key-by-key timeline of [`crate::bounded`] and a replay's
//! decoding thread all apply them through these types, so they cannot drift apart.
//!
//! * Processing time ([`ProcessingTime`]) only moves forward, to what
//!   `{"advance_processing_time": …}` lines say. The future guard (`[watermark]
//!   max_future_skew`) measures each event against it once the input gave one, and until
//!   then against the wall clock of the run, if there is one.
//! * The watermark ([`Clock`]) moves with each record's event time (per partition), with
//!   `{"advance_watermark": …}` lines, and with processing time (idle partitions stop
//!   holding it back).
//!
//! ```
//! use eventide_engine::time::{Clock, Control, Moved};
//! use eventide_engine::watermark::WatermarkTracker;
//! let mut clock = Clock::new(WatermarkTracker::bounded(5, Some(100)));
//! clock.observe("p0", 1_000);
//! assert_eq!(clock.watermark(), 995);
//! // Processing time moves: p0 is idle past its timeout and no longer holds the watermark.
//! let moved = clock.control(Control::ProcessingTime(500));
//! assert!(matches!(moved, Moved::ProcessingTime { now: 500, wm_before: 995, .. }));
//! assert!(matches!(clock.control(Control::ProcessingTime(400)), Moved::Nothing));
//! ```

use crate::error::RecordError;
use crate::record::Line;
use crate::watermark::{FutureGuard, WatermarkTracker};

/// Processing time, as the input's control lines move it, and the time the future guard
/// measures events against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessingTime {
    now: i64,
    /// An `advance_processing_time` came.
    given: bool,
    wall_ms: Option<i64>,
}

impl ProcessingTime {
    /// Processing time at 0, measured against `wall_ms` until the input gives its own.
    pub fn new(wall_ms: Option<i64>) -> Self {
        ProcessingTime {
            now: 0,
            given: false,
            wall_ms,
        }
    }

    /// Sets the wall clock that events are measured against until the input gives its own
    /// processing time.
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.wall_ms = Some(now_ms);
    }

    /// The processing time: the latest the input advanced to, 0 before.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Applies `advance_processing_time` to `t`: time never goes back. Returns true when it
    /// moved.
    pub fn advance(&mut self, t: i64) -> bool {
        self.given = true;
        if t <= self.now {
            return false;
        }
        self.now = t;
        true
    }

    /// What events are measured against: the input's processing time once it gave one,
    /// otherwise the wall clock; `None` when neither exists (nothing is measured).
    pub fn reference(&self) -> Option<i64> {
        if self.given {
            Some(self.now)
        } else {
            self.wall_ms
        }
    }

    /// Checks an event time against `guard` at [`ProcessingTime::reference`].
    ///
    /// # Errors
    ///
    /// [`RecordError::Future`] for an event dated further ahead than the guard allows.
    pub fn check_future(&self, guard: &FutureGuard, event_ms: i64) -> Result<(), RecordError> {
        match self.reference() {
            Some(now) => guard.check(event_ms, now),
            None => Ok(()),
        }
    }
}

/// A control line of the input: what moves time other than records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `{"advance_processing_time": t}`.
    ProcessingTime(i64),
    /// `{"advance_watermark": t}`.
    Watermark(i64),
}

impl Control {
    /// The control of a decoded line; `None` for an event.
    pub fn of(line: &Line<'_>) -> Option<Control> {
        match *line {
            Line::AdvanceProcessingTime(t) => Some(Control::ProcessingTime(t)),
            Line::AdvanceWatermark(t) => Some(Control::Watermark(t)),
            Line::Event(_) => None,
        }
    }
}

/// What a control line moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Nothing: time never goes back.
    Nothing,
    /// The watermark, to `to`.
    Watermark { to: i64 },
    /// Processing time, to `now`, which the operators see at the watermark `wm_before`;
    /// the watermark is then `wm_after` (idle partitions may stop holding it back).
    ProcessingTime {
        now: i64,
        wm_before: i64,
        wm_after: i64,
    },
}

/// Processing time and the watermark of a run.
#[derive(Debug, Clone)]
pub struct Clock {
    processing: ProcessingTime,
    wm: WatermarkTracker,
}

impl Clock {
    /// A clock at processing time 0 with the watermarks of `wm`.
    pub fn new(wm: WatermarkTracker) -> Self {
        Clock {
            processing: ProcessingTime::default(),
            wm,
        }
    }

    /// The combined watermark.
    pub fn watermark(&self) -> i64 {
        self.wm.current()
    }

    /// The processing time.
    pub fn now(&self) -> i64 {
        self.processing.now()
    }

    /// Processing time, and what the future guard measures against.
    pub fn processing(&self) -> &ProcessingTime {
        &self.processing
    }

    /// See [`ProcessingTime::set_wall_clock`].
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.processing.set_wall_clock(now_ms);
    }

    /// The watermarks per partition.
    pub fn tracker(&self) -> &WatermarkTracker {
        &self.wm
    }

    /// The watermarks per partition, e.g. to resume or finish one.
    pub fn tracker_mut(&mut self) -> &mut WatermarkTracker {
        &mut self.wm
    }

    /// Applies a control line.
    pub fn control(&mut self, c: Control) -> Moved {
        match c {
            Control::Watermark(t) => self.advance_watermark(t),
            Control::ProcessingTime(t) => {
                if !self.processing.advance(t) {
                    return Moved::Nothing;
                }
                let wm_before = self.wm.current();
                let wm_after = self.wm.on_processing_time(t);
                Moved::ProcessingTime {
                    now: t,
                    wm_before,
                    wm_after,
                }
            }
        }
    }

    /// Moves the watermark forward explicitly; it never goes back.
    pub fn advance_watermark(&mut self, t: i64) -> Moved {
        let before = self.wm.current();
        let after = self.wm.advance_to(t);
        if after > before {
            Moved::Watermark { to: after }
        } else {
            Moved::Nothing
        }
    }

    /// A record of `partition` at event time `time`, after it met the watermark; returns
    /// the watermark when the record moved it.
    pub fn observe(&mut self, partition: &str, time: i64) -> Option<i64> {
        let before = self.wm.current();
        let after = self.wm.observe(partition, time, self.processing.now());
        (after > before).then_some(after)
    }
}
