//! Kinesis: the stream's shards, reading a shard, and writing and administering streams.
//!
//! - [`shards`]: [`list_shards`], and the 128-bit [`hash_key`] Kinesis routes a partition
//!   key by (MD5, big-endian), which the state table stores as `hk`.
//! - [`reader`]: the consumer reads each shard with a [`ShardReader`] (GetRecords polling)
//!   or, with enhanced fan-out, an [`efo::EfoReader`] (SubscribeToShard), starting after
//!   the sequence number checkpointed in its lease or at `TRIM_HORIZON`; [`KinesisSource`]
//!   and [`efo::EfoSource`] are the shard-source port of `eventide-ports` over them, which
//!   de-aggregates KPL records into their user records ([`eventide_ports::kpl`]). A shard
//!   that was split or merged ends with [`Batch::shard_end`], which names the child shards:
//!   their leases become startable once all parents are finished (see
//!   `eventide_runtime::lease`).
//! - [`admin`]: [`put_records`] (the output-stream sink, the ticker, `eventide put`),
//!   [`create_stream_and_wait`], [`update_shard_count_and_wait`] and [`delete_stream`]
//!   (tests and the demo), [`stream_summary`] and [`update_shard_count`] (the autoscaler).
//!
//! Throttled calls are retried with [`crate::sdk::Backoff`].

pub mod admin;
pub mod efo;
pub mod reader;
pub mod shards;

pub use admin::{
    create_stream_and_wait, delete_stream, put_records, stream_summary, update_shard_count,
    update_shard_count_and_wait, PutEntry, PutOutcome, StreamSummary,
};
pub use reader::{
    Batch, KinesisRecord, KinesisSource, ReaderConfig, ShardEnd, ShardReader, StartPosition,
};
pub use shards::{hash_key, list_shards, ShardInfo};
