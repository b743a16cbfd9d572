//! Reading a shard by GetRecords polling, and the shard-source port over it.

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;

use aws_sdk_kinesis::primitives::DateTime;
use eventide_ports::kpl;
use eventide_ports::lease::InitialPosition;
use eventide_ports::source::{InputRecord, ShardSource, SourceBatch};
use eventide_ports::{BoxFuture, PortError};

use super::shards::{list_shards, ShardInfo};
use crate::sdk::{error_code, is_retryable, retry_throttled, Backoff};
use crate::AwsError;

/// One Kinesis record as the consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisRecord {
    /// The payload.
    pub data: Vec<u8>,
    /// The partition key it was put with.
    pub partition_key: String,
    /// Its sequence number: a decimal string, increasing within a shard. Compare numerically
    /// (by length, then lexically), never as plain strings of different lengths.
    pub sequence_number: String,
    /// `ApproximateArrivalTimestamp` in epoch ms, if present.
    pub approximate_arrival_ms: Option<i64>,
}

impl From<aws_sdk_kinesis::types::Record> for KinesisRecord {
    fn from(r: aws_sdk_kinesis::types::Record) -> Self {
        KinesisRecord {
            approximate_arrival_ms: r
                .approximate_arrival_timestamp
                .and_then(|t| t.to_millis().ok()),
            data: r.data.into_inner(),
            partition_key: r.partition_key.unwrap_or_default(),
            sequence_number: r.sequence_number,
        }
    }
}

/// The records of a shard as the source port hands them out: each Kinesis record
/// de-aggregated into its user records ([`kpl::deaggregate`]), in order.
pub(crate) fn user_records(
    shard_id: &str,
    records: impl IntoIterator<Item = KinesisRecord>,
    kpl_max_records: usize,
) -> Vec<InputRecord> {
    let records = records.into_iter();
    let mut out = Vec::with_capacity(records.size_hint().0);
    for r in records {
        let record = InputRecord::new(
            r.sequence_number,
            r.partition_key,
            r.data,
            r.approximate_arrival_ms,
        );
        kpl::deaggregate(shard_id, record, kpl_max_records, &mut out);
    }
    out
}

/// What one [`ShardReader::next_batch`] returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The records, in shard order (possibly none).
    pub records: Vec<KinesisRecord>,
    /// How far behind the tip of the shard this batch is, in ms.
    pub millis_behind_latest: Option<i64>,
    /// `Some` once the shard is closed and fully read (SHARD_END): the child shard ids.
    pub shard_end: Option<ShardEnd>,
}

/// The end of a closed shard: nothing more will ever be read from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardEnd {
    /// The shards that continue its hash range (split: 2; merge: 1).
    pub child_shard_ids: Vec<String>,
}

/// Where a [`ShardReader`] starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// At the oldest retained record.
    TrimHorizon,
    /// At the records that arrive after the iterator is made.
    Latest,
    /// At the first record that arrived at or after this time (epoch ms).
    AtTimestamp(i64),
    /// Right after this sequence number (a checkpoint).
    AfterSequenceNumber(String),
}

impl StartPosition {
    /// From a lease checkpoint: `TRIM_HORIZON` (or empty), `LATEST`, `AT_TIMESTAMP:<ms>`
    /// or a sequence number.
    ///
    /// ```
    /// use eventide_aws::kinesis::StartPosition;
    /// assert_eq!(StartPosition::from_checkpoint("AT_TIMESTAMP:1700000000000"), StartPosition::AtTimestamp(1_700_000_000_000));
    /// assert_eq!(StartPosition::from_checkpoint("4959"), StartPosition::AfterSequenceNumber("4959".into()));
    /// ```
    pub fn from_checkpoint(checkpoint: &str) -> Self {
        match InitialPosition::of_checkpoint(checkpoint) {
            Some(InitialPosition::TrimHorizon) => StartPosition::TrimHorizon,
            Some(InitialPosition::Latest) => StartPosition::Latest,
            Some(InitialPosition::AtTimestamp(ms)) => StartPosition::AtTimestamp(ms),
            None => StartPosition::AfterSequenceNumber(checkpoint.to_string()),
        }
    }
}

/// Settings of a [`ShardReader`].
#[derive(Clone, Debug)]
pub struct ReaderConfig {
    /// GetRecords `Limit` (1..=10000).
    pub limit: i32,
    /// Backoff on throttling (`ProvisionedThroughputExceededException` and friends).
    pub backoff: Backoff,
    /// The most user records one KPL aggregate may carry (see [`eventide_ports::kpl`]).
    pub kpl_max_records: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            limit: 1000,
            backoff: Backoff::default(),
            kpl_max_records: kpl::DEFAULT_MAX_RECORDS,
        }
    }
}

/// Reads one shard by GetRecords polling.
///
/// It keeps the shard iterator between calls and the last sequence number it returned, so
/// an expired iterator is transparently replaced by one `AFTER_SEQUENCE_NUMBER` of that
/// record (or the start position if nothing was read yet). Throttled calls are retried with
/// [`Backoff`]; each call to [`next_batch`](Self::next_batch) makes one successful
/// GetRecords, so the caller decides the polling rate (AWS allows 5 per second per shard).
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::kinesis::{ReaderConfig, ShardReader, StartPosition};
/// let mut reader = ShardReader::new(
///     clients.kinesis.clone(), "events", "shardId-000000000000",
///     StartPosition::from_checkpoint("TRIM_HORIZON"), ReaderConfig::default(),
/// );
/// loop {
///     let batch = reader.next_batch().await?;
///     for r in &batch.records { /* process r.data */ }
///     if let Some(end) = batch.shard_end { println!("children {:?}", end.child_shard_ids); break; }
///     if batch.records.is_empty() { tokio::time::sleep(std::time::Duration::from_millis(200)).await; }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ShardReader {
    client: Client,
    stream: String,
    shard_id: String,
    start: StartPosition,
    config: ReaderConfig,
    iterator: Option<String>,
    last_sequence_number: Option<String>,
    end: Option<ShardEnd>,
}

impl ShardReader {
    /// A reader of `shard_id` of `stream` starting at `start`; makes no call yet.
    pub fn new(
        client: Client,
        stream: impl Into<String>,
        shard_id: impl Into<String>,
        start: StartPosition,
        config: ReaderConfig,
    ) -> Self {
        ShardReader {
            client,
            stream: stream.into(),
            shard_id: shard_id.into(),
            start,
            config,
            iterator: None,
            last_sequence_number: None,
            end: None,
        }
    }

    /// The shard this reader reads.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// The sequence number of the last record returned so far, if any.
    pub fn last_sequence_number(&self) -> Option<&str> {
        self.last_sequence_number.as_deref()
    }

    /// Whether SHARD_END was reached.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }

    fn op(&self, call: &str) -> String {
        format!("{call} stream {} shard {}", self.stream, self.shard_id)
    }

    /// Gets a fresh iterator after the last record read, or at the start position.
    async fn fetch_iterator(&self) -> Result<String, AwsError> {
        let op = self.op("GetShardIterator");
        let position = match &self.last_sequence_number {
            Some(seq) => StartPosition::AfterSequenceNumber(seq.clone()),
            None => self.start.clone(),
        };
        let out = retry_throttled(&op, &self.config.backoff, || {
            let req = self
                .client
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(&self.shard_id);
            match &position {
                StartPosition::TrimHorizon => {
                    req.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                StartPosition::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
                StartPosition::AtTimestamp(ms) => req
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from_millis(*ms)),
                StartPosition::AfterSequenceNumber(seq) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
            }
            .send()
        })
        .await
        .map_err(|e| AwsError::service(op.clone(), e))?;
        out.shard_iterator.ok_or_else(|| AwsError::Corrupt {
            what: op,
            message: "no ShardIterator in the response".into(),
        })
    }

    /// One GetRecords call (with retries): the next records of the shard, possibly none.
    ///
    /// Once the shard is closed and read to its end, the batch carries
    /// [`Batch::shard_end`]; later calls return the same end marker without calling AWS.
    ///
    /// # Errors
    /// [`AwsError::Service`] when a call fails for another reason than throttling, or
    /// still fails after the retries, or the iterator keeps expiring.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled call returns no records and moves nothing; the next call
    /// gets a fresh iterator after the last record returned.
    pub async fn next_batch(&mut self) -> Result<Batch, AwsError> {
        if let Some(end) = &self.end {
            return Ok(Batch {
                records: Vec::new(),
                millis_behind_latest: Some(0),
                shard_end: Some(end.clone()),
            });
        }
        let op = self.op("GetRecords");
        let mut throttled = 0;
        let mut expired = 0;
        let out = loop {
            let iterator = match self.iterator.take() {
                Some(it) => it,
                None => self.fetch_iterator().await?,
            };
            let res = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(self.config.limit)
                .send()
                .await;
            match res {
                Ok(out) => break out,
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), GetRecordsError::ExpiredIteratorException(_)) =>
                {
                    // `self.iterator` stays None: the next round re-gets it from the last record.
                    expired += 1;
                    if expired > self.config.backoff.max_retries {
                        return Err(AwsError::Service {
                            op,
                            message: format!("shard iterator expired {expired} times in a row"),
                        });
                    }
                    tracing::warn!(%op, last = ?self.last_sequence_number, "shard iterator expired, re-getting it");
                }
                Err(e) if is_retryable(&e) && throttled < self.config.backoff.max_retries => {
                    let d = self.config.backoff.delay(throttled);
                    tracing::warn!(%op, code = ?error_code(&e), attempt = throttled, delay_ms = d.as_millis() as u64,
                        "throttled, backing off");
                    self.iterator = Some(iterator);
                    tokio::time::sleep(d).await;
                    throttled += 1;
                }
                Err(e) => {
                    self.iterator = Some(iterator);
                    return Err(AwsError::service(op, e));
                }
            }
        };

        let records: Vec<KinesisRecord> =
            out.records.into_iter().map(KinesisRecord::from).collect();
        if let Some(last) = records.last() {
            self.last_sequence_number = Some(last.sequence_number.clone());
        }
        let shard_end = match out.next_shard_iterator {
            Some(next) => {
                self.iterator = Some(next);
                None
            }
            None => {
                let child_shard_ids: Vec<String> = out
                    .child_shards
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.shard_id)
                    .collect();
                tracing::debug!(%op, children = ?child_shard_ids, "shard end");
                let end = ShardEnd { child_shard_ids };
                self.end = Some(end.clone());
                Some(end)
            }
        };
        Ok(Batch {
            records,
            millis_behind_latest: out.millis_behind_latest,
            shard_end,
        })
    }
}

/// The [`ShardSource`] port on a Kinesis stream: [`list_shards`] and a polling
/// [`ShardReader`] per shard, whose records are de-aggregated ([`kpl::deaggregate`]).
#[derive(Clone, Debug)]
pub struct KinesisSource {
    client: Client,
    stream: String,
    kpl_max_records: usize,
}

impl KinesisSource {
    /// The shards of `stream`.
    pub fn new(client: Client, stream: impl Into<String>) -> Self {
        KinesisSource {
            client,
            stream: stream.into(),
            kpl_max_records: kpl::DEFAULT_MAX_RECORDS,
        }
    }

    /// Sets the most user records one KPL aggregate may carry (default
    /// [`kpl::DEFAULT_MAX_RECORDS`]); a larger one is a dead letter.
    pub fn with_kpl_max_records(mut self, max: usize) -> Self {
        self.kpl_max_records = max;
        self
    }
}

impl ShardSource for KinesisSource {
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, PortError>> {
        Box::pin(async move { Ok(list_shards(&self.client, &self.stream).await?) })
    }

    fn open(
        &self,
        shard: &str,
        checkpoint: &str,
        limit: usize,
    ) -> Box<dyn eventide_ports::source::ShardReader> {
        Box::new(ShardReader::new(
            self.client.clone(),
            &self.stream,
            shard,
            StartPosition::from_checkpoint(checkpoint),
            ReaderConfig {
                limit: i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000),
                kpl_max_records: self.kpl_max_records,
                ..ReaderConfig::default()
            },
        ))
    }
}

impl eventide_ports::source::ShardReader for ShardReader {
    fn next_batch(&mut self) -> BoxFuture<'_, Result<SourceBatch, PortError>> {
        Box::pin(async move {
            let batch = ShardReader::next_batch(self).await?;
            Ok(SourceBatch {
                records: user_records(&self.shard_id, batch.records, self.config.kpl_max_records),
                millis_behind_latest: batch.millis_behind_latest,
                shard_end: batch.shard_end.map(|e| e.child_shard_ids),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_ports::lease::TRIM_HORIZON;

    #[test]
    fn start_position_from_checkpoint() {
        assert_eq!(
            StartPosition::from_checkpoint(TRIM_HORIZON),
            StartPosition::TrimHorizon
        );
        assert_eq!(
            StartPosition::from_checkpoint("49"),
            StartPosition::AfterSequenceNumber("49".into())
        );
    }
}
