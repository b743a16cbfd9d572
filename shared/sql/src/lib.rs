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
    /// The consumer's AWS sinks that the sink tables name.
    pub aws: AwsSinks,
}

/// The AWS sinks of the consumer as the SQL's sink tables name them. The consumer writes
/// every INSERT's rows to its results table and its S3 panes, and to its output stream when
/// it has one (see `docs/aws-runtime.md`); a sink table names which ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsSinks {
    /// `'connector' = 'dynamodb'`, `'table-name'`: the results table.
    pub results_table: Option<String>,
    /// `'connector' = 'filesystem'` with an `s3://bucket/prefix` `'path'`: where the panes go.
    pub s3_path: Option<String>,
    /// `'connector' = 'kinesis'`, `'stream'` (or the name in `'stream.arn'`): the output stream.
    pub output_stream: Option<String>,
    /// `'aws.region'` of the sinks.
    pub region: Option<String>,
}

impl AwsSinks {
    /// Checks the sinks against a consumer's own and fills in what the SQL names: the
    /// results table, and the output stream when the command line gives none. The panes'
    /// S3 location is fixed (`s3://<bucket>/<panes prefix>/`), so an S3 sink must name it.
    ///
    /// ```
    /// let sinks = eventide_sql::AwsSinks {
    ///     results_table: Some("rollups".into()),
    ///     output_stream: Some("alerts".into()),
    ///     ..Default::default()
    /// };
    /// let (mut table, mut stream) = ("demo-results".to_string(), None);
    /// sinks.apply(&mut table, "demo-data", "panes", &mut stream, Some("eu-west-1")).unwrap();
    /// assert_eq!((table.as_str(), stream.as_deref()), ("rollups", Some("alerts")));
    /// ```
    ///
    /// # Errors
    ///
    /// An S3 path other than the consumer's pane location, an output stream other than the
    /// one the command line gives, or a region other than the consumer's.
    pub fn apply(
        &self,
        results_table: &mut String,
        bucket: &str,
        panes_prefix: &str,
        output_stream: &mut Option<String>,
        region: Option<&str>,
    ) -> Result<(), String> {
        if let (Some(want), Some(have)) = (&self.region, region) {
            if want != have {
                return Err(format!(
                    "the pipeline's sinks are in 'aws.region' = '{want}', and the consumer runs \
                     against {have} (AWS_REGION); set AWS_REGION={want}"
                ));
            }
        }
        if let Some(p) = &self.s3_path {
            let here = format!("s3://{bucket}/{panes_prefix}");
            if p.trim_end_matches('/') != here {
                return Err(format!(
                    "the S3 sink's 'path' = '{p}', and the consumer writes its panes under \
                     {here}/ (the deployment's data bucket); name that path"
                ));
            }
        }
        if let Some(s) = &self.output_stream {
            match output_stream {
                Some(given) if given != s => {
                    return Err(format!(
                        "the kinesis sink names stream '{s}', and the consumer is given \
                         --output-stream {given}; give the same stream or leave one out"
                    ))
                }
                _ => *output_stream = Some(s.clone()),
            }
        }
        if let Some(t) = &self.results_table {
            *results_table = t.clone();
        }
        Ok(())
    }
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
