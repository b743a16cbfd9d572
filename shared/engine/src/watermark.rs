//! When in event time: watermarks per partition, combined by minimum.
//!
//! With bounded out-of-orderness the watermark of a partition is
//! `max(event time of the records before it) - bound`, exactly as Flink SQL's
//! `WATERMARK FOR ts AS ts - INTERVAL ...` with the watermark advanced after every record:
//! each record is judged against the watermark of the records before it. The combined
//! watermark is the minimum over partitions; a partition that has been quiet for longer
//! than the idle timeout (in processing time) stops holding it back. It never goes
//! backwards. At the end of a finite input it goes to +∞ ([`WM_MAX`]).
//!
//! ```
//! use eventide_engine::watermark::{WatermarkTracker, WM_MIN};
//! let mut wm = WatermarkTracker::bounded(5, None);
//! assert_eq!(wm.current(), WM_MIN);
//! wm.observe("p0", 100, 0);
//! assert_eq!(wm.current(), 95);
//! wm.observe("p0", 90, 0); // out of order: the watermark stays
//! assert_eq!(wm.current(), 95);
//! ```

use rustc_hash::FxHashMap;

use crate::error::RecordError;

/// The watermark before any record: −∞.
pub const WM_MIN: i64 = i64::MIN;
/// The watermark at the end of input: +∞.
pub const WM_MAX: i64 = i64::MAX;

#[derive(Debug, Clone)]
struct Partition {
    name: Box<str>,
    max_ts: i64,
    last_active: i64,
}

/// Tracks per-partition watermarks and their combined minimum.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    /// `None` for explicit watermarks.
    bound: Option<i64>,
    idle_timeout: Option<i64>,
    /// Partitions in order of first sight, found by name through `index`.
    partitions: Vec<Partition>,
    index: FxHashMap<Box<str>, usize>,
    /// The partition of the last lookup: records mostly come from one partition after
    /// another, so this spares a hash lookup per record.
    last: usize,
    combined: i64,
    explicit: i64,
    /// The combined watermark moves only by [`WatermarkTracker::advance_to`].
    external: bool,
}

impl WatermarkTracker {
    /// Bounded out-of-orderness with an optional idle timeout.
    pub fn bounded(bound_ms: i64, idle_timeout_ms: Option<i64>) -> Self {
        WatermarkTracker {
            bound: Some(bound_ms),
            idle_timeout: idle_timeout_ms,
            partitions: Vec::new(),
            index: FxHashMap::default(),
            last: 0,
            combined: WM_MIN,
            explicit: WM_MIN,
            external: false,
        }
    }

    /// Tracks each partition's bounded watermark, but the combined watermark is set from
    /// outside (e.g. the global watermark of all shards).
    pub fn external(bound_ms: i64) -> Self {
        WatermarkTracker {
            external: true,
            ..Self::bounded(bound_ms, None)
        }
    }

    /// Resumes a partition at watermark `wm`: its max event time becomes `wm + bound` unless
    /// it has seen later records.
    pub fn resume(&mut self, partition: &str, wm: i64, now: i64) {
        let ts = wm.saturating_add(self.bound.unwrap_or(0));
        let i = self.slot_or_insert(partition, ts, now);
        let p = &mut self.partitions[i];
        p.max_ts = p.max_ts.max(ts);
    }

    /// A partition's own watermark: its max event time minus the bound.
    pub fn partition_watermark(&self, partition: &str) -> Option<i64> {
        let bound = self.bound.unwrap_or(0);
        self.index
            .get(partition)
            .map(|&i| self.partitions[i].max_ts.saturating_sub(bound))
    }

    /// Watermarks only from explicit control records.
    pub fn explicit() -> Self {
        WatermarkTracker {
            bound: None,
            ..Self::bounded(0, None)
        }
    }

    /// The combined watermark.
    #[inline]
    pub fn current(&self) -> i64 {
        self.combined
    }

    /// Records an event of `partition` at event time `ts`, seen at processing time `now`.
    /// Returns the new combined watermark.
    #[inline]
    pub fn observe(&mut self, partition: &str, ts: i64, now: i64) -> i64 {
        if self.bound.is_none() {
            return self.combined;
        }
        let known = self.partitions.len();
        let i = self.slot_or_insert(partition, ts, now);
        if i < known {
            let p = &mut self.partitions[i];
            p.last_active = now;
            if ts > p.max_ts {
                p.max_ts = ts;
            } else {
                return self.combined;
            }
        }
        self.recompute(now)
    }

    /// Sets the watermark explicitly (a control record). It never goes backwards.
    pub fn advance_to(&mut self, wm: i64) -> i64 {
        self.explicit = self.explicit.max(wm);
        self.combined = self.combined.max(self.explicit);
        self.combined
    }

    /// Re-evaluates idleness at processing time `now`.
    pub fn on_processing_time(&mut self, now: i64) -> i64 {
        if self.idle_timeout.is_some() {
            self.recompute(now)
        } else {
            self.combined
        }
    }

    /// The index of `partition`, added with max event time `ts` if it is new.
    #[inline]
    fn slot_or_insert(&mut self, partition: &str, ts: i64, now: i64) -> usize {
        if let Some(p) = self.partitions.get(self.last) {
            if p.name.len() == partition.len() && (partition.is_empty() || *p.name == *partition) {
                return self.last;
            }
        }
        let i = match self.index.get(partition) {
            Some(&i) => i,
            None => {
                self.partitions.push(Partition {
                    name: partition.into(),
                    max_ts: ts,
                    last_active: now,
                });
                self.index
                    .insert(partition.into(), self.partitions.len() - 1);
                self.partitions.len() - 1
            }
        };
        self.last = i;
        i
    }

    fn recompute(&mut self, now: i64) -> i64 {
        if self.external {
            return self.combined;
        }
        let bound = self.bound.unwrap_or(0);
        let mut min: Option<i64> = None;
        let mut any_active = false;
        for p in &self.partitions {
            if let Some(idle) = self.idle_timeout {
                if now.saturating_sub(p.last_active) >= idle {
                    continue;
                }
            }
            any_active = true;
            let w = p.max_ts.saturating_sub(bound);
            min = Some(min.map_or(w, |m| m.min(w)));
        }
        if !any_active {
            // All partitions idle: the most advanced one carries the watermark.
            min = self
                .partitions
                .iter()
                .map(|p| p.max_ts.saturating_sub(bound))
                .max();
        }
        if let Some(m) = min {
            if m > self.combined {
                self.combined = m;
            }
        }
        self.combined = self.combined.max(self.explicit);
        self.combined
    }
}

/// The default of `[watermark] max_future_skew`: one hour.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 3_600_000;

/// Keeps records dated too far ahead of processing time out of the watermark.
///
/// A single record dated in the year 2100 would move a bounded watermark to 2100, and every
/// later record would be too late. A record whose event time is more than `max_future_skew`
/// (`[watermark]`, default one hour, `"off"` disables it) ahead of processing time is a
/// dead letter instead: it changes no state and does not move the watermark. Processing time
/// is the record's arrival time on Kinesis (`ApproximateArrivalTimestamp`); in a replay it
/// is the last `advance_processing_time` before the record, or the wall clock.
///
/// ```
/// use eventide_engine::watermark::FutureGuard;
/// let guard = FutureGuard::new(Some(3_600_000));
/// assert!(guard.check(1_000 + 3_600_000, 1_000).is_ok());
/// let err = guard.check(1_000 + 3_600_001, 1_000).unwrap_err();
/// assert!(err.to_string().contains("max_future_skew"));
/// assert!(FutureGuard::new(None).check(i64::MAX, 0).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FutureGuard {
    max_skew_ms: Option<i64>,
}

impl Default for FutureGuard {
    fn default() -> Self {
        FutureGuard::new(Some(DEFAULT_MAX_FUTURE_SKEW_MS))
    }
}

impl FutureGuard {
    /// A guard allowing `max_skew_ms` ahead of processing time; `None` allows anything.
    pub fn new(max_skew_ms: Option<i64>) -> Self {
        FutureGuard { max_skew_ms }
    }

    /// The allowed skew, `None` when the guard is off.
    pub fn max_skew_ms(&self) -> Option<i64> {
        self.max_skew_ms
    }

    /// Accepts a record with event time `event_ms` that arrived at `processing_ms`.
    ///
    /// # Errors
    ///
    /// [`RecordError::Future`] when the event time is further ahead than the allowed skew.
    pub fn check(&self, event_ms: i64, processing_ms: i64) -> Result<(), RecordError> {
        match self.max_skew_ms {
            Some(skew) if event_ms.saturating_sub(processing_ms) > skew => {
                Err(RecordError::Future {
                    event: crate::duration::format_instant(event_ms),
                    ahead: crate::duration::format_ms(event_ms.saturating_sub(processing_ms)),
                    processing: crate::duration::format_instant(processing_ms),
                    max: crate::duration::format_ms(skew),
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions() {
        let mut w = WatermarkTracker::bounded(0, None);
        w.observe("a", 100, 0);
        assert_eq!(w.current(), 100);
        w.observe("b", 50, 0);
        // never backwards
        assert_eq!(w.current(), 100);
        w.observe("a", 200, 0);
        assert_eq!(w.current(), 100);
        w.observe("b", 150, 0);
        assert_eq!(w.current(), 150);
    }

    #[test]
    fn partitions_are_told_apart_whatever_the_order() {
        let mut w = WatermarkTracker::bounded(0, None);
        for (p, t) in [
            ("", 5),
            ("a", 7),
            ("", 9),
            ("ab", 3),
            ("a", 8),
            ("a", 6),
            ("", 1),
        ] {
            w.observe(p, t, 0);
        }
        assert_eq!(w.partition_watermark(""), Some(9));
        assert_eq!(w.partition_watermark("a"), Some(8));
        assert_eq!(w.partition_watermark("ab"), Some(3));
        assert_eq!(w.partition_watermark("b"), None);
        assert_eq!(
            w.current(),
            7,
            "never backwards: it was 7 when \"ab\" came at 3"
        );
    }

    #[test]
    fn idle_partition_stops_holding_back() {
        let mut w = WatermarkTracker::bounded(0, Some(1_000));
        w.observe("a", 10, 0);
        w.observe("b", 10, 0);
        w.observe("a", 500, 100);
        assert_eq!(w.current(), 10);
        // b has been quiet for 1 s of processing time
        assert_eq!(w.on_processing_time(1_000), 500);
    }
}
