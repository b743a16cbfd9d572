//! The heartbeat ticker: a scheduled function that wakes every shard's consumer.
//!
//! Lambda invokes a Kinesis consumer only when its shard has records, so a quiet shard would
//! never fire its windows by processing time or notice that the other shards moved the
//! global watermark. The ticker puts one small record into every open shard (routed by an
//! explicit hash key, the shard's first one); consumers recognise it by
//! [`HEARTBEAT_PREFIX`](eventide_runtime::processor::HEARTBEAT_PREFIX) and never count it as data.

use eventide_ports::clock::{Clock, SystemClock};

use crate::config::Clients;
use crate::kinesis::{list_shards, put_records, PutEntry};
use crate::AwsError;

/// The partition key of heartbeat records (routing uses the explicit hash key instead).
pub const HEARTBEAT_PARTITION_KEY: &str = "eventide-heartbeat";

/// The heartbeat record `{"eventide_heartbeat":<now_ms>}`.
pub fn heartbeat(now_ms: i64) -> Vec<u8> {
    format!("{{\"eventide_heartbeat\":{now_ms}}}").into_bytes()
}

/// Puts one heartbeat into every open shard of `stream`; returns how many it put.
///
/// # Errors
/// [`AwsError::Service`] when listing the shards or putting the records fails.
pub async fn tick(clients: &Clients, stream: &str) -> Result<usize, AwsError> {
    let now_ms = SystemClock.now_ms();
    let shards = list_shards(&clients.kinesis, stream).await?;
    let entries: Vec<PutEntry> = shards
        .iter()
        .filter(|s| !s.closed)
        .map(|s| PutEntry {
            data: heartbeat(now_ms),
            partition_key: HEARTBEAT_PARTITION_KEY.to_string(),
            explicit_hash_key: Some(s.starting_hash_key),
        })
        .collect();
    put_records(&clients.kinesis, stream, &entries).await?;
    tracing::info!(stream, shards = entries.len(), "put heartbeats");
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_runtime::processor::HEARTBEAT_PREFIX;

    #[test]
    fn heartbeats_are_recognised_by_consumers() {
        assert!(heartbeat(1_700_000_000_000).starts_with(HEARTBEAT_PREFIX));
    }
}
