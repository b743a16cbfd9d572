//! Rules as data: conditions over windowed aggregates, and sequence patterns, per key.
//!
//! Rules live in the pipeline spec (`[[rule]]` tables) or in a separate rules file with
//! only `[[rule]]` tables, which a running pipeline can swap with [`Rules::replace`] (the
//! consumer polls it in S3 and reloads it with no restart; an invalid file is rejected with
//! a [`RuleError`] naming the rule, the field, the column and the reason, and the old rules
//! keep running). The format and semantics are documented in `docs/pipeline-spec.md`.
//!
//! ```toml
//! [[rule]]
//! id = "concierge"
//! key = ["subscriber_id"]
//! when = 'sum(value where counter == "x", 72h) < 1000 and min(value where counter == "y", 2h) > 5'
//! every = "1h"        # evaluation period; default: the gcd of the windows
//!
//! [[rule]]
//! id = "three-high"
//! key = ["subscriber_id"]
//! pattern = "HIGH{3} within 10m"
//! define = { HIGH = 'counter == "y" and value > 90' }
//! ```
//!
//! **Conditions** ([`condition`]). At each instant `T`, a multiple of `every`, a term
//! `agg(field where cond, W)` is the aggregate of the key's records with event time in
//! `[T - W, T)` that pass `cond`: the sliding window of size `W` and slide `every` ending
//! at `T`. An empty window has `count` 0 and `sum` 0; its `min`, `max`, `avg`, `first` and
//! `last` are undefined, and a comparison with an undefined side is false (so
//! `min(…) > 5` is false on no data and `not (min(…) > 5)` is true). A bare numeric field
//! is its value in the key's latest record (by event time, before `T`, within the rule's
//! longest window) that has one: a per-key threshold from an enrichment, say.
//! A key is evaluated at every instant `T` whose longest window `[T - span, T)` holds at
//! least one of its records (whatever their counter), when the watermark reaches `T - 1`,
//! like a window firing. An alert fires at `T` when the condition is true at `T` and was not
//! true at `T - every` (an instant with no records counts as false): once per false → true
//! transition. Its time is `T` (the exclusive end of the windows) and it carries every
//! term's and field's value.
//!
//! **Patterns** ([`pattern`]): see that module. One alert per match, timed at the match's
//! last record, with the matched records' times and captured values.
//!
//! Alerts have deterministic ids ([`Alert::id`]), so a sink that upserts by id never
//! duplicates a redelivered alert.

pub mod condition;
pub mod expr;
pub mod pattern;

use crate::error::bounded;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

use crate::duration::parse_ms;
use crate::filter::Filter;
use crate::pipeline::encode_key;
use crate::record::Record;
use crate::spec::InputSpec;
use condition::CondOp;
use expr::Expr;
use pattern::PatOp;

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

/// A condition rule, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionRule {
    pub expr: Expr,
    /// The evaluation period; every window is a multiple of it.
    pub every_ms: i64,
    /// The longest window.
    pub span_ms: i64,
    /// Names of [`Expr::fields`], to label their values in alerts.
    pub field_names: Vec<String>,
}

/// One step of a pattern: a definition, matched `times` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index into [`PatternRule::define`].
    pub def: usize,
    pub times: u32,
}

/// A sequence pattern, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternRule {
    pub steps: Vec<Step>,
    pub within_ms: i64,
    /// Named record conditions (the filter grammar).
    pub define: Vec<(String, Filter)>,
    /// Numeric fields the definitions read, captured for alerts: (field index, name).
    pub captured: Vec<usize>,
    pub captured_names: Vec<String>,
}

/// What a rule evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Condition(ConditionRule),
    Pattern(PatternRule),
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub id: String,
    /// Input field indices of the key.
    pub key: Vec<usize>,
    pub key_names: Vec<String>,
    pub kind: RuleKind,
    /// The rule as written: a reloaded rule with the same text keeps its state.
    pub source: String,
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
                let f = Filter::parse(cond, input)
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

fn collect_fields(f: &Filter, input: &InputSpec, out: &mut Vec<usize>) {
    match f {
        Filter::Cmp { field, .. } => {
            if input.fields[*field].1 == crate::spec::FieldType::Number && !out.contains(field) {
                out.push(*field);
            }
        }
        Filter::And(a, b) | Filter::Or(a, b) => {
            collect_fields(a, input, out);
            collect_fields(b, input, out);
        }
        Filter::Not(a) => collect_fields(a, input, out),
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

/// A record captured by a pattern match.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedEvent {
    pub time: i64,
    /// The step's definition name.
    pub step: String,
    pub values: Vec<(String, Option<f64>)>,
}

/// What a rule emits: a condition turning true, or a pattern match.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: String,
    /// The key's fields and values (`None` for null).
    pub key: Vec<(String, Option<String>)>,
    /// For a condition, the evaluation instant (the windows' exclusive end); for a pattern,
    /// the time of the match's last record. Epoch ms.
    pub time: i64,
    /// A condition's term and field values by their text.
    pub values: Vec<(String, Option<f64>)>,
    /// A pattern's matched records.
    pub events: Vec<MatchedEvent>,
}

fn key_pairs(spec: &RuleSpec, key: &str) -> Vec<(String, Option<String>)> {
    spec.key_names
        .iter()
        .cloned()
        .zip(crate::key::parts(key).map(|p| p.map(std::borrow::Cow::into_owned)))
        .collect()
}

impl Alert {
    fn condition(
        spec: &RuleSpec,
        key: &str,
        time: i64,
        rule: &ConditionRule,
        terms: &[Option<f64>],
        fields: &[Option<f64>],
    ) -> Alert {
        let mut values: Vec<(String, Option<f64>)> = rule
            .expr
            .terms
            .iter()
            .zip(terms)
            .map(|(t, v)| (t.text.clone(), *v))
            .collect();
        values.extend(
            rule.field_names
                .iter()
                .zip(fields)
                .map(|(f, v)| (f.clone(), *v)),
        );
        Alert {
            rule: spec.id.clone(),
            key: key_pairs(spec, key),
            time,
            values,
            events: Vec::new(),
        }
    }

    fn pattern(spec: &RuleSpec, key: &str, p: &PatternRule, events: Vec<pattern::Taken>) -> Alert {
        let time = events.last().map_or(0, |e| e.0);
        Alert {
            rule: spec.id.clone(),
            key: key_pairs(spec, key),
            time,
            values: Vec::new(),
            events: events
                .into_iter()
                .map(|(t, step, vals)| MatchedEvent {
                    time: t,
                    step: p.define[p.steps[step].def].0.clone(),
                    values: p.captured_names.iter().cloned().zip(vals).collect(),
                })
                .collect(),
        }
    }

    /// A deterministic id over the rule, the key, the time and the matched records: the
    /// same alert of the same input always has the same id.
    ///
    /// ```
    /// use eventide_engine::rules::Alert;
    /// let a = Alert { rule: "r".into(), key: vec![("k".into(), Some("a".into()))], time: 10, values: vec![], events: vec![] };
    /// let mut b = a.clone();
    /// assert_eq!(a.id(), b.id());
    /// b.time = 11;
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        feed(self.rule.as_bytes());
        for (_, v) in &self.key {
            // 0xfe is in no UTF-8 text: null differs from every value, `""` included.
            feed(v.as_deref().map_or(&[0xfe][..], str::as_bytes));
        }
        feed(&self.time.to_le_bytes());
        for e in &self.events {
            feed(&e.time.to_le_bytes());
        }
        format!("{h:016x}")
    }

    /// The alert as one JSON object: `id`, `rule`, `key` (field → value), `time`, `values`
    /// (term → value, `null` when undefined) and, for a pattern, `events`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value as J};
        let key: Map<String, J> = self
            .key
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().map_or(J::Null, J::String)))
            .collect();
        let values: Map<String, J> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut o = json!({
            "id": self.id(),
            "rule": self.rule,
            "key": key,
            "time": self.time,
            "values": values,
        });
        if !self.events.is_empty() {
            o["events"] = J::Array(
                self.events
                    .iter()
                    .map(|e| {
                        let vals: Map<String, J> = e
                            .values
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        json!({"time": e.time, "step": e.step, "values": vals})
                    })
                    .collect(),
            );
        }
        o
    }
}

enum Op {
    Cond(CondOp),
    Pat(PatOp),
}

impl Op {
    fn new(spec: RuleSpec) -> Op {
        match spec.kind {
            RuleKind::Condition(_) => Op::Cond(CondOp::new(spec)),
            RuleKind::Pattern(_) => Op::Pat(PatOp::new(spec)),
        }
    }

    fn spec(&self) -> &RuleSpec {
        match self {
            Op::Cond(o) => &o.spec,
            Op::Pat(o) => &o.spec,
        }
    }
}

/// The running rules of a pipeline, with their per-key state.
#[derive(Default)]
pub struct Rules {
    ops: Vec<Op>,
    key: String,
}

impl Rules {
    /// Rules with empty state.
    pub fn new(specs: &[RuleSpec]) -> Self {
        Rules {
            ops: specs.iter().cloned().map(Op::new).collect(),
            key: String::new(),
        }
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The running rules.
    pub fn specs(&self) -> impl Iterator<Item = &RuleSpec> {
        self.ops.iter().map(Op::spec)
    }

    /// Swaps in a new rule set. A rule whose id and text are unchanged keeps its state; a
    /// new or changed rule starts empty (it sees records from now on); a removed rule's
    /// state is dropped. Returns the ids of the rules that (re)started.
    pub fn replace(&mut self, specs: &[RuleSpec]) -> Vec<String> {
        let mut old: HashMap<String, Op> = self
            .ops
            .drain(..)
            .map(|o| (o.spec().id.clone(), o))
            .collect();
        let mut started = Vec::new();
        for s in specs {
            match old.remove(&s.id) {
                Some(o) if o.spec().source == s.source => self.ops.push(o),
                _ => {
                    started.push(s.id.clone());
                    self.ops.push(Op::new(s.clone()));
                }
            }
        }
        started
    }

    /// Adds a record to every rule; `wm` is the watermark before it. With `keep`, only keys
    /// it accepts get state (see [`crate::Pipeline::set_key_filter`]).
    pub fn on_record(&mut self, rec: &Record<'_>, wm: i64, keep: Option<&dyn Fn(&str) -> bool>) {
        let Rules { ops, key, .. } = self;
        for op in ops.iter_mut() {
            encode_key(key, &op.spec().key, rec);
            if keep.is_some_and(|keep| !keep(key)) {
                continue;
            }
            match op {
                Op::Cond(o) => o.on_record(key, rec, wm),
                Op::Pat(o) => o.on_record(key, rec, wm),
            }
        }
    }

    /// Evaluates what the watermark `wm` makes due, handing alerts to `out`.
    pub fn on_watermark(&mut self, wm: i64, out: &mut dyn FnMut(Alert)) {
        for op in self.ops.iter_mut() {
            match op {
                Op::Cond(o) => o.on_watermark(wm, out),
                Op::Pat(o) => o.on_watermark(wm, out),
            }
        }
    }

    /// Per rule: id, keys holding state, records too late for any evaluation.
    pub fn stats(&self) -> Vec<(String, usize, u64)> {
        self.ops
            .iter()
            .map(|o| match o {
                Op::Cond(c) => (c.spec.id.clone(), c.keys(), c.late),
                Op::Pat(p) => (p.spec.id.clone(), p.keys(), p.late),
            })
            .collect()
    }

    /// Calls `out` with (rule index, key, serialized state) for every key of every rule
    /// that holds state, serialized as for [`Rules::restore_key`].
    pub fn snapshot(&self, out: &mut dyn FnMut(usize, &str, Vec<u8>)) {
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Cond(o) => o.snapshot(&mut |k, b| out(i, k, b)),
                Op::Pat(o) => o.snapshot(&mut |k, b| out(i, k, b)),
            }
        }
    }

    /// The (rule index, key) pairs a record updates, rules in [`Rules::specs`] order.
    pub fn keys_of(&self, rec: &Record<'_>) -> Vec<(usize, String)> {
        let mut key = String::new();
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                encode_key(&mut key, &op.spec().key, rec);
                (i, key.clone())
            })
            .collect()
    }

    /// Like [`Rules::on_record`], but leaves out the rules `i` with `skip[i]`: their stored
    /// state already includes this record (a redelivery).
    pub fn on_record_masked(
        &mut self,
        rec: &Record<'_>,
        wm: i64,
        keep: Option<&dyn Fn(&str) -> bool>,
        skip: &[bool],
    ) {
        let Rules { ops, key, .. } = self;
        for (i, op) in ops.iter_mut().enumerate() {
            if skip.get(i).copied().unwrap_or(false) {
                continue;
            }
            encode_key(key, &op.spec().key, rec);
            if keep.is_some_and(|keep| !keep(key)) {
                continue;
            }
            match op {
                Op::Cond(o) => o.on_record(key, rec, wm),
                Op::Pat(o) => o.on_record(key, rec, wm),
            }
        }
    }

    /// Replaces the state of `key` in rule `rule` with a stored one.
    pub fn restore_key(&mut self, rule: &str, key: &str, blob: &[u8]) -> Result<(), String> {
        let op = self
            .ops
            .iter_mut()
            .find(|o| o.spec().id == rule)
            .ok_or_else(|| format!("no rule {rule:?}"))?;
        match op {
            Op::Cond(o) => o.restore_key(key, blob),
            Op::Pat(o) => o.restore_key(key, blob),
        }
    }
}

#[cfg(test)]
mod tests;
