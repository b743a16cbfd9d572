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

mod catalog;
mod compile;
pub mod dialect;
mod error;
mod expr;
mod extensions;
mod load;
mod over;
mod plan;
pub mod prepass;
mod syntax;

pub use error::{SqlError, MAX_NESTING, MAX_SQL_BYTES};
pub use extensions::MAX_RULES_BYTES;
pub use load::{load_pipeline, load_pipeline_text, LoadError, Pipeline, PipelineSource};
pub use plan::{AwsRoute, AwsSink, AwsSinks, Compiled, SinkOptions, SourceOptions};

/// Compiles Flink SQL text into a pipeline. A rules file that the text names (`SET
/// 'eventide.rules' = 'file'`) is read relative to the working directory;
/// [`load_pipeline`] reads it relative to the SQL file.
///
/// # Errors
///
/// Text over [`MAX_SQL_BYTES`] or nested deeper than [`MAX_NESTING`], a syntax error, a
/// construct outside the supported subset, an unreadable rules file, or a pipeline the
/// spec's validation refuses; each names its line and column where it has one.
pub fn compile(text: &str) -> Result<Compiled, SqlError> {
    compile::compile(text, extensions::RulesBase::Dir(std::path::Path::new("")))
}
