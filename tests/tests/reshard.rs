//! Resharding without loss, end to end on local AWS: the reference workload goes into a
//! 2-shard stream while two workers consume it; mid-stream the stream is resharded to 4
//! shards (UpdateShardCount, UNIFORM_SCALING), later back to 2, with writes going on in
//! between. The final results must equal `eventide replay` on the same input: no event
//! lost, none counted twice, every window fired once (pane ids are deterministic, so a
//! second firing of a window would show up as an extra pane).
//!
//! While it runs, the test samples the lease and control tables and checks:
//! - a child shard has no checkpoint before all its parents are finished (drained to
//!   SHARD_END with everything committed);
//! - every shard's published watermark, and the global watermark (the minimum over the
//!   rows that are not finished), never go backwards, across both reshardings;
//! - state moves with the shards: every shard of the three generations has a state log,
//!   and every child's first entry is a snapshot of the keys it took over from its parents.
//!
//! It prints its figures (events, shards over time, workers, run time, mismatches).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use eventide_aws::config::Clients;
use eventide_aws::control::ControlTable;
use eventide_aws::kinesis::{
    create_stream_and_wait, delete_stream, list_shards, update_shard_count_and_wait,
};
use eventide_aws::leases::LeaseTable;
use eventide_e2e::*;
use eventide_ports::lease::{Lease, TRIM_HORIZON};

const LIMIT: Duration = Duration::from_secs(300);
/// Events of the reference workload, written in three equal phases: 2, 4, then 2 shards.
const EVENTS: u64 = 2_400;
const KEYS: u64 = 16;
const WORKERS: usize = 2;

/// What the sampler saw.
#[derive(Default, Debug)]
struct Samples {
    count: usize,
    /// Per shard, the watermarks it published, in order (changes only).
    shard_wm: BTreeMap<String, Vec<i64>>,
    /// The global watermark (min over unfinished rows) over time (changes only).
    global: Vec<i64>,
    /// Leases seen with a checkpoint while a parent was not finished: (child, parent).
    early_children: Vec<(String, String)>,
    /// Owners seen per shard.
    owners: BTreeMap<String, BTreeSet<String>>,
}

async fn sample(leases: &LeaseTable, control: &ControlTable, s: &mut Samples) {
    // Children's checkpoints first, parents' state after: a parent is finished before its
    // child starts, so any child checkpointed in the first read has finished parents in
    // the second.
    let (Ok(first), Ok(rows), Ok(second)) = (
        leases.list().await,
        control.shards_status().await,
        leases.list().await,
    ) else {
        return;
    };
    s.count += 1;
    let finished: BTreeSet<&str> = second
        .iter()
        .filter(|l| l.finished)
        .map(|l| l.shard_id.as_str())
        .collect();
    let known: BTreeSet<&str> = second.iter().map(|l| l.shard_id.as_str()).collect();
    for l in &first {
        if l.checkpoint != TRIM_HORIZON {
            for p in &l.parents {
                if known.contains(p.as_str()) && !finished.contains(p.as_str()) {
                    s.early_children.push((l.shard_id.clone(), p.clone()));
                }
            }
        }
        if let Some(o) = &l.owner {
            s.owners
                .entry(l.shard_id.clone())
                .or_default()
                .insert(o.clone());
        }
    }
    for r in &rows {
        let seen = s.shard_wm.entry(r.shard_id.clone()).or_default();
        if seen.last() != Some(&r.wm) {
            seen.push(r.wm);
        }
    }
    // The global watermark once both original shards have published data.
    if rows.iter().filter(|r| r.wm > i64::MIN).count() >= 2 {
        if let Some(g) = rows.iter().filter(|r| !r.finished).map(|r| r.wm).min() {
            if s.global.last() != Some(&g) {
                s.global.push(g);
            }
        }
    }
}

fn leases_by_id(leases: &[Lease]) -> BTreeMap<&str, &Lease> {
    leases.iter().map(|l| (l.shard_id.as_str(), l)).collect()
}

async fn open_shards(c: &Clients, stream: &str) -> usize {
    list_shards(&c.kinesis, stream)
        .await
        .map(|v| v.iter().filter(|s| !s.closed).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn reshard_2_4_2_mid_stream_equals_replay() {
    let c = clients().await;
    // Build first: the workers must start together, right after the first records.
    let bin = consumer_bin();
    let (stream, prefix) = (unique("e2e-reshard"), unique("e2e-reshard"));
    let lines = generate(EVENTS, KEYS, 11, 0.0);
    let want = replay(reference_spec(), &lines);
    let third = lines.len() / 3;
    let phases = [
        &lines[..third],
        &lines[third..2 * third],
        &lines[2 * third..],
    ];
    let started = Instant::now();
    let mut timeline: Vec<(f64, usize)> = Vec::new();
    create_stream_and_wait(&c.kinesis, &stream, 2)
        .await
        .expect("stream created");
    timeline.push((0.0, open_shards(&c, &stream).await));
    // Some data before the workers start, so finite mode does not see a quiet stream.
    let (head, rest) = phases[0].split_at(100);
    put_lines(&c, &stream, head).await;

    let args = [
        "--create",
        "--finite-quiet-ms",
        "5000",
        "--stop-after-ms",
        "280000",
        "--batch-limit",
        "100",
    ];
    let mut workers: Vec<_> = (0..WORKERS)
        .map(|i| spawn_worker_with(&bin, "demo", &stream, &prefix, &format!("w{i}"), &args))
        .collect();

    // Sample the lease and control tables until the workers are done.
    let leases = LeaseTable::new(c.dynamodb.clone(), format!("{prefix}-leases"), "demo");
    let control = ControlTable::new(c.dynamodb.clone(), format!("{prefix}-control"), "demo");
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (leases, control, done) = (leases.clone(), control.clone(), done.clone());
        tokio::spawn(async move {
            let mut s = Samples::default();
            while !done.load(Ordering::SeqCst) {
                sample(&leases, &control, &mut s).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            sample(&leases, &control, &mut s).await;
            s
        })
    };

    // Write in small paced chunks, resharding between the phases.
    async fn write(c: &Clients, stream: &str, lines: &[String]) {
        for chunk in lines.chunks(50) {
            put_lines(c, stream, chunk).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    write(&c, &stream, rest).await;
    for (target, phase) in [(4, phases[1]), (2, phases[2])] {
        update_shard_count_and_wait(&c.kinesis, &stream, target)
            .await
            .expect("resharded");
        timeline.push((
            started.elapsed().as_secs_f64(),
            open_shards(&c, &stream).await,
        ));
        write(&c, &stream, phase).await;
    }
    let written_s = started.elapsed().as_secs_f64();

    let statuses = tokio::task::spawn_blocking(move || {
        workers
            .iter_mut()
            .map(|w| wait_exit(w, LIMIT))
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");
    let run_s = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");
    for s in &statuses {
        assert!(s.success(), "worker failed: {s}");
    }

    // Results: equal to replay.
    let got = results_table(&c, &format!("{prefix}-results"), &reference_spec()).await;
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
    let differ = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .count();
    let mismatches = missing + extra + differ;

    // Leases: the 2 original and the 4 middle shards finished, the 2 last ones not.
    let all = leases.list().await.expect("leases");
    let by_id = leases_by_id(&all);
    let finished = all.iter().filter(|l| l.finished).count();
    let shards = list_shards(&c.kinesis, &stream).await.expect("shards");
    let generation = |s: &eventide_aws::kinesis::ShardInfo| match s.parents().len() {
        0 => 0,
        1 => 1,
        _ => 2,
    };

    // State: one log per shard; a child's first entry is a snapshot of its parents' keys.
    let mut logs: BTreeMap<String, BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
    let mut items = 0;
    let mut start = None;
    loop {
        let page = c
            .dynamodb
            .scan()
            .table_name(format!("{prefix}-state"))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan state");
        for item in page.items() {
            items += 1;
            let (
                Some(AttributeValue::S(pk)),
                Some(AttributeValue::S(sk)),
                Some(AttributeValue::B(b)),
            ) = (item.get("pk"), item.get("sk"), item.get("b"))
            else {
                continue;
            };
            let shard = pk.rsplit('#').next().unwrap_or_default().to_string();
            if let Some(v) = sk
                .strip_prefix("v#")
                .filter(|v| v.len() == 20)
                .and_then(|v| v.parse().ok())
            {
                logs.entry(shard)
                    .or_default()
                    .insert(v, b.as_ref().to_vec());
            }
        }
        match page.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    let children_starting_from_a_snapshot = shards
        .iter()
        .filter(|s| !s.parents().is_empty())
        .filter(|s| {
            // Its oldest kept entry names a snapshot of the state just before it (at
            // version 1, the keys taken from the parents; later, a newer snapshot).
            logs.get(&s.shard_id)
                .and_then(|l| l.iter().next())
                .and_then(|(v, b)| {
                    let e = eventide_runtime::state::entry::Entry::decode(b, 1 << 30).ok()?;
                    Some(e.snapshot.is_some_and(|r| r.version + 1 == *v))
                })
                .unwrap_or(false)
        })
        .count();

    let backwards_shard: Vec<(&String, &Vec<i64>)> = samples
        .shard_wm
        .iter()
        .filter(|(_, v)| v.windows(2).any(|w| w[1] < w[0]))
        .collect();
    let backwards_global = samples.global.windows(2).filter(|w| w[1] < w[0]).count();
    let workers_per_generation: Vec<usize> = (0..3)
        .map(|g| {
            shards
                .iter()
                .filter(|s| generation(s) == g)
                .flat_map(|s| samples.owners.get(&s.shard_id).into_iter().flatten())
                .collect::<BTreeSet<_>>()
                .len()
        })
        .collect();
    eprintln!(
        "reshard figures: events {} ({} per phase), workers {WORKERS}, shards over time (s, open) {:?}, \
         writing took {written_s:.1} s, run time {run_s:.1} s, panes {} expected, {} got, mismatches {mismatches} \
         (missing {missing}, extra {extra}, differ {differ}), leases {} ({finished} finished), \
         workers per shard generation {workers_per_generation:?}, control samples {}, global watermark steps {}, \
         state items {items}, shard logs {}, children whose first entry is a snapshot {children_starting_from_a_snapshot}",
        lines.len(),
        third,
        timeline,
        want.len(),
        got.len(),
        all.len(),
        samples.count,
        samples.global.len(),
        logs.len(),
    );

    assert_eq!(
        timeline.iter().map(|t| t.1).collect::<Vec<_>>(),
        vec![2, 4, 2]
    );
    assert_same(&got, &want, "2 -> 4 -> 2 shards vs replay");
    assert_eq!(mismatches, 0);
    assert_eq!(all.len(), 8, "leases: {all:?}");
    assert_eq!(finished, 6, "parents of both reshardings finished: {all:?}");
    for s in shards.iter().filter(|s| !s.parents().is_empty()) {
        for p in s.parents() {
            assert!(
                by_id.get(p.as_str()).is_some_and(|l| l.finished),
                "parent {p} of {} finished",
                s.shard_id
            );
        }
    }
    assert!(
        samples.early_children.is_empty(),
        "children checkpointed before their parents finished: {:?}",
        samples.early_children
    );
    assert!(
        backwards_shard.is_empty(),
        "shard watermarks went backwards: {backwards_shard:?}"
    );
    assert_eq!(
        backwards_global, 0,
        "the global watermark went backwards: {:?}",
        samples.global
    );
    assert!(
        workers_per_generation.iter().all(|&n| n >= 1),
        "every generation of shards was consumed: {workers_per_generation:?}"
    );
    assert_eq!(
        logs.len(),
        shards.len(),
        "every shard has a state log: {:?}",
        logs.keys()
    );
    assert_eq!(
        children_starting_from_a_snapshot,
        shards.iter().filter(|s| !s.parents().is_empty()).count(),
        "every child starts from a snapshot of its parents' keys"
    );
    let _ = delete_stream(&c.kinesis, &stream).await;
}
