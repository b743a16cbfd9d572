//! The DynamoDB state store against local AWS: round trip, large loads, fencing,
//! tombstones and the timer index.

mod common;

use std::collections::BTreeMap;

use eventide_aws::state_store::{StateKey, StateStore, StateWrite};
use eventide_aws::AwsError;

const SHARD: &str = "shardId-000000000000";

async fn store(name: &str) -> StateStore {
    let clients = common::clients().await;
    let table = common::unique(name);
    StateStore::ensure_table(&clients.dynamodb, &table)
        .await
        .expect("ensure_table");
    // A second call is a no-op.
    StateStore::ensure_table(&clients.dynamodb, &table)
        .await
        .expect("ensure_table again");
    StateStore::new(clients.dynamodb, table)
}

fn write(key: &StateKey, blob: &[u8], seq: &str) -> StateWrite {
    StateWrite {
        key: key.clone(),
        blob: Some(blob.to_vec()),
        pos: BTreeMap::from([(SHARD.to_string(), seq.to_string())]),
        hk: 0,
        next_timer: None,
        ttl_epoch_s: None,
    }
}

#[tokio::test]
async fn round_trip_keeps_blob_positions_fence_and_shard() {
    let store = store("st-rt").await;
    // Keys may contain '#' and the group-by separator.
    let k1 = StateKey::new("p", "q1", "a#b\u{1f}c");
    let k2 = StateKey::new("p", "q2", "x");
    let missing = StateKey::new("p", "q1", "never-written");
    let mut w2 = write(&k2, &[0, 255, 7], "2");
    w2.pos.insert("shardId-000000000001".into(), "99".into());
    w2.ttl_epoch_s = Some(4_000_000_000);
    store
        .commit(vec![write(&k1, b"one", "1"), w2], SHARD, 3)
        .await
        .expect("commit");
    assert_eq!(store.writes(), 2);

    let got = store
        .load(&[k1.clone(), k2.clone(), missing.clone(), k1.clone()])
        .await
        .expect("load");
    assert_eq!(
        got.len(),
        2,
        "the missing key is absent and duplicates collapse"
    );
    assert!(!got.contains_key(&missing));
    let s1 = &got[&k1];
    assert_eq!(s1.blob, b"one");
    assert_eq!(
        s1.pos,
        BTreeMap::from([(SHARD.to_string(), "1".to_string())])
    );
    assert_eq!((s1.fence, s1.shard.as_str()), (3, SHARD));
    let s2 = &got[&k2];
    assert_eq!(s2.blob, vec![0, 255, 7]);
    assert_eq!(s2.pos.len(), 2);
    assert_eq!(s2.pos["shardId-000000000001"], "99");
}

#[tokio::test]
async fn load_reads_more_than_one_batch_get_chunk() {
    let store = store("st-many").await;
    let keys: Vec<StateKey> = (0..130)
        .map(|i| StateKey::new("p", "q1", format!("k{i:03}")))
        .collect();
    let writes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| write(k, format!("blob-{i}").as_bytes(), &i.to_string()))
        .collect();
    store.commit(writes, SHARD, 1).await.expect("commit");
    assert_eq!(store.writes(), 130);
    let got = store.load(&keys).await.expect("load");
    assert_eq!(got.len(), 130);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(got[k].blob, format!("blob-{i}").as_bytes(), "{k:?}");
        assert_eq!(got[k].pos[SHARD], i.to_string());
    }
}

#[tokio::test]
async fn commit_is_fenced_by_the_lease_counter_of_the_same_shard() {
    let store = store("st-fence").await;
    let k = StateKey::new("p", "q1", "k");
    store
        .commit(vec![write(&k, b"by fence 5", "10")], SHARD, 5)
        .await
        .expect("first write");

    // A zombie with an older lease loses and learns which key.
    let err = store
        .commit(vec![write(&k, b"zombie", "11")], SHARD, 4)
        .await
        .expect_err("older fence must be rejected");
    match &err {
        AwsError::Conflict { op, what } => {
            assert!(op.contains("PutItem") && op.contains(store.table()), "{op}");
            assert!(what.contains("p#q1#k"), "{what}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Nor can it delete.
    let mut tomb = write(&k, b"", "11");
    tomb.blob = None;
    assert!(matches!(
        store.commit(vec![tomb], SHARD, 4).await,
        Err(AwsError::Conflict { .. })
    ));
    let got = store.load(std::slice::from_ref(&k)).await.expect("load");
    assert_eq!(got[&k].blob, b"by fence 5");

    // The same and newer fences win.
    store
        .commit(vec![write(&k, b"same fence", "12")], SHARD, 5)
        .await
        .expect("same fence");
    store
        .commit(vec![write(&k, b"by fence 6", "13")], SHARD, 6)
        .await
        .expect("newer fence");
    // After resharding a child shard (another lease counter) may write the key.
    store
        .commit(vec![write(&k, b"child", "1")], "shardId-000000000002", 1)
        .await
        .expect("another shard");
    let got = store.load(std::slice::from_ref(&k)).await.expect("load");
    assert_eq!(got[&k].blob, b"child");
    assert_eq!(
        (got[&k].fence, got[&k].shard.as_str()),
        (1, "shardId-000000000002")
    );
}

#[tokio::test]
async fn an_empty_state_is_deleted_with_a_tombstone() {
    let store = store("st-tomb").await;
    let keep = StateKey::new("p", "q1", "keep");
    let gone = StateKey::new("p", "q1", "gone");
    store
        .commit(
            vec![write(&keep, b"k", "1"), write(&gone, b"g", "1")],
            SHARD,
            2,
        )
        .await
        .expect("commit");
    let mut tomb = write(&gone, b"", "2");
    tomb.blob = None;
    store
        .commit(vec![tomb.clone()], SHARD, 2)
        .await
        .expect("delete");
    // Deleting again (a replayed batch) is fine.
    store
        .commit(vec![tomb], SHARD, 2)
        .await
        .expect("delete again");
    let got = store
        .load(&[keep.clone(), gone.clone()])
        .await
        .expect("load");
    assert!(got.contains_key(&keep));
    assert!(!got.contains_key(&gone));
}

#[tokio::test]
async fn pending_timers_are_found_by_pipeline_and_hash_key_range() {
    let store = store("st-timers").await;
    let half = 1u128 << 127;
    let mut writes = Vec::new();
    let mut expect_low = Vec::new();
    let mut expect_high = Vec::new();
    for i in 0..8u128 {
        let k = StateKey::new("p", "q1", format!("k{i}"));
        let mut w = write(&k, b"s", "1");
        // Even keys in the lower half of the hash space, odd ones in the upper half.
        w.hk = if i % 2 == 0 { i * 1_000 } else { half + i };
        // Keys 6 and 7 have no pending timer and stay out of the index.
        if i < 6 {
            w.next_timer = Some(60_000);
            if i % 2 == 0 {
                expect_low.push(k);
            } else {
                expect_high.push(k);
            }
        }
        writes.push(w);
    }
    // Another pipeline in the same table is not returned.
    let mut other = write(&StateKey::new("other", "q1", "k0"), b"s", "1");
    other.next_timer = Some(1);
    writes.push(other);
    store.commit(writes, SHARD, 1).await.expect("commit");

    let mut low = store.pending_timers("p", 0, half - 1).await.expect("query");
    low.sort();
    assert_eq!(low, expect_low);
    let mut high = store
        .pending_timers("p", half, u128::MAX)
        .await
        .expect("query");
    high.sort();
    assert_eq!(high, expect_high);
    let all = store
        .pending_timers("p", 0, u128::MAX)
        .await
        .expect("query");
    assert_eq!(all.len(), 6);

    // Clearing the timer removes the key from the index.
    let mut cleared = write(&expect_low[0], b"s", "2");
    cleared.hk = 0;
    store.commit(vec![cleared], SHARD, 1).await.expect("commit");
    let low = store.pending_timers("p", 0, half - 1).await.expect("query");
    assert_eq!(low.len(), 2);
    assert!(!low.contains(&expect_low[0]));
}

#[tokio::test]
async fn load_retries_unprocessed_keys_of_a_response_over_16_mib() {
    // BatchGetItem returns at most 16 MiB and hands back the rest as UnprocessedKeys
    // (moto models this limit too): 48 items of 350 KiB are about 16.4 MiB.
    let store = store("st-big").await;
    let keys: Vec<StateKey> = (0..48)
        .map(|i| StateKey::new("p", "q1", format!("big{i:02}")))
        .collect();
    let writes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| write(k, &vec![i as u8; 350 * 1024], "1"))
        .collect();
    store.commit(writes, SHARD, 1).await.expect("commit");
    let got = store.load(&keys).await.expect("load");
    assert_eq!(got.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(got[k].blob.len(), 350 * 1024);
        assert!(got[k].blob.iter().all(|&b| b == i as u8), "{k:?}");
    }
}
