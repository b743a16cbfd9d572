//! Enhanced fan-out (EFO): a registered stream consumer and a shard reader that is pushed
//! records over SubscribeToShard instead of polling GetRecords.
//!
//! With polling, every consumer of a stream shares each shard's 2 MB/s and 5 reads/s. A
//! registered consumer gets its own 2 MB/s per shard, pushed over HTTP/2 as soon as
//! records arrive (about 70 ms end to end instead of a polling interval), for
//! $0.015 per consumer-shard-hour and $0.013 per GB retrieved (us-east-1).
//!
//! - [`register_consumer`] registers the consumer idempotently (RegisterStreamConsumer; if
//!   it exists, DescribeStreamConsumer) and waits until it is ACTIVE.
//! - [`EfoReader`] reads one shard: SubscribeToShard from the lease checkpoint
//!   (`AFTER_SEQUENCE_NUMBER`, or `TRIM_HORIZON`), events pulled one by one into batches
//!   of at most the batch limit, a new subscription from the last
//!   `ContinuationSequenceNumber` before AWS ends one after 5 minutes (and whenever one
//!   ends or fails retryably), and the end of the shard (an event with `ChildShards` and no
//!   continuation) reported as [`Batch::shard_end`] exactly as the polling reader does.
//! - [`EfoSource`] is the shard-source port over it: the worker's leases, checkpoints,
//!   exactly-once positions and KPL de-aggregation are the polling ones, unchanged.
//!
//! Backpressure: the reader holds at most the records of the events it has received and not
//! yet handed out (at most one event beyond the batch limit); while it does not ask for
//! more, HTTP/2 flow control holds the rest at AWS.

use std::collections::VecDeque;
use std::time::Duration;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardError;
use aws_sdk_kinesis::primitives::event_stream::EventReceiver;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;
use eventide_ports::kpl;
use eventide_ports::source::{cmp_seq, ShardSource, SourceBatch};
use eventide_ports::{BoxFuture, PortError};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::reader::{user_records, Batch, KinesisRecord, ShardEnd, StartPosition};
use super::shards::{list_shards, ShardInfo};
use crate::sdk::{error_code, is_retryable, retry_throttled, Backoff};
use crate::AwsError;

/// How long AWS keeps a subscription open before it ends it.
pub const SUBSCRIPTION_LIMIT: Duration = Duration::from_secs(300);

/// When the reader replaces a subscription: 20 s before [`SUBSCRIPTION_LIMIT`], so it is
/// never cut by AWS in the middle of a batch.
pub const DEFAULT_RESUBSCRIBE_AFTER: Duration = Duration::from_secs(280);

/// How long [`register_consumer`] waits for the consumer to become ACTIVE.
const CONSUMER_WAIT: Duration = Duration::from_secs(120);

/// Settings of an [`EfoReader`].
#[derive(Clone, Debug)]
pub struct EfoConfig {
    /// Subscribe again, from the last continuation sequence number, after this long
    /// ([`DEFAULT_RESUBSCRIBE_AFTER`]; AWS ends a subscription after [`SUBSCRIPTION_LIMIT`]).
    pub resubscribe_after: Duration,
    /// How long [`EfoReader::next_batch`] waits for an event once the reader has seen one;
    /// then it returns an empty batch, so the caller can stop or mark the shard quiet.
    pub wait: Duration,
    /// How long it waits for the first event of the reader, which tells whether the shard
    /// is caught up; and how long SubscribeToShard may take to answer.
    pub first_event_wait: Duration,
    /// Backoff between failed subscriptions: AWS refuses a second subscription of the same
    /// consumer and shard within 5 s (`ResourceInUseException`), and throttles.
    pub backoff: Backoff,
    /// The most user records one KPL aggregate may carry (see [`eventide_ports::kpl`]).
    pub kpl_max_records: usize,
}

impl Default for EfoConfig {
    fn default() -> Self {
        EfoConfig {
            resubscribe_after: DEFAULT_RESUBSCRIBE_AFTER,
            wait: Duration::from_secs(1),
            first_event_wait: Duration::from_secs(30),
            backoff: Backoff {
                base_ms: 500,
                max_ms: 5_000,
                max_retries: 12,
            },
            kpl_max_records: kpl::DEFAULT_MAX_RECORDS,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The consumer
// ---------------------------------------------------------------------------------------

/// The ARN of `stream` (DescribeStreamSummary), which the EFO calls take.
///
/// # Errors
/// The stream does not exist, or the call failed after its retries.
///
/// # Cancel safety
/// Cancel safe: it only reads.
pub async fn stream_arn(client: &Client, stream: &str) -> Result<String, AwsError> {
    let op = format!("DescribeStreamSummary stream {stream}");
    let out = retry_throttled(&op, &Backoff::default(), || {
        client.describe_stream_summary().stream_name(stream).send()
    })
    .await
    .map_err(|e| AwsError::service(op.clone(), e))?;
    out.stream_description_summary()
        .map(|s| s.stream_arn().to_string())
        .ok_or_else(|| AwsError::Corrupt {
            what: op,
            message: "no StreamDescriptionSummary".into(),
        })
}

/// Registers the enhanced fan-out consumer `name` of `stream` unless it exists, waits until
/// it is ACTIVE and returns its ARN.
///
/// Idempotent: an existing consumer (`ResourceInUseException`) is described instead; one
/// being deleted is waited for and registered again. Workers sharing a consumer may all
/// call it.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// let arn = eventide_aws::kinesis::efo::register_consumer(&clients.kinesis, "events", "reporting").await?;
/// println!("consumer {arn}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// The stream does not exist, a call failed after its retries, or the consumer was not
/// ACTIVE after two minutes.
///
/// # Cancel safety
/// Cancel safe: a cancelled call may leave a registered consumer behind, which the next
/// call finds.
pub async fn register_consumer(
    client: &Client,
    stream: &str,
    name: &str,
) -> Result<String, AwsError> {
    let stream_arn = stream_arn(client, stream).await?;
    let op = format!("RegisterStreamConsumer stream {stream} consumer {name}");
    let backoff = Backoff::default();
    let deadline = Instant::now() + CONSUMER_WAIT;
    let mut attempt = 0;
    loop {
        match client
            .register_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await
        {
            Ok(_) => info!(stream, consumer = name, "registered the EFO consumer"),
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                debug!(stream, consumer = name, "the EFO consumer exists already")
            }
            Err(e) if is_retryable(&e) && attempt < backoff.max_retries => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(e) => return Err(AwsError::service(op, e)),
        }
        // Until ACTIVE; a consumer that vanished (it was being deleted) is registered again.
        loop {
            let described = client
                .describe_stream_consumer()
                .stream_arn(&stream_arn)
                .consumer_name(name)
                .send()
                .await;
            match described {
                Ok(out) => {
                    if let Some(c) = out.consumer_description() {
                        if *c.consumer_status() == ConsumerStatus::Active {
                            return Ok(c.consumer_arn().to_string());
                        }
                        debug!(stream, consumer = name, status = %c.consumer_status(), "waiting for the EFO consumer");
                    }
                }
                Err(e) if error_code(&e) == Some("ResourceNotFoundException") => break,
                Err(e) if is_retryable(&e) => {}
                Err(e) => {
                    return Err(AwsError::service(
                        format!("DescribeStreamConsumer stream {stream} consumer {name}"),
                        e,
                    ))
                }
            }
            if Instant::now() >= deadline {
                return Err(AwsError::Service {
                    op,
                    message: format!("not ACTIVE after {} s", CONSUMER_WAIT.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Continuation bookkeeping
// ---------------------------------------------------------------------------------------

/// Where a shard's next subscription starts, and whether the shard has ended: the pure
/// bookkeeping of an [`EfoReader`].
///
/// Each event of a subscription carries a `ContinuationSequenceNumber`: the position up to
/// which the shard has been delivered, which moves on even while no records arrive. A new
/// subscription starts `AFTER_SEQUENCE_NUMBER` of the last one (before any, at the
/// reader's start). The shard's last event has no continuation and names the child shards.
///
/// ```
/// use eventide_aws::kinesis::efo::Continuation;
/// use eventide_aws::kinesis::StartPosition;
/// let mut c = Continuation::new(StartPosition::TrimHorizon);
/// assert_eq!(c.resume_at(), StartPosition::TrimHorizon);
/// c.on_event(Some("49"), Vec::new());
/// assert_eq!(c.resume_at(), StartPosition::AfterSequenceNumber("49".into()));
/// c.on_event(None, vec!["shardId-000000000002".into()]);
/// assert_eq!(c.shard_end(), Some(&["shardId-000000000002".to_string()][..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    start: StartPosition,
    last: Option<String>,
    end: Option<Vec<String>>,
}

impl Continuation {
    /// Nothing received yet: the first subscription starts at `start`.
    pub fn new(start: StartPosition) -> Self {
        Continuation {
            start,
            last: None,
            end: None,
        }
    }

    /// Where the next subscription starts.
    pub fn resume_at(&self) -> StartPosition {
        match &self.last {
            Some(seq) => StartPosition::AfterSequenceNumber(seq.clone()),
            None => self.start.clone(),
        }
    }

    /// Takes in one event's continuation sequence number (`None` or empty: the shard's
    /// end) and child shards; returns whether the shard has ended.
    ///
    /// A continuation never moves back: an older one (which AWS does not send) is ignored.
    pub fn on_event(&mut self, continuation: Option<&str>, child_shards: Vec<String>) -> bool {
        match continuation.filter(|c| !c.is_empty()) {
            Some(c) => {
                if self
                    .last
                    .as_deref()
                    .is_none_or(|last| cmp_seq(c, last).is_ge())
                {
                    self.last = Some(c.to_string());
                }
            }
            None => self.end = Some(child_shards),
        }
        self.end.is_some()
    }

    /// `Some` once the shard's last event arrived: the shards that continue it (a split:
    /// 2, a merge: 1).
    pub fn shard_end(&self) -> Option<&[String]> {
        self.end.as_deref()
    }
}

// ---------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------

/// One open SubscribeToShard.
#[derive(Debug)]
struct Subscription {
    events: EventReceiver<SubscribeToShardEventStream, SubscribeToShardEventStreamError>,
    since: Instant,
}

/// Whether a failed SubscribeToShard is worth another try: what polling retries, and
/// `ResourceInUseException` (the previous subscription of this consumer and shard is not
/// released yet, or was made less than 5 s ago).
fn subscribe_retryable<R>(err: &SdkError<SubscribeToShardError, R>) -> bool {
    match err {
        SdkError::ServiceError(e)
            if matches!(
                e.err(),
                SubscribeToShardError::ResourceInUseException(_)
                    | SubscribeToShardError::LimitExceededException(_)
                    | SubscribeToShardError::KmsThrottlingException(_)
                    | SubscribeToShardError::InternalFailureException(_)
            ) =>
        {
            true
        }
        _ => is_retryable(err),
    }
}

/// Whether an exception in an open subscription's stream is worth subscribing again for:
/// transport failures, `ResourceInUseException` (AWS and kinesis-mock may report a
/// subscription refused that way, in the stream), throttling and internal failures.
///
/// The SDK gives a stream's exceptions as typed variants with no error code, so they are
/// matched by type, not by [`error_code`].
fn event_error_retryable<R>(err: &SdkError<SubscribeToShardEventStreamError, R>) -> bool {
    match err {
        SdkError::ServiceError(e) => matches!(
            e.err(),
            SubscribeToShardEventStreamError::ResourceInUseException(_)
                | SubscribeToShardEventStreamError::KmsThrottlingException(_)
                | SubscribeToShardEventStreamError::InternalFailureException(_)
        ),
        _ => is_retryable(err),
    }
}

/// Reads one shard through an enhanced fan-out consumer (SubscribeToShard).
///
/// Events are pulled one at a time while a batch is being filled: the first is waited for
/// (up to [`EfoConfig::wait`]), then those already received are added without waiting, up
/// to the batch limit. A batch never ends inside an event's KPL aggregate (the limit counts
/// Kinesis records, as GetRecords' does), so the caller checkpoints the last record's
/// sequence number as with polling. The subscription is replaced after
/// [`EfoConfig::resubscribe_after`], when AWS ends it, and after a retryable failure, from
/// the last continuation sequence number ([`Continuation`]).
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::kinesis::efo::{register_consumer, EfoConfig, EfoReader};
/// use eventide_aws::kinesis::StartPosition;
/// let arn = register_consumer(&clients.kinesis, "events", "reporting").await?;
/// let mut reader = EfoReader::new(
///     clients.kinesis.clone(), arn, "shardId-000000000000",
///     StartPosition::from_checkpoint("TRIM_HORIZON"), 1000, EfoConfig::default(),
/// );
/// loop {
///     let batch = reader.next_batch().await?;
///     for r in &batch.records { /* process r.data */ }
///     if let Some(end) = batch.shard_end { println!("children {:?}", end.child_shard_ids); break; }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EfoReader {
    client: Client,
    consumer_arn: String,
    shard_id: String,
    limit: usize,
    config: EfoConfig,
    progress: Continuation,
    subscription: Option<Subscription>,
    /// Records received and not handed out yet, in shard order.
    pending: VecDeque<KinesisRecord>,
    millis_behind_latest: Option<i64>,
    /// Failed subscriptions in a row.
    failures: u32,
    /// Subscriptions made so far.
    subscriptions: u64,
}

impl EfoReader {
    /// A reader of `shard_id` through the consumer `consumer_arn` (see
    /// [`register_consumer`]) starting at `start`, handing out at most `limit` Kinesis
    /// records per batch; makes no call yet.
    pub fn new(
        client: Client,
        consumer_arn: impl Into<String>,
        shard_id: impl Into<String>,
        start: StartPosition,
        limit: usize,
        config: EfoConfig,
    ) -> Self {
        EfoReader {
            client,
            consumer_arn: consumer_arn.into(),
            shard_id: shard_id.into(),
            limit: limit.max(1),
            config,
            progress: Continuation::new(start),
            subscription: None,
            pending: VecDeque::new(),
            millis_behind_latest: None,
            failures: 0,
            subscriptions: 0,
        }
    }

    /// The shard this reader reads.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// How many subscriptions the reader has made so far.
    pub fn subscriptions(&self) -> u64 {
        self.subscriptions
    }

    fn op(&self) -> String {
        format!(
            "SubscribeToShard consumer {} shard {}",
            self.consumer_arn, self.shard_id
        )
    }

    /// The next records of the shard, possibly none (no event within
    /// [`EfoConfig::wait`]). Once the shard's last event is handed out, the batch carries
    /// [`Batch::shard_end`]; later calls return the same end marker without calling AWS.
    ///
    /// # Errors
    /// A subscription failed with a non-retryable error (the consumer or the shard does not
    /// exist, access denied), or retryable failures went on for
    /// [`EfoConfig::backoff`]'s retries.
    ///
    /// # Cancel safety
    /// Cancel safe: records received before the cancellation stay buffered for the next
    /// call, and the subscription, if open, stays open (the SDK's event receiver keeps a
    /// partly received event in its own buffer).
    pub async fn next_batch(&mut self) -> Result<Batch, AwsError> {
        if self.pending.is_empty() && self.progress.shard_end().is_none() {
            self.receive().await?;
        }
        let n = self.pending.len().min(self.limit);
        let records: Vec<KinesisRecord> = self.pending.drain(..n).collect();
        let shard_end = match self.progress.shard_end() {
            Some(children) if self.pending.is_empty() => Some(ShardEnd {
                child_shard_ids: children.to_vec(),
            }),
            _ => None,
        };
        Ok(Batch {
            records,
            millis_behind_latest: self.millis_behind_latest,
            shard_end,
        })
    }

    /// Receives events into `pending`: waits for one, then takes those already there, up
    /// to the batch limit.
    async fn receive(&mut self) -> Result<(), AwsError> {
        let wait = match self.millis_behind_latest {
            Some(_) => self.config.wait,
            // Before its first event the reader cannot tell whether it is caught up.
            None => self.config.first_event_wait,
        };
        let deadline = Instant::now() + wait;
        let mut received_any = false;
        loop {
            if self
                .subscription
                .as_ref()
                .is_some_and(|s| s.since.elapsed() >= self.config.resubscribe_after)
            {
                debug!(shard = %self.shard_id, "renewing the subscription before its time limit");
                self.subscription = None;
            }
            let subscription = match self.subscription.as_mut() {
                Some(s) => s,
                None if received_any => return Ok(()),
                None => {
                    let s = self.subscribe().await?;
                    self.subscription.insert(s)
                }
            };
            let until = if received_any {
                Instant::now()
            } else {
                deadline
            };
            let Ok(received) = tokio::time::timeout_at(until, subscription.events.recv()).await
            else {
                return Ok(());
            };
            match received {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                    self.failures = 0;
                    received_any = true;
                    if self.take(event) || self.pending.len() >= self.limit {
                        return Ok(());
                    }
                }
                Ok(Some(other)) => {
                    debug!(shard = %self.shard_id, event = ?other, "skipping an unknown event")
                }
                Ok(None) => {
                    debug!(shard = %self.shard_id, "the subscription ended; subscribing again");
                    self.subscription = None;
                }
                // The records already received go out first; the next call subscribes again.
                Err(e) if received_any => {
                    debug!(shard = %self.shard_id, error = %aws_sdk_kinesis::error::DisplayErrorContext(&e),
                        "the subscription failed after an event");
                    self.subscription = None;
                }
                Err(e) if event_error_retryable(&e) => {
                    self.subscription = None;
                    self.back_off(&aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())
                        .await?;
                }
                Err(e) => {
                    self.subscription = None;
                    return Err(AwsError::service(self.op(), e));
                }
            }
        }
    }

    /// Takes in one event: its records into `pending`, its continuation and child shards
    /// into the bookkeeping. Returns whether it ended the shard.
    fn take(&mut self, event: SubscribeToShardEvent) -> bool {
        let SubscribeToShardEvent {
            records,
            continuation_sequence_number,
            millis_behind_latest,
            child_shards,
            ..
        } = event;
        self.millis_behind_latest = Some(millis_behind_latest);
        self.pending
            .extend(records.into_iter().map(KinesisRecord::from));
        let children: Vec<String> = child_shards
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.shard_id)
            .collect();
        let ended = self
            .progress
            .on_event(Some(&continuation_sequence_number), children);
        if ended {
            debug!(shard = %self.shard_id, children = ?self.progress.shard_end(), "shard end");
            self.subscription = None;
        }
        ended
    }

    /// Counts a failed subscription and sleeps its backoff; an error once there were too
    /// many in a row.
    async fn back_off(&mut self, error: &str) -> Result<(), AwsError> {
        if self.failures >= self.config.backoff.max_retries {
            return Err(AwsError::Service {
                op: self.op(),
                message: format!("failed {} times in a row: {error}", self.failures + 1),
            });
        }
        let d = self.config.backoff.delay(self.failures);
        warn!(shard = %self.shard_id, attempt = self.failures, delay_ms = d.as_millis() as u64, error,
            "subscription failed, backing off");
        self.failures += 1;
        tokio::time::sleep(d).await;
        Ok(())
    }

    /// Opens a subscription at the current continuation, retrying what is retryable.
    async fn subscribe(&mut self) -> Result<Subscription, AwsError> {
        loop {
            let position = self.progress.resume_at();
            let starting = match &position {
                StartPosition::TrimHorizon => {
                    StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon)
                }
                StartPosition::Latest => {
                    StartingPosition::builder().r#type(ShardIteratorType::Latest)
                }
                StartPosition::AtTimestamp(ms) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(*ms)),
                StartPosition::AfterSequenceNumber(seq) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
            }
            .build()
            .map_err(|e| AwsError::service(self.op(), e))?;
            let call = self
                .client
                .subscribe_to_shard()
                .consumer_arn(&self.consumer_arn)
                .shard_id(&self.shard_id)
                .starting_position(starting)
                .send();
            let error = match tokio::time::timeout(self.config.first_event_wait, call).await {
                Ok(Ok(out)) => {
                    self.subscriptions += 1;
                    info!(shard = %self.shard_id, ?position, subscription = self.subscriptions, "subscribed");
                    return Ok(Subscription {
                        events: out.event_stream,
                        since: Instant::now(),
                    });
                }
                Ok(Err(e)) if subscribe_retryable(&e) => {
                    aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string()
                }
                Ok(Err(e)) => return Err(AwsError::service(self.op(), e)),
                Err(_) => format!(
                    "no answer within {} ms",
                    self.config.first_event_wait.as_millis()
                ),
            };
            self.back_off(&error).await?;
        }
    }
}

impl eventide_ports::source::ShardReader for EfoReader {
    fn next_batch(&mut self) -> BoxFuture<'_, Result<SourceBatch, PortError>> {
        Box::pin(async move {
            let batch = EfoReader::next_batch(self).await?;
            Ok(SourceBatch {
                records: user_records(&self.shard_id, batch.records, self.config.kpl_max_records),
                millis_behind_latest: batch.millis_behind_latest,
                shard_end: batch.shard_end.map(|e| e.child_shard_ids),
            })
        })
    }
}

/// The [`ShardSource`] port on a Kinesis stream read through an enhanced fan-out consumer:
/// [`list_shards`] and an [`EfoReader`] per shard, whose records are de-aggregated
/// ([`kpl::deaggregate`]) as the polling source's are.
#[derive(Clone, Debug)]
pub struct EfoSource {
    client: Client,
    stream: String,
    consumer_arn: String,
    config: EfoConfig,
}

impl EfoSource {
    /// The shards of `stream`, read through the registered consumer `consumer_arn`.
    pub fn new(client: Client, stream: impl Into<String>, consumer_arn: impl Into<String>) -> Self {
        EfoSource {
            client,
            stream: stream.into(),
            consumer_arn: consumer_arn.into(),
            config: EfoConfig::default(),
        }
    }

    /// Registers the consumer `consumer_name` of `stream` ([`register_consumer`]) and reads
    /// through it.
    ///
    /// # Errors
    /// As [`register_consumer`].
    ///
    /// # Cancel safety
    /// As [`register_consumer`].
    pub async fn register(
        client: Client,
        stream: impl Into<String>,
        consumer_name: &str,
    ) -> Result<Self, AwsError> {
        let stream = stream.into();
        let arn = register_consumer(&client, &stream, consumer_name).await?;
        info!(%stream, consumer = consumer_name, %arn, "reading through enhanced fan-out");
        Ok(EfoSource::new(client, stream, arn))
    }

    /// Replaces the readers' settings.
    pub fn with_config(mut self, config: EfoConfig) -> Self {
        self.config = config;
        self
    }

    /// The consumer's ARN.
    pub fn consumer_arn(&self) -> &str {
        &self.consumer_arn
    }
}

impl ShardSource for EfoSource {
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, PortError>> {
        Box::pin(async move { Ok(list_shards(&self.client, &self.stream).await?) })
    }

    fn open(
        &self,
        shard: &str,
        checkpoint: &str,
        limit: usize,
    ) -> Box<dyn eventide_ports::source::ShardReader> {
        Box::new(EfoReader::new(
            self.client.clone(),
            &self.consumer_arn,
            shard,
            StartPosition::from_checkpoint(checkpoint),
            limit,
            self.config.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(seq: &str) -> StartPosition {
        StartPosition::AfterSequenceNumber(seq.into())
    }

    #[test]
    fn resumes_at_the_start_until_an_event_arrives() {
        let c = Continuation::new(after("7"));
        assert_eq!(c.resume_at(), after("7"));
        assert_eq!(c.shard_end(), None);
    }

    #[test]
    fn resumes_after_the_last_continuation_even_without_records() {
        let mut c = Continuation::new(StartPosition::TrimHorizon);
        assert!(!c.on_event(Some("100"), Vec::new()));
        assert!(!c.on_event(Some("205"), Vec::new()));
        assert_eq!(c.resume_at(), after("205"));
    }

    #[test]
    fn a_continuation_never_moves_back() {
        let mut c = Continuation::new(StartPosition::TrimHorizon);
        c.on_event(Some("1000"), Vec::new());
        // Shorter is smaller: sequence numbers compare numerically, not as strings.
        c.on_event(Some("999"), Vec::new());
        assert_eq!(c.resume_at(), after("1000"));
        c.on_event(Some("1001"), Vec::new());
        assert_eq!(c.resume_at(), after("1001"));
    }

    #[test]
    fn no_continuation_is_the_shard_end_with_its_children() {
        let mut c = Continuation::new(StartPosition::TrimHorizon);
        c.on_event(Some("5"), Vec::new());
        let children = vec![
            "shardId-000000000002".to_string(),
            "shardId-000000000003".into(),
        ];
        assert!(c.on_event(None, children.clone()));
        assert_eq!(c.shard_end(), Some(&children[..]));
        // The SDK gives a null continuation as an empty string.
        let mut merged = Continuation::new(StartPosition::TrimHorizon);
        assert!(merged.on_event(Some(""), vec!["shardId-000000000004".into()]));
        assert_eq!(
            merged.shard_end(),
            Some(&["shardId-000000000004".to_string()][..])
        );
    }

    #[test]
    fn children_are_only_an_end_without_a_continuation() {
        let mut c = Continuation::new(StartPosition::TrimHorizon);
        assert!(!c.on_event(Some("5"), vec!["shardId-000000000002".into()]));
        assert_eq!(c.shard_end(), None);
    }

    #[test]
    fn in_stream_exceptions_are_matched_by_type() {
        // As the SDK gives them: typed, with no error code in their metadata.
        let in_use: SdkError<SubscribeToShardEventStreamError, ()> = SdkError::service_error(
            SubscribeToShardEventStreamError::ResourceInUseException(
                aws_sdk_kinesis::types::error::ResourceInUseException::builder()
                    .message("Another active subscription exists")
                    .build(),
            ),
            (),
        );
        assert!(event_error_retryable(&in_use));
        let gone: SdkError<SubscribeToShardEventStreamError, ()> = SdkError::service_error(
            SubscribeToShardEventStreamError::ResourceNotFoundException(
                aws_sdk_kinesis::types::error::ResourceNotFoundException::builder()
                    .message("no such consumer")
                    .build(),
            ),
            (),
        );
        assert!(!event_error_retryable(&gone));
        let refused: SdkError<SubscribeToShardError, ()> = SdkError::service_error(
            SubscribeToShardError::ResourceInUseException(
                aws_sdk_kinesis::types::error::ResourceInUseException::builder()
                    .message("subscribed less than 5 s ago")
                    .build(),
            ),
            (),
        );
        assert!(subscribe_retryable(&refused));
    }
}
