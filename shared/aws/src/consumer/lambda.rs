//! The Kinesis Lambda handler: one invocation is one batch per shard, processed exactly once
//! with the same [`ShardConsumer`] as the worker.
//!
//! Lambda's event source mapping plays the lease table's role: it invokes at most one
//! function per shard at a time (parallelization factor 1) and checkpoints the batch when
//! the invocation succeeds. No lease is taken; the state log's position still makes a
//! redelivered batch count once.
//!
//! **Warm state.** A container keeps each shard's consumer, with its state in memory,
//! between invocations: a warm invocation reads no state at all. Another container may have
//! processed the shard in between; then the cached state is stale, and its commit (written
//! only if no entry of its version exists) fails with a conflict. The handler drops the
//! stale consumer, rebuilds the state from the log (snapshot plus the entries after it) and
//! runs the batch again, once. A stale state is never committed. A failure of any other
//! kind drops the consumer too (its memory may be ahead of the log), and the batch is
//! reported for retry.
//!
//! The event source mapping delivers KPL aggregates as Kinesis stores them; the handler
//! expands them into their user records ([`eventide_ports::kpl`]) as the worker's reader
//! does, so a redelivered event counts each user record once.
//!
//! Failures are reported with `ReportBatchItemFailures` semantics: for every shard whose
//! batch failed, the first sequence number of that shard's records, so Lambda retries the
//! shard from there (everything before it was committed by earlier invocations).

use std::collections::{BTreeMap, HashMap};

use crate::config::Clients;
use crate::kinesis::{list_shards, ShardInfo};
use crate::AwsError;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use eventide_engine::PipelineSpec;
use tokio::sync::Mutex;
use tracing::{error, info};

use eventide_ports::kpl;
use eventide_ports::source::InputRecord;
use eventide_runtime::shard::{ConsumerPorts, RuntimeError, ShardConsumer};

/// Everything an invocation needs, built once per container.
pub struct Handler {
    /// The consumer's I/O.
    pub io: ConsumerPorts,
    /// The pipeline.
    pub spec: PipelineSpec,
    /// The pipeline's name (the state and control tables' key prefix).
    pub pipeline: String,
    clients: Clients,
    /// Shard ranges and parents by stream, cached across invocations (shards never change;
    /// only new ones appear).
    shards: Mutex<HashMap<String, Vec<ShardInfo>>>,
    /// Each shard's consumer, kept warm between invocations.
    consumers: Mutex<HashMap<String, ShardConsumer>>,
    /// The most user records one KPL aggregate may carry.
    kpl_max_records: usize,
}

/// The records of one shard in one invocation.
#[derive(Debug, Default)]
struct ShardGroup {
    stream: String,
    records: Vec<InputRecord>,
}

/// The shard id of an event record: `eventID` is `shardId-…:<sequence number>`.
fn shard_of(event_id: Option<&str>) -> Option<&str> {
    event_id
        .and_then(|id| id.split_once(':'))
        .map(|(shard, _)| shard)
        .filter(|s| s.starts_with("shardId-"))
}

/// The stream name of an ARN `arn:aws:kinesis:<region>:<account>:stream/<name>`.
fn stream_of(arn: Option<&str>) -> String {
    arn.and_then(|a| a.rsplit_once(":stream/"))
        .map(|(_, name)| name.split('/').next().unwrap_or(name).to_string())
        .unwrap_or_default()
}

impl Handler {
    /// A handler over `io` for pipeline `spec` named `pipeline`; `clients` is used to look
    /// up shard hash-key ranges.
    pub fn new(
        io: ConsumerPorts,
        spec: PipelineSpec,
        pipeline: impl Into<String>,
        clients: Clients,
    ) -> Self {
        Handler {
            io,
            spec,
            pipeline: pipeline.into(),
            clients,
            shards: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
            kpl_max_records: kpl::DEFAULT_MAX_RECORDS,
        }
    }

    /// Sets the most user records one KPL aggregate may carry (default
    /// [`kpl::DEFAULT_MAX_RECORDS`]); a larger one is a dead letter.
    pub fn with_kpl_max_records(mut self, max: usize) -> Self {
        self.kpl_max_records = max;
        self
    }

    /// The shard `shard_id` of `stream`, listing the stream's shards when it is not cached.
    async fn shard_info(&self, stream: &str, shard_id: &str) -> Result<ShardInfo, AwsError> {
        let mut cache = self.shards.lock().await;
        let known = cache
            .get(stream)
            .and_then(|v| v.iter().find(|s| s.shard_id == shard_id));
        if let Some(s) = known {
            return Ok(s.clone());
        }
        let listed = list_shards(&self.clients.kinesis, stream).await?;
        let mut found = listed.iter().find(|s| s.shard_id == shard_id).cloned();
        // A group keyed by the stream ARN (no shard in `eventID`) is unambiguous only when
        // the stream has a single open shard.
        let open: Vec<&ShardInfo> = listed.iter().filter(|s| !s.closed).collect();
        if found.is_none() && !shard_id.starts_with("shardId-") && open.len() == 1 {
            found = Some(open[0].clone());
        }
        cache.insert(stream.to_string(), listed);
        found.ok_or_else(|| AwsError::Corrupt {
            what: format!("stream {stream}"),
            message: format!("shard {shard_id} is not listed"),
        })
    }

    /// Processes one shard's records as one batch, with the shard's warm consumer when
    /// this container has one (see the module docs).
    async fn process_group(&self, shard_id: &str, group: &ShardGroup) -> Result<(), RuntimeError> {
        let shard = self.shard_info(&group.stream, shard_id).await?;
        let mut warm = self.consumers.lock().await;
        for attempt in 0..2 {
            let (mut consumer, cold) = match warm.remove(shard_id) {
                Some(c) => (c, false),
                None => (
                    ShardConsumer::start(&self.io, self.spec.clone(), &shard).await?,
                    true,
                ),
            };
            match consumer.process(&self.io, &group.records, 0).await {
                Ok(report) => {
                    info!(shard = shard_id, cold, records = report.records, heartbeats = report.heartbeats,
                        skipped = report.skipped, panes = report.panes, dead_letters = report.dead_letters,
                        late = report.late, state_bytes = report.state_bytes, version = consumer.version(),
                        watermark = ?report.watermark, "batch committed");
                    warm.insert(shard_id.to_string(), consumer);
                    return Ok(());
                }
                Err(e) if e.is_conflict() && attempt == 0 && !cold => {
                    info!(shard = shard_id, error = %e, "another container moved the shard on; reloading its state");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Forgets the warm state of every shard (the next invocation of each is cold).
    pub async fn forget_warm_state(&self) {
        self.consumers.lock().await.clear();
    }

    /// Handles one Kinesis event: groups the records by shard (in event order), processes
    /// each group exactly once, and returns the first sequence number of every group that
    /// failed as a batch item failure (none on success).
    ///
    /// # Cancel safety
    /// Lambda does not cancel an invocation (it ends the container instead). A cancelled
    /// call is a crash in the middle of a batch: the next invocation of the shard's batch
    /// runs it exactly once from the state log (see `eventide_runtime::shard`).
    pub async fn handle(&self, event: KinesisEvent) -> KinesisEventResponse {
        let mut groups: BTreeMap<String, ShardGroup> = BTreeMap::new();
        for r in event.records {
            let stream = stream_of(r.event_source_arn.as_deref());
            // Without an eventID, all records of a stream count as one group.
            let shard = shard_of(r.event_id.as_deref())
                .map(str::to_string)
                .unwrap_or_else(|| r.event_source_arn.clone().unwrap_or_default());
            let record = InputRecord::new(
                r.kinesis.sequence_number,
                r.kinesis.partition_key,
                r.kinesis.data.0,
                Some(r.kinesis.approximate_arrival_timestamp.0.timestamp_millis()),
            );
            // The event source mapping delivers KPL aggregates as they are: expanded here, as
            // the worker's reader does.
            let group = groups.entry(shard.clone()).or_default();
            group.stream = stream;
            kpl::deaggregate(&shard, record, self.kpl_max_records, &mut group.records);
        }
        let mut response = KinesisEventResponse::default();
        for (shard, group) in &groups {
            if let Err(e) = self.process_group(shard, group).await {
                error!(shard = %shard, error = %e, records = group.records.len(), "batch failed; reporting it for retry");
                if let Some(first) = group.records.first() {
                    response.add_failure(first.sequence_number.clone());
                }
            }
        }
        response
    }
}

/// Handles one Kinesis event with `handler`; see [`Handler::handle`].
pub async fn handle(event: KinesisEvent, handler: &Handler) -> KinesisEventResponse {
    handler.handle(event).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_and_stream_from_event_fields() {
        assert_eq!(
            shard_of(Some("shardId-000000000001:4956816737333")),
            Some("shardId-000000000001")
        );
        assert_eq!(shard_of(Some("garbage")), None);
        assert_eq!(
            stream_of(Some(
                "arn:aws:kinesis:us-east-1:123456789012:stream/simple-stream"
            )),
            "simple-stream"
        );
        assert_eq!(stream_of(None), "");
    }
}
