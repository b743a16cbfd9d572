//! Kinesis sink: each pane as one JSON record ([`PaneRow::to_json`]) on an output stream,
//! partitioned by the pane's key so that a key's panes stay in one shard, in order within
//! a call. Kinesis has no idempotent put: a retried batch can deliver a pane twice, and
//! downstream consumers de-duplicate by `pane_id`.

use aws_sdk_kinesis::Client;
use tracing::debug;

use crate::error::AwsError;
use crate::kinesis::{put_records, PutEntry};
use eventide_ports::rows::PaneRow;

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

    /// Puts every row with [`put_records`] (at most 500 records and 5 MiB per call,
    /// retrying only the failed entries with backoff). `batch_id` is only logged.
    ///
    /// # Errors
    /// [`AwsError::Service`] when a call fails or records still fail after the retries.
    ///
    /// # Cancel safety
    /// A cancelled write may have put some of the panes; the batch's retry puts them again
    /// (downstream de-duplicates by `pane_id`).
    pub async fn write(&self, batch: &[PaneRow], batch_id: &str) -> Result<(), AwsError> {
        let entries: Vec<PutEntry> = batch
            .iter()
            .map(|row| PutEntry::new(partition_key(row), row.to_json_string().into_bytes()))
            .collect();
        put_records(&self.client, &self.stream, &entries).await?;
        debug!(stream = %self.stream, batch_id, records = batch.len(), "wrote panes to Kinesis");
        Ok(())
    }
}
