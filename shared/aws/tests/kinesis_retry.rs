//! The Kinesis reader's and writer's retry paths: throttling, expired iterators and
//! partially failed puts. kinesis-mock enforces no throughput limits and its iterators
//! outlive a test, so these run against a scripted fake Kinesis endpoint on an ephemeral
//! loopback port, with no local AWS.

use eventide_aws::kinesis::{
    put_records, KinesisRecord, PutEntry, ReaderConfig, ShardReader, StartPosition,
};
mod fake {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A scripted response: HTTP status and JSON body.
    pub type Reply = (u16, String);

    /// The requests received: (X-Amz-Target operation, JSON body).
    pub type Log = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

    /// Serves `script` in order (one reply per request, any connection); records each
    /// request as (X-Amz-Target operation, body).
    pub fn serve(script: Vec<Reply>) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Log = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (script, log) = (script.clone(), log.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                    let mut conn = conn;
                    loop {
                        let (mut target, mut len) = (String::new(), 0usize);
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            if lower.starts_with("x-amz-target:") {
                                target = line.rsplit('.').next().unwrap_or("").to_string();
                            }
                        }
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                        log.lock().unwrap().push((target, json));
                        let (status, reply) = script
                            .lock()
                            .unwrap()
                            .next()
                            .unwrap_or((500, r#"{"__type":"ScriptExhausted"}"#.into()));
                        let kind = serde_json::from_str::<serde_json::Value>(&reply)
                            .ok()
                            .and_then(|v| {
                                v.get("__type").and_then(|t| t.as_str()).map(str::to_string)
                            });
                        let mut head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n",
                            reply.len()
                        );
                        if let Some(kind) = kind {
                            head.push_str(&format!("x-amzn-ErrorType: {kind}\r\n"));
                        }
                        head.push_str("\r\n");
                        if conn
                            .write_all(head.as_bytes())
                            .and_then(|_| conn.write_all(reply.as_bytes()))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    /// A Kinesis client for `url` without SDK retries, so our own retry logic is what runs.
    pub fn client(url: &str) -> aws_sdk_kinesis::Client {
        use aws_sdk_kinesis::config::{retry::RetryConfig, BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "fake"))
            .endpoint_url(url)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_kinesis::Client::from_conf(conf)
    }
}

fn throttled() -> fake::Reply {
    (
        400,
        r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#.into(),
    )
}

#[tokio::test]
async fn reader_backs_off_on_throttling_and_regets_expired_iterators() {
    use eventide_aws::sdk::Backoff;
    let (url, seen) = fake::serve(vec![
        (200, r#"{"ShardIterator":"it-1"}"#.into()),
        throttled(),
        throttled(),
        (
            200,
            r#"{"Records":[{"Data":"aGk=","PartitionKey":"k","SequenceNumber":"5","ApproximateArrivalTimestamp":1700000000.5}],
                "NextShardIterator":"it-2","MillisBehindLatest":42}"#
                .into(),
        ),
        (400, r#"{"__type":"ExpiredIteratorException","message":"Iterator expired"}"#.into()),
        (200, r#"{"ShardIterator":"it-3"}"#.into()),
        (
            200,
            r#"{"Records":[],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"c1","ParentShards":["s0"],
                "HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"10"}}]}"#
                .into(),
        ),
        throttled(),
        throttled(),
        throttled(),
    ]);
    let config = ReaderConfig {
        limit: 3,
        backoff: Backoff {
            base_ms: 1,
            max_ms: 5,
            max_retries: 2,
        },
        ..ReaderConfig::default()
    };
    let mut reader = ShardReader::new(
        fake::client(&url),
        "st",
        "s0",
        StartPosition::from_checkpoint("4"),
        config.clone(),
    );

    let b = reader.next_batch().await.unwrap();
    assert_eq!(b.records.len(), 1);
    assert_eq!(
        b.records[0],
        KinesisRecord {
            data: b"hi".to_vec(),
            partition_key: "k".into(),
            sequence_number: "5".into(),
            approximate_arrival_ms: Some(1_700_000_000_500),
        }
    );
    assert_eq!((b.millis_behind_latest, b.shard_end), (Some(42), None));

    let b = reader.next_batch().await.unwrap();
    assert!(b.records.is_empty());
    assert_eq!(b.shard_end.unwrap().child_shard_ids, ["c1"]);
    assert!(
        reader.next_batch().await.unwrap().shard_end.is_some(),
        "end is sticky"
    );

    let seen = seen.lock().unwrap().clone();
    let ops: Vec<&str> = seen.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(
        ops,
        [
            "GetShardIterator",
            "GetRecords",
            "GetRecords",
            "GetRecords",
            "GetRecords",
            "GetShardIterator",
            "GetRecords"
        ]
    );
    assert_eq!(seen[0].1["ShardIteratorType"], "AFTER_SEQUENCE_NUMBER");
    assert_eq!(seen[0].1["StartingSequenceNumber"], "4");
    assert_eq!(seen[1].1["Limit"], 3);
    assert_eq!(
        seen[3].1["ShardIterator"], "it-1",
        "a throttled call retries the same iterator"
    );
    assert_eq!(seen[4].1["ShardIterator"], "it-2");
    assert_eq!(
        seen[5].1["StartingSequenceNumber"], "5",
        "expired: re-get after the last record read"
    );
    assert_eq!(seen[6].1["ShardIterator"], "it-3");

    // Bounded: after max_retries throttled retries the error names the call and the shard.
    let (url, _) = fake::serve(vec![
        (200, r#"{"ShardIterator":"x"}"#.into()),
        throttled(),
        throttled(),
        throttled(),
    ]);
    let mut reader = ShardReader::new(
        fake::client(&url),
        "st",
        "s0",
        StartPosition::TrimHorizon,
        config,
    );
    let err = reader.next_batch().await.unwrap_err().to_string();
    assert!(
        err.contains("GetRecords stream st shard s0")
            && err.contains("ProvisionedThroughputExceeded"),
        "{err}"
    );
}

#[tokio::test]
async fn put_records_retries_only_failed_entries() {
    let (url, seen) = fake::serve(vec![
        (
            200,
            r#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"s0"},
                {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"},
                {"SequenceNumber":"2","ShardId":"s1"}]}"#
                .into(),
        ),
        (
            200,
            r#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"3","ShardId":"s1"}]}"#.into(),
        ),
    ]);
    let entries = [
        PutEntry::new("a", b"1".to_vec()),
        PutEntry {
            explicit_hash_key: Some(7),
            ..PutEntry::new("b", b"2".to_vec())
        },
        PutEntry::new("c", b"3".to_vec()),
    ];
    let out = put_records(&fake::client(&url), "st", &entries)
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = out
        .iter()
        .map(|o| (o.shard_id.as_str(), o.sequence_number.as_str()))
        .collect();
    assert_eq!(
        got,
        [("s0", "1"), ("s1", "3"), ("s1", "2")],
        "outcomes in input order"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1["Records"].as_array().unwrap().len(), 3);
    let retried = seen[1].1["Records"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "only the failed entry is retried");
    assert_eq!(
        (
            retried[0]["PartitionKey"].as_str(),
            retried[0]["ExplicitHashKey"].as_str()
        ),
        (Some("b"), Some("7"))
    );
}
