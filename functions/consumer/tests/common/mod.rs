//! Helpers shared by the consumer's integration tests.

use aws_lambda_events::event::kinesis::KinesisEvent;
use serde_json::json;

/// The shard the Lambda events come from.
pub const SHARD: &str = "shardId-000000000000";

pub use eventide_testkit::unique;

/// Standard base64 (with padding), for building Lambda events.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                s.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A Kinesis event as Lambda delivers it, for records `(sequence number, partition key,
/// data)` of one shard of `stream`.
pub fn kinesis_event(stream: &str, records: &[(String, String, Vec<u8>)]) -> KinesisEvent {
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(seq, pk, data)| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": pk,
                    "sequenceNumber": seq,
                    "data": base64(data),
                    // Arrived now, as on a live stream: after every event time of the
                    // test workloads, so no record is ahead of its arrival.
                    "approximateArrivalTimestamp": now_s
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{SHARD}:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/eventide",
                "awsRegion": "us-east-1",
                "eventSourceARN": arn,
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a Kinesis event")
}

#[test]
fn base64_matches_rfc4648() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"Hello World"), "SGVsbG8gV29ybGQ=");
}
