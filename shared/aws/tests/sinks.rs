//! The pane sinks and dead letters against local AWS.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use eventide_aws::dead_letter::{DeadLetter, DeadLetters};
use eventide_aws::sinks::{DynamoDbSink, KinesisSink, PaneRow, S3Sink};
use eventide_engine::pane::Pane;
use eventide_engine::trigger::Timing;
use eventide_engine::window::Window;
use serde_json::Value;

/// 2026-11-24T00:00:00Z in epoch ms.
const DAY: i64 = 1_795_478_400_000;
const HOUR: i64 = 3_600_000;

fn row(agg: &str, key: &str, start: i64, end: i64, index: u32, value: Option<f64>) -> PaneRow {
    let values = [value, Some(index as f64)];
    let pane = Pane {
        aggregation: 0,
        key,
        key_id: 0,
        window: Window { start, end },
        timing: if index == 0 {
            Timing::OnTime
        } else {
            Timing::Late
        },
        index,
        retraction: false,
        values: &values,
    };
    PaneRow::from_pane(
        &pane,
        agg,
        &["sensor".to_string(), "site".to_string()],
        &["total".to_string(), "n".to_string()],
    )
}

fn batch() -> Vec<PaneRow> {
    vec![
        row("q1", "a\u{1f}s1", DAY, DAY + HOUR, 0, Some(1.5)),
        row("q1", "a\u{1f}s1", DAY, DAY + HOUR, 1, None),
        row("q1", "b\u{1f}s2", DAY + HOUR, DAY + 2 * HOUR, 0, Some(-3.0)),
        row("q2", "a\u{1f}s1", DAY - HOUR, DAY, 0, Some(7.0)),
    ]
}

#[tokio::test]
async fn dynamodb_results_are_upserted_once_per_pane() {
    let clients = common::clients().await;
    let table = common::unique("results");
    DynamoDbSink::ensure_table(&clients.dynamodb, &table)
        .await
        .expect("ensure_table");
    DynamoDbSink::ensure_table(&clients.dynamodb, &table)
        .await
        .expect("ensure_table again");
    let sink = DynamoDbSink::new(clients.dynamodb.clone(), &table);
    let rows = batch();
    sink.write(&rows, "b1").await.expect("write");
    sink.write(&rows, "b1").await.expect("write again");
    // A batch of more than 25 panes, with a duplicate inside it.
    let mut many: Vec<PaneRow> = (0..30)
        .map(|i| {
            row(
                "q3",
                "c\u{1f}s3",
                i * HOUR,
                (i + 1) * HOUR,
                0,
                Some(i as f64),
            )
        })
        .collect();
    many.push(many[0].clone());
    sink.write(&many, "b2").await.expect("write many");

    let scan = clients
        .dynamodb
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan");
    assert_eq!(scan.items().len(), rows.len() + 30);
    let ids: HashSet<&str> = scan
        .items()
        .iter()
        .filter_map(|i| i.get("pane_id").and_then(|v| v.as_s().ok()))
        .map(String::as_str)
        .collect();
    assert_eq!(ids.len(), rows.len() + 30, "one item per pane id");

    // A key's panes come back in window and pane order.
    let q = clients
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("q1#a\u{1f}s1".into()))
        .send()
        .await
        .expect("query");
    let items = q.items();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["pane_id"].as_s().ok(), Some(&rows[0].pane_id));
    assert_eq!(items[0]["total"].as_n().map(String::as_str), Ok("1.5"));
    assert_eq!(items[0]["sensor"].as_s().map(String::as_str), Ok("a"));
    assert_eq!(items[0]["timing"].as_s().map(String::as_str), Ok("ON_TIME"));
    assert_eq!(items[1]["total"], AttributeValue::Null(true));
    assert_eq!(items[1]["pane_index"].as_n().map(String::as_str), Ok("1"));
}

async fn bucket(clients: &eventide_aws::config::Clients) -> String {
    let name = common::unique("evt").to_lowercase();
    DeadLetters::ensure_bucket(&clients.s3, &name)
        .await
        .expect("ensure_bucket");
    DeadLetters::ensure_bucket(&clients.s3, &name)
        .await
        .expect("ensure_bucket again");
    name
}

async fn list(clients: &eventide_aws::config::Clients, bucket: &str, prefix: &str) -> Vec<String> {
    let out = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

async fn get(clients: &eventide_aws::config::Clients, bucket: &str, key: &str) -> Vec<Value> {
    let out = clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    let bytes = out.body.collect().await.expect("body").into_bytes();
    String::from_utf8(bytes.to_vec())
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test]
async fn s3_objects_are_partitioned_by_window_end_and_retries_overwrite() {
    let clients = common::clients().await;
    let bucket = bucket(&clients).await;
    let sink = S3Sink::new(clients.s3.clone(), &bucket, "/results/");
    let rows = batch();
    sink.write(&rows, "shardId-000000000000-100")
        .await
        .expect("write");
    sink.write(&rows, "shardId-000000000000-100")
        .await
        .expect("retry");
    let keys = list(&clients, &bucket, "results/").await;
    assert_eq!(
        keys,
        vec![
            "results/aggregation=q1/dt=2026-11-24/hour=01/shardId-000000000000-100.jsonl",
            "results/aggregation=q1/dt=2026-11-24/hour=02/shardId-000000000000-100.jsonl",
            "results/aggregation=q2/dt=2026-11-24/hour=00/shardId-000000000000-100.jsonl",
        ]
    );
    assert_eq!(keys, sink.object_keys(&rows, "shardId-000000000000-100"));
    let lines = get(&clients, &bucket, &keys[0]).await;
    assert_eq!(lines.len(), 2, "the retry replaced the object");
    assert_eq!(Value::Object(rows[0].to_json()), lines[0]);
    assert_eq!(lines[1]["pane_id"], rows[1].pane_id.as_str());
    assert_eq!(lines[1]["total"], Value::Null);
    assert_eq!(lines[1]["site"], "s1");

    // The next batch adds objects next to the first ones.
    sink.write(&rows[..1], "shardId-000000000000-200")
        .await
        .expect("next batch");
    assert_eq!(list(&clients, &bucket, "results/").await.len(), 4);
}

#[tokio::test]
async fn kinesis_panes_are_readable_from_the_stream() {
    let clients = common::clients().await;
    let stream = common::unique("panes");
    clients
        .kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .expect("create stream");
    let mut shard_id = None;
    for _ in 0..100 {
        let d = clients
            .kinesis
            .describe_stream()
            .stream_name(&stream)
            .send()
            .await
            .expect("describe");
        let desc = d.stream_description().expect("description");
        if desc.stream_status() == &StreamStatus::Active {
            shard_id = desc.shards().first().map(|s| s.shard_id().to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shard_id = shard_id.expect("stream became active");

    let sink = KinesisSink::new(clients.kinesis.clone(), &stream);
    // More than one PutRecords call (500 per call).
    let mut rows = batch();
    rows.extend((0..510).map(|i| row("q3", &format!("k{i}"), 0, HOUR, 0, Some(i as f64))));
    sink.write(&rows, "b1").await.expect("write");

    let mut iterator = clients
        .kinesis
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(&shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator()
        .map(str::to_string);
    let mut got = Vec::new();
    for _ in 0..50 {
        let Some(it) = iterator.take() else { break };
        let out = clients
            .kinesis
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .expect("get records");
        for r in out.records() {
            let v: Value = serde_json::from_slice(r.data().as_ref()).expect("json record");
            got.push((r.partition_key().unwrap_or_default().to_string(), v));
        }
        if got.len() >= rows.len() {
            break;
        }
        iterator = out.next_shard_iterator().map(str::to_string);
    }
    assert_eq!(got.len(), rows.len());
    // One shard: records arrive in put order.
    for (row, (pk, v)) in rows.iter().zip(&got) {
        assert_eq!(pk, &row.key());
        assert_eq!(v, &Value::Object(row.to_json()));
    }
    clients
        .kinesis
        .delete_stream()
        .stream_name(&stream)
        .send()
        .await
        .expect("delete stream");
}

#[tokio::test]
async fn dead_letters_land_under_the_prefix_with_shard_sequence_and_reason() {
    let clients = common::clients().await;
    let bucket = bucket(&clients).await;
    let dl = DeadLetters::new(clients.s3.clone(), &bucket, "dead-letters");
    let shard = "shardId-000000000003";
    assert_eq!(dl.write(shard, &[]).await.expect("empty"), None);
    let records = vec![
        DeadLetter {
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            reason: "expected value at line 1 column 1".into(),
            data: b"not json".to_vec(),
        },
        DeadLetter {
            sequence_number: "49590338271490256608559692538361571095921575989136588899".into(),
            reason: "invalid UTF-8".into(),
            data: vec![b'{', 0xff, 0xfe],
        },
    ];
    let key = dl
        .write(shard, &records)
        .await
        .expect("write")
        .expect("key");
    assert_eq!(
        key,
        "dead-letters/shard=shardId-000000000003/49590338271490256608559692538361571095921575989136588898.jsonl"
    );
    // A replay overwrites the same object.
    dl.write(shard, &records).await.expect("rewrite");
    assert_eq!(
        list(&clients, &bucket, "dead-letters/").await,
        vec![key.clone()]
    );

    let lines = get(&clients, &bucket, &key).await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["shard"], shard);
    assert_eq!(
        lines[0]["sequence_number"],
        records[0].sequence_number.as_str()
    );
    assert_eq!(lines[0]["reason"], "expected value at line 1 column 1");
    assert_eq!(lines[0]["raw"], "not json");
    assert!(lines[0].get("data_hex").is_none());
    assert_eq!(lines[1]["reason"], "invalid UTF-8");
    assert_eq!(lines[1]["data_hex"], "7bfffe");
    assert_eq!(lines[1]["raw"], "{\u{fffd}\u{fffd}");
}
