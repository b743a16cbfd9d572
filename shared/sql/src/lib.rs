//! # Eventide's Flink SQL front end
//!
//! Compiles a subset of Flink SQL into the same [`PipelineSpec`] the TOML format gives: the
//! SQL is translated into the equivalent spec text, which goes through the one validation
//! that every TOML spec goes through, so a query and its TOML twin are the same plan (same
//! rows, same speed). The spec text is what `eventide explain` prints.
//!
//! ```
//! let c = eventide_sql::compile(r#"
//!     CREATE TABLE events (user_id STRING, amount DOUBLE, event_time BIGINT,
//!         ts AS TO_TIMESTAMP_LTZ(event_time, 3),
//!         WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
//!     ) WITH ('connector' = 'filesystem', 'path' = 'events.jsonl', 'format' = 'json');
//!     CREATE TABLE spend (user_id STRING, window_start BIGINT, window_end BIGINT, total DOUBLE)
//!         WITH ('connector' = 'filesystem', 'path' = 'out/', 'format' = 'csv');
//!     INSERT INTO spend
//!     SELECT user_id, window_start, window_end, SUM(amount)
//!     FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
//!     GROUP BY user_id, window_start, window_end;
//! "#).unwrap();
//! assert_eq!(c.spec.aggregations[0].name, "spend");
//! assert!(c.toml.contains(r#"window = { type = "tumbling", size = "1m" }"#));
//! assert_eq!(c.source.path.as_deref(), Some("events.jsonl"));
//! ```
//!
//! What is supported, and how each construct maps onto the spec, is in `docs/sql.md`.
//! Everything else is an error that names the construct, its line and column, and what is
//! supported instead ([`SqlError`]); a query is never silently run as another one.
//!
//! Parsing is sqlparser's (the maintained parser of Apache DataFusion) with a small
//! dialect ([`dialect::FlinkDialect`]) and a bounded, position-preserving pre-pass for the
//! Flink syntax it lacks ([`prepass`]).

mod compile;
pub mod dialect;
mod load;
pub mod prepass;

use eventide_engine::PipelineSpec;

pub use load::{load_pipeline, load_pipeline_text, LoadError, Pipeline, PipelineSource};

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

/// SQL compiled into a pipeline.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The validated pipeline.
    pub spec: PipelineSpec,
    /// The equivalent pipeline spec in TOML: what `eventide explain` prints.
    pub toml: String,
    /// The source table's connector options.
    pub source: SourceOptions,
    /// The output directory of the filesystem sinks (`'path'`), when they give one.
    pub out_dir: Option<String>,
    /// The sinks in the order of their INSERTs: table name and connector options.
    pub sinks: Vec<SinkOptions>,
}

/// Where the source table reads from (its `WITH` options).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceOptions {
    /// `'connector'`: `filesystem` or `kinesis`.
    pub connector: String,
    /// `'path'` of a filesystem source.
    pub path: Option<String>,
    /// A Kinesis source: `'stream'` (or the stream name in `'stream.arn'`).
    pub stream: Option<String>,
    /// `'aws.region'`.
    pub region: Option<String>,
    /// `'source.init.position'` / `'scan.stream.initpos'` (`LATEST`, `TRIM_HORIZON`, `AT_TIMESTAMP`).
    pub init_position: Option<String>,
}

/// A sink table's connector options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkOptions {
    pub table: String,
    /// `'connector'`: `filesystem`, `dynamodb`, `s3` or `kinesis`.
    pub connector: String,
    /// The other options, as written.
    pub options: Vec<(String, String)>,
}

/// Compiles Flink SQL text into a pipeline.
///
/// # Errors
///
/// Text over [`MAX_SQL_BYTES`] or nested deeper than [`MAX_NESTING`], a syntax error, a
/// construct outside the supported subset, or a pipeline the spec's validation refuses;
/// each names its line and column where it has one.
pub fn compile(text: &str) -> Result<Compiled, SqlError> {
    compile::compile(text)
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
