//! Sinks for fired panes: a DynamoDB results table ([`dynamodb`]), JSON lines in S3
//! partitioned Glue/Athena style ([`s3`]) and an output Kinesis stream ([`kinesis`]).
//!
//! The engine hands sinks borrowed [`Pane`](eventide_engine::pane::Pane)s; a consumer turns each into an owned
//! [`PaneRow`] (the same JSON shape as the local `jsonl` sink of `eventide-connectors`) and
//! writes a batch of rows with the sink's `write(&rows, batch_id)`. Every sink is
//! idempotent for a redelivered batch, which the exactly-once design relies on
//! (`docs/aws-runtime.md`, step 4): DynamoDB upserts by key, window and pane; S3 object
//! names derive from `batch_id` (e.g. shard and first sequence number); Kinesis consumers
//! de-duplicate by `pane_id`.

pub mod dynamodb;
pub mod kinesis;
pub mod s3;

pub use dynamodb::DynamoDbSink;
pub use kinesis::KinesisSink;
pub use s3::S3Sink;

pub use eventide_ports::rows::PaneRow;
