//! The lease table adapter against local AWS (moto DynamoDB): its conditional writes fence
//! a stale owner exactly as the in-memory port does (a take is conditional on the lease as
//! read, an owner's write on its owner and counter). The balancing policy over the port is
//! tested in `eventide-runtime` (`tests/worker.rs`). Time is injected.

mod common;

use std::sync::Arc;

use eventide_aws::leases::{ensure_table, LeaseTable};
use eventide_ports::lease::{Lease, Leases, TRIM_HORIZON};
use eventide_ports::shard::ShardInfo;
use eventide_ports::PortError;
use eventide_runtime::lease::LeaseKeeper;

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

/// A fresh lease table with leases for `shards`: the adapter itself (the port) and the
/// policy over it (for the owner's writes).
async fn table(shards: &[ShardInfo]) -> (Arc<LeaseTable>, LeaseKeeper) {
    let c = common::clients().await;
    let name = common::unique("leases");
    ensure_table(&c.dynamodb, &name).await.unwrap();
    ensure_table(&c.dynamodb, &name).await.unwrap(); // idempotent
    let table = Arc::new(LeaseTable::new(c.dynamodb.clone(), name, "pipe"));
    let keeper = LeaseKeeper::new(table.clone(), DURATION);
    assert_eq!(keeper.sync_shards(shards).await.unwrap(), shards.len());
    assert_eq!(
        keeper.sync_shards(shards).await.unwrap(),
        0,
        "sync creates only missing leases"
    );
    (table, keeper)
}

/// The lease of `shard` as stored now.
async fn read(table: &LeaseTable, shard: &str) -> Lease {
    let lease = table.get(shard).await.unwrap();
    lease.unwrap_or_else(|| panic!("no lease {shard}"))
}

#[tokio::test]
async fn takeover_increments_counter_and_fences_old_owner() {
    let (table, leases) = table(&[shard("s0", &[]), shard("c1", &["s0", "x"])]).await;
    let all = leases.list().await.unwrap();
    assert_eq!(all[0].parents, ["s0", "x"], "parents are stored, sorted");
    let fresh = &all[1];
    assert_eq!(
        (
            fresh.owner.as_deref(),
            fresh.counter,
            fresh.checkpoint.as_str()
        ),
        (None, 0, TRIM_HORIZON)
    );

    let seen = read(&table, "s0").await;
    let mut a = Leases::take(&*table, &seen, "w1", T0 + DURATION)
        .await
        .unwrap()
        .expect("free lease");
    assert_eq!(
        (a.owner.as_deref(), a.counter, a.expires_ms),
        (Some("w1"), 1, T0 + DURATION)
    );
    // A take conditional on the lease as it was before is refused: it changed since.
    assert!(Leases::take(&*table, &seen, "w2", T0 + DURATION)
        .await
        .unwrap()
        .is_none());
    leases.renew(&mut a, T0 + 5_000).await.unwrap();
    leases.checkpoint(&mut a, "100").await.unwrap();

    // w2 takes it over (as after expiry): counter +1, checkpoint kept.
    let now = T0 + 5_000 + DURATION;
    let seen = read(&table, "s0").await;
    assert_eq!((seen.expires_ms, seen.checkpoint.as_str()), (now, "100"));
    let mut b = Leases::take(&*table, &seen, "w2", now + DURATION)
        .await
        .unwrap()
        .expect("lease as read");
    assert_eq!(
        (b.owner.as_deref(), b.counter, b.checkpoint.as_str()),
        (Some("w2"), 2, "100")
    );

    // The old owner is fenced: every owner write fails with Conflict and changes nothing.
    let err = leases.checkpoint(&mut a, "200").await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(
        err.to_string().contains("pipe#s0"),
        "error names the lease: {err}"
    );
    let conflict = |r: Result<(), PortError>| matches!(r, Err(PortError::Conflict { .. }));
    assert!(conflict(leases.renew(&mut a, now).await));
    assert!(conflict(leases.finish(&mut a).await));
    assert!(conflict(leases.release(a.clone()).await));
    assert_eq!(a.checkpoint, "100");

    leases.checkpoint(&mut b, "300").await.unwrap();
    let stored = read(&table, "s0").await;
    assert_eq!(
        (
            stored.owner.as_deref(),
            stored.counter,
            stored.checkpoint.as_str()
        ),
        (Some("w2"), 2, "300")
    );

    // Release frees it; the next owner gets counter 3. A finished lease can't be taken.
    leases.release(b).await.unwrap();
    let seen = read(&table, "s0").await;
    assert_eq!((seen.owner.as_deref(), seen.expires_ms), (None, 0));
    let mut c = Leases::take(&*table, &seen, "w1", now + 1 + DURATION)
        .await
        .unwrap()
        .expect("released lease");
    assert_eq!(c.counter, 3);
    leases.finish(&mut c).await.unwrap();
    let finished = read(&table, "s0").await;
    assert!(finished.finished);
    assert!(Leases::take(&*table, &finished, "w2", now + 11 * DURATION)
        .await
        .unwrap()
        .is_none());
    assert!(table.get("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn two_workers_racing_for_one_lease_one_wins() {
    let (table, leases) = table(&[shard("s0", &[])]).await;
    let seen = read(&table, "s0").await;
    let (a, b) = tokio::join!(
        Leases::take(&*table, &seen, "w1", T0),
        Leases::take(&*table, &seen, "w2", T0)
    );
    let won = [a.unwrap(), b.unwrap()];
    assert_eq!(won.iter().flatten().count(), 1, "{won:?}");
    assert_eq!(leases.list().await.unwrap()[0].counter, 1);
}
