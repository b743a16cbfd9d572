//! Exactly-once under redelivery, without AWS: a consumer crashes after emitting panes but
//! before (or half-way through) committing state, a new one replays the batch from the
//! checkpoint against the stored state, and the final results equal an uninterrupted run.

use std::collections::{BTreeMap, HashMap};

use eventide_aws::sinks::PaneRow;
use eventide_aws::state_store::{StateKey, StateWrite, StoredState};
use eventide_engine::PipelineSpec;
use eventide_runtime::processor::{InputRecord, ShardProcessor, HEARTBEAT_PREFIX};

const SHARD: &str = "shardId-000000000000";

fn spec() -> PipelineSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/reference/pipeline.toml"
    ))
    .unwrap();
    PipelineSpec::from_toml(&text).unwrap()
}

/// A small deterministic workload in the reference format, with late and malformed records
/// and ticker heartbeats mixed in.
fn records(n: usize) -> Vec<InputRecord> {
    let mut out = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let sub = format!("s{:03}", (x >> 33) % 7);
        let counter = if (x >> 20) & 1 == 0 { "x" } else { "y" };
        let late = (x >> 40).is_multiple_of(10);
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
        });
    }
    out
}

#[derive(Default)]
struct Store(
    HashMap<StateKey, StoredState>,
    std::collections::HashSet<StateKey>,
);

impl Store {
    fn load(&self, keys: &[StateKey]) -> HashMap<StateKey, StoredState> {
        keys.iter()
            .filter_map(|k| self.0.get(k).map(|s| (k.clone(), s.clone())))
            .collect()
    }
    /// Keys with pending timers (the state table's `timers` index).
    fn pending(&self) -> Vec<StateKey> {
        self.1.iter().cloned().collect()
    }
    fn commit(&mut self, writes: Vec<StateWrite>) {
        for w in writes {
            if w.next_timer.is_some() {
                self.1.insert(w.key.clone());
            } else {
                self.1.remove(&w.key);
            }
            let stored = StoredState {
                blob: w.blob.unwrap_or_default(),
                pos: w.pos,
                fence: 1,
                shard: SHARD.into(),
            };
            self.0.insert(w.key, stored);
        }
    }
}

/// Runs one batch through the processor; returns the panes and the writes (not committed).
fn run_batch(
    p: &mut ShardProcessor,
    store: &Store,
    batch: &[InputRecord],
    panes: &mut BTreeMap<String, PaneRow>,
) -> Vec<StateWrite> {
    let keys = p.keys_to_load(batch);
    p.restore(&keys, &store.load(&keys)).unwrap();
    let outcome = p.apply(batch);
    let mut fired = outcome.panes;
    if let Some(wm) = p.local_watermark() {
        fired.extend(p.advance_watermark(wm));
    }
    for row in fired {
        // Sinks upsert by pane id: a re-emitted pane must be identical.
        if let Some(prev) = panes.get(&row.pane_id) {
            assert_eq!(prev, &row, "a re-emitted pane differs");
        }
        panes.insert(row.pane_id.clone(), row);
    }
    p.drain_writes(0)
}

fn finish(p: &mut ShardProcessor, panes: &mut BTreeMap<String, PaneRow>) {
    for row in p.advance_watermark(i64::MAX) {
        panes.insert(row.pane_id.clone(), row);
    }
}

fn uninterrupted(recs: &[InputRecord]) -> BTreeMap<String, PaneRow> {
    let mut store = Store::default();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    let mut panes = BTreeMap::new();
    for batch in recs.chunks(50) {
        let w = run_batch(&mut p, &store, batch, &mut panes);
        store.commit(w);
    }
    finish(&mut p, &mut panes);
    panes
}

#[test]
fn crash_before_commit_replays_without_double_counting() {
    let recs = records(400);
    let want = uninterrupted(&recs);
    assert!(want.len() > 100, "the workload fires panes");

    let mut store = Store::default();
    let mut panes = BTreeMap::new();
    let batches: Vec<&[InputRecord]> = recs.chunks(50).collect();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    for b in &batches[..3] {
        let w = run_batch(&mut p, &store, b, &mut panes);
        store.commit(w);
    }
    let committed_wm = p.local_watermark().unwrap();
    // Batch 4 is processed and its panes reach the sinks, but the state is never committed.
    let _lost = run_batch(&mut p, &store, batches[3], &mut panes);
    // A new consumer takes over from the checkpoint (and published watermark) after batch 3.
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    p.resume_watermark(committed_wm);
    for b in &batches[3..] {
        let w = run_batch(&mut p, &store, b, &mut panes);
        store.commit(w);
    }
    finish(&mut p, &mut panes);
    assert_eq!(panes, want);
}

#[test]
fn crash_after_partial_commit_skips_what_is_stored() {
    let recs = records(400);
    let want = uninterrupted(&recs);

    let mut store = Store::default();
    let mut panes = BTreeMap::new();
    let batches: Vec<&[InputRecord]> = recs.chunks(50).collect();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    for b in &batches[..4] {
        let w = run_batch(&mut p, &store, b, &mut panes);
        store.commit(w);
    }
    let committed_wm = p.local_watermark().unwrap();
    // Batch 5: half of the dirty keys are written, then the consumer dies.
    let mut w = run_batch(&mut p, &store, batches[4], &mut panes);
    let half = w.len() / 2;
    assert!(half > 0);
    w.truncate(half);
    store.commit(w);
    // The batch is redelivered, then the rest of the stream.
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    p.resume_watermark(committed_wm);
    let mut skipped = 0;
    for (i, b) in batches[4..].iter().enumerate() {
        let keys = p.keys_to_load(b);
        p.restore(&keys, &store.load(&keys)).unwrap();
        let outcome = p.apply(b);
        if i == 0 {
            skipped = outcome.skipped;
        }
        let mut fired = outcome.panes;
        if let Some(wm) = p.local_watermark() {
            fired.extend(p.advance_watermark(wm));
        }
        for row in fired {
            panes.insert(row.pane_id.clone(), row);
        }
        let w = p.drain_writes(0);
        store.commit(w);
    }
    finish(&mut p, &mut panes);
    assert!(
        skipped > 0,
        "records already in the stored state are skipped"
    );
    assert_eq!(panes, want);
}

#[test]
fn malformed_records_and_heartbeats_are_not_data() {
    let recs = records(120);
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    let keys = p.keys_to_load(&recs);
    p.restore(&keys, &HashMap::new()).unwrap();
    let outcome = p.apply(&recs);
    assert_eq!(outcome.dead_letters.len(), 2);
    assert!(
        outcome.dead_letters[0].reason.contains("JSON"),
        "{}",
        outcome.dead_letters[0].reason
    );
    assert_eq!(
        outcome.dead_letters[0].sequence_number,
        recs[13].sequence_number
    );
    assert_eq!(outcome.heartbeats, 3);
    assert_eq!(outcome.records, 115);
}

#[test]
fn batches_on_one_shard_equal_the_file_replay() {
    use eventide_engine::pane::{Emit, Pane};
    use eventide_engine::{Output, Pipeline};

    struct Rows(
        Vec<PaneRow>,
        Vec<String>,
        Vec<Vec<String>>,
        Vec<Vec<String>>,
    );
    impl Emit for Rows {
        fn pane(&mut self, p: &Pane<'_>) {
            let i = p.aggregation;
            let row = PaneRow::from_pane(p, &self.1[i], &self.2[i], &self.3[i]);
            self.0.push(row);
        }
    }
    impl Output for Rows {
        fn late(&mut self, _: usize, _: &[u8]) {}
    }
    let sp = spec();
    let names = sp.aggregations.iter().map(|a| a.name.clone()).collect();
    let group_by = sp
        .aggregations
        .iter()
        .map(|a| {
            a.group_by
                .iter()
                .map(|&i| sp.input.fields[i].0.clone())
                .collect()
        })
        .collect();
    let aggs = sp
        .aggregations
        .iter()
        .map(|a| a.aggregates.iter().map(|x| x.name.clone()).collect())
        .collect();
    let mut rows = Rows(Vec::new(), names, group_by, aggs);
    let mut replay = Pipeline::new(sp);
    let recs = records(600);
    for r in &recs {
        if !r.data.starts_with(HEARTBEAT_PREFIX) {
            let _ = replay.process_line(&r.data, "", &mut rows);
        }
    }
    replay.finish(&mut rows);
    let want: BTreeMap<String, PaneRow> =
        rows.0.into_iter().map(|r| (r.pane_id.clone(), r)).collect();
    assert!(
        replay.stats().late.iter().sum::<u64>() > 0,
        "the workload has late records"
    );

    for batch_size in [1, 7, 100, 600] {
        let mut store = Store::default();
        let mut p = ShardProcessor::new("demo", SHARD, spec());
        let mut panes = BTreeMap::new();
        for batch in recs.chunks(batch_size) {
            let w = run_batch(&mut p, &store, batch, &mut panes);
            store.commit(w);
        }
        finish(&mut p, &mut panes);
        assert_eq!(panes, want, "batch size {batch_size}");
    }
}

#[test]
fn early_late_and_retracting_panes_behave_as_in_replay() {
    use eventide_engine::pane::{Emit, Pane};
    use eventide_engine::{Output, Pipeline};

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
    struct Rows(Vec<PaneRow>, PipelineSpec);
    impl Emit for Rows {
        fn pane(&mut self, p: &Pane<'_>) {
            let a = &self.1.aggregations[p.aggregation];
            let g: Vec<String> = a
                .group_by
                .iter()
                .map(|&i| self.1.input.fields[i].0.clone())
                .collect();
            let n: Vec<String> = a.aggregates.iter().map(|x| x.name.clone()).collect();
            self.0.push(PaneRow::from_pane(p, &a.name, &g, &n));
        }
    }
    impl Output for Rows {
        fn late(&mut self, _: usize, _: &[u8]) {}
    }
    let recs = records(500);
    let mut rows = Rows(Vec::new(), sp.clone());
    let mut replay = Pipeline::new(sp.clone());
    for r in &recs {
        if !r.data.starts_with(HEARTBEAT_PREFIX) {
            let _ = replay.process_line(&r.data, "", &mut rows);
        }
    }
    replay.finish(&mut rows);
    let timings: std::collections::BTreeSet<&str> = rows.0.iter().map(|r| r.timing).collect();
    assert_eq!(
        timings.len(),
        3,
        "early, on-time and late panes: {timings:?}"
    );
    assert!(rows.0.iter().any(|r| r.retraction), "retractions");
    let want: Vec<PaneRow> = rows.0;

    for batch_size in [1, 25, 500] {
        let mut store = Store::default();
        let mut p = ShardProcessor::new("demo", SHARD, sp.clone());
        let mut got = Vec::new();
        for batch in recs.chunks(batch_size) {
            let keys = p.keys_to_load(batch);
            p.restore(&keys, &store.load(&keys)).unwrap();
            got.extend(p.apply(batch).panes);
            store.commit(p.drain_writes(0));
            // Every few batches the consumer is replaced: state comes from the store only.
            if got.len() % 3 == 0 {
                let wm = p.local_watermark().unwrap_or(i64::MIN);
                p = ShardProcessor::new("demo", SHARD, sp.clone());
                if wm > i64::MIN {
                    p.resume_watermark(wm);
                }
                // As ShardConsumer::start does: load the keys with pending timers.
                let pending = store.pending();
                p.restore(&pending, &store.load(&pending)).unwrap();
            }
        }
        // As the end of input does: the keys with pending timers fire at +inf.
        let pending = p.uncached(store.pending());
        p.restore(&pending, &store.load(&pending)).unwrap();
        got.extend(p.advance_watermark(i64::MAX));
        // Across keys the firing order is free; per window it must be the same sequence.
        let (got, want) = (by_window(got), by_window(want.clone()));
        if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            panic!("batch size {batch_size}: {} panes, expected {}; first difference at {i}:\n got  {:?}\n want {:?}", got.len(), want.len(), got.get(i), want.get(i));
        }
    }
}

/// Panes grouped by window, each window's panes in firing order.
fn by_window(mut rows: Vec<PaneRow>) -> Vec<PaneRow> {
    rows.sort_by_key(|r| (r.aggregation.clone(), r.key(), r.window_start, r.window_end));
    rows
}
