//! The ids that are persisted (pane ids, alert ids, rule state slots) never change: sinks
//! upsert by them and stored state is found by them. The values below were computed by
//! the code before the ids had one home ([`eventide_engine::ids`]): three hand-written
//! copies of FNV-1a. They must stay bit-identical.

use eventide_engine::ids::rule_slot;
use eventide_engine::pane::Pane;
use eventide_engine::rules::{Alert, MatchedEvent};
use eventide_engine::trigger::Timing;
use eventide_engine::window::Window;

fn pane(key: &str, start: i64, end: i64, index: u32, retraction: bool) -> Pane<'_> {
    Pane {
        aggregation: 3,
        key,
        key_id: 99,
        window: Window { start, end },
        timing: Timing::Late,
        index,
        retraction,
        values: &[Some(1.5), None],
    }
}

#[test]
fn pane_ids_are_pinned() {
    let cases = [
        (pane("", 0, 0, 0, false), "q1", "2fa0adb0824f7549"),
        (
            pane("sub-1\u{1f}x", 0, 900_000, 0, false),
            "q1",
            "b0dde27390587b0a",
        ),
        (
            pane("sub-1\u{1f}x", 0, 900_000, 1, false),
            "q1",
            "a63179f8535b2be5",
        ),
        (
            pane("sub-1\u{1f}x", 0, 900_000, 1, true),
            "q1",
            "a63579f8535f14bc",
        ),
        (
            pane("sub-1\u{1f}x", -5, i64::MAX, u32::MAX, false),
            "q2",
            "80f508f41a5ff89b",
        ),
        (
            pane("ünï", 1_700_000_000_000, 1_700_000_060_000, 2, false),
            "",
            "ee86799d236df9d9",
        ),
    ];
    for (p, name, id) in &cases {
        assert_eq!(p.id(name), *id, "{p:?} of {name:?}");
    }
}

fn alert(key: &[(&str, Option<&str>)], time: i64, events: &[i64]) -> Alert {
    Alert {
        rule: "concierge".into(),
        key: key
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
        time,
        values: vec![("count(1h)".into(), Some(3.0))],
        events: events
            .iter()
            .map(|&t| MatchedEvent {
                time: t,
                step: "HIGH".into(),
                values: vec![],
            })
            .collect(),
    }
}

#[test]
fn alert_ids_are_pinned() {
    let cases = [
        (alert(&[], 0, &[]), "e4037e0ca2090056"),
        (
            alert(&[("subscriber_id", Some("s1"))], 3_600_000, &[]),
            "ae39c5a478beb40b",
        ),
        // A null key value differs from every value, the empty string included.
        (
            alert(&[("subscriber_id", None)], 3_600_000, &[]),
            "6a4b56e4c6c71853",
        ),
        (
            alert(&[("subscriber_id", Some(""))], 3_600_000, &[]),
            "85aed5ff55a0ffc7",
        ),
        (
            alert(&[("a", Some("x")), ("b", Some("y"))], -1, &[1, 2, 3]),
            "657621b113b49634",
        ),
    ];
    for (a, id) in &cases {
        assert_eq!(a.id(), *id, "{a:?}");
    }
}

/// The runtime's `rule_slot` before the move: FNV-1a over the rule's text, with no
/// separator (values from a plain FNV-1a implementation that reproduces every pane and
/// alert id above).
#[test]
fn rule_slots_are_pinned() {
    let cases = [
        ("busy", "count(1m) >= 2", "rule:busy@20729ff5b1b17cfc"),
        ("e", "", "rule:e@cbf29ce484222325"),
        ("x", "RawRule { id: \"busy\" }", "rule:x@c0aa872be7256529"),
        ("u", "ünï", "rule:u@8406649dfd5e4e56"),
    ];
    for (id, source, slot) in cases {
        assert_eq!(rule_slot(id, source), slot, "{id} {source:?}");
    }
}
