//! Errors of local connectors.

use std::path::PathBuf;

use thiserror::Error;

/// A connector failed; the message names the file.
#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spec(#[from] eventide_engine::SpecError),
    /// A rules file that cannot be used (rule, field, column and reason).
    #[error("{0}")]
    Rules(String),
    /// An input file that cannot be read as `[input]` says (a corrupt archive, a gzip that
    /// ends early, a footer missing or disagreeing, a line too long): the message names the
    /// file, the zip entry and the line where they apply.
    #[error("{place}: {reason}")]
    Input { place: String, reason: String },
    /// A replay option that this input or pipeline can't use.
    #[error("{0}")]
    Unsupported(String),
}
