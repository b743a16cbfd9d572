//! # Eventide connectors
//!
//! Local sources and sinks, one connector per file behind one trait each:
//! * [`lines`]: the one line splitter of every local reader;
//! * [`sources`]: where lines come from, behind one trait ([`sources::file`]: one plain file
//!   or stdin, streamed);
//! * [`input`]: the file layer, a source of its own: files, directories and globs, gzip and
//!   zip, header and footer framing;
//! * [`sinks`]: where panes go ([`sinks::csv`], [`sinks::jsonl`]), plus the dead-letter and
//!   late-data outputs ([`sinks::dead_letter`]);
//! * [`replay`]: `eventide replay`, the engine over a file with no AWS at all, in one of
//!   its executions ([`replay::by_key`], [`replay::lanes`], [`replay::streaming`]);
//! * [`rules_file`]: a local rules file, reloaded when it changes;
//! * [`tables`]: enrichment tables from local files, and the table formats (CSV, JSON
//!   lines, Parquet) that the AWS adapters read S3 objects with too.

pub mod error;
pub mod format;
pub mod input;
pub mod lines;
pub mod replay;
pub mod rules_file;
pub mod sinks;
pub mod sources;
pub mod tables;

pub use error::ConnectorError;
