//! DynamoDB results table: one item per (aggregation, key, window, pane), upserted, so a
//! redelivered batch rewrites the same items instead of adding new ones.
//!
//! `pk` = `<aggregation>#<key>` (group-by values joined by U+001F), `sk` =
//! `<window_start>#<window_end>#<pane_index>#<retraction 0|1>` with each number encoded so
//! that string order is numeric order ([`sort_key`]); a Query on `pk` returns a key's panes
//! in window and pane order. The other attributes are the fields of [`PaneRow::to_json`]
//! (`aggregation`, group-by fields, `window_start`, `window_end`, aggregates, `timing`,
//! `pane_index`, `retraction`, `pane_id`); a field named `pk` or `sk` is skipped.
//! [`DynamoDbSink::row`] reads an item back (`eventide results`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use serde_json::Value;
use tracing::debug;

use crate::error::AwsError;
use crate::sdk::dynamodb::{batch_write, get_bool, get_n, get_s, Item};
use eventide_ports::rows::PaneRow;

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
    ///
    /// # Errors
    /// As [`crate::sdk::dynamodb::ensure_table`].
    pub async fn ensure_table(client: &Client, name: &str) -> Result<(), AwsError> {
        crate::sdk::dynamodb::ensure_table(client, name, "pk", Some("sk")).await
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
    pub fn item(row: &PaneRow) -> Item {
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

    /// The aggregation of a results-table item (`alert:<rule>` for an alert), if it has one.
    pub fn aggregation_of(item: &Item) -> Option<&str> {
        get_s(item, "aggregation")
    }

    /// The row of a results-table item: the inverse of [`DynamoDbSink::item`], given the
    /// names of the aggregation's group-by fields and aggregates (the item holds the values
    /// by name). A group-by value or an aggregate that is missing or `NULL` reads as
    /// `None`; so does a group-by field named `pk` or `sk`, whose value the item does not
    /// keep.
    ///
    /// # Errors
    /// [`AwsError::Corrupt`] naming the item and the attribute: no `aggregation`, a number
    /// that does not parse, or an unknown `timing`.
    pub fn row(
        item: &Item,
        group_by: &[String],
        aggregates: &[String],
    ) -> Result<PaneRow, AwsError> {
        let what = format!(
            "results item {}/{}",
            get_s(item, "pk").unwrap_or_default(),
            get_s(item, "sk").unwrap_or_default()
        );
        let corrupt = |message: String| AwsError::Corrupt {
            what: what.clone(),
            message,
        };
        let aggregation =
            Self::aggregation_of(item).ok_or_else(|| corrupt("no attribute aggregation".into()))?;
        let timing = match get_s(item, "timing") {
            Some("EARLY") => "EARLY",
            Some("ON_TIME") => "ON_TIME",
            Some("LATE") => "LATE",
            Some("ALERT") => "ALERT",
            other => return Err(corrupt(format!("attribute timing = {other:?}"))),
        };
        let key_parts = group_by
            .iter()
            .map(|name| match name.as_str() {
                "pk" | "sk" => None,
                _ => get_s(item, name).map(str::to_string),
            })
            .collect();
        let values = aggregates
            .iter()
            .map(|name| match item.get(name) {
                // An undefined aggregate is written as NULL.
                Some(AttributeValue::Null(_)) => Ok((name.clone(), None)),
                _ => Ok((name.clone(), get_n::<f64>(item, name, &what)?)),
            })
            .collect::<Result<_, AwsError>>()?;
        Ok(PaneRow {
            aggregation: aggregation.to_string(),
            key_parts,
            group_by: group_by.to_vec(),
            window_start: get_n(item, "window_start", &what)?.unwrap_or(0),
            window_end: get_n(item, "window_end", &what)?.unwrap_or(0),
            timing,
            pane_index: get_n(item, "pane_index", &what)?.unwrap_or(0),
            retraction: get_bool(item, "retraction"),
            values,
            pane_id: get_s(item, "pane_id").unwrap_or_default().to_string(),
        })
    }

    /// Upserts every row with BatchWriteItem, 25 per call, retrying unprocessed items with
    /// backoff. Rows with the same key, window and pane in one batch collapse to the last
    /// one (BatchWriteItem rejects duplicate keys in a call). `batch_id` is only logged.
    ///
    /// # Errors
    /// [`AwsError::Service`] when a call fails or items are still unprocessed after the
    /// retries.
    ///
    /// # Cancel safety
    /// A cancelled write may have written some of the rows; the batch's retry upserts the
    /// same items again.
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
        batch_write(&self.client, &self.table, requests, &op).await?;
        debug!(table = %self.table, batch_id, items = total, "wrote panes to DynamoDB");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn row() -> PaneRow {
        PaneRow {
            aggregation: "q1".into(),
            key_parts: vec![Some("a\u{1f}b".into()), None, Some(String::new())],
            group_by: names(&["sub", "region", "tier"]),
            window_start: i64::MIN,
            window_end: -1_700_000_000_000,
            timing: "LATE",
            pane_index: 7,
            retraction: true,
            values: vec![
                ("n".into(), Some(3.0)),
                ("avg".into(), None),
                ("x".into(), Some(-0.25)),
            ],
            pane_id: "q1-0123456789abcdef".into(),
        }
    }

    #[test]
    fn an_item_reads_back_as_the_row_written() {
        let row = row();
        let item = DynamoDbSink::item(&row);
        assert_eq!(DynamoDbSink::aggregation_of(&item), Some("q1"));
        let back = DynamoDbSink::row(&item, &row.group_by, &names(&["n", "avg", "x"])).unwrap();
        assert_eq!(back, row);
        for timing in ["EARLY", "ON_TIME", "ALERT"] {
            let r = PaneRow {
                timing,
                retraction: false,
                ..row.clone()
            };
            let back = DynamoDbSink::row(
                &DynamoDbSink::item(&r),
                &r.group_by,
                &names(&["n", "avg", "x"]),
            );
            assert_eq!(back.unwrap(), r);
        }
    }

    #[test]
    fn the_keys_are_not_values() {
        let mut r = row();
        r.group_by = names(&["pk", "region", "sk"]);
        let item = DynamoDbSink::item(&r);
        let back = DynamoDbSink::row(&item, &r.group_by, &names(&["n", "avg", "x"])).unwrap();
        assert_eq!(back.key_parts, [None, None, None]);
        assert_eq!(
            crate::sdk::dynamodb::get_s(&item, "pk"),
            Some(DynamoDbSink::primary_key(&r).0.as_str())
        );
    }

    #[test]
    fn a_broken_item_is_an_error_naming_it() {
        let mut item = DynamoDbSink::item(&row());
        item.insert("n".into(), AttributeValue::S("three".into()));
        let e = DynamoDbSink::row(&item, &row().group_by, &names(&["n"])).unwrap_err();
        assert!(e.to_string().starts_with("results item q1#"), "{e}");
        assert!(e.to_string().contains("attribute n: not a number"), "{e}");
        item.insert("timing".into(), AttributeValue::S("SOON".into()));
        let e = DynamoDbSink::row(&item, &row().group_by, &[]).unwrap_err();
        assert!(
            e.to_string().ends_with("attribute timing = Some(\"SOON\")"),
            "{e}"
        );
        item.remove("aggregation");
        assert!(DynamoDbSink::row(&item, &[], &[]).is_err());
    }
}
