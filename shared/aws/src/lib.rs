//! # Eventide AWS adapters
//!
//! Everything that talks to AWS, kept out of the engine core. Endpoints come from the SDK's
//! standard configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_KINESIS`, …), never from
//! code, so the same adapters run against AWS, LocalStack or the local emulators.
//! The design (tables, the exactly-once invariant) is in `docs/aws-runtime.md`.
//!
//! The shard consumer's ports (`eventide-ports`) are implemented here: the state log
//! ([`state_log`]), the control plane ([`control`]), the pane sinks ([`sinks`]) and the
//! record sinks for dead letters and late data ([`dead_letter`]); [`ports`](crate) holds
//! the trait impls. The SDK plumbing they share (error codes, retries, table creation,
//! attributes, `s3://` URLs) is in [`sdk`], the client bundle in [`config`].

pub mod config;
pub mod consumer;
pub mod control;
pub mod dead_letter;
pub mod enrichment;
pub mod error;
pub mod kinesis;
pub mod leases;
mod ports;
pub mod rules;
pub mod scale_log;
pub mod sdk;
pub mod sinks;
pub mod state_log;

pub use error::AwsError;
