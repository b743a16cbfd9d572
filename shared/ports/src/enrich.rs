//! Enrichment tables that change while the consumer runs (slow tables reloaded in the
//! background, live lookups).

use eventide_engine::enrich::Snapshot;
use eventide_engine::record::Record;

use crate::{BoxFuture, PortError};

/// The tables a batch is enriched with: one version of each for the whole batch.
///
/// # Cancel safety
/// Reads only (live lookups fill a cache).
pub trait Enrichment: Send + Sync {
    /// The tables for a batch whose events are `records`, decoded once by the consumer's
    /// codec and not enriched yet (live lookups fetch the keys these records need).
    ///
    /// # Errors
    /// A lookup that fails ([`PortError::Unavailable`]): retry the batch.
    fn snapshot_for_batch<'a, 'r: 'a>(
        &'a self,
        records: &'a [&'a Record<'r>],
    ) -> BoxFuture<'a, Result<Snapshot, PortError>>;
}
