//! A rows window (Flink's OVER) on the shard consumer over in-memory ports: its state (rows
//! waiting for the watermark, the frame, the last emitted time) survives crashes, replaced
//! consumers and restores from snapshots, and the rows equal the file replay's.

mod common;

use common::{assert_same, records, reference_input_spec, replay, rt, Driver, Ports, SHARD};
use eventide_engine::PipelineSpec;
use eventide_ports::memory::When;
use eventide_runtime::state::SnapshotPolicy;

fn over_spec() -> PipelineSpec {
    reference_input_spec(
        "5m",
        r#"
[[aggregation]]
name = "rolling"
group_by = ["subscriber_id"]
window = { type = "rows", preceding = 3 }
aggregates = [
  { name = "n", fn = "count" },
  { name = "total", fn = "sum", field = "value" },
  { name = "hi", fn = "max", field = "value" },
]
columns = ["subscriber_id", { name = "ts", field = "event_time" }, { name = "v", field = "value" }, "n", "total", "hi"]
"#,
    )
}

#[test]
fn over_rows_survive_crashes_restores_and_redeliveries() {
    let sp = over_spec();
    let recs = records(500);
    let want = replay(&sp, &recs);
    assert!(want.late > 0, "the workload has late rows");
    assert!(want.panes.len() > 300);
    // Each output row carries the input row's value and time.
    assert!(want
        .rows
        .iter()
        .all(|r| r.window_end == r.window_start + 1 && r.values.len() == 4));

    // Uninterrupted, in batches of several sizes.
    for size in [1, 7, 100] {
        let ports = Ports::new(SnapshotPolicy::default());
        rt().block_on(async {
            let mut d = Driver::new(&ports, sp.clone(), common::whole(SHARD));
            for b in recs.chunks(size) {
                d.deliver(b).await;
            }
            d.end().await;
        });
        assert_same(&ports.rows(), &want.panes);
        let late = ports.late.records();
        assert_eq!(late.len() as u64, want.late, "batch size {size}");
    }

    // Replaced consumers rebuild the state from snapshots and the log, mid-stream.
    for every in [1, 3, 50] {
        let ports = Ports::new(SnapshotPolicy {
            every_entries: every,
            every_bytes: 1 << 30,
        });
        rt().block_on(async {
            let mut d = Driver::new(&ports, sp.clone(), common::whole(SHARD));
            for (i, b) in recs.chunks(20).enumerate() {
                if i % 3 == 2 {
                    d.replace();
                }
                d.deliver(b).await;
            }
            d.end().await;
        });
        assert_same(&ports.rows(), &want.panes);
    }

    // A crash at a step of a batch: redelivered to a new consumer, counted once.
    for (op, when) in [
        ("panes.write", When::After),
        ("state.append", When::Before),
        ("state.put_snapshot", When::Before),
    ] {
        let ports = Ports::new(SnapshotPolicy {
            every_entries: 2,
            every_bytes: 1 << 20,
        });
        rt().block_on(async {
            let mut d = Driver::new(&ports, sp.clone(), common::whole(SHARD));
            for (i, b) in recs.chunks(25).enumerate() {
                if i == 4 {
                    ports.env.faults.fail(op, 1, when);
                }
                d.deliver(b).await;
            }
            d.end().await;
        });
        assert_same(&ports.rows(), &want.panes);
    }
}
