//! # Eventide engine core
//!
//! Pure Rust, no I/O: the pipeline spec and the four streaming questions.
//!
//! | question | module |
//! |---|---|
//! | **What** is computed | [`aggregate`] (mergeable accumulators), [`expr`] (computed inputs and the conditions that compare them), [`filter`] |
//! | **Where** in event time | [`window`] (slicing, sessions, count, rows, global) |
//! | **When** in processing time | [`watermark`], [`trigger`] |
//! | **How** refinements relate | [`accumulation`] |
//!
//! [`codec`] turns the bytes of a record into a typed [`record::Line`] (JSON or CSV, or a
//! format of your own). [`operator`] combines them per aggregation, and [`pipeline::Pipeline`] runs a whole
//! [`spec::PipelineSpec`] over decoded [`record`]s, emitting [`pane::Pane`]s.
//! [`bounded`] runs the same operators over a finite input one key at a time, for sinks
//! that write in key order. Both drive the operators with the one routing ([`route`]) and
//! the one set of time rules ([`time`]: processing time, control lines, the watermark).
//! [`ids`] is the one home of the ids that outlive a run (pane and alert ids, rule state
//! slots).

pub mod accumulation;
pub mod aggregate;
pub mod bounded;
pub mod codec;
pub mod decimal;
pub mod duration;
pub mod enrich;
pub mod error;
pub mod expr;
pub mod filter;
pub mod ids;
pub mod key;
pub mod operator;
pub mod pane;
pub mod pipeline;
pub mod record;
pub mod route;
pub mod rules;
pub mod s3_url;
pub mod spec;
pub mod time;
pub mod trigger;
pub mod watermark;
pub mod window;

pub use error::{RecordError, SpecError, StateError};
pub use pipeline::{Output, Pipeline};
pub use spec::PipelineSpec;
