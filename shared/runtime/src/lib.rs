//! # Eventide runtime
//!
//! The shard consumer that Lambda and the long-running worker share. [`processor`] holds
//! the pure, exactly-once batch logic (no I/O, unit-tested with redeliveries); the I/O
//! around it (state store, sinks, control and lease tables) lives in [`shard`].
//! The invariants are stated in `docs/aws-runtime.md`.

pub mod autoscale;
pub mod autoscaler;
pub mod lambda;
pub mod processor;
pub mod resources;
pub mod shard;
pub mod ticker;
pub mod worker;
