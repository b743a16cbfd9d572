//! Rules get the exactly-once treatment of window state, without AWS: their per-key state
//! is committed with the batch, restored by a consumer that takes over, and skipped on
//! redelivery, so alerts equal an uninterrupted run (and the file replay) exactly.

use std::collections::{BTreeMap, HashMap, HashSet};

use eventide_aws::sinks::PaneRow;
use eventide_aws::state_store::{StateKey, StateWrite, StoredState};
use eventide_engine::PipelineSpec;
use eventide_runtime::processor::{InputRecord, ShardProcessor};

const SHARD: &str = "shardId-000000000000";
const T0: i64 = 1_767_225_600_000;

fn spec() -> PipelineSpec {
    PipelineSpec::from_toml(
        r#"
        [input]
        event_time = { field = "event_time", format = "epoch_ms" }
        fields = { subscriber_id = "string", counter = "string", value = "number" }
        [watermark]
        strategy = "bounded"
        max_out_of_orderness = "2m"
        [[aggregation]]
        name = "n"
        group_by = ["subscriber_id"]
        window = { type = "tumbling", size = "10m" }
        aggregates = [{ name = "n", fn = "count" }]
        [[rule]]
        id = "busy"
        key = ["subscriber_id"]
        when = 'sum(value where counter == "x", 30m) > 250 and count(10m) >= 2'
        every = "5m"
        [[rule]]
        id = "three-high"
        key = ["subscriber_id"]
        pattern = "HIGH{3} within 10m"
        define = { HIGH = 'value > 55' }
        "#,
    )
    .unwrap()
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
            }
        })
        .collect()
}

#[derive(Default)]
struct Store(HashMap<StateKey, StoredState>, HashSet<StateKey>);

impl Store {
    fn load(&self, keys: &[StateKey]) -> HashMap<StateKey, StoredState> {
        keys.iter()
            .filter_map(|k| self.0.get(k).map(|s| (k.clone(), s.clone())))
            .collect()
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

/// Alerts by id; a re-emitted alert must be identical to the first one.
type Alerts = BTreeMap<String, PaneRow>;

fn keep(rows: Vec<PaneRow>, alerts: &mut Alerts) {
    for row in rows {
        if !row.aggregation.starts_with("alert:") {
            continue;
        }
        if let Some(prev) = alerts.get(&row.pane_id) {
            assert_eq!(prev, &row, "a re-emitted alert differs");
        }
        alerts.insert(row.pane_id.clone(), row);
    }
}

/// Runs one batch; returns the writes (not committed) and the records skipped.
fn run_batch(
    p: &mut ShardProcessor,
    store: &Store,
    batch: &[InputRecord],
    alerts: &mut Alerts,
) -> (Vec<StateWrite>, u64) {
    let keys = p.keys_to_load(batch);
    p.restore(&keys, &store.load(&keys)).unwrap();
    let outcome = p.apply(batch);
    keep(outcome.panes, alerts);
    if let Some(wm) = p.local_watermark() {
        keep(p.advance_watermark(wm), alerts);
    }
    (p.drain_writes(0), outcome.skipped)
}

/// A consumer taking over: resumes the committed watermark and loads the keys with pending
/// timers (as `shard.rs` does), so evaluations due on untouched keys still happen.
fn take_over(store: &Store, wm: i64, alerts: &mut Alerts) -> ShardProcessor {
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    p.resume_watermark(wm);
    let pending = p.uncached(store.1.iter().cloned().collect());
    p.restore(&pending, &store.load(&pending)).unwrap();
    keep(p.advance_watermark(wm), alerts);
    p
}

fn uninterrupted(recs: &[InputRecord]) -> Alerts {
    let mut store = Store::default();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    let mut alerts = Alerts::new();
    for batch in recs.chunks(40) {
        let (w, _) = run_batch(&mut p, &store, batch, &mut alerts);
        store.commit(w);
    }
    keep(p.advance_watermark(i64::MAX), &mut alerts);
    alerts
}

fn count(alerts: &Alerts, rule: &str) -> usize {
    alerts.values().filter(|r| r.aggregation == rule).count()
}

#[test]
fn a_replaced_consumer_alerts_as_an_uninterrupted_run_and_the_replay() {
    use eventide_engine::{Output, Pipeline};
    let recs = records(400);
    let want = uninterrupted(&recs);
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

    // The consumer is replaced after every third batch: state comes from the store only.
    let mut store = Store::default();
    let mut alerts = Alerts::new();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    for (i, batch) in recs.chunks(40).enumerate() {
        let (w, _) = run_batch(&mut p, &store, batch, &mut alerts);
        store.commit(w);
        if i % 3 == 2 {
            let wm = p.local_watermark().unwrap();
            p = take_over(&store, wm, &mut alerts);
        }
    }
    keep(p.advance_watermark(i64::MAX), &mut alerts);
    assert_eq!(alerts, want);
    assert!(
        store
            .0
            .keys()
            .any(|k| k.aggregation.starts_with("rule:busy@")),
        "rule state is stored"
    );
}

#[test]
fn a_redelivered_batch_neither_duplicates_alerts_nor_double_counts() {
    let recs = records(400);
    let want = uninterrupted(&recs);
    let batches: Vec<&[InputRecord]> = recs.chunks(40).collect();
    let mut store = Store::default();
    let mut alerts = Alerts::new();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    for b in &batches[..4] {
        let (w, _) = run_batch(&mut p, &store, b, &mut alerts);
        store.commit(w);
    }
    let wm = p.local_watermark().unwrap();
    // Batch 5's alerts reach the sinks and its state is committed, but the consumer dies
    // before the checkpoint (and the watermark) move: the batch is delivered again, to a
    // consumer that resumes the older watermark, so its records are still on time.
    let (w, _) = run_batch(&mut p, &store, batches[4], &mut alerts);
    store.commit(w);
    let mut p = take_over(&store, wm, &mut alerts);
    for b in &batches[4..] {
        let (w, _) = run_batch(&mut p, &store, b, &mut alerts);
        store.commit(w);
    }
    // And a committed batch is delivered once more to the same consumer: all skipped.
    let (w, skipped) = run_batch(&mut p, &store, batches[6], &mut alerts);
    assert!(skipped > 0);
    store.commit(w);
    keep(p.advance_watermark(i64::MAX), &mut alerts);
    // Equal rows (same ids, same sums in the rule windows) and nothing more.
    assert_eq!(alerts, want);
}

#[test]
fn a_crash_after_a_half_commit_skips_what_is_stored() {
    let recs = records(400);
    let want = uninterrupted(&recs);
    let batches: Vec<&[InputRecord]> = recs.chunks(40).collect();
    let mut store = Store::default();
    let mut alerts = Alerts::new();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    for b in &batches[..5] {
        let (w, _) = run_batch(&mut p, &store, b, &mut alerts);
        store.commit(w);
    }
    let wm = p.local_watermark().unwrap();
    // Batch 6: half of the dirty items (rule items among them) are written, then it dies.
    let (mut w, _) = run_batch(&mut p, &store, batches[5], &mut alerts);
    w.sort_by_key(|x| x.key.pk());
    let half = w.len() / 2;
    assert!(w[..half]
        .iter()
        .any(|x| x.key.aggregation.starts_with("rule:")));
    w.truncate(half);
    store.commit(w);
    let mut p = take_over(&store, wm, &mut alerts);
    let mut skipped = 0;
    for (i, b) in batches[5..].iter().enumerate() {
        let (w, s) = run_batch(&mut p, &store, b, &mut alerts);
        if i == 0 {
            skipped = s;
        }
        store.commit(w);
    }
    keep(p.advance_watermark(i64::MAX), &mut alerts);
    assert!(
        skipped > 0,
        "records already in the stored state are skipped"
    );
    assert_eq!(alerts, want);
}

#[test]
fn a_changed_rule_does_not_restore_the_old_versions_state() {
    let recs = records(80);
    let mut store = Store::default();
    let mut alerts = Alerts::new();
    let mut p = ShardProcessor::new("demo", SHARD, spec());
    let (w, _) = run_batch(&mut p, &store, &recs[..40], &mut alerts);
    store.commit(w);
    // The same rule id with another text: a new consumer must not load the old items.
    let mut changed = spec();
    let text = spec_text_with(">= 3");
    changed.rules = PipelineSpec::from_toml(&text).unwrap().rules;
    let q = ShardProcessor::new("demo", SHARD, changed);
    let keys = q.keys_to_load(&recs[40..]);
    let busy: Vec<&StateKey> = keys
        .iter()
        .filter(|k| k.aggregation.starts_with("rule:busy@"))
        .collect();
    assert!(!busy.is_empty());
    assert!(busy.iter().all(|k| !store.0.contains_key(k)));
    // The unchanged pattern rule keeps its slot and finds its stored state.
    assert!(keys
        .iter()
        .any(|k| k.aggregation.starts_with("rule:three-high@") && store.0.contains_key(k)));
}

fn spec_text_with(count: &str) -> String {
    format!(
        r#"
        [input]
        event_time = {{ field = "event_time", format = "epoch_ms" }}
        fields = {{ subscriber_id = "string", counter = "string", value = "number" }}
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
