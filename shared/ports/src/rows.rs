//! The plain rows that cross the consumer's ports: fired panes and records set aside.

use eventide_engine::pane::{Pane, PaneJson};
use eventide_engine::rules::Alert;
use eventide_engine::window::Window;
use serde_json::{Map, Value};

/// An owned fired pane with the names needed to render it.
#[derive(Debug, Clone, PartialEq)]
pub struct PaneRow {
    /// The aggregation's name in the spec.
    pub aggregation: String,
    /// The group-by values, in `group_by` order.
    pub key_parts: Vec<Option<String>>,
    /// The group-by field names.
    pub group_by: Vec<String>,
    /// Window bounds `[window_start, window_end)` in epoch ms.
    pub window_start: i64,
    pub window_end: i64,
    /// `EARLY`, `ON_TIME` or `LATE`.
    pub timing: &'static str,
    pub pane_index: u32,
    pub retraction: bool,
    /// Aggregate names and values in spec order; `None` when undefined.
    pub values: Vec<(String, Option<f64>)>,
    /// [`Pane::id`]: deterministic, so consumers can de-duplicate redelivered panes.
    pub pane_id: String,
}

impl PaneRow {
    /// Builds the row of `pane` of aggregation `aggregation`, naming the group-by values
    /// with `group_by` and the aggregate values with `aggregates`.
    ///
    /// ```
    /// use eventide_ports::rows::PaneRow;
    /// use eventide_engine::pane::{Pane, PaneJson};
    /// use eventide_engine::trigger::Timing;
    /// use eventide_engine::window::Window;
    /// let pane = Pane { aggregation: 0, key: "a\u{1f}b", key_id: 0, window: Window { start: 0, end: 10 },
    ///                   timing: Timing::OnTime, index: 0, retraction: false, values: &[Some(2.0)] };
    /// let row = PaneRow::from_pane(&pane, "q1", &["x".into(), "y".into()], &["n".into()]);
    /// assert_eq!(row.key(), "a\u{1f}b");
    /// assert_eq!(row.to_json()["y"], "b");
    /// assert_eq!(row.to_json()["n"], 2.0);
    /// assert_eq!(row.pane_id, pane.id("q1"));
    /// ```
    pub fn from_pane(
        pane: &Pane<'_>,
        aggregation: &str,
        group_by: &[String],
        aggregates: &[String],
    ) -> Self {
        PaneRow {
            aggregation: aggregation.to_string(),
            key_parts: pane
                .key_parts()
                .map(|p| p.map(std::borrow::Cow::into_owned))
                .collect(),
            group_by: group_by.to_vec(),
            window_start: pane.window.start,
            window_end: pane.window.end,
            timing: pane.timing.as_str(),
            pane_index: pane.index,
            retraction: pane.retraction,
            values: aggregates
                .iter()
                .cloned()
                .zip(pane.values.iter().copied())
                .collect(),
            pane_id: pane.id(aggregation),
        }
    }

    /// The encoded key, as in [`Pane::key`] (see [`eventide_engine::key`]).
    pub fn key(&self) -> String {
        eventide_engine::key::join(self.key_parts.iter().map(Option::as_deref))
    }

    /// The JSON object of the pane: the one shape of every JSON sink
    /// ([`eventide_engine::pane::PaneJson`]), as the local `jsonl` files write it.
    pub fn to_json(&self) -> Map<String, Value> {
        PaneJson {
            aggregation: &self.aggregation,
            window: Window {
                start: self.window_start,
                end: self.window_end,
            },
            timing: self.timing,
            index: self.pane_index,
            retraction: self.retraction,
            id: &self.pane_id,
        }
        .object(
            self.group_by
                .iter()
                .map(String::as_str)
                .zip(self.key_parts.iter().map(Option::as_deref)),
            self.values.iter().map(|(n, v)| (n.as_str(), *v)),
        )
    }

    /// [`PaneRow::to_json`] as one line of JSON (no trailing newline).
    pub fn to_json_string(&self) -> String {
        Value::Object(self.to_json()).to_string()
    }
}

/// An input record set aside with the reason: malformed (a dead letter) or too late for an
/// aggregation (late data). Nothing is dropped silently; both go to a [`crate::sink::RecordSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The record's position in its shard: the sequence number, and `:<sub-sequence
    /// number>` for a user record of a KPL aggregate
    /// ([`InputRecord::position`](crate::source::InputRecord::position)).
    pub sequence_number: String,
    /// Why it was set aside (e.g. the decode error, or the aggregation it was too late for).
    pub reason: String,
    /// The record's data as received.
    pub data: Vec<u8>,
}

/// An alert as a pane row for the pane sinks: aggregation `alert:<rule>` (spec names cannot
/// contain ':'), the rule's key, `window_start` and `window_end` both the alert's time (for
/// a pattern, the times of its first and last record), timing `ALERT`, the alert's values
/// (for a pattern, `eN.time` and `eN.<field>` per matched record) and the alert's id as
/// `pane_id`.
///
/// ```
/// use eventide_engine::rules::Alert;
/// let a = Alert { rule: "r".into(), key: vec![("k".into(), Some("a".into()))], time: 10,
///                 values: vec![("sum(v, 1h)".into(), Some(2.0))], events: vec![] };
/// let row = eventide_ports::rows::alert_row(&a);
/// assert_eq!(row.aggregation, "alert:r");
/// assert_eq!((row.window_start, row.window_end), (10, 10));
/// assert_eq!(row.pane_id, a.id());
/// ```
pub fn alert_row(a: &Alert) -> PaneRow {
    let mut values = a.values.clone();
    for (i, e) in a.events.iter().enumerate() {
        values.push((format!("e{i}.time"), Some(e.time as f64)));
        for (name, v) in &e.values {
            values.push((format!("e{i}.{name}"), *v));
        }
    }
    PaneRow {
        aggregation: format!("alert:{}", a.rule),
        key_parts: a.key.iter().map(|(_, v)| v.clone()).collect(),
        group_by: a.key.iter().map(|(k, _)| k.clone()).collect(),
        window_start: a.events.first().map_or(a.time, |e| e.time),
        window_end: a.time,
        timing: "ALERT",
        pane_index: 0,
        retraction: false,
        values,
        pane_id: a.id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_engine::trigger::Timing;

    /// A row renders exactly as the fired pane it was built from (the local `jsonl` sink's
    /// bytes), nulls and retractions included.
    #[test]
    fn row_json_is_the_pane_json() {
        let (group_by, aggregates) = (
            ["x".to_string(), "y".to_string()],
            ["n".to_string(), "m".to_string()],
        );
        for (key, retraction, values) in [
            ("a\u{1f}b", false, [Some(2.5), None]),
            ("\u{1b}0\u{1f}c", true, [None, Some(-1.0)]),
        ] {
            let pane = Pane {
                aggregation: 0,
                key,
                key_id: 7,
                window: Window { start: -5, end: 10 },
                timing: Timing::Late,
                index: 3,
                retraction,
                values: &values,
            };
            let row = PaneRow::from_pane(&pane, "q", &group_by, &aggregates);
            assert_eq!(
                row.to_json_string(),
                Value::Object(pane.to_json("q", &group_by, &aggregates)).to_string()
            );
        }
    }
}
