//! Enrichment tables that change while the consumer runs (slow tables reloaded in the
//! background, live lookups).

use eventide_engine::enrich::Snapshot;

use crate::{BoxFuture, PortError};

/// The tables a batch is enriched with: one version of each for the whole batch.
///
/// # Cancel safety
/// Reads only (live lookups fill a cache).
pub trait Enrichment: Send + Sync {
    /// The tables for a batch of `lines` (live lookups fetch the keys these lines need).
    ///
    /// # Errors
    /// A lookup that fails ([`PortError::Unavailable`]): retry the batch.
    fn snapshot_for_batch<'a>(
        &'a self,
        lines: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Snapshot, PortError>>;
}
