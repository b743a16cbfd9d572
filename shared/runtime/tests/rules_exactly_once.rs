//! Rules get the exactly-once treatment of window state, on the real shard consumer over
//! in-memory ports: their per-key state is part of the shard's state, rebuilt by a
//! consumer that takes over and skipped on redelivery, so alerts equal an uninterrupted
//! run (and the file replay) exactly.

mod common;

use std::collections::BTreeMap;

use common::{reference_input_spec, whole, Driver, Ports, SHARD};
use eventide_engine::PipelineSpec;
use eventide_ports::memory::When;
use eventide_ports::rows::PaneRow;
use eventide_ports::source::InputRecord;
use eventide_runtime::processor::ShardProcessor;
use eventide_runtime::state::SnapshotPolicy;

const T0: i64 = 1_767_225_600_000;

fn spec() -> PipelineSpec {
    let aggregation = r#"
        [[aggregation]]
        name = "n"
        group_by = ["subscriber_id"]
        window = { type = "tumbling", size = "10m" }
        aggregates = [{ name = "n", fn = "count" }]
        "#;
    reference_input_spec("2m", &format!("{aggregation}{}", rules(">= 2")))
}

/// The two rules, the first one's count condition being `count(10m) <count>`.
fn rules(count: &str) -> String {
    format!(
        r#"
        [[rule]]
        id = "busy"
        key = ["subscriber_id"]
        when = 'sum(value where counter == "x", 30m) > 250 and count(10m) {count}'
        every = "5m"
        [[rule]]
        id = "three-high"
        key = ["subscriber_id"]
        pattern = "HIGH{{3}} within 10m"
        define = {{ HIGH = 'value > 55' }}
        "#
    )
}

/// Three subscribers, one record a minute, a few out of order.
fn records(n: usize) -> Vec<InputRecord> {
    let mut x: u64 = 987;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let sub = format!("s{}", (x >> 33) % 3);
            let counter = if (x >> 20) & 1 == 0 { "x" } else { "y" };
            let t = T0 + i as i64 * 60_000 - if (x >> 40).is_multiple_of(7) { 50_000 } else { 0 };
            InputRecord {
                sequence_number: format!("{}", 49_000_000_000u64 + i as u64 * 10),
                partition_key: sub.clone(),
                data: format!(
                    r#"{{"subscriber_id":"{sub}","counter":"{counter}","value":{},"event_time":{t}}}"#,
                    (x >> 7) % 100
                )
                .into_bytes(),
                arrival_ms: None,
                sub_sequence_number: None,
                malformed: None,
            }
        })
        .collect()
}

/// Alerts by id.
type Alerts = BTreeMap<String, PaneRow>;

fn alerts(ports: &Ports) -> Alerts {
    ports
        .rows()
        .into_iter()
        .filter(|(_, r)| r.aggregation.starts_with("alert:"))
        .collect()
}

fn count(alerts: &Alerts, rule: &str) -> usize {
    alerts.values().filter(|r| r.aggregation == rule).count()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the records in batches of 40; `each` may plan faults or replace the consumer.
fn run(
    policy: SnapshotPolicy,
    recs: &[InputRecord],
    mut each: impl FnMut(usize, &Ports, &mut Driver<'_>),
) -> Alerts {
    let ports = Ports::new(policy);
    rt().block_on(async {
        let mut d = Driver::new(&ports, spec(), whole(SHARD));
        for (i, b) in recs.chunks(40).enumerate() {
            each(i, &ports, &mut d);
            d.deliver(b).await;
        }
        d.end().await;
    });
    alerts(&ports)
}

#[test]
fn a_replaced_consumer_alerts_as_an_uninterrupted_run_and_the_replay() {
    use eventide_engine::{Output, Pipeline};
    let recs = records(400);
    let want = run(SnapshotPolicy::default(), &recs, |_, _, _| {});
    assert!(count(&want, "alert:busy") >= 3, "{want:?}");
    assert!(count(&want, "alert:three-high") >= 3, "{want:?}");

    // The file replay of the same records alerts the same (ids and times).
    #[derive(Default)]
    struct Ids(BTreeMap<String, i64>);
    impl eventide_engine::pane::Emit for Ids {
        fn pane(&mut self, _: &eventide_engine::pane::Pane<'_>) {}
    }
    impl Output for Ids {
        fn late(&mut self, _: usize, _: &[u8]) {}
        fn alert(&mut self, a: &eventide_engine::rules::Alert) {
            self.0.insert(a.id(), a.time);
        }
    }
    let mut replay = Pipeline::new(spec());
    let mut ids = Ids::default();
    for r in &recs {
        replay.process_line(&r.data, SHARD, &mut ids).unwrap();
    }
    replay.finish(&mut ids);
    let got: BTreeMap<String, i64> = want
        .iter()
        .map(|(id, r)| (id.clone(), r.window_end))
        .collect();
    assert_eq!(got, ids.0);

    // The consumer is replaced after every third batch: state comes from the log only,
    // with and without snapshots in between.
    for every in [1, 2, 100] {
        let policy = SnapshotPolicy {
            every_entries: every,
            every_bytes: 1 << 30,
        };
        let got = run(policy, &recs, |i, _, d| {
            if i % 3 == 2 {
                d.replace();
            }
        });
        assert_eq!(got, want, "snapshot every {every}");
    }
}

#[test]
fn a_redelivered_batch_or_a_crash_after_the_commit_neither_duplicates_nor_double_counts() {
    let recs = records(400);
    let want = run(SnapshotPolicy::default(), &recs, |_, _, _| {});
    for (op, when) in [
        ("state.append", When::After),
        ("control.publish", When::Before),
        ("panes.write", When::After),
    ] {
        let got = run(
            SnapshotPolicy {
                every_entries: 3,
                every_bytes: 1 << 30,
            },
            &recs,
            |i, p, _| {
                if i == 4 || i == 7 {
                    p.env.faults.fail(op, 1, when);
                }
            },
        );
        assert_eq!(got, want, "{op} {when:?}");
    }
}

#[test]
fn a_changed_rule_does_not_restore_the_old_versions_state() {
    let recs = records(80);
    let mut p = ShardProcessor::new(SHARD, spec());
    p.begin(None, 0);
    p.apply(&recs[..40]);
    let snapshot = p.snapshot().unwrap();
    assert!(snapshot
        .keys
        .iter()
        .any(|k| k.slot.starts_with("rule:busy@")));
    // The same rule id with another text: its old state is not restored.
    let mut changed = spec();
    changed.rules = reference_input_spec("2m", &rules(">= 3")).rules;
    let mut q = ShardProcessor::new(SHARD, changed);
    q.restore(&snapshot).unwrap();
    let back = q.snapshot().unwrap();
    assert!(back.keys.iter().all(|k| !k.slot.starts_with("rule:busy@")));
    // The unchanged pattern rule keeps its slot and its state.
    let pattern = |s: &eventide_runtime::state::snapshot::Snapshot| {
        s.keys
            .iter()
            .filter(|k| k.slot.starts_with("rule:three-high@"))
            .count()
    };
    assert!(pattern(&back) > 0);
    assert_eq!(pattern(&back), pattern(&snapshot));
}
