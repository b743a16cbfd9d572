//! The compiled model of a rule, as [`super::compile`] validates it and the operators run
//! it.

use super::expr::Expr;
use crate::filter::Filter;

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
