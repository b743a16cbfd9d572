//! Cumulate windows, per-aggregate filters and `having` (what Flink SQL's `CUMULATE`,
//! `agg(…) FILTER (WHERE …)` and `HAVING` compile to), checked against naive
//! recomputations through the public `Pipeline` API.
//!
//! Values are small integers so sums and counts are exact in `f64`.

use std::collections::BTreeMap;

use eventide_engine::pane::{Emit, Pane};
use eventide_engine::{Output, Pipeline, PipelineSpec};
use proptest::prelude::*;

/// A window of a key: key, start, end.
type KeyWindow = (String, i64, i64);
type Results = BTreeMap<KeyWindow, Vec<Option<f64>>>;

#[derive(Default)]
struct Collect {
    rows: Vec<(KeyWindow, Vec<Option<f64>>)>,
    late: usize,
}

impl Emit for Collect {
    fn pane(&mut self, p: &Pane<'_>) {
        self.rows.push((
            (p.key.to_string(), p.window.start, p.window.end),
            p.values.to_vec(),
        ));
    }
}

impl Output for Collect {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {
        self.late += 1;
    }
}

#[derive(Debug, Clone, Copy)]
struct Ev {
    k: u8,
    t: i64,
    v: i64,
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (0u8..3, 0i64..80, -5i64..6).prop_map(|(k, t, v)| Ev { k, t, v }),
        0..40,
    )
}

/// Runs `aggregation` (TOML) over the events in order with a watermark bounded by `bound`
/// ms, then finishes. Fails on a window emitted twice.
fn run(aggregation: &str, bound: i64, evs: &[Ev]) -> Result<Results, TestCaseError> {
    let text = format!(
        "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", v = \"number\" }}\n\
         [watermark]\nmax_out_of_orderness = \"{bound}ms\"\n\
         [[aggregation]]\nname = \"a\"\ngroup_by = [\"k\"]\n{aggregation}"
    );
    let spec = PipelineSpec::from_toml(&text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let mut p = Pipeline::new(spec);
    let mut out = Collect::default();
    for e in evs {
        let line = format!(r#"{{"k":"k{}","t":{},"v":{}}}"#, e.k, e.t, e.v);
        p.process_line(line.as_bytes(), "", &mut out)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    }
    p.finish(&mut out);
    prop_assert_eq!(out.late, 0);
    let mut m = Results::new();
    for (w, v) in out.rows {
        let dup = m.insert(w.clone(), v);
        prop_assert!(dup.is_none(), "window {:?} fired twice", w);
    }
    Ok(m)
}

/// The tumbling windows of `size` ms that hold events, by key and window, each with its
/// events in arrival order.
fn tumbling(evs: &[Ev], size: i64) -> BTreeMap<KeyWindow, Vec<&Ev>> {
    let mut windows: BTreeMap<KeyWindow, Vec<&Ev>> = BTreeMap::new();
    for e in evs {
        let start = e.t.div_euclid(size) * size;
        windows
            .entry((format!("k{}", e.k), start, start + size))
            .or_default()
            .push(e);
    }
    windows
}

/// Count, sum, min and max of `v` over the events that pass `keep` (count 0 and the
/// others null when none does).
fn stats<'a>(evs: impl Iterator<Item = &'a Ev>, keep: impl Fn(&Ev) -> bool) -> Vec<Option<f64>> {
    let vs: Vec<f64> = evs.filter(|e| keep(e)).map(|e| e.v as f64).collect();
    let n = vs.len() as f64;
    if vs.is_empty() {
        return vec![Some(0.0), None, None, None];
    }
    vec![
        Some(n),
        Some(vs.iter().sum()),
        vs.iter().copied().reduce(f64::min),
        vs.iter().copied().reduce(f64::max),
    ]
}

const STATS: &str = r#"aggregates = [
  { name = "n", fn = "count" }, { name = "s", fn = "sum", field = "v" },
  { name = "lo", fn = "min", field = "v" }, { name = "hi", fn = "max", field = "v" },
]"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// A cumulate window's panes are the windows `[floor(t, size), floor(t, size) + k·step)`
    /// that hold at least one event, each with the statistics of its events.
    #[test]
    fn cumulate_windows_equal_naive_recomputation(
        evs in events(),
        step in 1i64..8,
        steps in 1i64..5,
        bound in prop::sample::select(vec![1i64, 6, 1_000]),
    ) {
        let size = step * steps;
        let mut evs = evs;
        // In order, or out of order by less than the bound: nothing is late.
        if bound == 1 {
            evs.sort_by_key(|e| e.t);
        } else if bound == 6 {
            evs.sort_by_key(|e| e.t + (e.v.rem_euclid(5)));
        }
        let got = run(
            &format!("window = {{ type = \"cumulate\", size = \"{size}ms\", step = \"{step}ms\" }}\n{STATS}"),
            bound,
            &evs,
        )?;
        let mut want = Results::new();
        for k in 0u8..3 {
            let mine: Vec<&Ev> = evs.iter().filter(|e| e.k == k).collect();
            let mut windows: Vec<(i64, i64)> = mine
                .iter()
                .flat_map(|e| {
                    let start = e.t.div_euclid(size) * size;
                    (1..=steps).map(move |j| (start, start + j * step)).filter(|w| w.1 > e.t)
                })
                .collect();
            windows.sort_unstable();
            windows.dedup();
            for (s, end) in windows {
                let inside = mine.iter().copied().filter(|e| e.t >= s && e.t < end);
                want.insert((format!("k{k}"), s, end), stats(inside, |_| true));
            }
        }
        prop_assert_eq!(got, want);
    }

    /// An aggregate's filter restricts its rows; the window exists for any row.
    #[test]
    fn aggregate_filters_restrict_their_rows_only(evs in events(), size in 1i64..20) {
        let got = run(
            &format!(
                "window = {{ type = \"tumbling\", size = \"{size}ms\" }}\naggregates = [\n\
                 {{ name = \"all\", fn = \"count\" }},\n\
                 {{ name = \"n\", fn = \"count\", filter = 'v > 0' }},\n\
                 {{ name = \"s\", fn = \"sum\", field = \"v\", filter = 'v > 0' }},\n\
                 {{ name = \"lo\", fn = \"min\", field = \"v\", filter = 'v > 0' }},\n\
                 {{ name = \"hi\", fn = \"max\", field = \"v\", filter = 'v > 0' }},\n\
                 {{ name = \"neg\", fn = \"sum\", field = \"v\", filter = 'v < 0' }},\n]"
            ),
            1_000,
            &evs,
        )?;
        let mut want = Results::new();
        for (w, inside) in tumbling(&evs, size) {
            let mut row = vec![Some(inside.len() as f64)];
            row.extend(stats(inside.iter().copied(), |e| e.v > 0));
            row.push(stats(inside.iter().copied(), |e| e.v < 0)[1]);
            want.insert(w, row);
        }
        prop_assert_eq!(got, want);
    }

    /// `having` keeps exactly the rows whose aggregates pass it.
    #[test]
    fn having_keeps_the_rows_that_pass(evs in events(), size in 1i64..20, min_n in 1i64..4) {
        let window = format!("window = {{ type = \"tumbling\", size = \"{size}ms\" }}\n{STATS}\n");
        let all = run(&window, 1_000, &evs)?;
        let got = run(&format!("{window}having = 'n >= {min_n} and not (hi < 0)'\n"), 1_000, &evs)?;
        let want: Results = all
            .into_iter()
            .filter(|(_, v)| v[0] >= Some(min_n as f64) && !(v[3] < Some(0.0) && v[3].is_some()))
            .collect();
        prop_assert_eq!(got, want);
    }
}

fn spec_error(aggregation: &str) -> String {
    let text = format!(
        "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", v = \"number\" }}\n\
         [[aggregation]]\nname = \"a\"\n{aggregation}"
    );
    match PipelineSpec::from_toml(&text) {
        Ok(_) => panic!("accepted: {aggregation}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn having_needs_one_pane_per_window() {
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\n\
         aggregates = [{ name = \"n\", fn = \"count\" }]\nhaving = 'n > 1'\n\
         trigger = \"watermark(early = count(1))\"",
    );
    assert!(e.contains("aggregation[0] (a).having"), "{e}");
}

#[test]
fn having_names_output_columns() {
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\n\
         aggregates = [{ name = \"n\", fn = \"count\" }]\nhaving = 'v > 1'",
    );
    assert!(e.contains("having") && e.contains("output columns"), "{e}");
}

#[test]
fn cumulate_size_is_a_multiple_of_step() {
    let e = spec_error(
        "window = { type = \"cumulate\", size = \"10m\", step = \"3m\" }\n\
         aggregates = [{ name = \"n\", fn = \"count\" }]",
    );
    assert!(e.contains("aggregation[0] (a).window.size"), "{e}");
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"10m\", step = \"5m\" }\n\
         aggregates = [{ name = \"n\", fn = \"count\" }]",
    );
    assert!(e.contains("window.step"), "{e}");
}

#[test]
fn aggregate_filter_errors_name_the_aggregate() {
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\n\
         aggregates = [{ name = \"n\", fn = \"count\", filter = 'w > 1' }]",
    );
    assert!(e.contains("aggregation[0] (a).aggregates[0].filter"), "{e}");
}

/// An integer expression tree over the field `v` read as a `bigint`, printed in the spec's
/// grammar and evaluated independently with Java's `long` arithmetic.
#[derive(Debug, Clone)]
enum IntTree {
    V,
    Lit(i64),
    Neg(Box<IntTree>),
    Bin(char, Box<IntTree>, Box<IntTree>),
    Case(Box<IntTree>, Box<IntTree>),
}

impl IntTree {
    fn text(&self) -> String {
        match self {
            IntTree::V => "cast(v as bigint)".into(),
            // A whole literal is an INT (32 bits) when it fits: widened, the tree is all BIGINT.
            IntTree::Lit(i) => format!("cast({i} as bigint)"),
            IntTree::Neg(a) => format!("-({})", a.text()),
            IntTree::Bin(op, a, b) => format!("({}) {op} ({})", a.text(), b.text()),
            IntTree::Case(a, b) => {
                format!("case when v > 0 then {} else {} end", a.text(), b.text())
            }
        }
    }

    /// `None`: a division or modulo by zero.
    fn eval(&self, v: i64) -> Option<i64> {
        Some(match self {
            IntTree::V => v,
            IntTree::Lit(i) => *i,
            IntTree::Neg(a) => a.eval(v)?.wrapping_neg(),
            IntTree::Bin(op, a, b) => {
                let (x, y) = (a.eval(v)?, b.eval(v)?);
                match op {
                    '+' => x.wrapping_add(y),
                    '-' => x.wrapping_sub(y),
                    '*' => x.wrapping_mul(y),
                    '/' => x
                        .checked_div(y)
                        .or_else(|| (y == -1).then(|| x.wrapping_neg()))?,
                    _ => x.checked_rem(y).or_else(|| (y == -1).then_some(0))?,
                }
            }
            IntTree::Case(a, b) => {
                if v > 0 {
                    a.eval(v)?
                } else {
                    b.eval(v)?
                }
            }
        })
    }
}

fn int_tree() -> impl Strategy<Value = IntTree> {
    let leaf = prop_oneof![
        Just(IntTree::V),
        (-3i64..40).prop_map(IntTree::Lit),
        Just(IntTree::Lit(i64::MAX)),
    ];
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| IntTree::Neg(Box::new(a))),
            (
                prop::sample::select(vec!['+', '-', '*', '/', '%']),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| IntTree::Bin(op, Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| IntTree::Case(Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Computed inputs (arithmetic, CASE, CAST, integer output types) and the arrival-order
    /// first_value/last_value equal a direct recomputation over each window's events.
    #[test]
    fn expressions_equal_direct_recomputation(evs in events(), size in 1i64..20) {
        let got = run(
            &format!(
                "window = {{ type = \"tumbling\", size = \"{size}ms\" }}\naggregates = [\n\
                 {{ name = \"lin\", fn = \"sum\", expr = \"v * 3 - 1\" }},\n\
                 {{ name = \"halves\", fn = \"sum\", expr = \"cast(v as int) / 2\", type = \"int\" }},\n\
                 {{ name = \"lo\", fn = \"min\", expr = \"case when v > 0 then v * 2 when v < -2 then 7 end\" }},\n\
                 {{ name = \"avg\", fn = \"avg\", expr = \"cast(v as bigint)\", type = \"bigint\" }},\n\
                 {{ name = \"first\", fn = \"first_value\", expr = \"v * 10\" }},\n\
                 {{ name = \"last\", fn = \"last_value\", field = \"v\", filter = 'v != 0' }},\n\
                 {{ name = \"big\", fn = \"count\", expr = \"case when v > 2 then 1 end\" }},\n]"
            ),
            1_000,
            &evs,
        )?;
        let mut want = Results::new();
        for (w, inside) in tumbling(&evs, size) {
            // In arrival order.
            let inside: Vec<i64> = inside.iter().map(|e| e.v).collect();
            let n = inside.len() as i64;
            let lo = inside
                .iter()
                .filter_map(|&v| if v > 0 { Some(v * 2) } else if v < -2 { Some(7) } else { None })
                .min();
            want.insert(
                w,
                vec![
                    Some(inside.iter().map(|v| v * 3 - 1).sum::<i64>() as f64),
                    Some(inside.iter().map(|v| v / 2).sum::<i64>() as f64),
                    lo.map(|v| v as f64),
                    Some((inside.iter().sum::<i64>() / n) as f64),
                    inside.first().map(|v| (v * 10) as f64),
                    inside.iter().rfind(|&&v| v != 0).map(|&v| v as f64),
                    Some(inside.iter().filter(|&&v| v > 2).count() as f64),
                ],
            );
        }
        prop_assert_eq!(got, want);
    }

    /// Random integer expressions evaluate as Java's `long` arithmetic does: wrapping,
    /// truncating division, the dividend's sign for `%`, and an error for a zero divisor.
    #[test]
    fn integer_expressions_match_java_arithmetic(tree in int_tree(), v in -50i64..50) {
        use eventide_engine::expr::{EvalError, Expr, ExprLimits};
        use eventide_engine::record::{Record, Value};
        use eventide_engine::spec::schema::{FieldType, InputSpec, TimeFormat};
        let input = InputSpec {
            fields: vec![("v".into(), FieldType::Number)],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        };
        let limits = ExprLimits { max_nodes: 1024, max_depth: 128 };
        let text = tree.text();
        let e = Expr::parse(&text, &input, &limits).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let r = Record { time: 0, values: smallvec::smallvec![Value::Num(v as f64)] };
        let want = match tree.eval(v) {
            Some(i) => Ok(Some(i as f64)),
            None => Err(EvalError::DivideByZero),
        };
        prop_assert_eq!(e.eval(&r), want, "{}", text);
    }
}

#[test]
fn first_and_last_value_need_windows_that_do_not_merge() {
    for window in [
        "{ type = \"sliding\", size = \"1m\", slide = \"30s\" }",
        "{ type = \"session\", gap = \"1m\" }",
        "{ type = \"cumulate\", size = \"2m\", step = \"1m\" }",
    ] {
        let e = spec_error(&format!(
            "window = {window}\naggregates = [{{ name = \"f\", fn = \"first_value\", field = \"v\" }}]"
        ));
        assert!(
            e.contains("aggregates[0].fn") && e.contains("no merge method"),
            "{e}"
        );
    }
}

#[test]
fn expression_errors_name_the_aggregate_and_the_setting() {
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\n\
         aggregates = [{ name = \"s\", fn = \"sum\", expr = \"v * w\" }]",
    );
    assert!(
        e.contains("aggregation[0] (a).aggregates[0].expr") && e.contains("\"w\""),
        "{e}"
    );
    let long = vec!["v"; 300].join(" + ");
    let e = spec_error(&format!(
        "window = {{ type = \"tumbling\", size = \"1m\" }}\n\
         aggregates = [{{ name = \"s\", fn = \"sum\", expr = \"{long}\" }}]"
    ));
    assert!(e.contains("raise [limits] max_expression_nodes"), "{e}");
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\n\
         aggregates = [{ name = \"s\", fn = \"sum\", field = \"v\", expr = \"v\" }]",
    );
    assert!(e.contains("not both"), "{e}");
}

/// An integer division by zero is the record's error (for the dead letters) on every
/// decoding path, and no aggregation sees the record; a double division is IEEE.
#[test]
fn integer_division_by_zero_refuses_the_record() {
    let spec = PipelineSpec::from_toml(
        "[input]\nevent_time = { field = \"t\" }\nfields = { k = \"string\", v = \"number\" }\n\
         [[aggregation]]\nname = \"a\"\ngroup_by = [\"k\"]\n\
         window = { type = \"tumbling\", size = \"10ms\" }\naggregates = [\n\
         { name = \"n\", fn = \"count\" },\n\
         { name = \"q\", fn = \"sum\", expr = \"10 / cast(v as int)\", filter = 'v > 100' },\n\
         { name = \"d\", fn = \"sum\", expr = \"10 / v\" },\n]",
    )
    .expect("valid spec");
    let mut p = Pipeline::new(spec);
    let mut out = Collect::default();
    for line in [r#"{"k":"a","t":1,"v":2}"#, r#"{"k":"a","t":2,"v":4}"#] {
        p.process_line(line.as_bytes(), "", &mut out)
            .expect("no zero");
    }
    // The aggregate's own filter does not spare the record (Flink computes the argument of
    // every row), and the reason names the aggregation and the expression.
    let zero = br#"{"k":"a","t":3,"v":0}"#;
    let e = p
        .process_line(zero, "", &mut out)
        .expect_err("a zero divisor");
    assert_eq!(
        e.to_string(),
        "aggregation `a`: integer division by zero in `10 / cast(v as int)`"
    );
    let mut line = p.codec().decode_unenriched(zero).expect("valid JSON");
    assert!(p.codec().complete(&mut line).is_err());
    p.finish(&mut out);
    assert_eq!(
        out.rows,
        vec![(("a".into(), 0, 10), vec![Some(2.0), None, Some(7.5)])]
    );
}

/// A computed output column is an expression over the earlier output columns of the same
/// row (SQL's `SUM(v) / COUNT(*)` in the SELECT list), `having` can use it, and an integer
/// division there is refused (it could fail where no record can take the blame).
#[test]
fn computed_output_columns_read_the_row() {
    let agg = "window = { type = \"tumbling\", size = \"10ms\" }\naggregates = [\n\
               { name = \"n\", fn = \"count\" },\n\
               { name = \"s\", fn = \"sum\", field = \"v\" },\n\
               { name = \"mean\", fn = \"compute\", expr = \"s / n\" },\n\
               { name = \"whole\", fn = \"compute\", expr = \"cast(mean * 10 as bigint)\", type = \"bigint\" },\n]\n\
               having = 'mean > 0'";
    let evs = [
        Ev { k: 0, t: 1, v: 1 },
        Ev { k: 0, t: 2, v: 2 },
        Ev { k: 1, t: 3, v: -4 },
        Ev { k: 0, t: 12, v: 5 },
    ];
    let got = run(agg, 1_000, &evs).expect("runs");
    let want: Results = [
        (
            ("k0".to_string(), 0, 10),
            vec![Some(2.0), Some(3.0), Some(1.5), Some(15.0)],
        ),
        (
            ("k0".to_string(), 10, 20),
            vec![Some(1.0), Some(5.0), Some(5.0), Some(50.0)],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\naggregates = [\n\
         { name = \"n\", fn = \"count\" },\n\
         { name = \"q\", fn = \"compute\", expr = \"100 / cast(n as bigint)\" },\n]",
    );
    assert!(
        e.contains("aggregates[1].expr") && e.contains("cast an operand as double"),
        "{e}"
    );
    let e = spec_error(
        "window = { type = \"tumbling\", size = \"1m\" }\naggregates = [\n\
         { name = \"q\", fn = \"compute\", expr = \"n * 2\" },\n\
         { name = \"n\", fn = \"count\" },\n]",
    );
    assert!(
        e.contains("aggregates[0].expr") && e.contains("unknown field \"n\""),
        "{e}"
    );
}

/// `[limits] max_expression_depth` bounds the nesting (an error naming it, not a stack
/// overflow), can be raised, but not past the hard bound.
#[test]
fn expression_limits_are_settable_within_hard_bounds() {
    let spec = |limits: &str, depth: usize| {
        let expr = format!("{}v{}", "(".repeat(depth), ")".repeat(depth));
        PipelineSpec::from_toml(&format!(
            "{limits}\n[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", v = \"number\" }}\n\
             [[aggregation]]\nname = \"a\"\nwindow = {{ type = \"tumbling\", size = \"1m\" }}\n\
             aggregates = [{{ name = \"s\", fn = \"sum\", expr = \"{expr}\" }}]\n"
        ))
        .map_err(|e| e.to_string())
    };
    let e = spec("", 40).expect_err("deeper than 32");
    assert!(e.contains("raise [limits] max_expression_depth"), "{e}");
    let e = spec("", 3000).expect_err("hostile");
    assert!(e.contains("max_expression_depth"), "{e}");
    assert!(spec("[limits]\nmax_expression_depth = 64", 40).is_ok());
    let e = spec("[limits]\nmax_expression_depth = 100000", 1).expect_err("past the hard bound");
    assert!(
        e.contains("limits.max_expression_depth") && e.contains("from 1 to 128"),
        "{e}"
    );
    let e = spec("[limits]\nmax_expression_nodes = 0", 1).expect_err("zero");
    assert!(e.contains("limits.max_expression_nodes"), "{e}");
}
