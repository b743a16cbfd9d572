//! The lease table against local AWS (moto DynamoDB). Time is injected.

mod common;

use eventide_aws::kinesis::{ShardInfo, TRIM_HORIZON};
use eventide_aws::leases::{ensure_table, LeaseTable};
use eventide_aws::AwsError;

const T0: i64 = 1_700_000_000_000;
const DURATION: i64 = 10_000;

fn shard(id: &str, parents: &[&str]) -> ShardInfo {
    ShardInfo {
        shard_id: id.into(),
        parent_shard_id: parents.first().map(|p| p.to_string()),
        adjacent_parent_shard_id: parents.get(1).map(|p| p.to_string()),
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        closed: false,
    }
}

async fn table(shards: &[ShardInfo]) -> LeaseTable {
    let c = common::clients().await;
    let name = common::unique("leases");
    ensure_table(&c.dynamodb, &name).await.unwrap();
    ensure_table(&c.dynamodb, &name).await.unwrap(); // idempotent
    let leases = LeaseTable::new(c.dynamodb.clone(), name, "pipe", DURATION);
    assert_eq!(leases.sync_shards(shards).await.unwrap(), shards.len());
    assert_eq!(
        leases.sync_shards(shards).await.unwrap(),
        0,
        "sync creates only missing leases"
    );
    leases
}

fn ids(leases: &[eventide_aws::leases::Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.shard_id.as_str()).collect()
}

#[tokio::test]
async fn takeover_after_expiry_increments_counter_and_fences_old_owner() {
    let leases = table(&[shard("s0", &[])]).await;
    let fresh = leases.get("s0").await.unwrap().unwrap();
    assert_eq!(
        (
            fresh.owner.as_deref(),
            fresh.counter,
            fresh.checkpoint.as_str()
        ),
        (None, 0, TRIM_HORIZON)
    );

    let mut a = leases
        .try_acquire("s0", "w1", T0)
        .await
        .unwrap()
        .expect("free lease");
    assert_eq!(
        (a.owner.as_deref(), a.counter, a.expires_ms),
        (Some("w1"), 1, T0 + DURATION)
    );
    // Held: another worker cannot take it; the owner re-acquires without a new counter.
    assert!(leases
        .try_acquire("s0", "w2", T0 + 100)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        leases
            .try_acquire("s0", "w1", T0 + 100)
            .await
            .unwrap()
            .unwrap()
            .counter,
        1
    );
    leases.renew(&mut a, T0 + 5_000).await.unwrap();
    leases.checkpoint(&mut a, "100").await.unwrap();
    assert!(leases
        .try_acquire("s0", "w2", T0 + 5_000 + DURATION - 1)
        .await
        .unwrap()
        .is_none());

    // Expired: w2 takes it over, counter +1, checkpoint kept.
    let now = T0 + 5_000 + DURATION;
    let mut b = leases
        .try_acquire("s0", "w2", now)
        .await
        .unwrap()
        .expect("expired lease");
    assert_eq!(
        (b.owner.as_deref(), b.counter, b.checkpoint.as_str()),
        (Some("w2"), 2, "100")
    );

    // The old owner is fenced: every owner write fails with Conflict and changes nothing.
    let err = leases.checkpoint(&mut a, "200").await.unwrap_err();
    assert!(matches!(err, AwsError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("pipe#s0"),
        "error names the lease: {err}"
    );
    assert!(matches!(
        leases.renew(&mut a, now).await,
        Err(AwsError::Conflict { .. })
    ));
    assert!(matches!(
        leases.finish(&mut a).await,
        Err(AwsError::Conflict { .. })
    ));
    assert!(matches!(
        leases.release(a.clone()).await,
        Err(AwsError::Conflict { .. })
    ));
    assert_eq!(a.checkpoint, "100");

    leases.checkpoint(&mut b, "300").await.unwrap();
    let stored = leases.get("s0").await.unwrap().unwrap();
    assert_eq!(
        (
            stored.owner.as_deref(),
            stored.counter,
            stored.checkpoint.as_str()
        ),
        (Some("w2"), 2, "300")
    );

    // Release frees it at once; the next owner gets counter 3. Finished leases can't be taken.
    leases.release(b).await.unwrap();
    let mut c = leases
        .try_acquire("s0", "w1", now + 1)
        .await
        .unwrap()
        .expect("released lease");
    assert_eq!(c.counter, 3);
    leases.finish(&mut c).await.unwrap();
    assert!(leases.get("s0").await.unwrap().unwrap().finished);
    assert!(leases
        .try_acquire("s0", "w2", now + 10 * DURATION)
        .await
        .unwrap()
        .is_none());
    assert!(leases
        .try_acquire("missing", "w2", now)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn two_workers_balance_four_leases() {
    let shards: Vec<ShardInfo> = (0..4).map(|i| shard(&format!("s{i}"), &[])).collect();
    let leases = table(&shards).await;

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
        assert!(matches!(
            leases.checkpoint(&mut stale, "1").await,
            Err(AwsError::Conflict { .. })
        ));
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
    let leases = table(&shards).await;
    // w2 holds one lease, so w1 sees two live workers and takes its share of 2.
    leases.try_acquire("s3", "w2", T0).await.unwrap().unwrap();
    let w1 = leases.assign("w1", 10, T0).await.unwrap();
    assert_eq!(ids(&w1), ["s0", "s1"]);
    let w2 = leases.assign("w2", 10, T0).await.unwrap();
    assert_eq!(ids(&w2), ["s2", "s3"]);
}

#[tokio::test]
async fn child_starts_only_after_all_parents_finished() {
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
    let leases = table(&shards).await;
    assert_eq!(
        leases.get("m6").await.unwrap().unwrap().parents,
        ["c4", "c5"]
    );

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
