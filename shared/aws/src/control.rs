//! The control table: the [`ControlPlane`](eventide_ports::control::ControlPlane) port on
//! DynamoDB, with per-shard watermarks, heartbeats and rates.
//!
//! One item per (pipeline, shard), as in `docs/aws-runtime.md`: `pk` = `<pipeline>`,
//! `sk` = `shard#<shard id>`, with `wm` (shard watermark, epoch ms), `hb` (last heartbeat
//! with new data, epoch ms), `rps` and `bps` (records/s, bytes/s), `lag` (ms behind the tip)
//! and `finished`.
//!
//! Each consumer publishes its shard's row after every batch and, at the start of the next
//! one, reads every row ([`ControlTable::shards_status`]): the minimum `wm` over the *other*
//! shards that are neither finished nor idle
//! ([`others_watermark`](eventide_ports::control::others_watermark)) caps its own
//! watermark in the engine, which combines the two and never moves its watermark back
//! (`eventide_runtime::shard`). An idle shard (no new data for longer than the idle
//! timeout) does not hold event time back, just like the engine's per-partition idle
//! timeout; a shard that was idle and comes back with an older watermark moves no
//! consumer's watermark back. [`global_watermark_of`] is the same rule over all rows, for
//! reports (`eventide status`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::sdk::dynamodb::{get_bool, get_n, get_s};
use crate::sdk::is_condition_failed;
use crate::AwsError;

/// Creates the control table (`pk` HASH S, `sk` RANGE S) unless it exists, and waits until
/// it is ACTIVE.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// eventide_aws::control::ensure_table(&clients.dynamodb, "eventide-control").await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`crate::sdk::dynamodb::ensure_table`].
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), AwsError> {
    crate::sdk::dynamodb::ensure_table(client, table, "pk", Some("sk")).await
}

pub use eventide_ports::control::{global_watermark_of, ShardStatus};

/// The control table of one pipeline.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::control::{global_watermark_of, ControlTable, ShardStatus};
/// let control = ControlTable::new(clients.dynamodb.clone(), "eventide-control", "q1");
/// let now = 1_700_000_000_000;
/// control.publish(&ShardStatus {
///     shard_id: "shardId-000000000000".into(), wm: now - 5_000, heartbeat_ms: now,
///     rps: 120.0, bps: 24_000.0, lag_ms: 0, late: 0, finished: false,
/// }).await?;
/// let global = global_watermark_of(&control.shards_status().await?, 60_000, now);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ControlTable {
    client: Client,
    table: String,
    pipeline: String,
}

/// Formats a rate as a DynamoDB number (which has no NaN or infinity).
fn rate(v: f64) -> AttributeValue {
    AttributeValue::N(if v.is_finite() {
        v.to_string()
    } else {
        "0".to_string()
    })
}

impl ControlTable {
    /// The rows of `pipeline` in `table`.
    pub fn new(client: Client, table: impl Into<String>, pipeline: impl Into<String>) -> Self {
        ControlTable {
            client,
            table: table.into(),
            pipeline: pipeline.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The pipeline whose rows this reads and writes.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The item of `status`'s row.
    fn item(&self, status: &ShardStatus) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pipeline.clone())),
            (
                "sk".to_string(),
                AttributeValue::S(format!("shard#{}", status.shard_id)),
            ),
            ("wm".to_string(), AttributeValue::N(status.wm.to_string())),
            (
                "hb".to_string(),
                AttributeValue::N(status.heartbeat_ms.to_string()),
            ),
            ("rps".to_string(), rate(status.rps)),
            ("bps".to_string(), rate(status.bps)),
            (
                "lag".to_string(),
                AttributeValue::N(status.lag_ms.to_string()),
            ),
            (
                "late".to_string(),
                AttributeValue::N(status.late.to_string()),
            ),
            (
                "finished".to_string(),
                AttributeValue::Bool(status.finished),
            ),
        ])
    }

    /// Writes (replaces) the row of `status.shard_id`. Only the shard's lease owner should
    /// publish; the rows are advisory (each consumer's watermark never moves back whatever
    /// the rows say), so the write is unconditional.
    ///
    /// # Errors
    /// [`AwsError::Service`] when PutItem fails.
    pub async fn publish(&self, status: &ShardStatus) -> Result<(), AwsError> {
        let item = self.item(status);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| {
                AwsError::service(
                    format!(
                        "PutItem table {} pipeline {} shard {}",
                        self.table, self.pipeline, status.shard_id
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    /// Writes the row of `status.shard_id` only if the shard has no row yet; returns whether
    /// it did. A parent at SHARD_END uses it to stand in for its children until they start:
    /// a row with the parent's watermark keeps the global watermark from jumping ahead (and
    /// then back) in the moment between the parent finishing and a child publishing.
    ///
    /// # Errors
    /// [`AwsError::Service`] when PutItem fails for another reason than the row existing.
    pub async fn publish_if_absent(&self, status: &ShardStatus) -> Result<bool, AwsError> {
        let item = self.item(status);
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(AwsError::service(
                format!(
                    "PutItem(if absent) table {} pipeline {} shard {}",
                    self.table, self.pipeline, status.shard_id
                ),
                e,
            )),
        }
    }

    /// All rows of the pipeline (strongly consistent query), sorted by shard id.
    ///
    /// # Errors
    /// [`AwsError::Service`] when the query fails, [`AwsError::Corrupt`] for a row whose
    /// numbers do not parse.
    pub async fn shards_status(&self) -> Result<Vec<ShardStatus>, AwsError> {
        let op = format!("Query table {} pipeline {}", self.table, self.pipeline);
        let mut rows = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :p AND begins_with(sk, :s)")
                .expression_attribute_values(":p", AttributeValue::S(self.pipeline.clone()))
                .expression_attribute_values(":s", AttributeValue::S("shard#".into()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::service(op.clone(), e))?;
            for item in page.items() {
                let sk = get_s(item, "sk").unwrap_or_default();
                let what = format!("control table {} row {}/{sk}", self.table, self.pipeline);
                let shard_id = sk.strip_prefix("shard#").unwrap_or(sk).to_string();
                rows.push(ShardStatus {
                    shard_id,
                    wm: get_n(item, "wm", &what)?.unwrap_or(i64::MIN),
                    heartbeat_ms: get_n(item, "hb", &what)?.unwrap_or(0),
                    rps: get_n(item, "rps", &what)?.unwrap_or(0.0),
                    bps: get_n(item, "bps", &what)?.unwrap_or(0.0),
                    lag_ms: get_n(item, "lag", &what)?.unwrap_or(0),
                    late: get_n(item, "late", &what)?.unwrap_or(0),
                    finished: get_bool(item, "finished"),
                });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        rows.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(rows)
    }
}
