//! The worker loop (`eventide_runtime::worker`) over in-memory ports: a stream, a lease
//! table and the consumers' ports. Workers are killed (their future dropped, as kill -9),
//! fail at every step, share shards and follow resharding; the panes always equal the file
//! replay, each once. Time is tokio's paused clock, so lease expiries take no real time.

mod common;

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_same, kpl_records, records, records_with, replay, spec, Ports};
use eventide_ports::clock::Clock;
use eventide_ports::lease::{InitialPosition, Leases};
use eventide_ports::memory::{Env, MemoryLeases, MemoryStream, When};
use eventide_ports::shard::ShardInfo;
use eventide_ports::source::InputRecord;
use eventide_runtime::lease::LeaseKeeper;
use eventide_runtime::state::SnapshotPolicy;
use eventide_runtime::worker::{run_worker, WorkerExit, WorkerPorts, WorkerSettings};

const T0: i64 = 1_700_000_000_000;
const LEASE_MS: i64 = 3_000;

/// Wall-clock time that follows tokio's (paused) clock.
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        T0 + self.0.elapsed().as_millis() as i64
    }
}

/// A stream of `shards` shards holding `recs` (routed by partition key), a lease table and
/// the consumers' ports, sharing one environment for faults.
struct World {
    ports: Ports,
    stream: MemoryStream,
    leases: Arc<MemoryLeases>,
}

impl World {
    fn new(shards: usize, recs: &[InputRecord]) -> Self {
        let mut ports = Ports::new(SnapshotPolicy {
            every_entries: 4,
            every_bytes: 1 << 20,
        });
        ports.io.clock = Arc::new(TokioClock(tokio::time::Instant::now()));
        let stream = MemoryStream::new(ports.env.clone(), shards);
        let world = World {
            leases: Arc::new(MemoryLeases::new(ports.env.clone())),
            ports,
            stream,
        };
        world.put(recs);
        world
    }

    fn put(&self, recs: &[InputRecord]) {
        for r in recs {
            self.stream.put(&r.partition_key, r.data.clone(), None);
        }
    }

    fn env(&self) -> &Env {
        &self.ports.env
    }

    fn worker_ports(&self) -> WorkerPorts {
        WorkerPorts {
            io: self.ports.io.clone(),
            leases: self.leases.clone(),
            source: Arc::new(self.stream.clone()),
        }
    }

    /// Runs worker `id` in finite mode until the input ends.
    async fn run(&self, id: &str) -> WorkerExit {
        run_worker(self.worker_ports(), spec(), settings(id), pending())
            .await
            .expect("worker runs")
    }
}

fn settings(id: &str) -> WorkerSettings {
    WorkerSettings {
        lease_ms: LEASE_MS,
        poll_ms: 50,
        finite_quiet_ms: Some(1_000),
        stop_after_ms: Some(3_600_000),
        batch_limit: 25,
        ..WorkerSettings::new(id)
    }
}

#[tokio::test(start_paused = true)]
async fn one_worker_equals_the_file_replay_through_a_failure_at_every_step() {
    let recs = records(300);
    let want = replay(&spec(), &recs).panes;
    let steps = [
        ("source.list", When::Before),
        ("source.read", When::Before),
        ("leases.list", When::Before),
        ("leases.take", When::Before),
        ("leases.take", When::After),
        ("leases.update", When::Before),
        ("leases.update", When::After),
        ("control.read", When::Before),
        ("panes.write", When::Before),
        ("panes.write", When::After),
        ("late.write", When::Before),
        ("state.append", When::Before),
        ("state.append", When::After),
        ("state.put_snapshot", When::Before),
        ("state.read", When::Before),
        ("control.publish", When::After),
    ];
    // The calls of an undisturbed run: each step fails at its first, middle and last call.
    let baseline = World::new(1, &recs);
    assert_eq!(baseline.run("w1").await, WorkerExit::EndOfInput);
    assert_eq!(baseline.ports.rows(), want);
    let calls = baseline.env().faults.calls();
    for (op, when) in steps {
        let n = calls.get(op).copied().unwrap_or(0);
        assert!(n > 0, "{op} is called");
        let mut nths = vec![1, n.div_ceil(2), n];
        nths.dedup();
        for nth in nths {
            let world = World::new(1, &recs);
            world.env().faults.fail(op, nth, when);
            assert_eq!(
                world.run("w1").await,
                WorkerExit::EndOfInput,
                "{op} {when:?} #{nth}"
            );
            assert_eq!(world.ports.rows(), want, "{op} {when:?} #{nth} of {n}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_killed_worker_is_taken_over_and_nothing_is_lost_or_counted_twice() {
    let recs = records_with(600, false);
    let want = replay(&spec(), &recs).panes;
    for kill_after_ms in [120, 400, 900] {
        let world = World::new(4, &recs);
        // Worker a holds all four shards until it is killed mid-stream (its future dropped
        // between two awaits, as kill -9); b starts later, waits out a's leases and goes on
        // from a's checkpoints and committed state.
        let a = tokio::time::timeout(Duration::from_millis(kill_after_ms), world.run("a"));
        let b = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            world.run("b").await
        };
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_err(), "worker a was killed before the end");
        assert_eq!(b, WorkerExit::EndOfInput);
        assert_same(&world.ports.rows(), &want);
        let leases = world.leases.list().await.unwrap();
        assert!(
            leases.iter().all(|l| l.counter >= 2),
            "b took every lease over from a: {leases:?}"
        );
    }
}

/// A dead worker's control row can look quiet (caught up, no data for a while) while its
/// shard has records it never read: Kinesis reports how far behind the tip a batch is in
/// time, and records put in one burst are all "0 ms behind". The heir may end the input on
/// that word before the dead worker's lease expires; a shard it takes over afterwards must
/// still be read to its end before it ends.
#[tokio::test(start_paused = true)]
async fn a_shard_taken_over_after_the_input_ended_is_read_to_its_end_first() {
    let recs = records_with(600, false);
    let want = replay(&spec(), &recs).panes;
    for kill_after_ms in [300, 700] {
        let world = World::new(2, &recs[..200]);
        // a reads both shards to their tip, then dies before the input looks quiet to it.
        let a = tokio::time::timeout(Duration::from_millis(kill_after_ms), world.run("a")).await;
        assert!(a.is_err(), "worker a was killed before the end");
        // The rest of the stream arrives; a's rows still say "caught up".
        world.put(&recs[200..]);
        assert_eq!(world.run("b").await, WorkerExit::EndOfInput);
        assert_same(&world.ports.rows(), &want);
    }
}

#[tokio::test(start_paused = true)]
async fn two_workers_share_the_shards_and_agree_on_the_end() {
    let recs = records_with(600, false);
    let want = replay(&spec(), &recs).panes;
    let world = World::new(4, &recs);
    let (a, b) = tokio::join!(world.run("a"), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        world.run("b").await
    });
    assert_eq!((a, b), (WorkerExit::EndOfInput, WorkerExit::EndOfInput));
    assert_same(&world.ports.rows(), &want);
}

#[tokio::test(start_paused = true)]
async fn children_start_after_their_parents_and_take_their_keys() {
    let recs = records_with(900, false);
    let want = replay(&spec(), &recs).panes;
    let world = World::new(2, &recs[..300]);
    // 2 → 3 → 2: shard 0 splits into 2 and 3, which merge into 4.
    let (c2, c3) = world.stream.split("shardId-000000000000").unwrap();
    world.put(&recs[300..600]);
    let m = world.stream.merge(&c2, &c3).unwrap();
    world.put(&recs[600..]);
    assert!(!world.stream.records(&m).is_empty());
    let (a, b) = tokio::join!(world.run("a"), world.run("b"));
    assert_eq!((a, b), (WorkerExit::EndOfInput, WorkerExit::EndOfInput));
    assert_same(&world.ports.rows(), &want);
    let leases = world.leases.list().await.unwrap();
    let finished: Vec<&str> = leases
        .iter()
        .filter(|l| l.finished)
        .map(|l| l.shard_id.as_str())
        .collect();
    assert_eq!(finished, ["shardId-000000000000", c2.as_str(), c3.as_str()]);
}

/// A KPL producer's stream: aggregates mixed with plain records and corrupt aggregates,
/// de-aggregated by the stream's reader. With a failure at steps of a batch, and a worker
/// killed mid-stream and taken over from its checkpoint, every user record counts once and
/// each corrupt aggregate is one dead letter.
#[tokio::test(start_paused = true)]
async fn kpl_aggregates_count_each_user_record_once_through_failures_and_a_take_over() {
    let recs = records(300);
    let want = replay(&spec(), &recs).panes;
    let raw = kpl_records(&recs);
    let corrupt = common::deaggregated(&raw)
        .iter()
        .filter(|r| r.malformed.is_some())
        .count();
    let bad = recs.iter().filter(|r| r.data == b"{not json").count();
    let check = |world: &World, what: &str| {
        assert_eq!(world.ports.rows(), want, "{what}");
        let dead = world.ports.dead_letters.records();
        assert_eq!(dead.len(), bad + corrupt, "{what}: {dead:?}");
    };
    let baseline = World::new(1, &raw);
    assert_eq!(baseline.run("w1").await, WorkerExit::EndOfInput);
    check(&baseline, "undisturbed");
    let calls = baseline.env().faults.calls();
    for (op, when) in [
        ("source.read", When::Before),
        ("leases.update", When::After),
        ("state.append", When::Before),
        ("state.append", When::After),
        ("dead-letters.write", When::Before),
    ] {
        let n = calls.get(op).copied().unwrap_or(0);
        assert!(n > 0, "{op} is called");
        for nth in [1, n.div_ceil(2)] {
            let world = World::new(1, &raw);
            world.env().faults.fail(op, nth, when);
            assert_eq!(world.run("w1").await, WorkerExit::EndOfInput);
            check(&world, &format!("{op} {when:?} #{nth}"));
        }
    }
    for kill_after_ms in [150, 500] {
        let world = World::new(1, &raw);
        let a = tokio::time::timeout(Duration::from_millis(kill_after_ms), world.run("a"));
        let b = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            world.run("b").await
        };
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_err(), "worker a was killed before the end");
        assert_eq!(b, WorkerExit::EndOfInput);
        check(&world, &format!("killed after {kill_after_ms} ms"));
    }
}

// ---------------------------------------------------------------------------------------
// The lease policy
// ---------------------------------------------------------------------------------------

const DURATION: i64 = 10_000;

fn shard(id: &str, parents: &[&str]) -> ShardInfo {
    common::shard(id, 0, u128::MAX, parents)
}

async fn keeper(shards: &[ShardInfo]) -> LeaseKeeper {
    let keeper = LeaseKeeper::new(
        Arc::new(MemoryLeases::new(Arc::new(Env::default()))),
        DURATION,
    );
    assert_eq!(keeper.sync_shards(shards).await.unwrap(), shards.len());
    assert_eq!(
        keeper.sync_shards(shards).await.unwrap(),
        0,
        "only missing leases"
    );
    keeper
}

fn ids(leases: &[eventide_ports::lease::Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.shard_id.as_str()).collect()
}

#[tokio::test]
async fn two_workers_balance_four_leases() {
    let shards: Vec<ShardInfo> = (0..4).map(|i| shard(&format!("s{i}"), &[])).collect();
    let leases = keeper(&shards).await;

    // w1 alone takes everything.
    let w1 = leases.assign("w1", 10, T0).await.unwrap();
    assert_eq!(ids(&w1), ["s0", "s1", "s2", "s3"]);
    assert!(w1.iter().all(|l| l.counter == 1));

    // w2 joins: no free leases, so it steals one per round from w1 until 2/2.
    let w2 = leases.assign("w2", 10, T0 + 1_000).await.unwrap();
    assert_eq!(w2.len(), 1);
    assert_eq!(w2[0].counter, 2, "stealing is a take-over");
    let w2 = leases.assign("w2", 10, T0 + 2_000).await.unwrap();
    assert_eq!(w2.len(), 2);
    let w2 = leases.assign("w2", 10, T0 + 3_000).await.unwrap();
    assert_eq!(w2.len(), 2, "balanced: no more stealing");
    let w1_now = leases.assign("w1", 10, T0 + 3_000).await.unwrap();
    assert_eq!(w1_now.len(), 2);
    let mut all: Vec<&str> = ids(&w1_now).into_iter().chain(ids(&w2)).collect();
    all.sort();
    assert_eq!(all, ["s0", "s1", "s2", "s3"]);

    // w1's stale copies of the stolen leases are fenced.
    for mut stale in w1
        .into_iter()
        .filter(|l| w2.iter().any(|x| x.shard_id == l.shard_id))
    {
        assert!(leases
            .checkpoint(&mut stale, "1")
            .await
            .unwrap_err()
            .is_conflict());
    }

    // w1 dies (stops renewing): w2 picks up its expired leases (its share grows to 4).
    let mut w2 = w2;
    for l in &mut w2 {
        leases.renew(l, T0 + 3_000 + DURATION).await.unwrap();
    }
    let w2 = leases
        .assign("w2", 10, T0 + 3_000 + DURATION + 1)
        .await
        .unwrap();
    assert_eq!(ids(&w2), ["s0", "s1", "s2", "s3"]);
    // max_leases caps the share.
    let w3 = leases.assign("w3", 1, T0 + 100 * DURATION).await.unwrap();
    assert_eq!(w3.len(), 1);
}

#[tokio::test]
async fn fresh_workers_split_free_leases_by_fair_share() {
    let shards: Vec<ShardInfo> = (0..4).map(|i| shard(&format!("s{i}"), &[])).collect();
    let leases = keeper(&shards).await;
    // w2 holds one lease, so w1 sees two live workers and takes its share of 2.
    assert_eq!(ids(&leases.assign("w2", 1, T0).await.unwrap()), ["s0"]);
    let w1 = leases.assign("w1", 10, T0).await.unwrap();
    assert_eq!(ids(&w1), ["s1", "s2"]);
    let w2 = leases.assign("w2", 10, T0).await.unwrap();
    assert_eq!(ids(&w2), ["s0", "s3"]);
}

#[tokio::test]
async fn child_leases_start_only_after_all_parents_finished() {
    // A 2→4 split (p0 → c2, c3; p1 → c4, c5) and a merge of c4 + c5 into m6.
    let shards = [
        shard("p0", &[]),
        shard("p1", &[]),
        shard("c2", &["p0"]),
        shard("c3", &["p0"]),
        shard("c4", &["p1"]),
        shard("c5", &["p1"]),
        shard("m6", &["c4", "c5"]),
    ];
    let leases = keeper(&shards).await;
    let mut held = leases.assign("w", 100, T0).await.unwrap();
    assert_eq!(ids(&held), ["p0", "p1"], "children wait for their parents");

    leases.finish(&mut held[0]).await.unwrap(); // p0
    let mut held = leases.assign("w", 100, T0 + 1).await.unwrap();
    assert_eq!(ids(&held), ["c2", "c3", "p1"]);

    leases.finish(&mut held[2]).await.unwrap(); // p1
    let mut held = leases.assign("w", 100, T0 + 2).await.unwrap();
    assert_eq!(ids(&held), ["c2", "c3", "c4", "c5"]);

    leases.finish(&mut held[2]).await.unwrap(); // c4 only: the merge child still waits
    let mut held = leases.assign("w", 100, T0 + 3).await.unwrap();
    assert_eq!(ids(&held), ["c2", "c3", "c5"]);
    leases.finish(&mut held[2]).await.unwrap(); // c5
    let held = leases.assign("w", 100, T0 + 4).await.unwrap();
    assert_eq!(ids(&held), ["c2", "c3", "m6"]);
}

/// Runs worker `id` in finite mode with shards starting at `initial`.
async fn run_from(world: &World, id: &str, initial: InitialPosition, quiet_ms: u64) -> WorkerExit {
    let settings = WorkerSettings {
        initial_position: initial,
        finite_quiet_ms: Some(quiet_ms),
        ..settings(id)
    };
    run_worker(world.worker_ports(), spec(), settings, pending())
        .await
        .expect("worker runs")
}

#[tokio::test(start_paused = true)]
async fn at_timestamp_starts_every_shard_at_the_first_record_that_arrived_then() {
    let recs = records_with(400, false);
    let world = World::new(2, &[]);
    // Arrival times after the records' event times (a record far ahead of its arrival
    // would be set aside).
    let arrived = 1_767_400_000_000;
    for (i, r) in recs.iter().enumerate() {
        world
            .stream
            .put(&r.partition_key, r.data.clone(), Some(arrived + i as i64));
    }
    let exit = run_from(
        &world,
        "w",
        InitialPosition::AtTimestamp(arrived + 150),
        1_000,
    )
    .await;
    assert_eq!(exit, WorkerExit::EndOfInput);
    assert_same(&world.ports.rows(), &replay(&spec(), &recs[150..]).panes);
}

#[tokio::test(start_paused = true)]
async fn latest_skips_what_was_there_and_children_of_a_later_split_start_at_their_oldest() {
    let recs = records_with(900, false);
    let world = World::new(2, &recs[..300]);
    let produce = async {
        // The worker has opened both shards by now (it polls every 50 ms).
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        world.put(&recs[300..600]);
        let (c2, c3) = world.stream.split("shardId-000000000000").unwrap();
        world.put(&recs[600..]);
        (c2, c3)
    };
    let (exit, (c2, c3)) = tokio::join!(
        run_from(&world, "w", InitialPosition::Latest, 5_000),
        produce
    );
    assert_eq!(exit, WorkerExit::EndOfInput);
    assert!(!world.stream.records(&c2).is_empty() || !world.stream.records(&c3).is_empty());
    assert_same(&world.ports.rows(), &replay(&spec(), &recs[300..]).panes);
    let leases = world.leases.list().await.unwrap();
    let start = |id: &str| {
        leases
            .iter()
            .find(|l| l.shard_id == id)
            .map(|l| l.parents.clone())
    };
    // The children were created after their parent's lease, so they started at TRIM_HORIZON
    // (every record put into them counted above).
    assert_eq!(start(&c2), Some(vec!["shardId-000000000000".to_string()]));
}
