//! Writing records and administering streams: PutRecords, CreateStream, UpdateShardCount,
//! DescribeStreamSummary, DeleteStream.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType, StreamStatus};
use aws_sdk_kinesis::Client;

use crate::sdk::{error_code, is_retryable, retry_throttled, Backoff};
use crate::AwsError;

/// A record to put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutEntry {
    /// The payload.
    pub data: Vec<u8>,
    /// The partition key (routes the record unless `explicit_hash_key` is set).
    pub partition_key: String,
    /// Routes the record to the shard containing this hash key instead.
    pub explicit_hash_key: Option<u128>,
}

impl PutEntry {
    /// A record routed by its partition key.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        PutEntry {
            data: data.into(),
            partition_key: partition_key.into(),
            explicit_hash_key: None,
        }
    }
}

/// Where a put record landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The shard it was written to.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
}

/// PutRecords' limits: entries and bytes (data + partition keys) per request.
const PUT_MAX_ENTRIES: usize = 500;
const PUT_MAX_BYTES: usize = 5 * 1024 * 1024;

/// Puts `records` in order-preserving batches of at most 500 entries (and 5 MiB), retrying
/// only the entries that failed (`FailedRecordCount`, e.g. throughput exceeded) with
/// backoff. Returns one outcome per input record, in input order.
///
/// Order within a partition key is kept only between batches, not for retried entries
/// (as with any PutRecords client).
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::kinesis::{put_records, PutEntry};
/// let out = put_records(&clients.kinesis, "events", &[PutEntry::new("k1", b"{}".to_vec())]).await?;
/// println!("{} {}", out[0].shard_id, out[0].sequence_number);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError::Service`] when a call fails with an error that is not retryable, or records
/// still fail after the retries.
///
/// # Cancel safety
/// A cancelled call may have put some of the records, and a retry puts them again
/// (Kinesis has no idempotent put).
pub async fn put_records(
    client: &Client,
    stream: &str,
    records: &[PutEntry],
) -> Result<Vec<PutOutcome>, AwsError> {
    let mut outcomes = Vec::with_capacity(records.len());
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < records.len() && end - start < PUT_MAX_ENTRIES {
            let size = records[end].data.len() + records[end].partition_key.len();
            if end > start && bytes + size > PUT_MAX_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        outcomes.extend(put_batch(client, stream, &records[start..end]).await?);
        start = end;
    }
    Ok(outcomes)
}

async fn put_batch(
    client: &Client,
    stream: &str,
    batch: &[PutEntry],
) -> Result<Vec<PutOutcome>, AwsError> {
    let op = format!("PutRecords stream {stream}");
    let backoff = Backoff::default();
    let mut results: Vec<Option<PutOutcome>> = vec![None; batch.len()];
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    let mut attempt = 0;
    loop {
        let entries = pending
            .iter()
            .map(|&i| {
                let r = &batch[i];
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.data.clone()))
                    .partition_key(&r.partition_key)
                    .set_explicit_hash_key(r.explicit_hash_key.map(|h| h.to_string()))
                    .build()
                    .map_err(|e| AwsError::service(op.clone(), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let res = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await;
        let mut last_error = String::new();
        match res {
            Ok(out) => {
                let mut failed = Vec::new();
                for (&i, entry) in pending.iter().zip(out.records()) {
                    match (
                        entry.shard_id(),
                        entry.sequence_number(),
                        entry.error_code(),
                    ) {
                        (Some(shard), Some(seq), None) => {
                            results[i] = Some(PutOutcome {
                                shard_id: shard.to_string(),
                                sequence_number: seq.to_string(),
                            })
                        }
                        (_, _, code) => {
                            last_error = format!(
                                "{}: {}",
                                code.unwrap_or("no ShardId/SequenceNumber"),
                                entry.error_message().unwrap_or("")
                            );
                            failed.push(i);
                        }
                    }
                }
                // Entries the response did not cover (should not happen) are retried too.
                failed.extend(pending.iter().skip(out.records().len()).copied());
                if failed.is_empty() {
                    break;
                }
                pending = failed;
            }
            // Keep the cause (a refused connection has no error code).
            Err(e) if is_retryable(&e) => {
                last_error = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()
            }
            Err(e) => return Err(AwsError::service(op, e)),
        }
        if attempt >= backoff.max_retries {
            return Err(AwsError::Service {
                op,
                message: format!(
                    "{} records still failing after {attempt} retries: {last_error}",
                    pending.len()
                ),
            });
        }
        let d = backoff.delay(attempt);
        tracing::warn!(%op, failed = pending.len(), attempt, delay_ms = d.as_millis() as u64, error = %last_error,
            "retrying failed records");
        tokio::time::sleep(d).await;
        attempt += 1;
    }
    results
        .into_iter()
        .map(|r| {
            r.ok_or_else(|| AwsError::Service {
                op: op.clone(),
                message: "record without outcome".into(),
            })
        })
        .collect()
}

/// How long the stream helpers wait for a stream to become ACTIVE.
const STREAM_WAIT: Duration = Duration::from_secs(120);

/// Waits until `stream` is ACTIVE and, if given, has `open_shards` open shards.
async fn wait_active(
    client: &Client,
    stream: &str,
    open_shards: Option<i32>,
) -> Result<(), AwsError> {
    let op = format!("DescribeStreamSummary stream {stream}");
    let deadline = tokio::time::Instant::now() + STREAM_WAIT;
    let mut attempt = 0;
    loop {
        match client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
        {
            Ok(out) => {
                if let Some(s) = out.stream_description_summary() {
                    let status_ok = *s.stream_status() == StreamStatus::Active;
                    if status_ok && open_shards.is_none_or(|n| s.open_shard_count() == n) {
                        return Ok(());
                    }
                }
            }
            // Right after CreateStream the stream may not be visible yet; and throttling.
            Err(e) if is_retryable(&e) || error_code(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(AwsError::service(op, e)),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AwsError::Service {
                op,
                message: format!("not ACTIVE after {} s", STREAM_WAIT.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis((50u64 << attempt.min(4)).min(500))).await;
        attempt += 1;
    }
}

/// Creates `stream` with `shards` shards (provisioned mode) unless it exists, and waits
/// until it is ACTIVE.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// eventide_aws::kinesis::create_stream_and_wait(&clients.kinesis, "events", 2).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError::Service`] when CreateStream fails for another reason than the stream
/// existing, or the stream is not ACTIVE within two minutes.
pub async fn create_stream_and_wait(
    client: &Client,
    stream: &str,
    shards: i32,
) -> Result<(), AwsError> {
    let op = format!("CreateStream stream {stream}");
    match client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
    {
        Ok(_) => tracing::info!(stream, shards, "created stream"),
        Err(e) if error_code(&e) == Some("ResourceInUseException") => {
            tracing::debug!(stream, "stream exists already")
        }
        Err(e) => return Err(AwsError::service(op, e)),
    }
    wait_active(client, stream, None).await
}

/// Reshards `stream` to `target` open shards (UNIFORM_SCALING) and waits until it is ACTIVE
/// with that many open shards. The old shards stay readable (closed) until retention.
///
/// # Errors
/// As [`update_shard_count`], or the stream does not reach the count within two minutes.
pub async fn update_shard_count_and_wait(
    client: &Client,
    stream: &str,
    target: i32,
) -> Result<(), AwsError> {
    wait_active(client, stream, None).await?;
    update_shard_count(client, stream, target).await?;
    wait_active(client, stream, Some(target)).await
}

/// Starts resharding `stream` to `target` open shards (UNIFORM_SCALING) and returns at once;
/// the stream is `UPDATING` until the new shards are open. AWS accepts at most double or
/// half the current count per call and 10 calls per rolling 24 h (`LimitExceededException`).
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// eventide_aws::kinesis::update_shard_count(&clients.kinesis, "events", 4).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError::Service`] when UpdateShardCount fails (e.g. `LimitExceededException`).
pub async fn update_shard_count(
    client: &Client,
    stream: &str,
    target: i32,
) -> Result<(), AwsError> {
    let op = format!("UpdateShardCount stream {stream} to {target}");
    client
        .update_shard_count()
        .stream_name(stream)
        .target_shard_count(target)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .map_err(|e| AwsError::service(op, e))?;
    tracing::info!(stream, target, "resharding");
    Ok(())
}

/// A stream's status and open shard count, from DescribeStreamSummary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// `ACTIVE`, `UPDATING`, `CREATING` or `DELETING`.
    pub status: String,
    /// Shards that take writes (closed parents excluded).
    pub open_shards: u32,
}

impl StreamSummary {
    /// Whether the stream is ACTIVE (only then does it accept UpdateShardCount).
    pub fn is_active(&self) -> bool {
        self.status == StreamStatus::Active.as_str()
    }
}

/// The status and open shard count of `stream` (DescribeStreamSummary), retrying throttled
/// calls.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// let s = eventide_aws::kinesis::stream_summary(&clients.kinesis, "events").await?;
/// println!("{} with {} open shards", s.status, s.open_shards);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError::Service`] when the call fails (after the retries), [`AwsError::Corrupt`]
/// for a response without a summary.
pub async fn stream_summary(client: &Client, stream: &str) -> Result<StreamSummary, AwsError> {
    let op = format!("DescribeStreamSummary stream {stream}");
    let out = retry_throttled(&op, &Backoff::default(), || {
        client.describe_stream_summary().stream_name(stream).send()
    })
    .await
    .map_err(|e| AwsError::service(op.clone(), e))?;
    let s = out
        .stream_description_summary()
        .ok_or_else(|| AwsError::Corrupt {
            what: op.clone(),
            message: "no StreamDescriptionSummary".into(),
        })?;
    Ok(StreamSummary {
        status: s.stream_status().as_str().to_string(),
        open_shards: u32::try_from(s.open_shard_count()).unwrap_or(0),
    })
}

/// Deletes `stream` (and its consumers); a missing stream is not an error.
///
/// # Errors
/// [`AwsError::Service`] when DeleteStream fails for another reason than the stream
/// missing.
pub async fn delete_stream(client: &Client, stream: &str) -> Result<(), AwsError> {
    match client
        .delete_stream()
        .stream_name(stream)
        .enforce_consumer_deletion(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(AwsError::service(
            format!("DeleteStream stream {stream}"),
            e,
        )),
    }
}
