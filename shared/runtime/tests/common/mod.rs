//! The in-memory ports around the real [`ShardConsumer`], and a driver that delivers
//! batches as Kinesis does: a batch whose processing fails is delivered again, to a new
//! consumer (the failed one is dropped, as after a crash), which rebuilds its state from
//! the log.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use eventide_engine::pane::{Emit, Pane};
use eventide_engine::{Output, Pipeline, PipelineSpec};
use eventide_ports::clock::ManualClock;
use eventide_ports::memory::{Env, MemoryControl, MemoryPanes, MemoryRecords, MemoryStateLog};
use eventide_ports::rows::PaneRow;
use eventide_ports::shard::ShardInfo;
use eventide_ports::source::InputRecord;
use eventide_runtime::processor::HEARTBEAT_PREFIX;
use eventide_runtime::shard::{ConsumerPorts, ShardConsumer, Sinks};
use eventide_runtime::state::SnapshotPolicy;

pub const SHARD: &str = "shardId-000000000000";

/// In-memory ports and handles on what they hold.
pub struct Ports {
    pub env: Arc<Env>,
    pub clock: Arc<ManualClock>,
    pub io: ConsumerPorts,
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
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let io = ConsumerPorts {
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
            clock: clock.clone(),
        };
        Ports {
            env,
            clock,
            io,
            state,
            panes,
            dead_letters,
            late,
        }
    }

    /// Every pane, once each, by pane id.
    pub fn rows(&self) -> BTreeMap<String, PaneRow> {
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
            crashes: 0,
            skipped: 0,
        }
    }

    async fn consumer(&mut self) -> Option<&mut ShardConsumer> {
        if self.consumer.is_none() {
            match ShardConsumer::start(&self.ports.io, self.spec.clone(), &self.shard).await {
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
        self.ports.clock.advance(1_000);
        for _ in 0..20 {
            let io = &self.ports.io.clone();
            let Some(c) = self.consumer().await else {
                continue;
            };
            match c.process(io, batch, 0).await {
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
            let io = &self.ports.io.clone();
            let Some(c) = self.consumer().await else {
                continue;
            };
            match c.end_input(io).await {
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

pub fn spec() -> PipelineSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/reference/pipeline.toml"
    ))
    .unwrap();
    PipelineSpec::from_toml(&text).unwrap()
}

/// A spec over records in the reference format (`subscriber_id`, `counter`, `value` and an
/// epoch-millisecond `event_time`) with a watermark bounded by `bound` (`"5m"`), then
/// `rest`: its aggregations and rules, as TOML.
pub fn reference_input_spec(bound: &str, rest: &str) -> PipelineSpec {
    let text = format!(
        r#"
[input]
event_time = {{ field = "event_time", format = "epoch_ms" }}
fields = {{ subscriber_id = "string", counter = "string", value = "number" }}
[watermark]
strategy = "bounded"
max_out_of_orderness = "{bound}"
{rest}"#
    );
    PipelineSpec::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A small deterministic workload in the reference format, with late and malformed records
/// and ticker heartbeats mixed in.
pub fn records(n: usize) -> Vec<InputRecord> {
    records_with(n, true)
}

/// [`records`] with or without late records: without, every key's records are in event-time
/// order, so no record is late on any shard whatever the interleaving of the shards.
pub fn records_with(n: usize, with_late: bool) -> Vec<InputRecord> {
    let mut out = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let sub = format!("s{:03}", (x >> 33) % 7);
        let counter = if (x >> 20) & 1 == 0 { "x" } else { "y" };
        let late = with_late && (x >> 40).is_multiple_of(10);
        let t = 1_767_225_600_000 + i as i64 * 97_000 - if late { 1_200_000 } else { 0 };
        let data = if i % 97 == 13 {
            b"{not json".to_vec()
        } else if i % 53 == 7 {
            [HEARTBEAT_PREFIX, b":1}"].concat()
        } else {
            format!(r#"{{"subscriber_id":"{sub}","counter":"{counter}","value":{}.{:02},"event_time":{t}}}"#, (x >> 7) % 100, (x >> 3) % 100).into_bytes()
        };
        out.push(InputRecord {
            sequence_number: format!("{}", 49_000_000_000u64 + i as u64 * 10),
            partition_key: sub,
            data,
            arrival_ms: None,
            sub_sequence_number: None,
            malformed: None,
        });
    }
    out
}

/// What the file replay gives: panes by id, and late records per aggregation.
pub struct Replayed {
    pub panes: BTreeMap<String, PaneRow>,
    pub late: u64,
    pub rows: Vec<PaneRow>,
}

pub fn replay(sp: &PipelineSpec, recs: &[InputRecord]) -> Replayed {
    struct Rows(Vec<PaneRow>, PipelineSpec);
    impl Emit for Rows {
        fn pane(&mut self, p: &Pane<'_>) {
            let a = &self.1.aggregations[p.aggregation];
            let g: Vec<String> = a
                .group_by
                .iter()
                .map(|&i| self.1.input.fields[i].0.clone())
                .collect();
            let n: Vec<String> = a.value_names();
            self.0.push(PaneRow::from_pane(p, &a.name, &g, &n));
        }
    }
    impl Output for Rows {
        fn late(&mut self, _: usize, _: &[u8]) {}
    }
    let mut rows = Rows(Vec::new(), sp.clone());
    let mut replay = Pipeline::new(sp.clone());
    for r in recs {
        if !r.data.starts_with(HEARTBEAT_PREFIX) {
            let _ = replay.process_line(&r.data, "", &mut rows);
        }
    }
    replay.finish(&mut rows);
    Replayed {
        panes: rows
            .0
            .iter()
            .map(|r| (r.pane_id.clone(), r.clone()))
            .collect(),
        late: replay.stats().late.iter().sum(),
        rows: rows.0,
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Asserts equal panes, naming the first few that differ.
pub fn assert_same(got: &BTreeMap<String, PaneRow>, want: &BTreeMap<String, PaneRow>) {
    let diff: Vec<String> = got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .take(4)
        .map(|k| format!("got {:?}\nwant {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "{} vs {} panes; first differences:\n{}",
        got.len(),
        want.len(),
        diff.join("\n")
    );
}

/// `recs` as Kinesis records of a KPL producer: runs of 1 to 9 records packed into one
/// aggregated record (the run's first partition key outside, each record's own inside),
/// single plain records in between, and a corrupt aggregate (a wrong MD5 trailer, holding
/// two events that are not in `recs`) after every seventh aggregate. Sequence numbers are
/// the Kinesis records'.
pub fn kpl_records(recs: &[InputRecord]) -> Vec<InputRecord> {
    use eventide_ports::kpl::aggregate;
    let mut out = Vec::new();
    let mut push = |pk: &str, data: Vec<u8>| {
        let seq = format!("{}", 49_000_000_000u64 + out.len() as u64 * 10);
        out.push(InputRecord::new(seq, pk, data, None));
    };
    let (mut i, mut run, mut aggregates) = (0, 0usize, 0);
    while i < recs.len() {
        run += 1;
        let n = if run % 4 == 0 { 1 } else { 1 + (run * 7) % 9 };
        let part = &recs[i..(i + n).min(recs.len())];
        i += part.len();
        if n == 1 {
            push(&part[0].partition_key, part[0].data.clone());
            continue;
        }
        let users: Vec<(&str, &[u8])> = part
            .iter()
            .map(|r| (r.partition_key.as_str(), r.data.as_slice()))
            .collect();
        push(&part[0].partition_key, aggregate(&users));
        aggregates += 1;
        if aggregates % 7 == 0 {
            let extra =
                br#"{"subscriber_id":"s999","counter":"x","value":1,"event_time":1767225600000}"#;
            let mut bad = aggregate(&[("s999", extra.as_slice()), ("s999", extra.as_slice())]);
            let last = bad.len() - 1;
            bad[last] ^= 0x5A;
            push("s999", bad);
        }
    }
    out
}

/// What a shard source delivers of Kinesis records `raw`: each de-aggregated.
pub fn deaggregated(raw: &[InputRecord]) -> Vec<InputRecord> {
    let mut out = Vec::new();
    for r in raw {
        eventide_ports::kpl::deaggregate(
            SHARD,
            r.clone(),
            eventide_ports::kpl::DEFAULT_MAX_RECORDS,
            &mut out,
        );
    }
    out
}
