//! The state log against local AWS (moto DynamoDB and S3): versioned entries written only
//! once, entries larger than an item split into parts, trimming, and snapshots.

mod common;

use eventide_aws::dead_letter::DeadLetters;
use eventide_aws::state_log::{ensure_table, DynamoStateLog};
use eventide_ports::state::{LogEntry, StateLog, MAX_PART};

const SHARD: &str = "shardId-000000000000";

async fn log() -> DynamoStateLog {
    let c = common::clients().await;
    let table = common::unique("state");
    let bucket = common::unique("state-data");
    ensure_table(&c.dynamodb, &table).await.unwrap();
    ensure_table(&c.dynamodb, &table).await.unwrap(); // idempotent
    DeadLetters::ensure_bucket(&c.s3, &bucket).await.unwrap();
    DynamoStateLog::new(&c, &table, &bucket, "pipe")
}

fn entry(version: u64, len: usize) -> LogEntry {
    LogEntry {
        version,
        body: (0..len).map(|i| (i * 7 + version as usize) as u8).collect(),
    }
}

#[tokio::test]
async fn entries_are_written_once_in_version_order_split_when_large_and_trimmed() {
    let log = log().await;
    assert!(log.read(SHARD).await.unwrap().is_empty());
    log.append(SHARD, &entry(1, 10)).await.unwrap();
    // A second writer that built on the same version loses.
    let err = log.append(SHARD, &entry(1, 11)).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    // Larger than an item: split into parts, read back whole.
    let big = entry(2, MAX_PART * 2 + 1234);
    log.append(SHARD, &big).await.unwrap();
    for v in 3..=12 {
        log.append(SHARD, &entry(v, 100 + v as usize))
            .await
            .unwrap();
    }
    // Another shard's log is its own.
    log.append("shardId-000000000001", &entry(1, 5))
        .await
        .unwrap();
    let read = log.read(SHARD).await.unwrap();
    assert_eq!(read.len(), 12);
    assert_eq!(read[0], entry(1, 10));
    assert_eq!(read[1], big);
    assert_eq!(
        read.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    // A losing writer of a split entry leaves parts of its own that never mix in.
    assert!(log
        .append(SHARD, &entry(2, MAX_PART + 5))
        .await
        .unwrap_err()
        .is_conflict());
    assert_eq!(log.read(SHARD).await.unwrap()[1], big);
    let gone: Vec<(u64, usize)> = read[..10]
        .iter()
        .map(|e| (e.version, e.body.len()))
        .collect();
    log.trim(SHARD, &gone).await.unwrap();
    let kept: Vec<u64> = log
        .read(SHARD)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(kept, vec![11, 12]);
    assert_eq!(log.read("shardId-000000000001").await.unwrap().len(), 1);
}

#[tokio::test]
async fn snapshots_are_stored_read_and_deleted() {
    let log = log().await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    log.put_snapshot("shardId-000000000000/00000000000000000007-ab", body.clone())
        .await
        .unwrap();
    assert_eq!(
        log.get_snapshot("shardId-000000000000/00000000000000000007-ab")
            .await
            .unwrap(),
        body
    );
    log.delete_snapshot("shardId-000000000000/00000000000000000007-ab")
        .await
        .unwrap();
    assert!(log
        .get_snapshot("shardId-000000000000/00000000000000000007-ab")
        .await
        .is_err());
}
