//! Error types of the engine core.

use thiserror::Error;

/// A pipeline spec that cannot run, naming the field and the reason.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpecError {
    /// The spec is not valid TOML or does not have the expected shape.
    #[error("pipeline spec is not valid: {}", bounded(.0))]
    Syntax(String),
    /// A field has a value the engine cannot use.
    #[error("pipeline spec field `{}`: {}", bounded(field), bounded(reason))]
    Invalid { field: String, reason: String },
}

impl SpecError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Checks a name that becomes an output file or a lookup name (`<path>.name`): non-empty,
    /// letters, digits, `_` and `-` only.
    pub(crate) fn check_name(path: &str, name: &str) -> Result<(), SpecError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(SpecError::invalid(
                format!("{path}.name"),
                "must be non-empty and use only letters, digits, '_' and '-'",
            ));
        }
        Ok(())
    }
}

/// A record that cannot be processed. It goes to the dead-letter output with this reason.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RecordError {
    #[error("not valid JSON: {0}")]
    Json(String),
    /// A CSV row that is not one row of the declared columns.
    #[error("not a valid CSV row: {0}")]
    Csv(String),
    #[error("missing field `{0}`")]
    Missing(String),
    #[error("field `{field}`: {reason}")]
    Field { field: String, reason: String },
    #[error("control line: {0}")]
    Control(String),
    /// Dropped on purpose by an enrichment whose `on_miss` is `drop`: counted, not a dead
    /// letter.
    #[error("dropped: {0}")]
    Dropped(String),
    /// An aggregation's filter or an aggregate's expression or `FILTER` has no value for the
    /// record: an integer division or modulo by zero, which fails a Flink job. No
    /// aggregation sees the record.
    #[error("aggregation `{aggregation}`: {reason} in `{}`", bounded(expr))]
    Expr {
        aggregation: String,
        expr: String,
        reason: String,
    },
    /// Dated too far ahead of processing time (see [`crate::watermark::FutureGuard`]).
    #[error(
        "event time {event} is {ahead} ahead of processing time {processing}, more than \
         [watermark] max_future_skew = \"{max}\" (raise it, or set it to \"off\")"
    )]
    Future {
        event: String,
        ahead: String,
        processing: String,
        max: String,
    },
}

/// Key state that cannot be stored or restored. `aggregation` names the aggregation, or the
/// rule, that holds it.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("state of aggregation {aggregation} key {key:?}: {reason}")]
pub struct StateError {
    pub aggregation: String,
    pub key: String,
    pub reason: String,
}

/// Most characters of input text that an error message quotes.
pub const EXCERPT_CHARS: usize = 80;

/// Input text as an error quotes it: at most [`EXCERPT_CHARS`] characters, debug-quoted,
/// with the size of what was left out, so that a 1 GB line makes a short message.
///
/// ```
/// use eventide_engine::error::excerpt;
/// assert_eq!(excerpt("lots"), "\"lots\"");
/// let long = "x".repeat(1_000);
/// assert_eq!(excerpt(&long), format!("{:?}… (1000 bytes)", "x".repeat(80)));
/// ```
pub fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// Most bytes of an error message part (a field path, a reason) that are shown.
pub const MESSAGE_BYTES: usize = 400;

/// An error message part as shown: whole when short, else its start and its end (where
/// the hint usually is) around the size of what was left out, so that a spec value of
/// 1 MB quoted in a reason makes a short message.
///
/// ```
/// use eventide_engine::error::bounded;
/// assert_eq!(bounded("short"), "short");
/// let long = format!("bad {:?}; use json", "x".repeat(10_000));
/// let shown = bounded(&long);
/// assert!(shown.len() < 500 && shown.ends_with("; use json"), "{shown}");
/// ```
pub fn bounded(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MESSAGE_BYTES {
        return s.into();
    }
    let mut head = MESSAGE_BYTES / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - MESSAGE_BYTES / 4;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}… ({} bytes left out) …{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
    .into()
}
