//! Where the consumer's output goes: fired panes, and records set aside (dead letters and
//! late data).

use crate::rows::{DeadLetter, PaneRow};
use crate::{BoxFuture, PortError};

/// A destination of fired panes.
///
/// Every implementation must be idempotent per `batch_id`: a batch that is replayed after a
/// crash writes the same panes (same deterministic pane ids) with the same `batch_id`, and
/// must not duplicate them downstream.
///
/// # Cancel safety
/// A cancelled write may have written part of the batch; the retry overwrites it.
pub trait PaneSink: Send + Sync {
    /// Writes `rows`, fired by the batch named `batch_id`.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the destination refuses the write.
    fn write<'a>(
        &'a self,
        rows: &'a [PaneRow],
        batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
}

/// A destination of records set aside with their reason: malformed records (dead letters)
/// or records too late for an aggregation (late data).
///
/// Idempotent per (shard, first record): a replayed batch overwrites what it wrote.
///
/// # Cancel safety
/// As [`PaneSink`].
pub trait RecordSink: Send + Sync {
    /// Writes the records of one batch of `shard`; does nothing when `records` is empty.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the destination refuses the write.
    fn write<'a>(
        &'a self,
        shard: &'a str,
        records: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), PortError>>;
}
