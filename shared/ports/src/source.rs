//! The shard source: a stream's shards and the records of each, from a position.

use crate::shard::ShardInfo;
use crate::{BoxFuture, PortError};

/// One record as the consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRecord {
    /// Its position: a decimal string, increasing within a shard. Compare by length, then
    /// lexically, never as plain strings of different lengths.
    pub sequence_number: String,
    /// The partition key it was put with.
    pub partition_key: String,
    /// The payload.
    pub data: Vec<u8>,
    /// When the stream received it (Kinesis' `ApproximateArrivalTimestamp`), epoch ms.
    pub arrival_ms: Option<i64>,
}

/// What one [`ShardReader::next_batch`] returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceBatch {
    /// The records, in shard order (possibly none).
    pub records: Vec<InputRecord>,
    /// How far behind the tip of the shard this batch is, in ms.
    pub millis_behind_latest: Option<i64>,
    /// `Some` once the shard is closed and read to its end: the shards that continue its
    /// hash-key range (a split: 2, a merge: 1). Later calls return it again.
    pub shard_end: Option<Vec<String>>,
}

/// Reads one shard, in order.
pub trait ShardReader: Send {
    /// The next records of the shard, possibly none (the caller decides how often to poll).
    ///
    /// # Errors
    /// A failed read that its retries did not overcome.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled call returns nothing and moves no position.
    fn next_batch(&mut self) -> BoxFuture<'_, Result<SourceBatch, PortError>>;
}

/// A stream of shards (Kinesis).
pub trait ShardSource: Send + Sync {
    /// Every shard of the stream, open and closed, with its parents and hash-key range.
    ///
    /// # Errors
    /// A failed listing.
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, PortError>>;

    /// A reader of `shard` from right after `checkpoint` (a position, or
    /// [`TRIM_HORIZON`](crate::lease::TRIM_HORIZON)), returning at most `limit` records
    /// per batch. Makes no call yet.
    fn open(&self, shard: &str, checkpoint: &str, limit: usize) -> Box<dyn ShardReader>;
}
