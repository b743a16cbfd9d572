//! A decoder of your own on the Kinesis path: a spec given a `Decoder` with
//! `PipelineSpec::with_decoder` is decoded with it by the real `ShardConsumer` (as in a
//! consumer binary built with `eventide_consumer::main_with_decoder`), with the results of
//! the same events as JSON and the records it rejects set aside as dead letters.

mod common;

use std::sync::Arc;

use common::*;
use eventide_engine::codec::Decoder;
use eventide_engine::record::{Line, Record, Value};
use eventide_engine::{PipelineSpec, RecordError};
use eventide_ports::source::InputRecord;
use eventide_runtime::processor::HEARTBEAT_PREFIX;
use eventide_runtime::state::SnapshotPolicy;

/// `subscriber_id|counter|value|event_time`, into the spec's fields in their order.
struct Pipes {
    /// For each of the spec's fields, its column in a record.
    columns: Vec<usize>,
}

impl Pipes {
    fn new(spec: &PipelineSpec) -> Self {
        let order = ["subscriber_id", "counter", "value"];
        let columns = spec
            .input
            .fields
            .iter()
            .map(|(name, _)| order.iter().position(|o| o == name).unwrap_or(usize::MAX))
            .collect();
        Pipes { columns }
    }
}

impl Decoder for Pipes {
    fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        let bad = |reason: &str| RecordError::Field {
            field: "record".into(),
            reason: reason.into(),
        };
        let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        let cols: Vec<&str> = text.split('|').collect();
        let [sub, counter, value, time] = cols[..] else {
            return Err(bad("expected 4 fields separated by |"));
        };
        let time = time
            .parse()
            .map_err(|_| bad("event_time is not a number"))?;
        let value = Value::Num(value.parse().map_err(|_| bad("value is not a number"))?);
        let by_column = [Value::Str(sub.into()), Value::Str(counter.into()), value];
        Ok(Line::Event(Record {
            time,
            values: self
                .columns
                .iter()
                .map(|&c| by_column.get(c).cloned().unwrap_or(Value::Null))
                .collect(),
        }))
    }
}

/// The reference workload's JSON events rewritten as pipe records (heartbeats and the
/// malformed records left as they are).
fn as_pipes(recs: &[InputRecord]) -> Vec<InputRecord> {
    recs.iter()
        .map(|r| {
            let mut r = r.clone();
            if r.data.starts_with(HEARTBEAT_PREFIX) {
                return r;
            }
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.data) {
                r.data = format!(
                    "{}|{}|{}|{}",
                    v["subscriber_id"].as_str().unwrap_or_default(),
                    v["counter"].as_str().unwrap_or_default(),
                    v["value"],
                    v["event_time"]
                )
                .into_bytes();
            }
            r
        })
        .collect()
}

#[test]
fn a_custom_decoder_gives_the_results_of_the_same_events_as_json() {
    let json = records(600);
    let want = replay(&spec(), &json);
    let pipes = as_pipes(&json);
    assert!(pipes.iter().any(|r| r.data.contains(&b'|')));
    let custom = spec().with_decoder(Arc::new(Pipes::new(&spec())));
    for size in [1, 50, 600] {
        let ports = Ports::new(SnapshotPolicy::default());
        rt().block_on(async {
            let mut d = Driver::new(&ports, custom.clone(), whole(SHARD));
            for batch in pipes.chunks(size) {
                d.deliver(batch).await;
            }
            d.end().await;
        });
        assert_same(&ports.rows(), &want.panes);
        let dead = ports.dead_letters.records();
        let bad = pipes.iter().filter(|r| r.data == b"{not json").count();
        assert!(bad > 0);
        assert_eq!(dead.len(), bad, "batch size {size}");
        assert!(dead
            .iter()
            .all(|d| d.data == b"{not json" && d.reason.contains("expected 4 fields")));
    }
}
