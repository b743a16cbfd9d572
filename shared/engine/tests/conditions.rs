//! Conditions with expressions on either side (`value * 2 > 10`, `a + b < c`,
//! `cast(v as int) % 2 == 0`): random conditions against a direct evaluation with Flink's
//! rules (integer arithmetic at 32 bits, doubles otherwise, a comparison with NULL not
//! true, integer division by zero an error), the grammar's errors, and hostile input.

use eventide_engine::expr::{EvalError, ExprLimits, Filter};
use eventide_engine::record::{Record, Value};
use eventide_engine::spec::schema::{FieldType, InputSpec, TimeFormat};
use proptest::prelude::*;

fn input() -> InputSpec {
    InputSpec {
        fields: vec![
            ("a".into(), FieldType::Number),
            ("b".into(), FieldType::Number),
            ("s".into(), FieldType::String),
            ("ok".into(), FieldType::Bool),
        ],
        time_field: "t".into(),
        time_format: TimeFormat::EpochMs,
        partition: None,
    }
}

fn rec(a: Option<f64>, b: Option<f64>, s: &str, ok: bool) -> Record<'static> {
    let n = |x: Option<f64>| x.map_or(Value::Null, Value::Num);
    Record {
        time: 0,
        values: smallvec::smallvec![
            n(a),
            n(b),
            Value::Str(s.to_string().into()),
            Value::Bool(ok)
        ],
    }
}

fn parse(src: &str) -> Result<Filter, String> {
    Filter::parse(src, &input(), &ExprLimits::default())
}

/// A numeric expression of the test's own.
#[derive(Debug, Clone)]
enum E {
    /// Field `a` or `b` (a double).
    Field(bool),
    /// `cast(a as int)` or `cast(b as int)`.
    Int(bool),
    IntLit(i32),
    DoubleLit(f64),
    Null,
    Bin(char, Box<E>, Box<E>),
}

/// A value: Java's `int` or `double`.
#[derive(Debug, Clone, Copy)]
enum V {
    I(i32),
    D(f64),
}

impl E {
    fn text(&self) -> String {
        match self {
            E::Field(x) => (if *x { "a" } else { "b" }).into(),
            E::Int(x) => format!("cast({} as int)", if *x { "a" } else { "b" }),
            E::IntLit(i) => i.to_string(),
            E::DoubleLit(d) => format!("{d:?}"),
            E::Null => "null".into(),
            E::Bin(op, l, r) => format!("({} {op} {})", l.text(), r.text()),
        }
    }

    /// `null`, or arithmetic on `null`s only: the type of `null`.
    fn untyped_null(&self) -> bool {
        match self {
            E::Null => true,
            E::Bin(_, l, r) => l.untyped_null() && r.untyped_null(),
            _ => false,
        }
    }

    fn eval(&self, a: Option<f64>, b: Option<f64>) -> Result<Option<V>, EvalError> {
        let field = |x: bool| if x { a } else { b };
        Ok(match self {
            E::Field(x) => field(*x).map(V::D),
            // Java's (int) of a double: truncation, saturating, NaN is 0.
            E::Int(x) => field(*x).map(|v| V::I(v as i32)),
            E::IntLit(i) => Some(V::I(*i)),
            E::DoubleLit(d) => Some(V::D(*d)),
            E::Null => None,
            // A `null` literal operand makes the operation null when compiled, whatever the
            // other side would do (Flink refuses an untyped NULL in arithmetic).
            E::Bin(_, l, r) if l.untyped_null() || r.untyped_null() => None,
            E::Bin(op, l, r) => {
                let (Some(x), Some(y)) = (l.eval(a, b)?, r.eval(a, b)?) else {
                    return Ok(None);
                };
                Some(match (x, y) {
                    (V::I(x), V::I(y)) => V::I(match op {
                        '+' => x.wrapping_add(y),
                        '-' => x.wrapping_sub(y),
                        '*' => x.wrapping_mul(y),
                        '/' if y == 0 => return Err(EvalError::DivideByZero),
                        '/' => x.wrapping_div(y),
                        _ if y == 0 => return Err(EvalError::DivideByZero),
                        _ => x.wrapping_rem(y),
                    }),
                    (x, y) => {
                        let f = |v: V| match v {
                            V::I(i) => i as f64,
                            V::D(d) => d,
                        };
                        let (x, y) = (f(x), f(y));
                        V::D(match op {
                            '+' => x + y,
                            '-' => x - y,
                            '*' => x * y,
                            '/' => x / y,
                            _ => x % y,
                        })
                    }
                })
            }
        })
    }
}

/// A condition of the test's own.
#[derive(Debug, Clone)]
enum C {
    Cmp(&'static str, E, E),
    And(Box<C>, Box<C>),
    Or(Box<C>, Box<C>),
}

impl C {
    fn text(&self) -> String {
        match self {
            C::Cmp(op, l, r) => format!("{} {op} {}", l.text(), r.text()),
            C::And(l, r) => format!("({}) and ({})", l.text(), r.text()),
            C::Or(l, r) => format!("({}) or ({})", l.text(), r.text()),
        }
    }

    fn eval(&self, a: Option<f64>, b: Option<f64>) -> Result<bool, EvalError> {
        match self {
            C::Cmp(op, l, r) => {
                let (Some(x), Some(y)) = (l.eval(a, b)?, r.eval(a, b)?) else {
                    return Ok(false);
                };
                let ord = match (x, y) {
                    (V::I(x), V::I(y)) => Some(x.cmp(&y)),
                    (x, y) => {
                        let f = |v: V| match v {
                            V::I(i) => i as f64,
                            V::D(d) => d,
                        };
                        f(x).partial_cmp(&f(y))
                    }
                };
                let Some(ord) = ord else { return Ok(false) };
                Ok(match *op {
                    "==" => ord.is_eq(),
                    "!=" => ord.is_ne(),
                    "<" => ord.is_lt(),
                    "<=" => ord.is_le(),
                    ">" => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            C::And(l, r) => Ok(l.eval(a, b)? && r.eval(a, b)?),
            C::Or(l, r) => Ok(l.eval(a, b)? || r.eval(a, b)?),
        }
    }
}

fn expr() -> impl Strategy<Value = E> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(E::Field),
        any::<bool>().prop_map(E::Int),
        (-4i32..5).prop_map(E::IntLit),
        (-8i32..9).prop_map(|i| E::DoubleLit(i as f64 / 2.0)),
        Just(E::Null),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        (
            prop::sample::select(vec!['+', '-', '*', '/', '%']),
            inner.clone(),
            inner,
        )
            .prop_map(|(op, l, r)| E::Bin(op, Box::new(l), Box::new(r)))
    })
}

fn cond() -> impl Strategy<Value = C> {
    let cmp = (
        prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
        expr(),
        expr(),
    )
        .prop_map(|(op, l, r)| C::Cmp(op, l, r));
    cmp.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| C::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| C::Or(Box::new(l), Box::new(r))),
        ]
    })
}

fn field_value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        1 => Just(None),
        6 => (-12i32..13).prop_map(|i| Some(i as f64 / 4.0)),
    ]
}

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(512))]

    /// A compiled condition decides as the direct evaluation does, failing exactly when
    /// it divides integers by zero.
    #[test]
    fn conditions_equal_direct_evaluation(c in cond(), a in field_value(), b in field_value()) {
        let text = c.text();
        let f = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let r = rec(a, b, "x", true);
        prop_assert_eq!(f.eval(&r), c.eval(a, b), "{} with a = {:?}, b = {:?}", text, a, b);
        prop_assert_eq!(f.matches(&r), c.eval(a, b) == Ok(true));
        if f.eval(&r).is_err() {
            prop_assert!(f.fallible());
        }
    }
}

#[test]
fn expressions_on_either_side() {
    let r = rec(Some(6.0), Some(2.0), "x", true);
    for (src, want) in [
        ("a * 2 > 10", true),
        ("10 < a * 2", true),
        ("a + b < a", false),
        ("(a + b) * 2 == 16", true),
        ("((a + b)) * 2 == 16 and s == \"x\"", true),
        ("cast(a as int) % 2 == 0", true),
        ("cast(a as int) / 4 == 1", true),
        ("a / 4 == 1.5", true),
        ("case when a > 5 then 1 else 0 end == 1", true),
        ("not (a - b > 4) or ok == false", true),
        ("not (a - b >= 4) or ok == false", false),
        ("\"x\" == s and true == ok", true),
        ("a > null", false),
        ("not (a > null)", true),
    ] {
        let f = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(f.eval(&r), Ok(want), "{src}");
    }
    // A null side makes the comparison false (both ways: NOT is the caller's to push down).
    let n = rec(None, Some(2.0), "x", true);
    assert_eq!(parse("a * 2 > 10").unwrap().eval(&n), Ok(false));
    assert_eq!(parse("a * 2 <= 10").unwrap().eval(&n), Ok(false));
}

#[test]
fn integer_division_by_zero_fails_and_is_flagged() {
    let f = parse("cast(a as int) / cast(b as int) > 1").unwrap();
    assert!(f.fallible());
    assert_eq!(
        f.eval(&rec(Some(1.0), Some(0.0), "x", true)),
        Err(EvalError::DivideByZero)
    );
    assert!(!f.matches(&rec(Some(1.0), Some(0.0), "x", true)));
    assert_eq!(f.eval(&rec(Some(5.0), Some(2.0), "x", true)), Ok(true));
    // Double division is IEEE, not an error.
    let d = parse("a / b > 1").unwrap();
    assert!(!d.fallible());
    assert_eq!(d.eval(&rec(Some(1.0), Some(0.0), "x", true)), Ok(true));
    // `and` stops at a false left side, as Flink's generated code does.
    let g = parse("b != 0 and 6 / cast(b as int) > 1").unwrap();
    assert_eq!(g.eval(&rec(Some(1.0), Some(0.0), "x", true)), Ok(false));
}

#[test]
fn errors_name_the_problem_and_the_column() {
    for (src, want) in [
        ("nope == 1", "unknown field \"nope\" at column 1"),
        (
            "s == 1",
            "the comparison at column 1: a string cannot be compared with a number",
        ),
        ("a * 2 == ok", "a number cannot be compared with a boolean"),
        ("s = 'x'", "comparisons are ==, !=, <, <=, >, >="),
        ("(s == 'x'", "expected ')' at column 10"),
        (
            "a * 2",
            "expected a comparison (==, !=, <, <=, >, >=) at column 6",
        ),
        ("a + > 1", "column 5"),
        ("", "expected a comparison such as"),
        ("a > 1 and", "found the end of the filter"),
        ("a > 1 b", "unexpected \"b\" at column 7"),
        (
            "s + 1 > 2",
            "expected a comparison (==, !=, <, <=, >, >=) at column 3",
        ),
    ] {
        let e = parse(src).unwrap_err();
        assert!(e.contains(want), "{src}: {e}");
    }
}

/// Deep, long or wide conditions are errors naming the bound, never a stack overflow.
#[test]
fn hostile_conditions_are_bounded() {
    use eventide_engine::filter::{MAX_EXPR_BYTES, MAX_NESTING};
    let deep = format!("{}a > 1{}", "(".repeat(4000), ")".repeat(4000));
    let e = parse(&deep).unwrap_err();
    assert!(e.contains("MAX_NESTING"), "{e}");
    assert!(e.contains(&format!("column {}", MAX_NESTING + 1)), "{e}");
    let nots = format!("{}a > 1", "not ".repeat(2000));
    assert!(parse(&nots).unwrap_err().contains("MAX_NESTING"));
    let ok = format!(
        "{}a > 1{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert!(parse(&ok).is_ok());
    // Parentheses of an operand are the expression's nesting, bounded by [limits].
    let deep_operand = format!("{}a{} > 1", "(".repeat(3000), ")".repeat(3000));
    let e = parse(&deep_operand).unwrap_err();
    assert!(e.contains("max_expression_depth"), "{e}");
    let wide = format!("{} > 1", vec!["a"; 300].join(" + "));
    let e = parse(&wide).unwrap_err();
    assert!(e.contains("max_expression_nodes"), "{e}");
    // Each side has its own budget: many small comparisons are fine within the bytes.
    let many = vec!["a + 1 > 1"; 300].join(" and ");
    assert!(parse(&many).is_ok());
    let long = vec!["a > 1"; 2000].join(" and ");
    assert!(parse(&long).unwrap_err().contains("MAX_EXPR_BYTES"));
    assert!(long.len() > MAX_EXPR_BYTES);
    // CASE inside a condition inside CASE …: bounded by the expression depth.
    let mut nested = "a".to_string();
    for _ in 0..200 {
        nested = format!("case when {nested} > 1 then 1 else 0 end");
    }
    let e = parse(&format!("{nested} > 0")).unwrap_err();
    assert!(e.contains("max_expression_depth"), "{e}");
    // Unbalanced parentheses are a syntax error.
    for src in [")a > 1", "(a > 1", "(a + 1 > 1", "a > (1"] {
        assert!(parse(src).is_err(), "{src}");
    }
}

/// Counts the rows of each pane and the records refused.
#[derive(Default)]
struct Counts {
    counts: Vec<Option<f64>>,
}

impl eventide_engine::pane::Emit for Counts {
    fn pane(&mut self, p: &eventide_engine::pane::Pane<'_>) {
        self.counts.extend(p.values.iter().copied());
    }
}

impl eventide_engine::Output for Counts {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {}
}

fn pipeline(aggregation: &str) -> Result<eventide_engine::Pipeline, String> {
    let text = format!(
        "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ a = \"number\", b = \"number\" }}\n\
         [[aggregation]]\nname = \"q\"\nwindow = {{ type = \"global\" }}\n{aggregation}"
    );
    eventide_engine::PipelineSpec::from_toml(&text)
        .map(eventide_engine::Pipeline::new)
        .map_err(|e| e.to_string())
}

/// A record on which an aggregation's filter (WHERE) or an aggregate's own filter (FILTER)
/// divides integers by zero is refused with the reason and the condition, and changes
/// nothing: the caller sends it to the dead letters, as a failing aggregate expression.
#[test]
fn a_filter_dividing_by_zero_refuses_the_record() {
    for aggregation in [
        "filter = 'cast(a as int) / cast(b as int) >= 1'\naggregates = [{ name = \"n\", fn = \"count\" }]",
        "aggregates = [{ name = \"n\", fn = \"count\" }, \
         { name = \"m\", fn = \"count\", filter = 'cast(a as int) % cast(b as int) == 0' }]",
    ] {
        let mut p = pipeline(aggregation).unwrap();
        let mut out = Counts::default();
        let mut refused = Vec::new();
        for (a, b) in [(4, 2), (3, 0), (1, 2), (6, 3)] {
            let line = format!(r#"{{"t":1,"a":{a},"b":{b}}}"#);
            if let Err(e) = p.process_line(line.as_bytes(), "", &mut out) {
                refused.push((a, b, e.to_string()));
            }
        }
        p.finish(&mut out);
        assert_eq!(refused.len(), 1, "{aggregation}: {refused:?}");
        assert_eq!((refused[0].0, refused[0].1), (3, 0));
        assert!(refused[0].2.contains("integer division by zero"), "{}", refused[0].2);
        assert!(refused[0].2.contains("cast(a as int)"), "{}", refused[0].2);
        // The three other records: 4/2 = 2 and 6/3 = 2 pass, 1/2 = 0 does not; 4%2 and 6%3
        // are 0, 1%2 is not.
        let want = if aggregation.starts_with("filter") {
            vec![Some(2.0)]
        } else {
            vec![Some(3.0), Some(2.0)]
        };
        assert_eq!(out.counts, want, "{aggregation}");
    }
}

/// `having` filters emitted rows, which cannot go to the dead letters: an integer `/` or
/// `%` there is refused; arithmetic on doubles is fine.
#[test]
fn having_refuses_integer_division_only() {
    let e = pipeline(
        "aggregates = [{ name = \"n\", fn = \"count\" }, { name = \"s\", fn = \"sum\", field = \"a\" }]\n\
         having = 'cast(s as int) / cast(n as int) > 1'",
    )
    .err()
    .unwrap_or_default();
    assert!(
        e.contains("having") && e.contains("cast an operand as double"),
        "{e}"
    );
    let ok = pipeline(
        "aggregates = [{ name = \"n\", fn = \"count\" }, { name = \"s\", fn = \"sum\", field = \"a\" }]\n\
         having = 's / n > 1 and n * 2 >= 2'",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

/// A rule's conditions share the grammar: arithmetic in a term's `where`, without integer
/// `/` or `%` (a rule cannot dead-letter the record on which one fails).
#[test]
fn rule_conditions_take_expressions() {
    use eventide_engine::rules::expr::{parse_filter, Expr};
    let c = Expr::compile("sum(a where a * 2 > b + 1, 1h) > 10", &input()).unwrap();
    let f = c.terms[0].filter.as_ref().unwrap();
    assert!(f.matches(&rec(Some(3.0), Some(4.0), "x", true)));
    assert!(!f.matches(&rec(Some(2.0), Some(4.0), "x", true)));
    let e = parse_filter("cast(a as int) / cast(b as int) > 1", &input()).unwrap_err();
    assert!(e.contains("cast an operand as double"), "{e}");
    assert!(parse_filter("a / b > 1 and s == 'x'", &input()).is_ok());
}
