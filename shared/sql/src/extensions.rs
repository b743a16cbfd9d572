//! Eventide's own SQL options, for what Flink SQL has no syntax for: Beam-style triggers and
//! accumulation modes, framed and compressed input files, a decoder of your own, and rules.
//!
//! They extend Flink SQL the way Flink does, through `SET` keys and connector `WITH`
//! options, and every one is named `eventide.…` so that it cannot be taken for one of
//! Flink's (whose meaning never changes):
//!
//! | option | spec |
//! |---|---|
//! | `SET 'eventide.trigger' = '<trigger expression>'` | `trigger = "…"` (parsed by the engine's trigger parser) |
//! | `SET 'eventide.accumulation' = 'discarding' \| 'accumulating' \| 'retracting'` | `accumulation` |
//! | `SET 'eventide.on-time' = 'always' \| 'if_non_empty'` | `on_time` |
//! | `SET 'eventide.allowed-lateness' = '<duration>'` | `allowed_lateness` |
//! | `SET 'eventide.rules' = '<rules file>'` | the file's `[[rule]]` tables (the whole job) |
//! | source `'eventide.compression'`, `'eventide.header-lines'`, `'eventide.footer-pattern'`, `'eventide.max-entry-bytes'`, `'eventide.max-line-bytes'` | `[input]` `compression`, `header_lines`, `footer`, `max_entry_bytes`, `max_line_bytes` |
//! | source `'format' = 'custom'` | records decoded by a `Decoder` attached with `PipelineSpec::with_decoder` |
//!
//! The trigger options apply, as Flink's `SET` does, to the INSERTs that follow them; the
//! rules apply to the whole job. See `docs/sql.md`, "Eventide's options".

use std::fmt::Write as _;
use std::path::Path;

use eventide_engine::duration::format_ms;
use eventide_engine::trigger::Trigger;
use sqlparser::tokenizer::Span;

use crate::error::{at, SqlError};

/// Every `SET 'eventide.…'` key.
pub(crate) const SET_KEYS: &[&str] = &[
    "eventide.trigger",
    "eventide.accumulation",
    "eventide.on-time",
    "eventide.allowed-lateness",
    "eventide.rules",
];

/// The source table's `eventide.…` file options and the `[input]` keys they set.
const FILE_OPTIONS: &[(&str, &str)] = &[
    ("eventide.compression", "compression"),
    ("eventide.header-lines", "header_lines"),
    ("eventide.footer-pattern", "footer"),
    ("eventide.max-entry-bytes", "max_entry_bytes"),
    ("eventide.max-line-bytes", "max_line_bytes"),
];

/// The largest rules file read, in bytes (1 MiB).
pub const MAX_RULES_BYTES: u64 = 1 << 20;

/// A setting with the position of its `SET`.
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    span: Span,
}

/// The trigger options in effect at one point of the text: each INSERT takes those of the
/// `SET`s before it.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmitOptions {
    trigger: Option<At<String>>,
    accumulation: Option<At<&'static str>>,
    on_time: Option<At<&'static str>>,
    allowed_lateness: Option<At<i64>>,
}

impl EmitOptions {
    /// The first option set, if any: the place a conflict is reported at.
    fn first_set(&self) -> Option<(&'static str, Span)> {
        [
            self.trigger.as_ref().map(|t| ("eventide.trigger", t.span)),
            self.accumulation
                .as_ref()
                .map(|t| ("eventide.accumulation", t.span)),
            self.on_time.as_ref().map(|t| ("eventide.on-time", t.span)),
            self.allowed_lateness
                .as_ref()
                .map(|t| ("eventide.allowed-lateness", t.span)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(_, s)| (s.start.line, s.start.column))
    }

    /// The aggregation's trigger lines, or `None` when no option is set (then Flink's emit
    /// options, or the defaults, apply). `flink` names a Flink emit option in effect, which
    /// these options may not be combined with.
    pub(crate) fn toml(&self, flink: Option<&str>) -> Result<Option<String>, SqlError> {
        let Some((key, span)) = self.first_set() else {
            return Ok(None);
        };
        if let Some(f) = flink {
            return Err(at(
                span,
                format!(
                    "SET '{key}' and SET '{f}' both shape this INSERT's panes: Flink's emit \
                     options fix the accumulation (retracting) and the on-time pane \
                     (if_non_empty), Eventide's set them freely; use one or the other \
                     (e.g. 'eventide.trigger' = 'watermark(early = after(1m), late = count(1))')"
                ),
            ));
        }
        let mut out = String::new();
        if let Some(t) = &self.trigger {
            let _ = writeln!(out, "trigger = {}", crate::syntax::q(&t.value));
        }
        if let Some(l) = &self.allowed_lateness {
            let _ = writeln!(
                out,
                "allowed_lateness = {}",
                crate::syntax::q(&format_ms(l.value))
            );
        }
        if let Some(a) = &self.accumulation {
            let _ = writeln!(out, "accumulation = \"{}\"", a.value);
        }
        if let Some(o) = &self.on_time {
            let _ = writeln!(out, "on_time = \"{}\"", o.value);
        }
        Ok(Some(out))
    }
}

/// The job-wide options: the rules file.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobOptions {
    pub(crate) rules: Option<(String, Span)>,
}

/// The `SET 'eventide.…'` statements of a text, in order.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) emit: EmitOptions,
    pub(crate) job: JobOptions,
    /// The last trigger option set, until an INSERT takes it.
    pending: Option<(String, Span)>,
}

impl Settings {
    /// Applies `SET key = value` when `key` is an `eventide.` key; returns false for
    /// others. `value_span` is the position of the quoted value.
    ///
    /// # Errors
    ///
    /// An unknown `eventide.` key, or a value that is not valid for it (a trigger
    /// expression's error names its column in the text).
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: &str,
        span: Span,
        value_span: Span,
    ) -> Result<bool, SqlError> {
        if !key.starts_with("eventide.") {
            return Ok(false);
        }
        match key {
            "eventide.trigger" => {
                Trigger::parse(value).map_err(|e| {
                    // The value's text starts one column after its opening quote.
                    let column = if value.contains('\n') {
                        value_span.start.column
                    } else {
                        value_span.start.column + u64::try_from(e.column).unwrap_or(0)
                    };
                    SqlError::At {
                        line: value_span.start.line,
                        column,
                        message: format!(
                            "SET 'eventide.trigger': {} in the trigger expression {value:?} \
                             (grammar in docs/pipeline-spec.md, \"Triggers\")",
                            e.reason
                        ),
                    }
                })?;
                self.emit.trigger = Some(At {
                    value: value.to_string(),
                    span,
                });
            }
            "eventide.accumulation" => {
                let v = match value {
                    "discarding" => "discarding",
                    "accumulating" => "accumulating",
                    "retracting" => "retracting",
                    _ => {
                        return Err(at(
                            value_span,
                            format!(
                                "SET 'eventide.accumulation' = '{value}': use 'discarding', \
                                 'accumulating' or 'retracting'"
                            ),
                        ))
                    }
                };
                self.emit.accumulation = Some(At { value: v, span });
            }
            "eventide.on-time" => {
                let v = match value {
                    "always" => "always",
                    "if_non_empty" => "if_non_empty",
                    _ => {
                        return Err(at(
                            value_span,
                            format!(
                                "SET 'eventide.on-time' = '{value}': use 'always' (an on-time \
                                 pane even with nothing new) or 'if_non_empty'"
                            ),
                        ))
                    }
                };
                self.emit.on_time = Some(At { value: v, span });
            }
            "eventide.allowed-lateness" => {
                let ms = crate::syntax::duration_setting(key, value, value_span)?;
                if ms < 0 {
                    return Err(at(
                        value_span,
                        "'eventide.allowed-lateness' must not be negative",
                    ));
                }
                self.emit.allowed_lateness = Some(At { value: ms, span });
            }
            "eventide.rules" => {
                if let Some((_, first)) = &self.job.rules {
                    return Err(at(
                        span,
                        format!(
                            "'eventide.rules' is set twice (first at line {}, column {}); a job \
                             has one rules file",
                            first.start.line, first.start.column
                        ),
                    ));
                }
                if value.trim().is_empty() {
                    return Err(at(value_span, "'eventide.rules' names a rules file"));
                }
                self.job.rules = Some((value.to_string(), span));
                return Ok(true);
            }
            _ => {
                return Err(at(
                    span,
                    format!(
                        "SET '{key}' is not an Eventide option; Eventide's are {}",
                        SET_KEYS.join(", ")
                    ),
                ))
            }
        }
        self.pending = Some((key.to_string(), span));
        Ok(true)
    }

    /// The trigger options for the INSERT that comes now.
    pub(crate) fn take_for_insert(&mut self) -> EmitOptions {
        self.pending = None;
        self.emit.clone()
    }

    /// A trigger option set after the last INSERT applies to nothing: an error, never a
    /// silently ignored setting.
    pub(crate) fn check_all_used(&self) -> Result<(), SqlError> {
        match &self.pending {
            Some((key, span)) => Err(at(
                *span,
                format!(
                    "SET '{key}' comes after the last INSERT: like Flink's SET, an Eventide \
                     trigger option applies to the INSERTs that follow it; move it before them"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The `[input]` lines of the source's `eventide.…` file options (empty without any).
///
/// `option` gives an option's value and position (only a filesystem source accepts them).
///
/// # Errors
///
/// A value of the wrong kind, at its position.
pub(crate) fn file_options_toml(
    option: impl Fn(&str) -> Option<(String, Span)>,
) -> Result<String, SqlError> {
    let mut out = String::new();
    for (key, field) in FILE_OPTIONS {
        let Some((v, span)) = option(key) else {
            continue;
        };
        let number = |v: &str| -> Result<u64, SqlError> {
            v.trim()
                .parse()
                .map_err(|_| at(span, format!("'{key}' = '{v}': expected a whole number")))
        };
        match *field {
            "compression" => match v.as_str() {
                "auto" | "none" | "gzip" | "zip" => {
                    let _ = writeln!(out, "compression = \"{v}\"");
                }
                _ => {
                    return Err(at(
                        span,
                        format!(
                            "'{key}' = '{v}': use 'zip', 'gzip', 'none' or 'auto' (by the file \
                             name's extension, the default)"
                        ),
                    ))
                }
            },
            "footer" => {
                let _ = writeln!(out, "footer = {{ pattern = {} }}", crate::syntax::q(&v));
            }
            other => {
                let _ = writeln!(out, "{other} = {}", number(&v)?);
            }
        }
    }
    Ok(out)
}

/// The source option that a spec validation error about `[input]` is about, if any.
pub(crate) fn file_option_of(spec_error: &str) -> Option<&'static str> {
    FILE_OPTIONS
        .iter()
        .find(|(_, field)| spec_error.contains(&format!("input.{field}")))
        .map(|(key, _)| *key)
}

/// Where a rules file is read from: the directory of the SQL file (or the working
/// directory), or nowhere (a pipeline loaded from S3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum RulesBase<'a> {
    Dir(&'a Path),
    /// Why no file can be read.
    None(&'a str),
}

/// The text of the rules file `name` (relative to `base`), checked to hold only `[[rule]]`
/// tables, so that it can follow the compiled spec.
///
/// # Errors
///
/// A file that cannot be read, is larger than [`MAX_RULES_BYTES`], is not TOML or holds
/// anything but `[[rule]]` tables; each at the `SET`'s position.
pub(crate) fn read_rules(name: &str, span: Span, base: RulesBase<'_>) -> Result<String, SqlError> {
    let dir = match base {
        RulesBase::Dir(d) => d,
        RulesBase::None(why) => {
            return Err(at(span, format!("SET 'eventide.rules' = '{name}': {why}")))
        }
    };
    if name.contains("://") {
        return Err(at(
            span,
            format!(
                "SET 'eventide.rules' = '{name}': the rules file is a local file, read when the \
                 pipeline loads; rules on S3, reloaded when they change, are the consumer's \
                 --rules-s3 (EVENTIDE_RULES_S3)"
            ),
        ));
    }
    let path = dir.join(name);
    let shown = path.display();
    let len = std::fs::metadata(&path)
        .map_err(|e| at(span, format!("cannot read the rules file {shown}: {e}")))?
        .len();
    if len > MAX_RULES_BYTES {
        return Err(at(
            span,
            format!(
                "the rules file {shown} is {len} bytes, more than {MAX_RULES_BYTES} \
                 (eventide_sql::MAX_RULES_BYTES)"
            ),
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| at(span, format!("cannot read the rules file {shown}: {e}")))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| at(span, format!("rules file {shown}: {}", e.message())))?;
    if let Some(k) = table.keys().find(|k| *k != "rule") {
        return Err(at(
            span,
            format!(
                "rules file {shown}: `{k}` is not a rule; a rules file holds only [[rule]] tables"
            ),
        ));
    }
    Ok(text)
}
