//! # Eventide ports
//!
//! The shard consumer (`eventide-runtime`) talks to the outside world only through the
//! small traits of this crate, and the AWS adapters (`eventide-aws`) implement them. The
//! plain data types that cross the boundary (pane rows, set-aside records, shard status,
//! log entries) live here too, below both crates, so neither depends on the other for them.
//!
//! | port | what it is | AWS | in memory |
//! |---|---|---|---|
//! | [`state::StateLog`] | a shard's state: a changelog of versioned entries and snapshots | DynamoDB + S3 | [`memory::MemoryStateLog`] |
//! | [`control::ControlPlane`] | shard watermarks, heartbeats and throughput | DynamoDB | [`memory::MemoryControl`] |
//! | [`sink::PaneSink`] | fired panes | DynamoDB, S3, Kinesis | [`memory::MemoryPanes`] |
//! | [`sink::RecordSink`] | records set aside: dead letters, late data | S3 | [`memory::MemoryRecords`] |
//! | [`lease::Leases`] | which worker consumes which shard, fenced | DynamoDB | [`memory::MemoryLeases`] |
//! | [`source::ShardSource`] | the stream's shards and their records (user records: KPL aggregates are expanded by [`kpl`]) | Kinesis | [`memory::MemoryStream`] |
//! | [`clock::Clock`] | wall-clock time | the system clock | [`clock::ManualClock`] |
//!
//! Process signals (SIGTERM, Ctrl-C) are the one other outside input: [`signal::shutdown`].
//!
//! The in-memory implementations count every request and its size as DynamoDB and S3 bill
//! them ([`meter::Meter`]), can add a latency per request and can be told to fail a given
//! call, so the real consumer code is tested with a crash injected at every step and
//! benchmarked for cost without AWS.

pub mod clock;
pub mod control;
pub mod enrich;
pub mod error;
pub mod kpl;
pub mod lease;
pub mod memory;
pub mod meter;
pub mod rows;
pub mod rules;
pub mod shard;
pub mod signal;
pub mod sink;
pub mod source;
pub mod state;

pub use error::PortError;

/// A boxed future, as the ports' methods return: the traits stay object-safe so a consumer
/// holds `Arc<dyn Port>` and tests swap implementations.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
