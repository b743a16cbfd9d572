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
    /// 0 for the first pane of a window, then 1, 2, …; for a rows window (one pane per
    /// input row, window `[time, time + 1)`), the row's ordinal among its key's rows of
    /// that time.
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

/// The one JSON shape of a pane, shared by every JSON sink (the local `jsonl` files, S3,
/// Kinesis, the DynamoDB results table) so that they cannot drift apart: `aggregation`, the
/// group-by fields by name, `window_start`, `window_end`, the aggregates by name (`null`
/// when undefined), `timing`, `pane_index`, `retraction` and `pane_id`.
///
/// It holds the pane's scalar fields; [`PaneJson::object`] adds the named key parts and
/// values, which a fired [`Pane`] and an owned row keep differently.
///
/// ```
/// use eventide_engine::pane::{Pane, PaneJson};
/// use eventide_engine::trigger::Timing;
/// use eventide_engine::window::Window;
/// let p = Pane { aggregation: 0, key: "a", key_id: 0, window: Window { start: 0, end: 10 },
///                timing: Timing::OnTime, index: 0, retraction: false, values: &[Some(2.0)] };
/// let m = p.to_json("q1", &["k".to_string()], &["n".to_string()]);
/// assert_eq!(serde_json::Value::Object(m).to_string(),
///     format!(r#"{{"aggregation":"q1","k":"a","n":2.0,"pane_id":"{}","pane_index":0,"retraction":false,"timing":"ON_TIME","window_end":10,"window_start":0}}"#, p.id("q1")));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PaneJson<'a> {
    pub aggregation: &'a str,
    pub window: Window,
    /// `EARLY`, `ON_TIME`, `LATE` (or `ALERT` for a rule's alert as a row).
    pub timing: &'a str,
    pub index: u32,
    pub retraction: bool,
    /// [`Pane::id`].
    pub id: &'a str,
}

impl PaneJson<'_> {
    /// The JSON object, with the group-by values and aggregate values given by name.
    pub fn object<N, S, M>(
        &self,
        key: impl IntoIterator<Item = (N, Option<S>)>,
        values: impl IntoIterator<Item = (M, Option<f64>)>,
    ) -> serde_json::Map<String, serde_json::Value>
    where
        N: Into<String>,
        S: AsRef<str>,
        M: Into<String>,
    {
        use serde_json::Value;
        let mut m = serde_json::Map::new();
        m.insert("aggregation".into(), Value::from(self.aggregation));
        for (name, part) in key {
            m.insert(name.into(), Value::from(part.as_ref().map(AsRef::as_ref)));
        }
        m.insert("window_start".into(), Value::from(self.window.start));
        m.insert("window_end".into(), Value::from(self.window.end));
        for (name, v) in values {
            m.insert(name.into(), v.map_or(Value::Null, Value::from));
        }
        m.insert("timing".into(), Value::from(self.timing));
        m.insert("pane_index".into(), Value::from(self.index));
        m.insert("retraction".into(), Value::from(self.retraction));
        m.insert("pane_id".into(), Value::from(self.id));
        m
    }
}

impl Pane<'_> {
    /// The pane's JSON object ([`PaneJson`]) as aggregation `aggregation`, naming its
    /// group-by values with `group_by` and its aggregate values with `aggregates`.
    pub fn to_json(
        &self,
        aggregation: &str,
        group_by: &[String],
        aggregates: &[String],
    ) -> serde_json::Map<String, serde_json::Value> {
        let id = self.id(aggregation);
        PaneJson {
            aggregation,
            window: self.window,
            timing: self.timing.as_str(),
            index: self.index,
            retraction: self.retraction,
            id: &id,
        }
        .object(
            group_by.iter().map(String::as_str).zip(self.key_parts()),
            aggregates
                .iter()
                .map(String::as_str)
                .zip(self.values.iter().copied()),
        )
    }
}
