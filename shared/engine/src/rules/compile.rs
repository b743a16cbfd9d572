//! The rules compiler: `[[rule]]` tables as written in TOML, validated against the input
//! schema into [`RuleSpec`]s, with errors naming the rule, the field, the column and the
//! reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::expr::Expr;
use super::model::{ConditionRule, PatternRule, RuleKind, RuleSpec, Step};
use crate::duration::parse_ms;
use crate::error::bounded;
use crate::filter::Filter;
use crate::spec::schema::{FieldType, InputSpec};

/// A rule that cannot be used, naming it, the field, the column and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The rules file is not valid TOML or does not have the expected shape.
    Syntax(String),
    /// One rule is invalid.
    Invalid {
        /// Position of the rule in its file (0-based).
        index: usize,
        /// The rule's id (empty if it has none).
        id: String,
        /// `when`, `pattern`, `define.A`, `key`, `every`, `id`.
        field: String,
        /// 1-based character column inside that field's text, if the error has one.
        column: Option<usize>,
        reason: String,
    },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Syntax(s) => write!(f, "rules are not valid: {}", bounded(s)),
            RuleError::Invalid {
                index,
                id,
                field,
                column,
                reason,
            } => {
                let id = format!("{id:?}");
                write!(f, "rule[{index}] {} `{}`", bounded(&id), bounded(field))?;
                if let Some(c) = column {
                    write!(f, " at column {c}")?;
                }
                write!(f, ": {}", bounded(reason))
            }
        }
    }
}

impl std::error::Error for RuleError {}

/// A rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub define: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRulesFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// Parses a rules file: `[[rule]]` tables only.
///
/// ```
/// use eventide_engine::rules::parse_rules;
/// use eventide_engine::spec::{FieldType, InputSpec, TimeFormat};
/// let input = InputSpec {
///     fields: vec![("k".into(), FieldType::String), ("v".into(), FieldType::Number)],
///     time_field: "t".into(), time_format: TimeFormat::EpochMs, partition: None,
/// };
/// let ok = parse_rules("[[rule]]\nid = 'r'\nkey = ['k']\nwhen = 'count(1h) > 3'\n", &input);
/// assert_eq!(ok.unwrap()[0].id, "r");
/// let bad = parse_rules("[[rule]]\nid = 'r'\nkey = ['k']\nwhen = 'count(1h) >'\n", &input);
/// assert_eq!(bad.unwrap_err().to_string(),
///     "rule[0] \"r\" `when` at column 12: expected a number, a field, an aggregate or '('");
/// ```
pub fn parse_rules(text: &str, input: &InputSpec) -> Result<Vec<RuleSpec>, RuleError> {
    let raw: RawRulesFile = toml::from_str(text).map_err(|e| RuleError::Syntax(e.to_string()))?;
    compile_rules(raw.rule, input)
}

/// Validates rules against the input schema.
pub fn compile_rules(raw: Vec<RawRule>, input: &InputSpec) -> Result<Vec<RuleSpec>, RuleError> {
    let mut out: Vec<RuleSpec> = Vec::with_capacity(raw.len());
    for (index, r) in raw.into_iter().enumerate() {
        let rule = compile_rule(index, r, input)?;
        if out.iter().any(|x| x.id == rule.id) {
            return Err(RuleError::Invalid {
                index,
                id: rule.id,
                field: "id".into(),
                column: None,
                reason: "duplicate rule id".into(),
            });
        }
        out.push(rule);
    }
    Ok(out)
}

/// The most evaluation instants a condition rule's longest window may hold (window ÷
/// `every`). Each instant is a slice of per-key state and an evaluation, so a 72 h rule
/// every 1 ms would cost each key 259 million slices.
pub const MAX_INSTANTS_PER_WINDOW: i64 = 10_000;

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn compile_rule(index: usize, r: RawRule, input: &InputSpec) -> Result<RuleSpec, RuleError> {
    let id = r.id.clone();
    let err = |field: &str, column: Option<usize>, reason: String| RuleError::Invalid {
        index,
        id: id.clone(),
        field: field.to_string(),
        column,
        reason,
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err(
            "id",
            None,
            "must be non-empty and use only letters, digits, '_' and '-'".into(),
        ));
    }
    let mut key = Vec::with_capacity(r.key.len());
    for k in &r.key {
        key.push(input.field_index(k).ok_or_else(|| {
            err(
                "key",
                None,
                format!("unknown field {k:?}; declare it in input.fields"),
            )
        })?);
    }
    let source = format!("{r:?}");
    let kind = match (&r.when, &r.pattern) {
        (Some(when), None) => {
            if !r.define.is_empty() {
                return Err(err("define", None, "only used with `pattern`".into()));
            }
            let expr =
                Expr::compile(when, input).map_err(|e| err("when", Some(e.column), e.reason))?;
            let span_ms = expr.terms.iter().map(|t| t.window_ms).max().unwrap_or(1);
            let every_ms = match &r.every {
                Some(e) => {
                    let ms = parse_ms("every", e).map_err(|x| err("every", None, x.to_string()))?;
                    if ms <= 0 {
                        return Err(err("every", None, "must be greater than zero".into()));
                    }
                    ms
                }
                None => expr.terms.iter().fold(0, |g, t| gcd(t.window_ms, g)),
            };
            if span_ms / every_ms > MAX_INSTANTS_PER_WINDOW {
                return Err(err(
                    "every",
                    None,
                    format!(
                        "the longest window ({span_ms} ms) holds {} evaluation instants of \
                         {every_ms} ms, more than {MAX_INSTANTS_PER_WINDOW} \
                         (eventide_engine::rules::MAX_INSTANTS_PER_WINDOW); use a longer `every`",
                        span_ms / every_ms
                    ),
                ));
            }
            if let Some(t) = expr.terms.iter().find(|t| t.window_ms % every_ms != 0) {
                return Err(err(
                    "every",
                    None,
                    format!(
                        "the window of {} ({} ms) is not a multiple of the evaluation period ({every_ms} ms)",
                        t.text, t.window_ms
                    ),
                ));
            }
            RuleKind::Condition(ConditionRule {
                field_names: expr
                    .fields
                    .iter()
                    .map(|&f| input.fields[f].0.clone())
                    .collect(),
                expr,
                every_ms,
                span_ms,
            })
        }
        (None, Some(pattern)) => {
            if r.every.is_some() {
                return Err(err(
                    "every",
                    None,
                    "patterns are matched at the watermark; `every` only applies to `when`".into(),
                ));
            }
            let mut define = Vec::with_capacity(r.define.len());
            let mut captured: Vec<usize> = Vec::new();
            for (name, cond) in &r.define {
                let f = crate::rules::expr::parse_filter(cond, input)
                    .map_err(|reason| err(&format!("define.{name}"), None, reason))?;
                collect_fields(&f, input, &mut captured);
                define.push((name.clone(), f));
            }
            if define.len() > 64 {
                return Err(err("define", None, "at most 64 definitions".into()));
            }
            let (steps, within_ms) = parse_pattern(pattern, &define)
                .map_err(|(col, reason)| err("pattern", Some(col), reason))?;
            for (i, (name, _)) in define.iter().enumerate() {
                if !steps.iter().any(|s| s.def == i) {
                    return Err(err(
                        &format!("define.{name}"),
                        None,
                        "defined but not used in the pattern".into(),
                    ));
                }
            }
            RuleKind::Pattern(PatternRule {
                steps,
                within_ms,
                captured_names: captured
                    .iter()
                    .map(|&f| input.fields[f].0.clone())
                    .collect(),
                captured,
                define,
            })
        }
        (Some(_), Some(_)) => {
            return Err(err(
                "pattern",
                None,
                "a rule has either `when` or `pattern`, not both".into(),
            ))
        }
        (None, None) => {
            return Err(err(
                "when",
                None,
                "a rule needs `when` (a condition) or `pattern` (a sequence)".into(),
            ))
        }
    };
    Ok(RuleSpec {
        id: r.id.clone(),
        key_names: r.key.clone(),
        key,
        kind,
        source,
    })
}

/// Adds the numeric fields `f` reads to `out`.
fn collect_fields(f: &Filter, input: &InputSpec, out: &mut Vec<usize>) {
    for i in f.fields() {
        if input.fields[i].1 == FieldType::Number && !out.contains(&i) {
            out.push(i);
        }
    }
}

/// Parses `A B{2} C within 10m` into steps; errors carry a 1-based column.
fn parse_pattern(
    src: &str,
    define: &[(String, Filter)],
) -> Result<(Vec<Step>, i64), (usize, String)> {
    let col = |i: usize| src[..i].chars().count() + 1;
    let b = src.as_bytes();
    let mut i = 0;
    let mut steps = Vec::new();
    let skip = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    loop {
        skip(&mut i);
        let start = i;
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        if start == i {
            let what = if i >= b.len() {
                "the end".to_string()
            } else {
                format!("{:?}", src[i..].chars().next().unwrap_or('?'))
            };
            return Err((
                col(i),
                format!("expected a step name or `within`, found {what}"),
            ));
        }
        let name = &src[start..i];
        if name == "within" {
            if steps.is_empty() {
                return Err((col(start), "the pattern has no step before `within`".into()));
            }
            skip(&mut i);
            let ds = i;
            let rest = src[i..].trim_end();
            let within = parse_ms("within", rest).map_err(|_| {
                (
                    col(ds),
                    format!("bad duration {rest:?} after `within` (use e.g. 10m)"),
                )
            })?;
            if within <= 0 {
                return Err((col(ds), "`within` must be greater than zero".into()));
            }
            return Ok((steps, within));
        }
        let def = define.iter().position(|(n, _)| n == name).ok_or_else(|| {
            (
                col(start),
                format!("step {name:?} is not defined; add it to `define`"),
            )
        })?;
        let mut times = 1u32;
        if b.get(i) == Some(&b'{') {
            let ns = i + 1;
            let close = src[ns..]
                .find('}')
                .ok_or_else(|| (col(i), "missing '}'".to_string()))?;
            times = src[ns..ns + close]
                .trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| (col(ns), "expected a positive count inside {}".to_string()))?;
            i = ns + close + 1;
        }
        steps.push(Step { def, times });
        if i >= b.len() {
            return Err((col(i), "expected `within` and a duration at the end".into()));
        }
    }
}
