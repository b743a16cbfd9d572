//! Errors of the AWS adapters.

use thiserror::Error;

/// An AWS call failed, or what it returned cannot be used.
#[derive(Debug, Error)]
pub enum AwsError {
    /// A service call failed; `op` names the call and the resource.
    #[error("{op}: {message}")]
    Service { op: String, message: String },
    /// A conditional write lost: another writer (e.g. a newer lease owner) got there first.
    #[error("{op}: condition failed ({what})")]
    Conflict { op: String, what: String },
    /// Stored data that cannot be decoded.
    #[error("{what}: {message}")]
    Corrupt { what: String, message: String },
    /// A string that should be an `s3://` location is not one.
    #[error(transparent)]
    Url(#[from] crate::sdk::s3::S3UrlError),
    /// A local enrichment table that cannot be read or loaded; the message names the file.
    #[error(transparent)]
    TableFile(#[from] eventide_connectors::tables::TableFileError),
}

impl AwsError {
    /// A service error from any SDK error, with the operation named and the full cause chain.
    pub fn service<E: std::error::Error>(op: impl Into<String>, err: E) -> Self {
        AwsError::Service {
            op: op.into(),
            message: aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string(),
        }
    }
}
