//! The shard source: a stream's shards and the records of each, from a position.

use std::cmp::Ordering;

use crate::shard::ShardInfo;
use crate::{BoxFuture, PortError};

/// One record as the consumer sees it: a plain Kinesis record, or one user record of a KPL
/// aggregate (see [`crate::kpl`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRecord {
    /// The Kinesis record's sequence number: a decimal string, increasing within a shard.
    /// Compare with [`cmp_seq`], never as plain strings of different lengths.
    pub sequence_number: String,
    /// For a user record of a KPL aggregate, its index in the aggregate (the KCL's
    /// sub-sequence number); `None` for a plain record.
    pub sub_sequence_number: Option<u32>,
    /// The partition key it was put with (a user record's own).
    pub partition_key: String,
    /// The payload.
    pub data: Vec<u8>,
    /// When the stream received it (Kinesis' `ApproximateArrivalTimestamp`), epoch ms.
    pub arrival_ms: Option<i64>,
    /// Set by the source when it cannot frame the record (a corrupt KPL aggregate): the
    /// reason. The consumer sets the record aside as a dead letter with its original bytes.
    pub malformed: Option<String>,
}

impl InputRecord {
    /// A plain record.
    pub fn new(
        sequence_number: impl Into<String>,
        partition_key: impl Into<String>,
        data: Vec<u8>,
        arrival_ms: Option<i64>,
    ) -> Self {
        InputRecord {
            sequence_number: sequence_number.into(),
            sub_sequence_number: None,
            partition_key: partition_key.into(),
            data,
            arrival_ms,
            malformed: None,
        }
    }

    /// Its position in the shard: the sequence number, followed by `:<sub-sequence number>`
    /// for a user record of an aggregate. Positions order with [`cmp_position`].
    ///
    /// ```
    /// use eventide_ports::source::InputRecord;
    /// let mut r = InputRecord::new("4960", "k", vec![], None);
    /// assert_eq!(r.position(), "4960");
    /// r.sub_sequence_number = Some(3);
    /// assert_eq!(r.position(), "4960:3");
    /// ```
    pub fn position(&self) -> String {
        match self.sub_sequence_number {
            None => self.sequence_number.clone(),
            Some(sub) => format!("{}:{sub}", self.sequence_number),
        }
    }
}

/// Compares Kinesis sequence numbers: decimal strings of up to 128 bits or more.
pub fn cmp_seq(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compares positions ([`InputRecord::position`]): by sequence number, then by
/// sub-sequence number (a plain record's position, with none, comes first).
///
/// ```
/// use std::cmp::Ordering;
/// use eventide_ports::source::cmp_position;
/// assert_eq!(cmp_position("99", "100"), Ordering::Less);
/// assert_eq!(cmp_position("100:2", "100:10"), Ordering::Less);
/// assert_eq!(cmp_position("100:10", "101"), Ordering::Less);
/// assert_eq!(cmp_position("100:0", "100:0"), Ordering::Equal);
/// ```
pub fn cmp_position<'a>(a: &'a str, b: &'a str) -> Ordering {
    let split = |p: &'a str| match p.split_once(':') {
        Some((seq, sub)) => (seq, Some(sub)),
        None => (p, None),
    };
    let ((seq_a, sub_a), (seq_b, sub_b)) = (split(a), split(b));
    // Sub-sequence numbers are decimal too; a plain record's (none) comes first.
    cmp_seq(seq_a, seq_b).then_with(|| match (sub_a, sub_b) {
        (Some(x), Some(y)) => cmp_seq(x, y),
        (x, y) => x.is_some().cmp(&y.is_some()),
    })
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
    /// KPL aggregates are expanded into their user records ([`crate::kpl::deaggregate`]),
    /// and a batch never ends inside one: the caller checkpoints the last record's sequence
    /// number.
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
