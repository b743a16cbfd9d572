//! Kinesis: shard listing, a polling shard reader, partition-key hashing and stream helpers.
//!
//! The consumer reads each shard with a [`ShardReader`] (GetRecords polling) or, with
//! enhanced fan-out, an [`efo::EfoReader`] (SubscribeToShard), starting after the sequence
//! number checkpointed in its lease or at `TRIM_HORIZON`; [`KinesisSource`] and
//! [`efo::EfoSource`] are the shard-source port of `eventide-ports` over them, which
//! de-aggregates KPL records into their user records ([`eventide_ports::kpl`]). A shard
//! that was split or merged ends with [`Batch::shard_end`], which names the child shards:
//! their leases become startable once all parents are finished (see [`crate::leases`]).
//!
//! [`put_records`], [`create_stream_and_wait`] and [`update_shard_count_and_wait`] are for
//! tests, the demo and the ticker; [`stream_summary`] and [`update_shard_count`] for the
//! autoscaler. [`hash_key`] computes the 128-bit hash key Kinesis routes
//! a partition key by (MD5, big-endian), which the state table stores as `hk`.

use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ScalingType, ShardIteratorType, StreamStatus,
};
use aws_sdk_kinesis::Client;

use crate::AwsError;

pub mod efo;

use eventide_ports::kpl;
use eventide_ports::lease::TRIM_HORIZON;
use eventide_ports::source::{InputRecord, ShardSource, SourceBatch};
use eventide_ports::{BoxFuture, PortError};

/// Error codes that mean "slow down"; retried with backoff.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "KMSThrottlingException",
    "RequestLimitExceeded",
    "InternalFailureException",
    "ServiceUnavailable",
];

/// Whether an SDK error is throttling or a transient failure (network, 5xx) worth retrying.
fn is_retryable<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::ServiceError(e) => e
            .err()
            .code()
            .is_some_and(|c| THROTTLING_CODES.contains(&c)),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

/// The code of a service error (`ResourceInUseException`, …), if it is one.
fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------

/// Bounded exponential backoff with jitter, for throttled calls.
///
/// The delay of attempt `n` (0-based) is uniformly drawn from `[d/2, d]` where
/// `d = min(max_ms, base_ms * 2^n)` ("equal jitter"): consumers that were throttled
/// together spread out, yet nobody retries immediately.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// The first delay, in ms.
    pub base_ms: u64,
    /// The largest delay, in ms.
    pub max_ms: u64,
    /// How many retries before giving up.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 50,
            max_ms: 5_000,
            max_retries: 8,
        }
    }
}

impl Backoff {
    /// The jittered delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self
            .base_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(self.max_ms)
            .max(1);
        let half = d / 2;
        Duration::from_millis(half + jitter(d - half + 1))
    }
}

/// A cheap random number in `[0, bound)`: xorshift seeded from the clock and a counter.
/// Jitter needs spread, not cryptographic quality, and no dependency is worth it.
fn jitter(bound: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if bound == 0 {
        0
    } else {
        x % bound
    }
}

// ---------------------------------------------------------------------------------------
// Hash keys
// ---------------------------------------------------------------------------------------

pub use eventide_ports::shard::hash_key;

// ---------------------------------------------------------------------------------------
// Shards
// ---------------------------------------------------------------------------------------

pub use eventide_ports::shard::ShardInfo;

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
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, AwsError> {
    let op = format!("ListShards stream {stream}");
    let backoff = Backoff::default();
    let mut out = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut attempt = 0;
        let page = loop {
            // With NextToken the stream name must not be sent.
            let req = match &next_token {
                Some(t) => client.list_shards().next_token(t),
                None => client.list_shards().stream_name(stream),
            };
            match req.send().await {
                Ok(p) => break p,
                Err(e) if is_retryable(&e) && attempt < backoff.max_retries => {
                    let d = backoff.delay(attempt);
                    tracing::warn!(%op, attempt, delay_ms = d.as_millis() as u64, "throttled, backing off");
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                Err(e) => return Err(AwsError::service(op, e)),
            }
        };
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

// ---------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------

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
fn user_records(
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
    /// Right after this sequence number (a checkpoint).
    AfterSequenceNumber(String),
}

impl StartPosition {
    /// From a lease checkpoint: `TRIM_HORIZON` (or empty) or a sequence number.
    pub fn from_checkpoint(checkpoint: &str) -> Self {
        if checkpoint.is_empty() || checkpoint == TRIM_HORIZON {
            StartPosition::TrimHorizon
        } else {
            StartPosition::AfterSequenceNumber(checkpoint.to_string())
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
        let mut attempt = 0;
        loop {
            let req = self
                .client
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(&self.shard_id);
            let req = match &position {
                StartPosition::TrimHorizon => {
                    req.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                StartPosition::AfterSequenceNumber(seq) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
            };
            match req.send().await {
                Ok(out) => {
                    return out.shard_iterator.ok_or_else(|| AwsError::Corrupt {
                        what: op.clone(),
                        message: "no ShardIterator in the response".into(),
                    })
                }
                Err(e) if is_retryable(&e) && attempt < self.config.backoff.max_retries => {
                    let d = self.config.backoff.delay(attempt);
                    tracing::warn!(%op, attempt, delay_ms = d.as_millis() as u64, "throttled, backing off");
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                Err(e) => return Err(AwsError::service(op, e)),
            }
        }
    }

    /// One GetRecords call (with retries): the next records of the shard, possibly none.
    ///
    /// Once the shard is closed and read to its end, the batch carries
    /// [`Batch::shard_end`]; later calls return the same end marker without calling AWS.
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

// ---------------------------------------------------------------------------------------
// Writing and stream management (tests, demo, ticker)
// ---------------------------------------------------------------------------------------

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
pub async fn stream_summary(client: &Client, stream: &str) -> Result<StreamSummary, AwsError> {
    let op = format!("DescribeStreamSummary stream {stream}");
    let backoff = Backoff::default();
    let mut attempt = 0;
    loop {
        match client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
        {
            Ok(out) => {
                let s = out
                    .stream_description_summary()
                    .ok_or_else(|| AwsError::Corrupt {
                        what: op.clone(),
                        message: "no StreamDescriptionSummary".into(),
                    })?;
                return Ok(StreamSummary {
                    status: s.stream_status().as_str().to_string(),
                    open_shards: u32::try_from(s.open_shard_count()).unwrap_or(0),
                });
            }
            Err(e) if is_retryable(&e) && attempt < backoff.max_retries => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(AwsError::service(op, e)),
        }
    }
}

/// Deletes `stream` (and its consumers); a missing stream is not an error.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_is_big_endian_md5() {
        assert_eq!(hash_key("abc"), 0x900150983cd24fb0d6963f7d28e17f72);
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1000,
            max_retries: 5,
        };
        for attempt in 0..40 {
            let d = b.delay(attempt).as_millis() as u64;
            let cap = (100u64 << attempt.min(20)).min(1000);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d} not in [{}, {cap}]",
                cap / 2
            );
        }
    }

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
