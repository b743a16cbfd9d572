//! # Eventide runtime
//!
//! The shard consumer that Lambda and the long-running worker share. [`processor`] holds
//! the shard's engine state and exactly-once bookkeeping (no I/O); [`state`] makes it
//! durable as a changelog with snapshots; [`shard`] runs a batch over the ports of
//! `eventide-ports` (state log, control plane, sinks), which `eventide-aws` implements;
//! [`worker`] shares a stream's shards among long-running workers through leases
//! ([`lease`]) and runs a consumer per held shard.
//! The invariants are stated in `docs/aws-runtime.md`.

pub mod autoscale;
pub mod bench;
pub mod lease;
pub mod processor;
pub mod shard;
pub mod state;
pub mod worker;
