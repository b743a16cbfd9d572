//! Why SQL text does not compile, and the bounds of the parser.

/// The largest SQL text accepted, in bytes (1 MiB).
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// The deepest nesting of expressions and queries the parser follows (sqlparser's
/// recursion limit). Deeper input is an error naming this constant, never a stack overflow.
pub const MAX_NESTING: usize = 64;

/// Why SQL text does not compile into a pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// A construct at a place in the text: outside the supported subset, or invalid.
    #[error("line {line}, column {column}: {message}")]
    At {
        line: u64,
        column: u64,
        message: String,
    },
    /// A problem with no single place (the text as a whole).
    #[error("{0}")]
    Other(String),
}

/// An error at the start of `span`.
pub(crate) fn at(span: sqlparser::tokenizer::Span, message: impl Into<String>) -> SqlError {
    SqlError::At {
        line: span.start.line,
        column: span.start.column,
        message: message.into(),
    }
}

/// A sqlparser error with its position as a [`SqlError::At`].
pub(crate) fn parser_error(e: sqlparser::parser::ParserError) -> SqlError {
    use sqlparser::parser::ParserError;
    match e {
        ParserError::RecursionLimitExceeded => SqlError::Other(format!(
            "the SQL nests deeper than {MAX_NESTING} levels (eventide_sql::MAX_NESTING)"
        )),
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => located(&m),
    }
}

/// Splits sqlparser's `… at Line: L, Column: C` into a position and a message.
fn located(message: &str) -> SqlError {
    if let Some(at) = message.rfind(" at Line: ") {
        let rest = &message[at + " at Line: ".len()..];
        if let Some((l, c)) = rest.split_once(", Column: ") {
            if let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse()) {
                return SqlError::At {
                    line,
                    column,
                    message: format!("syntax error: {}", &message[..at]),
                };
            }
        }
    }
    SqlError::Other(format!("syntax error: {message}"))
}
