//! DynamoDB plumbing the tables share: creating a table, writing a batch with its
//! unprocessed items retried, and reading and writing attributes.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use super::errors::error_code;
use super::retry::Backoff;
use crate::AwsError;

/// An item, as the SDK reads and writes it.
pub type Item = HashMap<String, AttributeValue>;

/// How long [`ensure_table`] waits for a new table to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_secs(60);

/// BatchWriteItem accepts at most 25 requests per call.
pub const BATCH_WRITE_MAX: usize = 25;

/// Creates an on-demand table with string keys (`hash`, and `range` if given) unless it
/// exists, and waits until it is ACTIVE. Idempotent: every table of the consumer
/// (state, leases, control, results) is created this way, with the schema of
/// `docs/aws-runtime.md`.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// eventide_aws::sdk::dynamodb::ensure_table(&clients.dynamodb, "demo-results", "pk", Some("sk")).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError::Service`] when CreateTable fails for another reason than the table
/// existing, when DescribeTable fails, or when the table is not ACTIVE within 60 s.
pub async fn ensure_table(
    client: &Client,
    table: &str,
    hash: &str,
    range: Option<&str>,
) -> Result<(), AwsError> {
    let op = format!("CreateTable table {table}");
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, key_type) in
        std::iter::once((hash, KeyType::Hash)).chain(range.map(|r| (r, KeyType::Range)))
    {
        let def = AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| AwsError::service(op.clone(), e))?;
        let key = KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| AwsError::service(op.clone(), e))?;
        req = req.attribute_definitions(def).key_schema(key);
    }
    match req.send().await {
        Ok(_) => tracing::info!(table, "created table"),
        Err(e) if error_code(&e) == Some("ResourceInUseException") => {
            tracing::debug!(table, "table exists")
        }
        Err(e) => return Err(AwsError::service(op, e)),
    }
    let op = format!("DescribeTable table {table}");
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| AwsError::service(op.clone(), e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AwsError::Service {
                op,
                message: format!("table not ACTIVE after {} s", ACTIVE_WAIT.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `requests` (puts or deletes) to `table` with BatchWriteItem, at most
/// [`BATCH_WRITE_MAX`] per call, retrying the items a call hands back unprocessed with
/// [`Backoff::BATCH`]. `op` names the call in errors. The requests must not repeat a key
/// (BatchWriteItem refuses duplicates in one call).
///
/// # Errors
/// [`AwsError::Service`] when a call fails, or when items are still unprocessed after the
/// backoff's retries.
///
/// # Cancel safety
/// A cancelled write may have written some of the items: use it for idempotent writes
/// (upserts by key, deletes), which a retry completes.
pub async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    op: &str,
) -> Result<(), AwsError> {
    let backoff = Backoff::BATCH;
    let mut it = requests.into_iter().peekable();
    while it.peek().is_some() {
        let mut chunk: Vec<WriteRequest> = it.by_ref().take(BATCH_WRITE_MAX).collect();
        let mut attempt = 0;
        loop {
            let out = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut chunk))
                .send()
                .await
                .map_err(|e| AwsError::service(op, e))?;
            chunk = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            if chunk.is_empty() {
                break;
            }
            if attempt >= backoff.max_retries {
                return Err(AwsError::Service {
                    op: op.to_string(),
                    message: format!(
                        "{} items still unprocessed after {attempt} retries",
                        chunk.len()
                    ),
                });
            }
            let wait = backoff.delay(attempt);
            tracing::warn!(
                table,
                unprocessed = chunk.len(),
                attempt,
                ?wait,
                "BatchWriteItem: retrying unprocessed items"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
    Ok(())
}

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The string attribute `name` of `item`; `None` when it is missing or not a string.
///
/// ```
/// use eventide_aws::sdk::dynamodb::{get_s, s, Item};
/// let item = Item::from([("pk".to_string(), s("a#b"))]);
/// assert_eq!(get_s(&item, "pk"), Some("a#b"));
/// assert_eq!(get_s(&item, "sk"), None);
/// ```
pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The number attribute `name` of `item` parsed as `T`; `None` when it is missing. `what`
/// names the item in errors.
///
/// ```
/// use eventide_aws::sdk::dynamodb::{get_n, n, s, Item};
/// let item = Item::from([("c".to_string(), n(7)), ("x".to_string(), s("7"))]);
/// assert_eq!(get_n::<i64>(&item, "c", "lease s0").unwrap(), Some(7));
/// assert_eq!(get_n::<i64>(&item, "d", "lease s0").unwrap(), None);
/// assert_eq!(get_n::<i64>(&item, "x", "lease s0").unwrap_err().to_string(),
///            "lease s0: attribute x: not a number");
/// ```
///
/// # Errors
/// [`AwsError::Corrupt`] naming the item and the attribute when it is not a number or does
/// not parse as `T`.
pub fn get_n<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    what: &str,
) -> Result<Option<T>, AwsError>
where
    T::Err: std::fmt::Display,
{
    match item.get(name) {
        None => Ok(None),
        Some(v) => {
            let s = v.as_n().map_err(|_| AwsError::Corrupt {
                what: format!("{what}: attribute {name}"),
                message: "not a number".into(),
            })?;
            s.parse::<T>().map(Some).map_err(|e| AwsError::Corrupt {
                what: format!("{what}: attribute {name} = {s}"),
                message: e.to_string(),
            })
        }
    }
}

/// The boolean attribute `name` of `item`; `false` when it is missing or not a boolean.
pub fn get_bool(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}
