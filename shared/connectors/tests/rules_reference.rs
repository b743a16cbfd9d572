//! The Concierge rule over the reference workload, through `replay`, equals the alerts
//! computed in this test from plain windowed aggregations of the same data.
//!
//! The rule: `sum(value where counter == "x", 72h) < 1500 and min(value where counter ==
//! "y", 2h) > 1`, evaluated every 15 minutes per subscriber. The independent computation
//! runs three sliding-window aggregations (slide 15m) writing JSON lines: the x sum (72h),
//! the y min (2h) and the count of all records (72h, whose panes are the evaluation
//! instants), then joins them by (subscriber, window end) and finds the false → true
//! transitions.

use eventide_testkit::Scratch;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::PipelineSpec;
use serde_json::Value;

const HEAD: &str = r#"
[input]
format = "json"
event_time = { field = "event_time", format = "epoch_ms" }
fields = { subscriber_id = "string", counter = "string", value = "number" }
[watermark]
strategy = "bounded"
max_out_of_orderness = "5m"
"#;

const RULE: &str = r#"
[[rule]]
id = "concierge"
key = ["subscriber_id"]
when = 'sum(value where counter == "x", 72h) < 1500 and min(value where counter == "y", 2h) > 1'
every = "15m"
"#;

const WINDOWS: &str = r#"
[[aggregation]]
name = "sum_x"
group_by = ["subscriber_id"]
filter = 'counter == "x"'
window = { type = "sliding", size = "72h", slide = "15m" }
aggregates = [{ name = "sum", fn = "sum", field = "value" }]
sink = { format = "jsonl", order = "key" }

[[aggregation]]
name = "min_y"
group_by = ["subscriber_id"]
filter = 'counter == "y"'
window = { type = "sliding", size = "2h", slide = "15m" }
aggregates = [{ name = "min", fn = "min", field = "value" }]
sink = { format = "jsonl", order = "key" }

[[aggregation]]
name = "all"
group_by = ["subscriber_id"]
window = { type = "sliding", size = "72h", slide = "15m" }
aggregates = [{ name = "n", fn = "count" }]
sink = { format = "jsonl", order = "key" }
"#;

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("rules-ref-{name}"))
}

fn generate(dir: &Path) -> PathBuf {
    let out = dir.join("events.jsonl");
    eventide_testkit::reference::generate(20_000, 200, 7, &out);
    out
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

type Alerts = BTreeSet<(String, i64, String, String)>;

/// Alerts as (subscriber, time, sum, min), values printed to compare exactly.
fn alerts_of(dir: &Path) -> Alerts {
    lines(&dir.join("alerts.jsonl"))
        .into_iter()
        .map(|a| {
            assert_eq!(a["rule"], "concierge");
            let v = &a["values"];
            (
                a["key"]["subscriber_id"].as_str().unwrap().to_string(),
                a["time"].as_i64().unwrap(),
                v[r#"sum(value where counter == "x", 72h)"#].to_string(),
                v[r#"min(value where counter == "y", 2h)"#].to_string(),
            )
        })
        .collect()
}

/// (subscriber, window end) → the first aggregate of an aggregation's panes.
fn panes(dir: &Path, name: &str, column: &str) -> BTreeMap<(String, i64), Value> {
    lines(&dir.join(format!("{name}.jsonl")))
        .into_iter()
        .map(|p| {
            (
                (
                    p["subscriber_id"].as_str().unwrap().to_string(),
                    p["window_end"].as_i64().unwrap(),
                ),
                p[column].clone(),
            )
        })
        .collect()
}

#[test]
fn concierge_alerts_equal_transitions_of_the_windowed_results() {
    let dir = scratch("main");
    let input = generate(&dir);

    // The windows, as plain aggregations.
    let windows = PipelineSpec::from_toml(&format!("{HEAD}{WINDOWS}")).unwrap();
    let wdir = dir.join("windows");
    replay(windows, &input, &wdir, &ReplayOptions::default()).unwrap();
    let sums = panes(&wdir, "sum_x", "sum");
    let mins = panes(&wdir, "min_y", "min");
    let instants = panes(&wdir, "all", "n");
    let step = 15 * 60_000;
    let mut expected = Alerts::new();
    let mut prev: Option<(String, i64, bool)> = None;
    for (key, t) in instants.keys() {
        let sum = sums
            .get(&(key.clone(), *t))
            .map_or(0.0, |v| v.as_f64().unwrap());
        let min = mins.get(&(key.clone(), *t)).and_then(Value::as_f64);
        let now = sum < 1500.0 && min.is_some_and(|m| m > 1.0);
        let before = matches!(&prev, Some((k, pt, true)) if k == key && *pt == t - step);
        if now && !before {
            expected.insert((
                key.clone(),
                *t,
                Value::from(sum).to_string(),
                min.map_or(Value::Null, Value::from).to_string(),
            ));
        }
        prev = Some((key.clone(), *t, now));
    }
    assert!(
        expected.len() > 20,
        "the thresholds give a meaningful number of alerts: {}",
        expected.len()
    );
    let keys: BTreeSet<&String> = expected.iter().map(|a| &a.0).collect();
    assert!(keys.len() > 10, "alerts for many subscribers");

    // The rule alone (a streaming replay).
    let rules = PipelineSpec::from_toml(&format!("{HEAD}{RULE}")).unwrap();
    let rdir = dir.join("rule");
    let report = replay(rules, &input, &rdir, &ReplayOptions::default()).unwrap();
    assert_eq!(report.alerts as usize, expected.len());
    assert_eq!(alerts_of(&rdir), expected);

    // The rule next to key-ordered aggregations (split by key over threads when the
    // machine has several cores) gives the same alerts.
    let both = PipelineSpec::from_toml(&format!("{HEAD}{WINDOWS}{RULE}")).unwrap();
    let bdir = dir.join("both");
    replay(both, &input, &bdir, &ReplayOptions::default()).unwrap();
    assert_eq!(alerts_of(&bdir), expected);
    // Alert ids are deterministic.
    let ids = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = lines(&d.join("alerts.jsonl"))
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&rdir), ids(&bdir));
}

#[test]
fn a_rules_file_replaces_the_spec_rules_and_an_invalid_one_is_rejected() {
    let dir = scratch("file");
    let input = dir.join("events.jsonl");
    std::fs::write(
        &input,
        "{\"subscriber_id\":\"a\",\"counter\":\"x\",\"value\":5,\"event_time\":0}\n",
    )
    .unwrap();
    let spec = PipelineSpec::from_toml(&format!("{HEAD}{RULE}")).unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = 'any'\nkey = ['subscriber_id']\nwhen = 'count(1h) >= 1'\n",
    )
    .unwrap();
    let opts = ReplayOptions {
        rules_file: Some(rules.clone()),
        ..ReplayOptions::default()
    };
    let out = dir.join("out");
    let report = replay(spec.clone(), &input, &out, &opts).unwrap();
    assert_eq!(report.alerts, 1);
    let a = lines(&out.join("alerts.jsonl"));
    assert_eq!(a[0]["rule"], "any");
    assert_eq!(a[0]["time"], 3_600_000);
    std::fs::write(
        &rules,
        "[[rule]]\nid = 'any'\nkey = ['subscriber_id']\nwhen = 'count(1h) >='\n",
    )
    .unwrap();
    let e = replay(spec, &input, &out, &opts).unwrap_err().to_string();
    assert!(
        e.contains("rule[0] \"any\" `when` at column 13: expected a number"),
        "{e}"
    );
}

#[test]
fn the_rules_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let spec =
        PipelineSpec::from_toml(&std::fs::read_to_string(dir.join("pipeline.toml")).unwrap())
            .unwrap();
    assert_eq!(spec.rules.len(), 2);
    let file = std::fs::read_to_string(dir.join("rules.toml")).unwrap();
    let rules = eventide_engine::rules::parse_rules(&file, &spec.input).unwrap();
    assert_eq!(rules[0].id, "concierge");
}
