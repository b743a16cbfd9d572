//! The stable ids that are persisted: pane ids, alert ids and the state slots of rules.
//!
//! Sinks upsert panes and alerts by their id, so that a redelivered batch overwrites rather
//! than duplicates, and the consumer stores each rule's per-key state under a slot named
//! after the rule's text. These ids outlive a run, a binary and a platform: each recipe
//! here is fixed, and `tests/stable_ids.rs` pins known values. All are 64-bit FNV-1a
//! (the `fnv` crate), written as 16 lowercase hex digits.
//!
//! ```
//! use eventide_engine::ids::{pane_id, rule_slot};
//! assert_eq!(pane_id("q1", "", 0, 0, 0, false), "2fa0adb0824f7549");
//! assert_eq!(rule_slot("busy", "count(1m) >= 2"), "rule:busy@20729ff5b1b17cfc");
//! ```

use std::hash::Hasher;

use fnv::FnvHasher;

/// An id over a sequence of fields: the FNV-1a hash of each field's bytes followed by a
/// `0xff` byte.
#[derive(Default)]
struct Fields(FnvHasher);

impl Fields {
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.write(bytes);
        self.0.write(&[0xff]);
        self
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0.finish())
    }
}

/// The id of a pane (see [`crate::pane::Pane::id`]): over the aggregation's name, the key,
/// the window's start and end, the pane index and the retraction flag.
pub fn pane_id(
    aggregation: &str,
    key: &str,
    start: i64,
    end: i64,
    index: u32,
    retraction: bool,
) -> String {
    Fields::default()
        .field(aggregation.as_bytes())
        .field(key.as_bytes())
        .field(&start.to_le_bytes())
        .field(&end.to_le_bytes())
        .field(&index.to_le_bytes())
        .field(&[u8::from(retraction)])
        .hex()
}

/// The id of an alert (see [`crate::rules::Alert::id`]): over the rule's id, the key's
/// values (`None`, a null, as the byte `0xfe`, which is in no UTF-8 text, so that it
/// differs from every value, `""` included), the alert's time and the times of the matched
/// records.
pub fn alert_id<'a>(
    rule: &str,
    key: impl IntoIterator<Item = Option<&'a str>>,
    time: i64,
    event_times: impl IntoIterator<Item = i64>,
) -> String {
    let mut id = Fields::default();
    id.field(rule.as_bytes());
    for v in key {
        id.field(v.map_or(&[0xfe][..], str::as_bytes));
    }
    id.field(&time.to_le_bytes());
    for t in event_times {
        id.field(&t.to_le_bytes());
    }
    id.hex()
}

/// The state slot name of a rule: `rule:<id>@<hash of its text>`, so that a reloaded rule
/// with the same id and another text starts with empty state.
///
/// ```
/// use eventide_engine::ids::rule_slot;
/// assert!(rule_slot("busy", "count(1m) >= 2").starts_with("rule:busy@"));
/// assert_ne!(rule_slot("busy", "count(1m) >= 2"), rule_slot("busy", "count(1m) >= 3"));
/// ```
pub fn rule_slot(id: &str, source: &str) -> String {
    let mut h = FnvHasher::default();
    h.write(source.as_bytes());
    format!("rule:{id}@{:016x}", h.finish())
}
