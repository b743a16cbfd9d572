use super::expr::Expr;
use super::*;
use crate::pane::{Emit, Pane};
use crate::pipeline::{Output, Pipeline};
use crate::spec::{FieldType, InputSpec, PipelineSpec, TimeFormat};

fn input() -> InputSpec {
    InputSpec {
        fields: vec![
            ("k".into(), FieldType::String),
            ("counter".into(), FieldType::String),
            ("value".into(), FieldType::Number),
            ("threshold".into(), FieldType::Number),
        ],
        time_field: "t".into(),
        time_format: TimeFormat::EpochMs,
        partition: None,
    }
}

fn err(when: &str) -> (usize, String) {
    match Expr::compile(when, &input()) {
        Ok(e) => panic!("{when:?} compiled: {e:?}"),
        Err(e) => (e.column, e.reason),
    }
}

#[test]
fn parses_aggregates_filters_fields_and_arithmetic() {
    let e = Expr::compile(
        r#"sum(value where counter == "x", 72h) < 1000 and min(value where counter == "y", 2h) > 5
           or not (count(where counter == "y" and value > 1, 30m) >= 0.5 * threshold - 1)"#,
        &input(),
    )
    .unwrap();
    assert_eq!(e.terms.len(), 3);
    assert_eq!(e.terms[0].text, r#"sum(value where counter == "x", 72h)"#);
    assert_eq!(e.terms[1].window_ms, 2 * 3_600_000);
    assert_eq!(e.terms[2].func, crate::aggregate::AggFn::Count);
    assert_eq!(e.terms[2].field, None);
    assert_eq!(e.fields, vec![3]);
    // The same term twice is one term.
    let e = Expr::compile("sum(value, 1h) > 1 and sum(value, 1h) < 9", &input()).unwrap();
    assert_eq!(e.terms.len(), 1);
}

#[test]
fn parse_errors_give_column_and_reason() {
    assert_eq!(
        err("sum(value, 1h) <"),
        (
            17,
            "expected a number, a field, an aggregate or '('".to_string()
        )
    );
    assert_eq!(
        err("sum(nope, 1h) > 1"),
        (
            5,
            "unknown field \"nope\"; declare it in input.fields".to_string()
        )
    );
    assert_eq!(
        err("sum(counter, 1h) > 1").0,
        5,
        "a string field cannot be summed"
    );
    assert_eq!(
        err("sum(value, 1 parsec) > 1"),
        (
            12,
            "expected the window length, a duration such as 2h".to_string()
        )
    );
    assert_eq!(err("sum(value, 1x) > 1").0, 12);
    assert!(err("sum(value, 1x) > 1").1.contains("bad duration \"1x\""));
    let (col, reason) = err(r#"sum(value where counter = "x", 1h) > 1"#);
    assert_eq!(col, 17);
    assert!(reason.starts_with("in `where`:"), "{reason}");
    assert_eq!(
        err("sum(value, 1h)"),
        (
            1,
            "a rule must be a condition (e.g. `sum(value, 1h) > 10`), not a number".to_string()
        )
    );
    assert_eq!(
        err("sum(value, 1h) > 1 and 3"),
        (
            24,
            "`and` needs a condition (a comparison), not a number".to_string()
        )
    );
    assert_eq!(
        err("1 < sum(value, 1h) < 3").0,
        20,
        "chained comparisons are rejected where the second starts"
    );
    assert_eq!(
        err("threshold > 3"),
        (
            1,
            "a rule needs at least one windowed aggregate such as sum(value, 1h)".to_string()
        )
    );
    assert_eq!(err("sum(value, 1h) > 1 )").0, 20);
    assert_eq!(err("min(where counter == 'x', 1h) > 1").0, 5);
    assert_eq!(err("sum(value, 1h) > 1 # x").0, 20);
    // Columns count characters, not bytes.
    assert_eq!(err("sum(value, 1h) > 1 and é").0, 24);
}

#[test]
fn rule_errors_name_rule_field_and_column() {
    let e = parse_rules(
        "[[rule]]\nid = 'ok'\nkey = ['k']\nwhen = 'count(1h) > 1'\n\
         [[rule]]\nid = 'bad'\nkey = ['k']\nwhen = 'count(1h) > > 1'\n",
        &input(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "rule[1] \"bad\" `when` at column 13: expected a number, a field, an aggregate or '('"
    );
    let e = parse_rules(
        "[[rule]]\nid = 'p'\nkey = ['k']\npattern = 'A{3} B within 10m'\ndefine = { A = 'value > 1' }\n",
        &input(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "rule[0] \"p\" `pattern` at column 6: step \"B\" is not defined; add it to `define`"
    );
    let e = parse_rules(
        "[[rule]]\nid = 'p'\nkey = ['k']\npattern = 'A{0} within 10m'\ndefine = { A = 'value > 1' }\n",
        &input(),
    )
    .unwrap_err();
    assert!(e
        .to_string()
        .contains("at column 3: expected a positive count"));
    let e = parse_rules(
        "[[rule]]\nid = 'c'\nkey = ['k']\nwhen = 'sum(value, 90m) > 1'\nevery = '1h'\n",
        &input(),
    )
    .unwrap_err();
    assert!(e
        .to_string()
        .contains("`every`: the window of sum(value, 90m)"));
    assert!(matches!(
        parse_rules("[[rule]]\nid = 'c'\nwhen = 1\n", &input()),
        Err(RuleError::Syntax(_))
    ));
    let e = parse_rules(
        "[[rule]]\nid = 'a'\nwhen = 'count(1h) > 1'\n[[rule]]\nid = 'a'\nwhen = 'count(1h) > 2'\n",
        &input(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("duplicate rule id"));
    // Default evaluation period: the gcd of the windows.
    let r = parse_rules(
        "[[rule]]\nid = 'c'\nkey = ['k']\nwhen = 'sum(value, 72h) > 1 and min(value, 2h) > 0'\n",
        &input(),
    )
    .unwrap();
    match &r[0].kind {
        RuleKind::Condition(c) => {
            assert_eq!((c.every_ms, c.span_ms), (7_200_000, 72 * 3_600_000))
        }
        RuleKind::Pattern(_) => panic!("a condition"),
    }
}

#[derive(Default)]
struct Alerts(Vec<Alert>);

impl Emit for Alerts {
    fn pane(&mut self, _p: &Pane<'_>) {}
}

impl Output for Alerts {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {}
    fn alert(&mut self, a: &Alert) {
        self.0.push(a.clone());
    }
}

fn pipeline(rules: &str, bound: &str) -> Pipeline {
    let spec = PipelineSpec::from_toml(&format!(
        r#"
        [input]
        event_time = {{ field = "t" }}
        fields = {{ k = "string", counter = "string", value = "number", threshold = "number" }}
        [watermark]
        max_out_of_orderness = "{bound}"
        {rules}
        "#
    ))
    .unwrap();
    Pipeline::new(spec)
}

fn run(p: &mut Pipeline, lines: &[String]) -> Vec<Alert> {
    let mut out = Alerts::default();
    for l in lines {
        p.process_line(l.as_bytes(), "", &mut out).unwrap();
    }
    p.finish(&mut out);
    out.0
}

fn ev(k: &str, counter: &str, value: f64, t: i64) -> String {
    format!(r#"{{"k":"{k}","counter":"{counter}","value":{value},"t":{t}}}"#)
}

const MIN: i64 = 60_000;

#[test]
fn alerts_once_per_false_to_true_transition() {
    // Every minute, the sum over the last 3 minutes is compared with 10.
    let rules = r#"
        [[rule]]
        id = "hot"
        key = ["k"]
        when = "sum(value, 3m) >= 10"
        every = "1m"
    "#;
    let mut p = pipeline(rules, "0s");
    // Minute 0: 4, minute 1: 4, minute 2: 4 (sum 12 at T=3m), minute 3: 0, minute 4: 0...
    let lines: Vec<String> = [(0, 4.0), (1, 4.0), (2, 4.0), (6, 20.0), (7, 1.0)]
        .iter()
        .map(|&(m, v)| ev("a", "x", v, m * MIN + 5))
        .collect();
    let alerts = run(&mut p, &lines);
    let times: Vec<i64> = alerts.iter().map(|a| a.time / MIN).collect();
    // T=3: 12 (true, alert); T=4: 8 (false); T=5: 4; T=6: no record in [3m, 6m), not
    // evaluated (false); T=7: 20 (alert); T=8: 21 (still true, no alert); T=9: 21;
    // T=10: 1 (false).
    assert_eq!(times, vec![3, 7]);
    assert_eq!(
        alerts[0].values,
        vec![("sum(value, 3m)".to_string(), Some(12.0))]
    );
    assert_eq!(
        alerts[0].key,
        vec![("k".to_string(), Some("a".to_string()))]
    );
    assert_eq!(alerts[1].values[0].1, Some(20.0));
}

#[test]
fn empty_windows_count_zero_and_min_is_undefined() {
    let rules = r#"
        [[rule]]
        id = "quiet"
        key = ["k"]
        when = 'count(where counter == "x", 2m) == 0 and sum(value where counter == "x", 2m) == 0'
        every = "1m"
        [[rule]]
        id = "low"
        key = ["k"]
        when = 'not (min(value where counter == "x", 2m) > 0)'
        every = "1m"
        [[rule]]
        id = "min-y"
        key = ["k"]
        when = 'min(value where counter == "y", 2m) < 100'
        every = "1m"
    "#;
    let mut p = pipeline(rules, "0s");
    // Only counter y: x's window is empty at every instant.
    let alerts = run(&mut p, &[ev("a", "y", 1.0, 10)]);
    let got: Vec<(&str, i64)> = alerts.iter().map(|a| (a.rule.as_str(), a.time)).collect();
    // Instants 1m and 2m have the record in the longest window. "quiet" is true at 1m
    // (count 0, sum 0) and stays true; "low" is true (min undefined → comparison false →
    // not → true); "min-y" is true at 1m.
    assert_eq!(got, vec![("quiet", MIN), ("low", MIN), ("min-y", MIN)]);
    assert_eq!(alerts[1].values[0].1, None);
}

#[test]
fn gap_in_data_counts_as_false_and_key_state_is_dropped() {
    let rules = r#"
        [[rule]]
        id = "any"
        key = ["k"]
        when = "count(1m) > 0"
    "#;
    let mut p = pipeline(rules, "0s");
    let lines = vec![
        ev("a", "x", 1.0, 0),
        ev("a", "x", 1.0, MIN + 1),
        ev("a", "x", 1.0, 5 * MIN),
    ];
    let alerts = run(&mut p, &lines);
    let times: Vec<i64> = alerts.iter().map(|a| a.time).collect();
    // True at 1m and 2m (one alert), no data at 3m, 4m, 5m; true again at 6m: a new alert.
    assert_eq!(times, vec![MIN, 6 * MIN]);
    assert_eq!(p.rules().stats(), vec![("any".to_string(), 0, 0)]);
}

#[test]
fn out_of_order_records_within_the_bound_count_and_late_ones_do_not() {
    let rules = r#"
        [[rule]]
        id = "three"
        key = ["k"]
        when = "count(2m) >= 3"
        every = "1m"
    "#;
    let mut p = pipeline(rules, "1m");
    let lines = vec![
        ev("a", "x", 1.0, 10),
        ev("a", "x", 1.0, 70_000),  // watermark 10s
        ev("a", "x", 1.0, 30),      // out of order but not late: window [0, 2m) not fired
        ev("a", "x", 1.0, 200_000), // watermark 140s: window ending 2m fires (count 3)
        ev("a", "x", 1.0, 50),      // late for every window containing it (ends 1m, 2m)
    ];
    let alerts = run(&mut p, &lines);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].time, 2 * MIN);
    assert_eq!(alerts[0].values[0].1, Some(3.0));
    assert_eq!(p.rules().stats()[0].2, 1, "one record too late");
}

#[test]
fn thresholds_come_from_the_latest_record_of_the_key() {
    let rules = r#"
        [[rule]]
        id = "over"
        key = ["k"]
        when = "sum(value, 2m) > threshold"
        every = "1m"
    "#;
    let mut p = pipeline(rules, "0s");
    let lines = vec![
        r#"{"k":"a","counter":"x","value":5,"threshold":100,"t":0}"#.to_string(),
        r#"{"k":"b","counter":"x","value":5,"threshold":1,"t":1}"#.to_string(),
        // a's threshold drops to 6 at 1m: sum over [0, 2m) is 5 + 2 = 7 > 6.
        r#"{"k":"a","counter":"x","value":2,"threshold":6,"t":60001}"#.to_string(),
        // A record without the field leaves the latest threshold as it was.
        r#"{"k":"a","counter":"x","value":0,"t":60002}"#.to_string(),
    ];
    let alerts = run(&mut p, &lines);
    let got: Vec<(String, i64, Option<f64>)> = alerts
        .iter()
        .map(|a| {
            (
                a.key[0].1.clone().unwrap_or_default(),
                a.time,
                a.values[1].1,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("b".to_string(), MIN, Some(1.0)),
            ("a".to_string(), 2 * MIN, Some(6.0))
        ]
    );
    assert_eq!(
        alerts[1].values[0],
        ("sum(value, 2m)".to_string(), Some(7.0))
    );
}

fn pattern_rules(pattern: &str) -> String {
    format!(
        r#"
        [[rule]]
        id = "p"
        key = ["k"]
        pattern = "{pattern}"
        define = {{ HIGH = 'value > 90', LOW = 'value < 10' }}
        "#
    )
}

fn times(alerts: &[Alert]) -> Vec<Vec<i64>> {
    alerts
        .iter()
        .map(|a| a.events.iter().map(|e| e.time / 1000).collect())
        .collect()
}

#[test]
fn pattern_matches_do_not_overlap_and_respect_within() {
    let rules = r#"
        [[rule]]
        id = "p"
        key = ["k"]
        pattern = "HIGH{3} within 10m"
        define = { HIGH = 'value > 90' }
    "#;
    let mut p = pipeline(rules, "0s");
    let s = 1000;
    let lines: Vec<String> = [
        (0, 95.0),
        (60, 50.0), // skipped (relaxed contiguity)
        (120, 99.0),
        (180, 91.0), // match 1: 0, 120, 180
        (240, 92.0),
        (300, 93.0),
        (400, 94.0), // match 2: 240, 300, 400 (skip past the last event of match 1)
        (1000, 95.0),
        (1700, 96.0), // 1700 - 1000 >= 600: the partial from 1000 times out
        (1800, 97.0),
        (1900, 98.0), // match 3: 1700, 1800, 1900
    ]
    .iter()
    .map(|&(t, v)| ev("a", "y", v, t * s))
    .collect();
    let alerts = run(&mut p, &lines);
    assert_eq!(
        times(&alerts),
        vec![
            vec![0, 120, 180],
            vec![240, 300, 400],
            vec![1700, 1800, 1900]
        ]
    );
    assert_eq!(alerts[0].time, 180 * s);
    assert_eq!(
        alerts[0].events[2].values,
        vec![("value".to_string(), Some(91.0))]
    );
    assert_eq!(p.rules().stats()[0].1, 0, "no state left");
}

#[test]
fn pattern_sequences_in_event_time_despite_out_of_order_arrival() {
    let rules = pattern_rules("LOW HIGH{2} within 5m");
    let s = 1000;
    let ordered: Vec<(i64, f64)> = vec![(0, 5.0), (10, 95.0), (20, 50.0), (30, 96.0), (40, 1.0)];
    // Arrival order shuffled within the 1-minute bound.
    let shuffled: Vec<(i64, f64)> = vec![(30, 96.0), (0, 5.0), (20, 50.0), (10, 95.0), (40, 1.0)];
    let mut got = Vec::new();
    for input in [&ordered, &shuffled] {
        let mut p = pipeline(&rules, "1m");
        let lines: Vec<String> = input.iter().map(|&(t, v)| ev("a", "y", v, t * s)).collect();
        let alerts = run(&mut p, &lines);
        got.push(times(&alerts));
        assert_eq!(
            alerts[0]
                .events
                .iter()
                .map(|e| e.step.as_str())
                .collect::<Vec<_>>(),
            vec!["LOW", "HIGH", "HIGH"]
        );
    }
    assert_eq!(got[0], vec![vec![0, 10, 30]]);
    assert_eq!(got[0], got[1]);
    // A record behind the watermark when it arrives is late and ignored.
    let mut p = pipeline(&rules, "0s");
    let lines: Vec<String> = [(0, 5.0), (30, 96.0), (10, 95.0), (40, 97.0)]
        .iter()
        .map(|&(t, v)| ev("a", "y", v, t * s))
        .collect();
    assert_eq!(times(&run(&mut p, &lines)), vec![vec![0, 30, 40]]);
    assert_eq!(p.rules().stats()[0].2, 1);
}

#[test]
fn keys_are_matched_separately() {
    let rules = pattern_rules("HIGH LOW within 1m");
    let mut p = pipeline(&rules, "0s");
    let lines = vec![
        ev("a", "y", 95.0, 0),
        ev("b", "y", 5.0, 1),
        ev("b", "y", 95.0, 2),
        ev("a", "y", 5.0, 3),
        ev("b", "y", 5.0, 4),
    ];
    let alerts = run(&mut p, &lines);
    let got: Vec<(String, i64)> = alerts
        .iter()
        .map(|a| (a.key[0].1.clone().unwrap_or_default(), a.time))
        .collect();
    assert_eq!(got, vec![("a".to_string(), 3), ("b".to_string(), 4)]);
    assert_ne!(alerts[0].id(), alerts[1].id());
}

#[test]
fn replacing_rules_keeps_unchanged_state_and_restarts_changed_rules() {
    let v1 = r#"
        [[rule]]
        id = "keep"
        key = ["k"]
        when = "count(10m) >= 2"
        every = "1m"
        [[rule]]
        id = "change"
        key = ["k"]
        when = "count(10m) >= 2"
        every = "1m"
    "#;
    let mut p = pipeline(v1, "0s");
    let mut out = Alerts::default();
    p.process_line(ev("a", "x", 1.0, 0).as_bytes(), "", &mut out)
        .unwrap();
    let v2 = parse_rules(
        &v1.replace(
            "id = \"change\"\n        key = [\"k\"]\n        when = \"count(10m) >= 2\"",
            "id = \"change\"\n        key = [\"k\"]\n        when = \"count(10m) >= 1\"",
        ),
        &p.spec().input,
    )
    .unwrap();
    assert_eq!(p.set_rules(&v2), vec!["change".to_string()]);
    p.process_line(ev("a", "x", 1.0, 1).as_bytes(), "", &mut out)
        .unwrap();
    p.finish(&mut out);
    let got: Vec<(&str, i64)> = out.0.iter().map(|a| (a.rule.as_str(), a.time)).collect();
    // "keep" saw both records; "change" restarted and saw only the second (count 1 >= 1).
    assert_eq!(got, vec![("keep", MIN), ("change", MIN)]);
    assert_eq!(out.0[1].values[0].1, Some(1.0));
}

#[test]
fn state_round_trips_through_drain_and_restore() {
    let rules = r#"
        [[rule]]
        id = "c"
        key = ["k"]
        when = "sum(value, 2m) > 5"
        every = "1m"
        [[rule]]
        id = "p"
        key = ["k"]
        pattern = "A{2} within 5m"
        define = { A = 'value > 2' }
    "#;
    let mut a = pipeline(rules, "0s");
    let mut out = Alerts::default();
    a.process_line(ev("a", "x", 3.0, 0).as_bytes(), "", &mut out)
        .unwrap();
    let mut rules_a = crate::rules::Rules::new(&a.spec().rules);
    let rec_line = ev("a", "x", 3.0, 0);
    let rec = match a.decode(rec_line.as_bytes()).unwrap() {
        crate::record::Line::Event(r) => r,
        _ => unreachable!(),
    };
    rules_a.on_record(&rec, i64::MIN, None);
    let mut blobs = Vec::new();
    let ids: Vec<String> = rules_a.specs().map(|r| r.id.clone()).collect();
    rules_a
        .snapshot(&mut |r, key, blob| blobs.push((ids[r].clone(), key.to_string(), blob)))
        .unwrap();
    assert_eq!(blobs.len(), 2);
    // A fresh rule set restored from the blobs, then fed the second record, alerts as one
    // that saw both.
    let mut b = crate::rules::Rules::new(&a.spec().rules);
    for (id, key, blob) in &blobs {
        b.restore_key(id, key, blob).unwrap();
    }
    let rec2_line = ev("a", "x", 4.0, 1);
    let rec2 = match a.decode(rec2_line.as_bytes()).unwrap() {
        crate::record::Line::Event(r) => r,
        _ => unreachable!(),
    };
    b.on_record(&rec2, i64::MIN, None);
    let mut alerts = Vec::new();
    b.on_watermark(i64::MAX, &mut |x| alerts.push(x));
    let got: Vec<(&str, i64)> = alerts.iter().map(|x| (x.rule.as_str(), x.time)).collect();
    assert_eq!(got, vec![("c", MIN), ("p", 1)]);
}

#[test]
fn a_true_key_outlives_its_window_until_the_next_instant() {
    let rules = r#"
        [[rule]]
        id = "busy"
        key = ["k"]
        when = "count(1m) >= 2"
    "#;
    let mut p = pipeline(rules, "0s");
    let wm = |t: i64| format!(r#"{{"advance_watermark":{t}}}"#);
    // Minute 0 is busy and fires (the watermark reaches 1m - 1) before any record of
    // minute 1 arrives; minute 1 is busy too: one transition, one alert.
    let lines = vec![
        ev("a", "x", 1.0, 1),
        ev("a", "x", 1.0, 2),
        wm(MIN),
        ev("a", "x", 1.0, MIN + 1),
        ev("a", "x", 1.0, MIN + 2),
        wm(2 * MIN),
        wm(3 * MIN),
        ev("a", "x", 1.0, 3 * MIN + 1),
        ev("a", "x", 1.0, 3 * MIN + 2),
    ];
    let alerts = run(&mut p, &lines);
    // Minute 2 has no record (false), minute 3 is busy again: a second alert.
    let times: Vec<i64> = alerts.iter().map(|a| a.time).collect();
    assert_eq!(times, vec![MIN, 4 * MIN]);
}

/// Alerts of `lines` through `rules`, with running totals or recomputing every window.
fn alerts_with(rules: &str, bound: &str, lines: &[String], naive: bool) -> Vec<Alert> {
    condition::NAIVE.with(|n| n.set(naive));
    let out = run(&mut pipeline(rules, bound), lines);
    condition::NAIVE.with(|n| n.set(false));
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Running totals give exactly the alerts and values of merging every window's slices,
    /// with out-of-order records (within the bound and beyond it), decimal, non-decimal and
    /// huge values.
    #[test]
    fn running_totals_equal_recomputing_every_window(
        evs in proptest::collection::vec(
            (0usize..3, proptest::bool::ANY, 0u8..20, 0i64..40_000, 0i64..200_000),
            1..300,
        )
    ) {
        let rules = r#"
            [[rule]]
            id = "c"
            key = ["k"]
            when = 'sum(value where counter == "x", 6m) < 40 and min(value where counter == "y", 2m) > 1 or avg(value, 4m) > 50 or count(where counter == "y", 3m) >= 3 and max(value, 6m) < 90 or first(value, 3m) > last(value, 1m)'
            every = "1m"
            [[rule]]
            id = "d"
            key = ["counter"]
            when = 'sum(value, 10m) > 200 or count(5m) > 4 or avg(value where k == "k1", 2m) < 10'
        "#;
        let mut t = 0i64;
        let lines: Vec<String> = evs
            .iter()
            .map(|&(k, x, v, step, back)| {
                t += step;
                let value = match v {
                    0 => 1e15,
                    1 => 1.0 / 3.0,
                    2 => -7.5,
                    _ => f64::from(v) * 7.31 - 20.0,
                };
                // Arrival is out of order by up to 200 s: within the 2m bound or late.
                ev(&format!("k{k}"), if x { "x" } else { "y" }, value, (t - back).max(0))
            })
            .collect();
        let running = alerts_with(rules, "2m", &lines, false);
        let naive = alerts_with(rules, "2m", &lines, true);
        proptest::prop_assert_eq!(running.len(), naive.len());
        for (a, b) in running.iter().zip(&naive) {
            proptest::prop_assert_eq!((&a.rule, &a.key, a.time), (&b.rule, &b.key, b.time));
            let bits = |x: &Alert| -> Vec<Option<u64>> {
                x.values.iter().map(|(_, v)| v.map(f64::to_bits)).collect()
            };
            proptest::prop_assert_eq!(bits(a), bits(b));
        }
    }
}

/// Hostile input (issue 10): a 10 KB rules file of 5,000 nested parentheses is a rule
/// error naming the rule, the field, the column and the bound, not a stack overflow.
#[test]
fn deep_nesting_in_a_rules_file_is_an_error_not_a_stack_overflow() {
    use crate::filter::MAX_NESTING;
    let when = format!("{}count(1h) > 1{}", "(".repeat(5000), ")".repeat(5000));
    let text = format!("[[rule]]\nid = 'deep'\nkey = ['k']\nwhen = '{when}'\n");
    assert!(text.len() > 10_000);
    let e = parse_rules(&text, &input()).unwrap_err().to_string();
    assert!(e.starts_with("rule[0] \"deep\" `when` at column 1:"), "{e}");
    assert!(e.contains("MAX_EXPR_BYTES"), "{e}");
    // Within the size bound, the nesting bound answers, at the first level too deep.
    let when = format!("{}count(1h) > 1{}", "(".repeat(4000), ")".repeat(4000));
    let text = format!("[[rule]]\nid = 'deep'\nkey = ['k']\nwhen = '{when}'\n");
    let e = parse_rules(&text, &input()).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "rule[0] \"deep\" `when` at column {}: nesting deeper than {MAX_NESTING}",
            MAX_NESTING + 1
        )),
        "{e}"
    );
    for when in [
        format!("{}count(1h) > 1", "not ".repeat(2000)),
        format!("count(1h) > {}1", "-".repeat(4000)),
        format!(
            "count(where {}value > 1{}, 1h) > 1",
            "(".repeat(4000),
            ")".repeat(4000)
        ),
    ] {
        let (_, reason) = err(&when);
        assert!(reason.contains("MAX_NESTING"), "{when:.40}: {reason}");
    }
    // A nested `define` filter of a pattern too.
    let text = format!(
        "[[rule]]\nid = 'p'\nkey = ['k']\npattern = 'A within 10m'\ndefine = {{ A = '{}value > 1{}' }}\n",
        "(".repeat(4000),
        ")".repeat(4000)
    );
    let e = parse_rules(&text, &input()).unwrap_err().to_string();
    assert!(e.contains("MAX_NESTING"), "{e}");
    // The bound itself is accepted.
    let ok = format!(
        "{}count(1h) > 1{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert!(Expr::compile(&ok, &input()).is_ok());
}

#[test]
fn overlong_conditions_are_refused_with_the_bound() {
    let when = vec!["count(1h) > 1"; 1000].join(" and ");
    let (col, reason) = err(&when);
    assert_eq!(col, 1);
    assert!(reason.contains("MAX_EXPR_BYTES"), "{reason}");
}

/// The `toml` crate bounds its own nesting (arrays and inline tables, 80 levels) and
/// reports it as a syntax error: checked here so that an upgrade that loses it fails.
#[test]
fn deeply_nested_toml_is_a_syntax_error() {
    for text in [
        format!("x = {}{}", "[".repeat(5000), "]".repeat(5000)),
        format!("x = {}{}", "{a = ".repeat(5000), "}".repeat(5000)),
    ] {
        let e = parse_rules(&text, &input()).unwrap_err().to_string();
        assert!(e.contains("recursion limit"), "{e}");
    }
    let dotted = format!("{} = 1", vec!["a"; 5000].join("."));
    assert!(parse_rules(&dotted, &input()).is_err());
}

/// A rule over 72 h evaluated every 1 ms is refused with the bound; 10,000 instants are not.
#[test]
fn rule_instants_per_window_are_bounded() {
    let rule = |when: &str, every: &str| {
        parse_rules(
            &format!("[[rule]]\nid = 'r'\nkey = ['k']\nwhen = '{when}'\nevery = '{every}'\n"),
            &input(),
        )
    };
    let e = rule("count(72h) > 1", "1ms").unwrap_err().to_string();
    assert!(e.contains("`every`"), "{e}");
    assert!(e.contains("MAX_INSTANTS_PER_WINDOW"), "{e}");
    assert!(rule("count(10000s) > 1", "1s").is_ok());
    assert!(rule("count(10001s) > 1", "1s").is_err());
    // Implied by the gcd of the windows, too.
    let e = parse_rules(
        "[[rule]]\nid = 'g'\nkey = ['k']\nwhen = 'count(72h) > 1 and count(1ms) > 0'\n",
        &input(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("MAX_INSTANTS_PER_WINDOW"), "{e}");
}
