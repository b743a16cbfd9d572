//! The in-memory ports around the real [`ShardConsumer`], and a driver that delivers
//! batches as Kinesis does: a batch whose processing fails is delivered again, to a new
//! consumer (the failed one is dropped, as after a crash), which rebuilds its state from
//! the log.

#![allow(dead_code)]

use std::sync::Arc;

use eventide_engine::PipelineSpec;
use eventide_ports::memory::{Env, MemoryControl, MemoryPanes, MemoryRecords, MemoryStateLog};
use eventide_ports::rows::PaneRow;
use eventide_ports::shard::ShardInfo;
use eventide_runtime::processor::InputRecord;
use eventide_runtime::shard::{Io, ShardConsumer, Sinks};
use eventide_runtime::state::SnapshotPolicy;

pub const SHARD: &str = "shardId-000000000000";

/// In-memory ports and handles on what they hold.
pub struct Ports {
    pub env: Arc<Env>,
    pub io: Io,
    pub state: Arc<MemoryStateLog>,
    pub panes: Arc<MemoryPanes>,
    pub dead_letters: Arc<MemoryRecords>,
    pub late: Arc<MemoryRecords>,
}

impl Ports {
    pub fn new(policy: SnapshotPolicy) -> Self {
        let env = Arc::new(Env::default());
        let state = Arc::new(MemoryStateLog::new(env.clone(), "demo"));
        let panes = Arc::new(MemoryPanes::new(env.clone()));
        let dead_letters = Arc::new(MemoryRecords::new(env.clone(), "dead-letters"));
        let late = Arc::new(MemoryRecords::new(env.clone(), "late"));
        let io = Io {
            state: state.clone(),
            control: Arc::new(MemoryControl::new(env.clone())),
            dead_letters: dead_letters.clone(),
            late: late.clone(),
            sinks: Sinks {
                sinks: vec![panes.clone()],
                print: false,
            },
            snapshots: policy,
            idle_timeout_ms: 60_000,
            lookups: None,
            rules: None,
        };
        Ports {
            env,
            io,
            state,
            panes,
            dead_letters,
            late,
        }
    }

    /// Every pane, once each, by pane id.
    pub fn rows(&self) -> std::collections::BTreeMap<String, PaneRow> {
        self.panes.rows()
    }
}

/// A shard covering hash keys `[start, end]`, with parents.
pub fn shard(id: &str, start: u128, end: u128, parents: &[&str]) -> ShardInfo {
    ShardInfo {
        shard_id: id.to_string(),
        parent_shard_id: parents.first().map(|s| s.to_string()),
        adjacent_parent_shard_id: parents.get(1).map(|s| s.to_string()),
        starting_hash_key: start,
        ending_hash_key: end,
        closed: false,
    }
}

/// The whole hash-key range.
pub fn whole(id: &str) -> ShardInfo {
    shard(id, 0, u128::MAX, &[])
}

/// Delivers batches to a shard's consumers as Kinesis would.
pub struct Driver<'a> {
    pub ports: &'a Ports,
    pub spec: PipelineSpec,
    pub shard: ShardInfo,
    pub consumer: Option<ShardConsumer>,
    pub now_ms: i64,
    /// Consumers dropped after a failure.
    pub crashes: u64,
    /// Records skipped as already committed.
    pub skipped: u64,
}

impl<'a> Driver<'a> {
    pub fn new(ports: &'a Ports, spec: PipelineSpec, shard: ShardInfo) -> Self {
        Driver {
            ports,
            spec,
            shard,
            consumer: None,
            now_ms: 1_700_000_000_000,
            crashes: 0,
            skipped: 0,
        }
    }

    async fn consumer(&mut self) -> Option<&mut ShardConsumer> {
        if self.consumer.is_none() {
            match ShardConsumer::start(&self.ports.io, self.spec.clone(), &self.shard, self.now_ms)
                .await
            {
                Ok(c) => self.consumer = Some(c),
                Err(_) => {
                    self.crashes += 1;
                    return None;
                }
            }
        }
        self.consumer.as_mut()
    }

    /// Delivers `batch` until a consumer processes it (at most 20 attempts).
    pub async fn deliver(&mut self, batch: &[InputRecord]) {
        self.now_ms += 1_000;
        for _ in 0..20 {
            let (io, now) = (&self.ports.io.clone(), self.now_ms);
            let Some(c) = self.consumer().await else {
                continue;
            };
            match c.process(io, batch, 0, now).await {
                Ok(r) => {
                    self.skipped += r.skipped;
                    return;
                }
                Err(_) => {
                    self.consumer = None;
                    self.crashes += 1;
                }
            }
        }
        panic!("batch never processed");
    }

    /// Drops the consumer (a restart, a take-over): the next batch goes to a new one.
    pub fn replace(&mut self) {
        self.consumer = None;
    }

    /// Ends the input: fires everything (retried as a batch is).
    pub async fn end(&mut self) {
        for _ in 0..20 {
            let (io, now) = (&self.ports.io.clone(), self.now_ms);
            let Some(c) = self.consumer().await else {
                continue;
            };
            match c.end_input(io, now).await {
                Ok(_) => return,
                Err(_) => {
                    self.consumer = None;
                    self.crashes += 1;
                }
            }
        }
        panic!("end of input never processed");
    }
}
