//! The shards of a stream, and the hash key that routes a partition key to one.

use aws_sdk_kinesis::Client;

use crate::sdk::{retry_throttled, Backoff};
use crate::AwsError;

pub use eventide_ports::shard::{hash_key, ShardInfo};

fn parse_hash_key(op: &str, s: &str) -> Result<u128, AwsError> {
    s.parse::<u128>().map_err(|e| AwsError::Corrupt {
        what: format!("{op}: hash key {s:?}"),
        message: e.to_string(),
    })
}

/// All shards of `stream` (open and closed, as far as retention keeps them), following
/// `NextToken` across pages and retrying throttled calls.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// let shards = eventide_aws::kinesis::list_shards(&clients.kinesis, "events").await?;
/// for s in shards.iter().filter(|s| !s.closed) {
///     println!("{} parents {:?}", s.shard_id, s.parents());
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError::Service`] when a call fails (after the retries), [`AwsError::Corrupt`] for
/// a shard without a readable hash key range.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, AwsError> {
    let op = format!("ListShards stream {stream}");
    let mut out = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = retry_throttled(&op, &Backoff::default(), || {
            // With NextToken the stream name must not be sent.
            match &next_token {
                Some(t) => client.list_shards().next_token(t),
                None => client.list_shards().stream_name(stream),
            }
            .send()
        })
        .await
        .map_err(|e| AwsError::service(op.clone(), e))?;
        for s in page.shards() {
            let (start, end) = match s.hash_key_range() {
                Some(r) => (
                    parse_hash_key(&op, r.starting_hash_key())?,
                    parse_hash_key(&op, r.ending_hash_key())?,
                ),
                None => {
                    return Err(AwsError::Corrupt {
                        what: format!("{op}: shard {}", s.shard_id()),
                        message: "no HashKeyRange".into(),
                    })
                }
            };
            out.push(ShardInfo {
                shard_id: s.shard_id().to_string(),
                parent_shard_id: s.parent_shard_id().map(str::to_string),
                adjacent_parent_shard_id: s.adjacent_parent_shard_id().map(str::to_string),
                starting_hash_key: start,
                ending_hash_key: end,
                closed: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_is_big_endian_md5() {
        assert_eq!(hash_key("abc"), 0x900150983cd24fb0d6963f7d28e17f72);
    }
}
