//! The lease table adapter against local AWS (moto DynamoDB): its conditional writes fence
//! a stale owner exactly as the in-memory port does. The balancing policy over the port is
//! tested in `eventide-runtime` (`tests/worker.rs`). Time is injected.

mod common;

use std::sync::Arc;

use eventide_aws::leases::{ensure_table, LeaseTable};
use eventide_ports::lease::TRIM_HORIZON;
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

async fn keeper(shards: &[ShardInfo]) -> LeaseKeeper {
    let c = common::clients().await;
    let name = common::unique("leases");
    ensure_table(&c.dynamodb, &name).await.unwrap();
    ensure_table(&c.dynamodb, &name).await.unwrap(); // idempotent
    let leases = LeaseKeeper::new(
        Arc::new(LeaseTable::new(c.dynamodb.clone(), name, "pipe")),
        DURATION,
    );
    assert_eq!(leases.sync_shards(shards).await.unwrap(), shards.len());
    assert_eq!(
        leases.sync_shards(shards).await.unwrap(),
        0,
        "sync creates only missing leases"
    );
    leases
}

#[tokio::test]
async fn takeover_after_expiry_increments_counter_and_fences_old_owner() {
    let leases = keeper(&[shard("s0", &[]), shard("c1", &["s0", "x"])]).await;
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
    let stored = leases.list().await.unwrap().remove(1);
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
    assert!(leases.list().await.unwrap()[1].finished);
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
async fn two_workers_racing_for_one_lease_one_wins() {
    let leases = keeper(&[shard("s0", &[])]).await;
    let (a, b) = tokio::join!(
        leases.try_acquire("s0", "w1", T0),
        leases.try_acquire("s0", "w2", T0)
    );
    let won = [a.unwrap(), b.unwrap()];
    assert_eq!(won.iter().flatten().count(), 1, "{won:?}");
    assert_eq!(leases.list().await.unwrap()[0].counter, 1);
}
