//! The error every port returns.

use thiserror::Error;

/// A port call failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PortError {
    /// A conditional write lost: another writer (a newer lease owner, another Lambda
    /// container) got there first. The caller's view is stale; it must reload or stop.
    #[error("{op}: condition failed ({what})")]
    Conflict { op: String, what: String },
    /// The call failed (network, throttling, service error); it may be retried.
    #[error("{op}: {message}")]
    Unavailable { op: String, message: String },
    /// Stored data that cannot be decoded.
    #[error("{what}: {message}")]
    Corrupt { what: String, message: String },
}

impl PortError {
    /// True for [`PortError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, PortError::Conflict { .. })
    }
}
