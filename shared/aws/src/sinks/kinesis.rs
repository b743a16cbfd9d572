//! Kinesis sink: each pane as one JSON record ([`PaneRow::to_json`]) on an output stream,
//! partitioned by the pane's key so that a key's panes stay in one shard, in order within
//! a call. Kinesis has no idempotent put: a retried batch can deliver a pane twice, and
//! downstream consumers de-duplicate by `pane_id`.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use tracing::{debug, warn};

use super::PaneRow;
use crate::error::AwsError;
use crate::retry::backoff;

/// PutRecords accepts at most 500 records per call.
const PUT_RECORDS_MAX: usize = 500;
/// … and at most 5 MiB per call (data plus partition keys).
const PUT_RECORDS_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Attempts for entries that keep failing (throttling, internal errors).
const MAX_ATTEMPTS: u32 = 10;

/// Puts panes on an output stream.
///
/// ```no_run
/// # async fn f(rows: Vec<eventide_aws::sinks::PaneRow>) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::sinks::KinesisSink;
/// let clients = eventide_aws::config::Clients::from_env().await;
/// let sink = KinesisSink::new(clients.kinesis.clone(), "demo-panes");
/// sink.write(&rows, "shardId-000000000000-4958").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KinesisSink {
    client: Client,
    stream: String,
}

/// The partition key of a row: its encoded key, or the aggregation name for an empty key
/// (Kinesis requires 1–256 characters), cut to 256 characters.
pub fn partition_key(row: &PaneRow) -> String {
    let key = row.key();
    let key = if key.is_empty() {
        row.aggregation.clone()
    } else {
        key
    };
    if key.is_empty() {
        return "-".to_string();
    }
    key.chars().take(256).collect()
}

impl KinesisSink {
    /// A sink writing to the existing stream `stream` (a stream name).
    pub fn new(client: Client, stream: impl Into<String>) -> Self {
        KinesisSink {
            client,
            stream: stream.into(),
        }
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Puts every row with PutRecords (at most 500 records and 5 MiB per call), retrying
    /// only the failed entries with backoff. `batch_id` is only logged.
    pub async fn write(&self, batch: &[PaneRow], batch_id: &str) -> Result<(), AwsError> {
        let op = format!("PutRecords {}", self.stream);
        let mut chunk: Vec<PutRecordsRequestEntry> = Vec::new();
        let mut bytes = 0;
        for row in batch {
            let data = row.to_json_string().into_bytes();
            let pk = partition_key(row);
            let size = data.len() + pk.len();
            if !chunk.is_empty()
                && (chunk.len() == PUT_RECORDS_MAX || bytes + size > PUT_RECORDS_MAX_BYTES)
            {
                self.put_chunk(std::mem::take(&mut chunk), &op).await?;
                bytes = 0;
            }
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(pk)
                .build()
                .map_err(|e| AwsError::service(&op, e))?;
            chunk.push(entry);
            bytes += size;
        }
        if !chunk.is_empty() {
            self.put_chunk(chunk, &op).await?;
        }
        debug!(stream = %self.stream, batch_id, records = batch.len(), "wrote panes to Kinesis");
        Ok(())
    }

    async fn put_chunk(
        &self,
        mut entries: Vec<PutRecordsRequestEntry>,
        op: &str,
    ) -> Result<(), AwsError> {
        let mut last_error = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            let out = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .map_err(|e| AwsError::service(op, e))?;
            if out.failed_record_count().unwrap_or(0) == 0 {
                return Ok(());
            }
            // Results are in request order; keep the entries that failed.
            let mut failed = Vec::new();
            for (entry, result) in entries.into_iter().zip(out.records()) {
                if let Some(code) = result.error_code() {
                    last_error = format!("{code}: {}", result.error_message().unwrap_or(""));
                    failed.push(entry);
                }
            }
            entries = failed;
            if entries.is_empty() {
                return Ok(());
            }
            let wait = backoff(attempt);
            warn!(stream = %self.stream, failed = entries.len(), attempt, ?wait, error = %last_error, "PutRecords: retrying failed entries");
            tokio::time::sleep(wait).await;
        }
        Err(AwsError::Service {
            op: op.to_string(),
            message: format!(
                "{} records still failing after {MAX_ATTEMPTS} attempts (last: {last_error})",
                entries.len()
            ),
        })
    }
}
