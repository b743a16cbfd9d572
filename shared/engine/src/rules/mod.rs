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

pub mod alert;
pub mod compile;
pub mod condition;
pub mod dispatch;
pub mod expr;
pub mod model;
pub mod pattern;

pub use alert::{Alert, MatchedEvent};
pub use compile::{compile_rules, parse_rules, RawRule, RuleError, MAX_INSTANTS_PER_WINDOW};
pub use dispatch::Rules;
pub use model::{ConditionRule, PatternRule, RuleKind, RuleSpec, Step};

#[cfg(test)]
mod tests;
