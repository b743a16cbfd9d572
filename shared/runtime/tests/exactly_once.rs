//! Exactly-once on the real shard consumer over in-memory ports: batches are delivered as
//! Kinesis delivers them, a failure at any step of a batch drops the consumer (a crash) and
//! the batch is delivered again to a new one that rebuilds its state from the log, and the
//! results equal an uninterrupted run and the file replay.

mod common;

use common::{
    assert_same, deaggregated, kpl_records, records, replay, rt, shard, spec, whole, Driver, Ports,
    SHARD,
};
use eventide_engine::PipelineSpec;
use eventide_ports::memory::When;
use eventide_ports::rows::PaneRow;
use eventide_ports::source::InputRecord;
use eventide_runtime::state::SnapshotPolicy;

/// Runs `recs` in batches of `size` through one shard; `each` may plan faults or replace the
/// consumer before batch `i`.
async fn run(
    ports: &Ports,
    sp: &PipelineSpec,
    recs: &[InputRecord],
    size: usize,
    mut each: impl FnMut(usize, &Ports, &mut Driver<'_>),
) -> u64 {
    let mut d = Driver::new(ports, sp.clone(), whole(SHARD));
    for (i, batch) in recs.chunks(size).enumerate() {
        each(i, ports, &mut d);
        d.deliver(batch).await;
    }
    d.end().await;
    d.crashes
}

#[test]
fn batches_on_one_shard_equal_the_file_replay_with_late_and_bad_records_set_aside() {
    let recs = records(600);
    let want = replay(&spec(), &recs);
    assert!(want.late > 0, "the workload has late records");
    for size in [1, 7, 100, 600] {
        let ports = Ports::new(SnapshotPolicy::default());
        rt().block_on(run(&ports, &spec(), &recs, size, |_, _, _| {}));
        assert_eq!(ports.rows(), want.panes, "batch size {size}");
        // Nothing is lost silently: every late record (per aggregation) and every
        // malformed one is set aside with its reason and its bytes.
        let late = ports.late.records();
        assert_eq!(late.len() as u64, want.late, "batch size {size}");
        assert!(late
            .iter()
            .all(|l| l.reason.contains("too late for aggregation `q")));
        let dead = ports.dead_letters.records();
        let bad = recs.iter().filter(|r| r.data == b"{not json").count();
        assert_eq!(dead.len(), bad);
        assert!(dead
            .iter()
            .all(|d| d.data == b"{not json" && !d.reason.is_empty()));
    }
}

#[test]
fn a_crash_at_any_step_of_a_batch_neither_loses_nor_double_counts() {
    let recs = records(400);
    let want = replay(&spec(), &recs).panes;
    // Small snapshots, so that crashes also hit snapshot writes, trims and recoveries
    // from a snapshot plus entries.
    let policy = SnapshotPolicy {
        every_entries: 3,
        every_bytes: 1 << 20,
    };
    let steps = [
        ("control.read", When::Before),
        ("panes.write", When::Before),
        ("panes.write", When::After),
        ("dead-letters.write", When::After),
        ("late.write", When::After),
        ("state.put_snapshot", When::Before),
        ("state.append", When::Before),
        ("state.append", When::After),
        ("state.trim", When::Before),
        ("control.publish", When::Before),
        ("state.read", When::Before),
        ("state.get_snapshot", When::Before),
    ];
    for (op, when) in steps {
        for nth in [1, 2, 5] {
            let ports = Ports::new(policy);
            let mut planned = false;
            let crashes = rt().block_on(run(&ports, &spec(), &recs, 25, |i, p, _| {
                if i == 3 && !planned {
                    p.env.faults.fail(op, nth, when);
                    planned = true;
                }
            }));
            let calls = ports.env.faults.calls();
            // A failed trim is left to the next snapshot: not a crash.
            if op != "state.trim" && calls.get(op).copied().unwrap_or(0) > nth {
                assert!(crashes > 0, "{op} {when:?} #{nth}: the fault struck");
            }
            assert_eq!(ports.rows(), want, "{op} {when:?} #{nth}");
        }
    }
}

#[test]
fn replaced_consumers_rebuild_from_snapshots_and_the_log() {
    let recs = records(500);
    let want = replay(&spec(), &recs).panes;
    for every in [1, 2, 4, 50] {
        let ports = Ports::new(SnapshotPolicy {
            every_entries: every,
            every_bytes: 1 << 30,
        });
        rt().block_on(run(&ports, &spec(), &recs, 20, |i, _, d| {
            if i % 3 == 2 {
                d.replace();
            }
        }));
        assert_eq!(ports.rows(), want, "snapshot every {every}");
        // Trimmed: at most the entries since the last snapshot are kept.
        let kept = ports.state.versions(SHARD);
        assert!(
            kept.len() as u64 <= every.max(1) + 1,
            "snapshot every {every}: kept {kept:?}"
        );
        assert!(ports.state.snapshot_names().len() <= 1 || every == 50);
    }
}

#[test]
fn a_redelivered_batch_and_a_zombie_consumer_count_once() {
    let recs = records(300);
    let want = replay(&spec(), &recs).panes;
    let ports = Ports::new(SnapshotPolicy::default());
    let batches: Vec<&[InputRecord]> = recs.chunks(30).collect();
    rt().block_on(async {
        let mut a = Driver::new(&ports, spec(), whole(SHARD));
        for b in &batches[..4] {
            a.deliver(b).await;
        }
        // A second consumer takes the shard over (the first is now a zombie) and goes on,
        // re-reading from an older checkpoint: batches 3 and 4 again.
        let mut b = Driver::new(&ports, spec(), whole(SHARD));
        for batch in &batches[2..6] {
            b.deliver(batch).await;
        }
        assert!(b.skipped > 0, "redelivered records are skipped");
        // The zombie wakes up with its stale state: its commit is refused.
        let zombie = a.consumer.as_mut().unwrap();
        let io = ports.io.clone();
        let err = zombie.process(&io, batches[4], 0).await.unwrap_err();
        assert!(err.is_conflict(), "{err}");
        for batch in &batches[6..] {
            b.deliver(batch).await;
        }
        b.end().await;
    });
    assert_eq!(ports.rows(), want);
}

#[test]
fn a_warm_consumer_reads_no_state() {
    let recs = records(300);
    let ports = Ports::new(SnapshotPolicy::default());
    rt().block_on(async {
        let mut d = Driver::new(&ports, spec(), whole(SHARD));
        d.deliver(&recs[..100]).await;
        ports.env.meter.reset();
        d.deliver(&recs[100..200]).await;
        let usage = ports.env.meter.usage();
        let state = usage.get("state").cloned().unwrap_or_default();
        assert_eq!(state.rru, 0.0, "{usage:?}");
        assert_eq!(state.requests, 1, "one write: the batch's entry");
        // Nor do warm batches that write snapshots and trim the log (trimming is by key).
        let small = Ports::new(SnapshotPolicy {
            every_entries: 2,
            every_bytes: 1 << 30,
        });
        let mut w = Driver::new(&small, spec(), whole(SHARD));
        w.deliver(&recs[..20]).await;
        small.env.meter.reset();
        for b in recs[20..120].chunks(20) {
            w.deliver(b).await;
        }
        let usage = small.env.meter.usage();
        assert_eq!(usage["state"].rru, 0.0, "{usage:?}");
        assert!(usage["snapshots"].puts >= 2, "{usage:?}");
        assert!(small.state.versions(SHARD).len() <= 2);
        // A cold consumer reads the log once.
        d.replace();
        ports.env.meter.reset();
        d.deliver(&recs[200..]).await;
        let state = ports.env.meter.usage()["state"].clone();
        assert!(state.rru > 0.0);
    });
}

#[test]
fn child_shards_take_their_parents_keys_by_hash_range() {
    use eventide_ports::shard::hash_key;
    // In event-time order: with two shards the global watermark is the slower shard's, so
    // it may accept what the single-timeline replay calls late; with nothing late, both
    // must give the same panes.
    let time = |r: &InputRecord| {
        serde_json::from_slice::<serde_json::Value>(&r.data)
            .ok()
            .and_then(|v| v["event_time"].as_i64())
            .unwrap_or(0)
    };
    let mut recs = records(600);
    recs.sort_by_key(time);
    for (i, r) in recs.iter_mut().enumerate() {
        r.sequence_number = format!("{}", 49_000_000_000u64 + i as u64);
    }
    let want = replay(&spec(), &recs).panes;
    let ports = Ports::new(SnapshotPolicy::default());
    let mid = u128::MAX / 2;
    let (parent, left, right) = (
        whole(SHARD),
        shard("shardId-000000000001", 0, mid, &[SHARD]),
        shard("shardId-000000000002", mid + 1, u128::MAX, &[SHARD]),
    );
    rt().block_on(async {
        let mut p = Driver::new(&ports, spec(), parent);
        for b in recs[..300].chunks(50) {
            p.deliver(b).await;
        }
        // The parent is closed; its children take the rest, each the records of its range,
        // one after the other as their batches interleave.
        let (l, r): (Vec<InputRecord>, Vec<InputRecord>) = recs[300..]
            .iter()
            .cloned()
            .partition(|x| hash_key(&x.partition_key) <= mid);
        let renumber = |v: Vec<InputRecord>| -> Vec<InputRecord> {
            v.into_iter()
                .enumerate()
                .map(|(i, mut x)| {
                    x.sequence_number = format!("{}", 50_000_000_000u64 + i as u64);
                    x
                })
                .collect()
        };
        let (l, r) = (renumber(l), renumber(r));
        assert!(!l.is_empty() && !r.is_empty());
        let mut dl = Driver::new(&ports, spec(), left);
        let mut dr = Driver::new(&ports, spec(), right);
        for i in 0..l.len().max(r.len()).div_ceil(40) {
            let part = |v: &[InputRecord]| {
                v.get(i * 40..((i + 1) * 40).min(v.len()))
                    .unwrap_or(&[])
                    .to_vec()
            };
            dl.deliver(&part(&l)).await;
            dr.deliver(&part(&r)).await;
            if i == 1 {
                dl.replace();
            }
        }
        dl.end().await;
        dr.end().await;
    });
    assert_same(&ports.rows(), &want);
}

/// KPL aggregates, de-aggregated at the source: batches that end in the middle of an
/// aggregate, crashes at every step and a take-over that re-reads an aggregate from its
/// start count each user record once; a corrupt aggregate is one dead letter with its
/// bytes, and the shard moves on.
#[test]
fn kpl_user_records_count_once_across_batches_crashes_and_mid_aggregate_redelivery() {
    let recs = records(400);
    let want = replay(&spec(), &recs);
    let raw = kpl_records(&recs);
    let users = deaggregated(&raw);
    let corrupt: Vec<&InputRecord> = users.iter().filter(|r| r.malformed.is_some()).collect();
    assert!(corrupt.len() >= 2, "the stream has corrupt aggregates");
    assert_eq!(users.len(), recs.len() + corrupt.len());
    assert!(
        users
            .iter()
            .filter(|r| r.sub_sequence_number.is_some())
            .count()
            > recs.len() / 2,
        "most records are in aggregates"
    );
    let bad = recs.iter().filter(|r| r.data == b"{not json").count();
    // Batches of user records: most end inside an aggregate.
    for size in [1, 7, 30] {
        let ports = Ports::new(SnapshotPolicy::default());
        rt().block_on(run(&ports, &spec(), &users, size, |_, _, _| {}));
        assert_eq!(ports.rows(), want.panes, "batch size {size}");
        assert_eq!(ports.late.records().len() as u64, want.late);
        let dead = ports.dead_letters.records();
        assert_eq!(dead.len(), bad + corrupt.len(), "batch size {size}");
        for c in &corrupt {
            let d = dead
                .iter()
                .find(|d| d.sequence_number == c.sequence_number)
                .expect("the corrupt aggregate is a dead letter");
            assert_eq!(d.data, c.data, "with its original bytes");
            assert!(
                d.reason.contains("MD5") && d.reason.contains(SHARD),
                "{}",
                d.reason
            );
        }
    }
    // A crash at every step of a batch, batches ending inside aggregates.
    let policy = SnapshotPolicy {
        every_entries: 3,
        every_bytes: 1 << 20,
    };
    for (op, when) in [
        ("panes.write", When::Before),
        ("dead-letters.write", When::After),
        ("state.append", When::Before),
        ("state.append", When::After),
        ("state.put_snapshot", When::Before),
        ("control.publish", When::Before),
        ("state.read", When::Before),
    ] {
        for nth in [1, 4] {
            let ports = Ports::new(policy);
            let mut planned = false;
            rt().block_on(run(&ports, &spec(), &users, 11, |i, p, _| {
                if i == 3 && !planned {
                    p.env.faults.fail(op, nth, when);
                    planned = true;
                }
            }));
            assert_eq!(ports.rows(), want.panes, "{op} {when:?} #{nth}");
        }
    }
    // A consumer commits up to the middle of an aggregate; another takes over and re-reads
    // from an older checkpoint, so every aggregate it gets starts at sub-sequence 0.
    let ports = Ports::new(SnapshotPolicy::default());
    let mid = (100..users.len())
        .find(|&i| users[i].sub_sequence_number.is_some_and(|s| s >= 2))
        .expect("an aggregate of three or more");
    let start_of = |i: usize| {
        (0..=i)
            .rev()
            .find(|&j| users[j].sub_sequence_number.is_none_or(|s| s == 0))
            .unwrap_or(0)
    };
    let skipped = rt().block_on(async {
        let mut a = Driver::new(&ports, spec(), whole(SHARD));
        for b in users[..mid].chunks(20) {
            a.deliver(b).await;
        }
        let mut b = Driver::new(&ports, spec(), whole(SHARD));
        let from = start_of(start_of(mid) - 1);
        for batch in users[from..].chunks(20) {
            b.deliver(batch).await;
        }
        b.end().await;
        b.skipped
    });
    assert_eq!(skipped as usize, mid - start_of(start_of(mid) - 1));
    assert_eq!(ports.rows(), want.panes);
}

#[test]
fn a_record_that_only_looks_like_a_heartbeat_is_data() {
    let mut recs = records(50);
    recs[10].data = br#"{"eventide_heartbeat":1,"subscriber_id":"s1","counter":"x","value":1,"event_time":1767225600000}"#.to_vec();
    let ports = Ports::new(SnapshotPolicy::default());
    rt().block_on(run(&ports, &spec(), &recs, 10, |_, _, _| {}));
    let mut want = records(50);
    want[10].data =
        br#"{"subscriber_id":"s1","counter":"x","value":1,"event_time":1767225600000}"#.to_vec();
    assert_eq!(ports.rows(), replay(&spec(), &want).panes);
}

#[test]
fn early_late_and_retracting_panes_behave_as_in_replay() {
    let text = r#"
        [input]
        event_time = { field = "event_time" }
        fields = { subscriber_id = "string", counter = "string", value = "number" }
        [watermark]
        max_out_of_orderness = "5m"
        [[aggregation]]
        name = "hop"
        group_by = ["subscriber_id"]
        window = { type = "sliding", size = "30m", slide = "10m" }
        aggregates = [{ name = "n", fn = "count" }, { name = "s", fn = "sum", field = "value" }]
        allowed_lateness = "30m"
        accumulation = "retracting"
        trigger = { early = { every = 3 }, late = "every" }
        [[aggregation]]
        name = "sess"
        group_by = ["subscriber_id", "counter"]
        window = { type = "session", gap = "10m" }
        aggregates = [{ name = "n", fn = "count" }, { name = "mx", fn = "max", field = "value" }]
        allowed_lateness = "20m"
        accumulation = "discarding"
        trigger = { early = { every = 2 }, late = "every" }
    "#;
    let sp = PipelineSpec::from_toml(text).unwrap();
    let recs = records(500);
    let r = replay(&sp, &recs);
    let timings: std::collections::BTreeSet<&str> = r.rows.iter().map(|r| r.timing).collect();
    assert_eq!(
        timings.len(),
        3,
        "early, on-time and late panes: {timings:?}"
    );
    assert!(r.rows.iter().any(|r| r.retraction), "retractions");
    let want = by_window(r.rows);
    for size in [1, 25, 500] {
        let ports = Ports::new(SnapshotPolicy {
            every_entries: 4,
            every_bytes: 1 << 30,
        });
        rt().block_on(run(&ports, &sp, &recs, size, |i, _, d| {
            if i % 3 == 2 {
                d.replace();
            }
        }));
        let got = by_window(ports.rows().into_values().collect());
        if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            panic!("batch size {size}: {} panes, expected {}; first difference at {i}:\n got  {:?}\n want {:?}", got.len(), want.len(), got.get(i), want.get(i));
        }
    }
}

/// Panes grouped by window, each window's panes in firing order.
fn by_window(mut rows: Vec<PaneRow>) -> Vec<PaneRow> {
    rows.sort_by_key(|r| {
        (
            r.aggregation.clone(),
            r.key(),
            r.window_start,
            r.window_end,
            r.pane_index,
            r.retraction,
        )
    });
    rows
}

#[test]
fn a_record_dated_far_ahead_of_its_arrival_is_a_dead_letter_and_moves_no_watermark() {
    // Each record arrives a minute after its event time; one is dated in the year 2100.
    let arrive = |mut r: InputRecord| {
        let text = String::from_utf8_lossy(&r.data).into_owned();
        r.arrival_ms = text
            .split("\"event_time\":")
            .nth(1)
            .and_then(|t| t.trim_end_matches('}').parse::<i64>().ok())
            .map(|t| t + 60_000);
        r
    };
    let clean: Vec<InputRecord> = records(400).into_iter().map(arrive).collect();
    let want = replay(&spec(), &clean).panes;
    let mut recs = clean.clone();
    let mut poison = recs[200].clone();
    poison.data =
        br#"{"subscriber_id":"s001","counter":"x","value":1.00,"event_time":4102444800000}"#
            .to_vec();
    poison.arrival_ms = recs[200].arrival_ms;
    // A position between records 199 and 200 (sequence numbers step by 10).
    let seq: u64 = recs[199].sequence_number.parse().unwrap();
    poison.sequence_number = (seq + 5).to_string();
    recs.insert(200, poison);
    let ports = Ports::new(SnapshotPolicy::default());
    rt().block_on(run(&ports, &spec(), &recs, 25, |i, _, d| {
        if i % 3 == 2 {
            d.replace();
        }
    }));
    assert_eq!(ports.rows(), want, "the same panes as without the record");
    let dead: Vec<_> = ports
        .dead_letters
        .records()
        .into_iter()
        .filter(|d| d.data != b"{not json")
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].data.ends_with(b"4102444800000}"));
    assert!(
        dead[0].reason.contains("max_future_skew"),
        "{}",
        dead[0].reason
    );
}
