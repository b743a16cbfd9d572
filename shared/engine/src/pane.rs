//! Fired panes: what the engine hands to sinks.

use crate::trigger::Timing;
use crate::window::Window;

/// One fired pane of one window of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pane<'a> {
    /// Index of the aggregation in the pipeline spec.
    pub aggregation: usize,
    /// The group-by values as one key (see [`crate::key`]); [`Pane::key_parts`] gives them
    /// back.
    pub key: &'a str,
    /// Identifies the key's state within its aggregation: the same while the key holds
    /// state, and never given to another key in the same run. A key whose state was dropped
    /// and re-created may get a new id. Sinks use it to avoid hashing `key` per pane.
    pub key_id: u64,
    pub window: Window,
    pub timing: Timing,
    /// 0 for the first pane of a window, then 1, 2, …
    pub index: u32,
    /// True when this pane retracts a previously emitted value.
    pub retraction: bool,
    /// Aggregate values in spec order; `None` when undefined (e.g. the min of no values).
    pub values: &'a [Option<f64>],
}

impl Pane<'_> {
    /// The group-by values, `None` for null.
    pub fn key_parts(&self) -> impl Iterator<Item = crate::key::Part<'_>> {
        crate::key::parts(self.key)
    }

    /// A deterministic id: the same pane of the same run always has the same id, so
    /// downstream consumers can de-duplicate redelivered panes (see [`crate::ids`]).
    ///
    /// ```
    /// use eventide_engine::pane::Pane;
    /// use eventide_engine::trigger::Timing;
    /// use eventide_engine::window::Window;
    /// let p = Pane { aggregation: 0, key: "a", key_id: 0, window: Window { start: 0, end: 10 }, timing: Timing::OnTime, index: 0, retraction: false, values: &[Some(1.0)] };
    /// assert_eq!(p.id("q1"), p.id("q1"));
    /// assert_ne!(p.id("q1"), p.id("q2"));
    /// ```
    pub fn id(&self, aggregation_name: &str) -> String {
        crate::ids::pane_id(
            aggregation_name,
            self.key,
            self.window.start,
            self.window.end,
            self.index,
            self.retraction,
        )
    }
}

/// A key as operators hand it to [`Pane`]: its encoded group-by values and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef<'a> {
    pub name: &'a str,
    /// See [`Pane::key_id`].
    pub id: u64,
}

/// Receives what the engine produces. Sinks implement it; tests collect into vectors.
pub trait Emit {
    /// A fired pane.
    fn pane(&mut self, pane: &Pane<'_>);

    /// A hint that panes of `aggregation` for these keys (by [`Pane::key_id`]) come next,
    /// so that a sink can load what it keeps per key ahead of them. Does nothing by default.
    fn upcoming(&mut self, aggregation: usize, key_ids: &[u64]) {
        let _ = (aggregation, key_ids);
    }
}

impl<F: FnMut(&Pane<'_>)> Emit for F {
    fn pane(&mut self, pane: &Pane<'_>) {
        self(pane)
    }
}
