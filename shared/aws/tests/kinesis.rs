//! Kinesis reader and helpers against local AWS (kinesis-mock).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use eventide_aws::kinesis::{
    create_stream_and_wait, delete_stream, hash_key, list_shards, put_records,
    update_shard_count_and_wait, Batch, KinesisRecord, PutEntry, ReaderConfig, ShardReader,
    StartPosition,
};

/// Sequence numbers compare as numbers: by length, then lexically.
fn seq_key(s: &str) -> (usize, &str) {
    (s.len(), s)
}

/// Reads `shard` from `start` until `want` records arrived or SHARD_END, with a timeout.
async fn read_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    start: StartPosition,
    want: usize,
    until_end: bool,
) -> (Vec<KinesisRecord>, Option<Vec<String>>) {
    let config = ReaderConfig {
        limit: 7,
        ..ReaderConfig::default()
    };
    let mut reader = ShardReader::new(client.clone(), stream, shard, start, config);
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Batch {
            records: batch,
            shard_end,
            ..
        } = reader.next_batch().await.expect("GetRecords");
        assert!(batch.len() <= 7, "limit respected");
        records.extend(batch);
        if let Some(end) = shard_end {
            assert!(reader.is_finished());
            return (records, Some(end.child_shard_ids));
        }
        if records.len() >= want && !until_end {
            return (records, None);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out reading {shard}: {} of {want}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reader_reads_all_records_in_order_per_shard() {
    let c = common::clients().await;
    let stream = common::unique("rd");
    create_stream_and_wait(&c.kinesis, &stream, 2)
        .await
        .unwrap();
    let entries: Vec<PutEntry> = (0..120)
        .map(|i| {
            PutEntry::new(
                format!("k{}", i % 17),
                format!("{}:{i}", i % 17).into_bytes(),
            )
        })
        .collect();
    let outcomes = put_records(&c.kinesis, &stream, &entries).await.unwrap();
    assert_eq!(outcomes.len(), entries.len());

    // What each shard must return, in put order.
    let mut expected: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (e, o) in entries.iter().zip(&outcomes) {
        expected
            .entry(o.shard_id.clone())
            .or_default()
            .push((o.sequence_number.clone(), e.data.clone()));
    }
    let shards = list_shards(&c.kinesis, &stream).await.unwrap();
    assert_eq!(shards.len(), 2);
    assert!(shards.iter().all(|s| !s.closed && s.parents().is_empty()));
    assert_eq!(expected.len(), 2, "17 keys land on both shards");

    for shard in &shards {
        let want = &expected[&shard.shard_id];
        let (got, end) = read_shard(
            &c.kinesis,
            &stream,
            &shard.shard_id,
            StartPosition::TrimHorizon,
            want.len(),
            false,
        )
        .await;
        assert!(end.is_none(), "open shard does not end");
        let got_pairs: Vec<(String, Vec<u8>)> = got
            .iter()
            .map(|r| (r.sequence_number.clone(), r.data.clone()))
            .collect();
        assert_eq!(
            &got_pairs, want,
            "shard {} returns its records in put order",
            shard.shard_id
        );
        assert!(got
            .windows(2)
            .all(|w| seq_key(&w[0].sequence_number) < seq_key(&w[1].sequence_number)));
        for r in &got {
            assert!(
                shard.contains(hash_key(&r.partition_key)),
                "record routed by MD5 of its key"
            );
            assert!(r
                .approximate_arrival_ms
                .is_some_and(|t| t > 1_600_000_000_000));
        }

        // Resuming after a checkpoint returns exactly the rest.
        let cut = want.len() / 2;
        let (rest, _) = read_shard(
            &c.kinesis,
            &stream,
            &shard.shard_id,
            StartPosition::from_checkpoint(&want[cut - 1].0),
            want.len() - cut,
            false,
        )
        .await;
        let rest_seqs: Vec<&str> = rest.iter().map(|r| r.sequence_number.as_str()).collect();
        let want_seqs: Vec<&str> = want[cut..].iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(rest_seqs, want_seqs);
    }
    delete_stream(&c.kinesis, &stream).await.unwrap();
}

#[tokio::test]
async fn resharding_ends_parents_and_children_get_new_records() {
    let c = common::clients().await;
    let stream = common::unique("rs");
    create_stream_and_wait(&c.kinesis, &stream, 2)
        .await
        .unwrap();
    let before: Vec<PutEntry> = (0..30)
        .map(|i| PutEntry::new(format!("k{i}"), format!("before:{i}").into_bytes()))
        .collect();
    put_records(&c.kinesis, &stream, &before).await.unwrap();

    update_shard_count_and_wait(&c.kinesis, &stream, 4)
        .await
        .unwrap();
    let after: Vec<PutEntry> = (0..60)
        .map(|i| PutEntry::new(format!("k{i}"), format!("after:{i}").into_bytes()))
        .collect();
    let after_out = put_records(&c.kinesis, &stream, &after).await.unwrap();

    let shards = list_shards(&c.kinesis, &stream).await.unwrap();
    assert_eq!(shards.len(), 6, "2 closed parents + 4 children: {shards:?}");
    let parents: Vec<_> = shards.iter().filter(|s| s.closed).collect();
    let children: Vec<_> = shards.iter().filter(|s| !s.closed).collect();
    assert_eq!((parents.len(), children.len()), (2, 4));
    assert!(
        after_out
            .iter()
            .all(|o| children.iter().any(|c| c.shard_id == o.shard_id)),
        "new writes go to children"
    );

    let mut before_seen = 0;
    for p in &parents {
        let (records, end) = read_shard(
            &c.kinesis,
            &stream,
            &p.shard_id,
            StartPosition::TrimHorizon,
            0,
            true,
        )
        .await;
        let mut kids = end.expect("parent reaches SHARD_END");
        kids.sort();
        let mut expected: Vec<String> = children
            .iter()
            .filter(|c| c.parents().contains(&p.shard_id))
            .map(|c| c.shard_id.clone())
            .collect();
        expected.sort();
        assert_eq!(kids.len(), 2, "a split parent has 2 children");
        assert_eq!(kids, expected, "ChildShards agree with ListShards parents");
        assert!(records.iter().all(|r| r.data.starts_with(b"before:")));
        before_seen += records.len();
    }
    assert_eq!(
        before_seen,
        before.len(),
        "parents hold every record written before the split"
    );

    let mut per_child: HashMap<&str, usize> = HashMap::new();
    for o in &after_out {
        *per_child.entry(o.shard_id.as_str()).or_default() += 1;
    }
    let mut after_seen = 0;
    for ch in &children {
        let want = per_child.get(ch.shard_id.as_str()).copied().unwrap_or(0);
        let (records, end) = read_shard(
            &c.kinesis,
            &stream,
            &ch.shard_id,
            StartPosition::TrimHorizon,
            want,
            false,
        )
        .await;
        assert!(end.is_none());
        assert_eq!(records.len(), want);
        assert!(records
            .iter()
            .all(|r| r.data.starts_with(b"after:") && ch.contains(hash_key(&r.partition_key))));
        after_seen += records.len();
    }
    assert_eq!(after_seen, after.len());
    delete_stream(&c.kinesis, &stream).await.unwrap();
}

#[tokio::test]
async fn hash_key_predicts_routing_and_explicit_hash_key() {
    let c = common::clients().await;
    let stream = common::unique("hk");
    create_stream_and_wait(&c.kinesis, &stream, 3)
        .await
        .unwrap();
    let shards = list_shards(&c.kinesis, &stream).await.unwrap();
    assert_eq!(shards.len(), 3);
    let shard_of = |h: u128| {
        shards
            .iter()
            .find(|s| s.contains(h))
            .map(|s| s.shard_id.clone())
            .unwrap()
    };

    // By partition key: the shard containing MD5(key).
    let by_key: Vec<PutEntry> = (0..40)
        .map(|i| PutEntry::new(format!("user-{i}"), b"x".to_vec()))
        .collect();
    let out = put_records(&c.kinesis, &stream, &by_key).await.unwrap();
    for (e, o) in by_key.iter().zip(&out) {
        assert_eq!(
            o.shard_id,
            shard_of(hash_key(&e.partition_key)),
            "key {}",
            e.partition_key
        );
    }

    // By ExplicitHashKey: range starts, ends and middles, and another key's hash.
    let mut explicit = Vec::new();
    for s in &shards {
        for h in [
            s.starting_hash_key,
            s.ending_hash_key,
            s.starting_hash_key / 2 + s.ending_hash_key / 2,
        ] {
            explicit.push(PutEntry {
                explicit_hash_key: Some(h),
                ..PutEntry::new("ignored", b"y".to_vec())
            });
        }
    }
    explicit.push(PutEntry {
        explicit_hash_key: Some(hash_key("other")),
        ..PutEntry::new("ignored", b"z".to_vec())
    });
    let out = put_records(&c.kinesis, &stream, &explicit).await.unwrap();
    for (e, o) in explicit.iter().zip(&out) {
        let h = e.explicit_hash_key.unwrap();
        assert_eq!(o.shard_id, shard_of(h), "explicit hash key {h}");
    }
    delete_stream(&c.kinesis, &stream).await.unwrap();
}

#[tokio::test]
async fn put_records_splits_batches_over_500() {
    let c = common::clients().await;
    let stream = common::unique("pb");
    create_stream_and_wait(&c.kinesis, &stream, 1)
        .await
        .unwrap();
    let entries: Vec<PutEntry> = (0..1100)
        .map(|i| PutEntry::new(format!("k{i}"), vec![b'a'; 10]))
        .collect();
    let out = put_records(&c.kinesis, &stream, &entries).await.unwrap();
    assert_eq!(out.len(), 1100);
    assert!(out
        .windows(2)
        .all(|w| seq_key(&w[0].sequence_number) < seq_key(&w[1].sequence_number)));
    // Creating an existing stream is fine.
    create_stream_and_wait(&c.kinesis, &stream, 1)
        .await
        .unwrap();
    delete_stream(&c.kinesis, &stream).await.unwrap();
}
