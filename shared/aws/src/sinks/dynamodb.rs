//! DynamoDB results table: one item per (aggregation, key, window, pane), upserted, so a
//! redelivered batch rewrites the same items instead of adding new ones.
//!
//! `pk` = `<aggregation>#<key>` (group-by values joined by U+001F), `sk` =
//! `<window_start>#<window_end>#<pane_index>#<retraction 0|1>` with each number encoded so
//! that string order is numeric order ([`sort_key`]); a Query on `pk` returns a key's panes
//! in window and pane order. The other attributes are the fields of [`PaneRow::to_json`]
//! (`aggregation`, group-by fields, `window_start`, `window_end`, aggregates, `timing`,
//! `pane_index`, `retraction`, `pane_id`); a field named `pk` or `sk` is skipped.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, TableStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;
use tracing::{debug, info, warn};

use super::PaneRow;
use crate::error::AwsError;
use crate::retry::backoff;

/// BatchWriteItem accepts at most 25 requests per call.
const BATCH_WRITE_MAX: usize = 25;
/// Attempts for a chunk whose items keep coming back unprocessed.
const MAX_ATTEMPTS: u32 = 10;

/// Upserts panes into a results table.
///
/// ```no_run
/// # async fn f(rows: Vec<eventide_aws::sinks::PaneRow>) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::sinks::DynamoDbSink;
/// let clients = eventide_aws::config::Clients::from_env().await;
/// DynamoDbSink::ensure_table(&clients.dynamodb, "demo-results").await?;
/// let sink = DynamoDbSink::new(clients.dynamodb.clone(), "demo-results");
/// sink.write(&rows, "shardId-000000000000-4958").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbSink {
    client: Client,
    table: String,
}

/// The sort key of a pane: `<start>#<end>#<pane_index>#<0|1>`, fixed width so that string
/// order is numeric order, including negative window bounds (the global window starts at
/// `i64::MIN`).
///
/// ```
/// use eventide_aws::sinks::dynamodb::sort_key;
/// assert_eq!(sort_key(0, 10, 2, true), "00000000000000000000#00000000000000000010#0000000002#1");
/// assert!(sort_key(-5, 0, 0, false) < sort_key(-4, 0, 0, false));
/// assert!(sort_key(i64::MIN, 0, 0, false) < sort_key(-1, 0, 0, false));
/// assert!(sort_key(-1, 0, 0, false) < sort_key(0, 0, 0, false));
/// ```
pub fn sort_key(window_start: i64, window_end: i64, pane_index: u32, retraction: bool) -> String {
    format!(
        "{}#{}#{pane_index:010}#{}",
        sortable_i64(window_start),
        sortable_i64(window_end),
        u8::from(retraction)
    )
}

/// 20 characters: `0` plus 19 digits for v ≥ 0, `-` plus 19 digits of `v + 2^63` for v < 0
/// (`-` sorts before `0`, and within negatives the offset keeps the order).
fn sortable_i64(v: i64) -> String {
    if v >= 0 {
        format!("{v:020}")
    } else {
        // v - i64::MIN is in [0, 2^63) for negative v.
        format!("-{:019}", v.abs_diff(i64::MIN))
    }
}

impl DynamoDbSink {
    /// A sink over an existing table (see [`DynamoDbSink::ensure_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbSink {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the results table (on-demand, HASH `pk`, RANGE `sk`) if it does not exist and
    /// waits until it is active. Idempotent.
    pub async fn ensure_table(client: &Client, name: &str) -> Result<(), AwsError> {
        let op = format!("CreateTable {name}");
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| AwsError::service(&op, e))
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .map_err(|e| AwsError::service(&op, e))
        };
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await;
        match created {
            Ok(_) => info!(table = name, "created results table"),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), CreateTableError::ResourceInUseException(_)) =>
            {
                debug!(table = name, "results table exists");
            }
            Err(e) => return Err(AwsError::service(op, e)),
        }
        let op = format!("DescribeTable {name}");
        for _ in 0..120 {
            let out = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| AwsError::service(&op, e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        Err(AwsError::Service {
            op,
            message: "table did not become ACTIVE within about 30 s".into(),
        })
    }

    /// The primary key of a row: (`<aggregation>#<key>`, [`sort_key`]).
    pub fn primary_key(row: &PaneRow) -> (String, String) {
        (
            format!("{}#{}", row.aggregation, row.key()),
            sort_key(
                row.window_start,
                row.window_end,
                row.pane_index,
                row.retraction,
            ),
        )
    }

    /// The item of a row: `pk`, `sk` and the fields of [`PaneRow::to_json`].
    pub fn item(row: &PaneRow) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::new();
        for (name, v) in row.to_json() {
            let av = match v {
                Value::String(s) => AttributeValue::S(s),
                Value::Bool(b) => AttributeValue::Bool(b),
                Value::Number(n) => AttributeValue::N(n.to_string()),
                // Undefined aggregates (and non-finite values, which JSON renders as null).
                _ => AttributeValue::Null(true),
            };
            item.insert(name, av);
        }
        let (pk, sk) = Self::primary_key(row);
        item.insert("pk".into(), AttributeValue::S(pk));
        item.insert("sk".into(), AttributeValue::S(sk));
        item
    }

    /// Upserts every row with BatchWriteItem, 25 per call, retrying unprocessed items with
    /// backoff. Rows with the same key, window and pane in one batch collapse to the last
    /// one (BatchWriteItem rejects duplicate keys in a call). `batch_id` is only logged.
    pub async fn write(&self, batch: &[PaneRow], batch_id: &str) -> Result<(), AwsError> {
        let mut by_key: HashMap<(String, String), usize> = HashMap::new();
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(batch.len());
        let op = format!("BatchWriteItem {}", self.table);
        for row in batch {
            let id = Self::primary_key(row);
            let item = Self::item(row);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| AwsError::service(&op, e))?;
            let req = WriteRequest::builder().put_request(put).build();
            match by_key.get(&id) {
                Some(&i) => requests[i] = req,
                None => {
                    by_key.insert(id, requests.len());
                    requests.push(req);
                }
            }
        }
        let total = requests.len();
        let mut it = requests.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<WriteRequest> = it.by_ref().take(BATCH_WRITE_MAX).collect();
            self.write_chunk(chunk, &op).await?;
        }
        debug!(table = %self.table, batch_id, items = total, "wrote panes to DynamoDB");
        Ok(())
    }

    async fn write_chunk(&self, mut chunk: Vec<WriteRequest>, op: &str) -> Result<(), AwsError> {
        for attempt in 0..MAX_ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut chunk))
                .send()
                .await
                .map_err(|e| AwsError::service(op, e))?;
            chunk = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if chunk.is_empty() {
                return Ok(());
            }
            let wait = backoff(attempt);
            warn!(table = %self.table, unprocessed = chunk.len(), attempt, ?wait, "BatchWriteItem: retrying unprocessed items");
            tokio::time::sleep(wait).await;
        }
        Err(AwsError::Service {
            op: op.to_string(),
            message: format!(
                "{} items still unprocessed after {MAX_ATTEMPTS} attempts",
                chunk.len()
            ),
        })
    }
}
