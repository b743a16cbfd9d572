//! Live per-key lookups against a DynamoDB table, for data too large or too fresh to
//! preload.
//!
//! Per input batch, the consumer collects the batch's distinct join keys and calls
//! [`DynamoLookup::table_for`]: keys cached within the TTL are served from the cache, the
//! rest are fetched with BatchGetItem in chunks of 100 (unprocessed keys are retried with
//! backoff), at most `max_concurrency` chunks at a time. The answer is a small
//! [`LookupTable`] for the batch, so records are then enriched in their own order.
//!
//! ```no_run
//! # async fn f(l: eventide_aws::enrichment::dynamodb::DynamoLookup) -> Result<(), eventide_aws::AwsError> {
//! let table = l.table_for(vec!["s1".into(), "s2".into()]).await?;
//! assert!(table.rows() <= 2);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use eventide_engine::enrich::table::{LookupTable, TableBuilder, TableShape, KEY_PART_SEP};
use eventide_engine::enrich::EnrichmentSpec;
use eventide_engine::record::Value;
use eventide_engine::spec::FieldType;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::AwsError;

/// Keys per BatchGetItem call (the DynamoDB limit).
const BATCH_KEYS: usize = 100;
/// Attempts at a chunk's unprocessed keys before the batch fails.
const MAX_ATTEMPTS: u32 = 8;

type Cached = (Instant, Option<Vec<Value<'static>>>);

/// Counters of a lookup, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    pub cache_hits: u64,
    pub fetched_keys: u64,
    pub calls: u64,
    pub retries: u64,
}

/// Cached, batched lookups of one enrichment's DynamoDB table.
#[derive(Clone)]
pub struct DynamoLookup {
    client: Client,
    table: String,
    layout: TableShape,
    key_attrs: Vec<(String, FieldType)>,
    columns: Vec<(String, FieldType)>,
    ttl: Duration,
    concurrency: usize,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    stats: Arc<Mutex<LookupStats>>,
}

impl DynamoLookup {
    /// Lookups for `spec`, whose source must be `dynamodb`.
    pub fn new(client: Client, spec: &EnrichmentSpec) -> Option<Self> {
        let eventide_engine::enrich::SourceSpec::DynamoDb {
            table,
            cache_ttl_ms,
            max_concurrency,
        } = &spec.source
        else {
            return None;
        };
        Some(DynamoLookup {
            client,
            table: table.clone(),
            layout: eventide_engine::enrich::table_shape(spec),
            key_attrs: spec
                .join
                .iter()
                .map(|k| (k.column.clone(), k.field_type))
                .collect(),
            columns: spec
                .columns
                .iter()
                .map(|c| (c.column.clone(), c.ty))
                .collect(),
            ttl: Duration::from_millis(*cache_ttl_ms as u64),
            concurrency: *max_concurrency,
            cache: Arc::default(),
            stats: Arc::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> LookupStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn key_item(&self, key: &str) -> HashMap<String, AttributeValue> {
        // Parts of a join key are never null (a null key never matches).
        eventide_engine::key::parts(key)
            .zip(&self.key_attrs)
            .map(|(part, (name, ty))| {
                let part = part.unwrap_or_default();
                let v = match ty {
                    FieldType::Number => AttributeValue::N(part.to_string()),
                    FieldType::Bool => AttributeValue::Bool(part == "true"),
                    FieldType::String => AttributeValue::S(part.to_string()),
                };
                (name.clone(), v)
            })
            .collect()
    }

    fn encode_item_key(&self, item: &HashMap<String, AttributeValue>) -> Option<String> {
        let mut key = String::new();
        for (i, (name, ty)) in self.key_attrs.iter().enumerate() {
            if i > 0 {
                key.push(KEY_PART_SEP);
            }
            let v = attr_value(item.get(name)?);
            if !eventide_engine::enrich::table::encode_key_part(&mut key, &v, *ty).ok()? {
                return None;
            }
        }
        Some(key)
    }

    /// A table holding the rows of `keys` (distinct encoded join keys, see
    /// [`eventide_engine::enrich::Enricher::key_of`]) that exist in DynamoDB.
    ///
    /// # Errors
    /// [`AwsError::Service`] when BatchGetItem fails or keys stay unprocessed after the
    /// retries.
    pub async fn table_for(&self, keys: Vec<String>) -> Result<LookupTable, AwsError> {
        let now = Instant::now();
        let mut missing = Vec::new();
        let mut hits = 0u64;
        {
            let cache = self.cache.lock().map_err(|_| poisoned())?;
            for k in &keys {
                match cache.get(k) {
                    Some((at, _)) if now.duration_since(*at) < self.ttl => hits += 1,
                    _ => missing.push(k.clone()),
                }
            }
        }
        let mut calls = 0;
        let mut retries = 0;
        let fetched = missing.len() as u64;
        if !missing.is_empty() {
            let sem = Arc::new(Semaphore::new(self.concurrency));
            let mut set = JoinSet::new();
            for chunk in missing.chunks(BATCH_KEYS) {
                let this = self.clone();
                let chunk = chunk.to_vec();
                let sem = Arc::clone(&sem);
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    this.fetch_chunk(chunk).await
                });
            }
            let mut found: HashMap<String, Vec<Value<'static>>> = HashMap::new();
            while let Some(r) = set.join_next().await {
                let (rows, c, rt) = r.map_err(|e| AwsError::Service {
                    op: format!("BatchGetItem {}", self.table),
                    message: e.to_string(),
                })??;
                calls += c;
                retries += rt;
                found.extend(rows);
            }
            let mut cache = self.cache.lock().map_err(|_| poisoned())?;
            let at = Instant::now();
            for k in missing {
                let row = found.remove(&k);
                cache.insert(k, (at, row));
            }
            // Keep the cache from growing without bound: forget expired entries.
            if cache.len() > 1_000_000 {
                cache.retain(|_, (t, _)| at.duration_since(*t) < self.ttl);
            }
        }
        if let Ok(mut s) = self.stats.lock() {
            s.cache_hits += hits;
            s.fetched_keys += fetched;
            s.calls += calls;
            s.retries += retries;
        }
        let cache = self.cache.lock().map_err(|_| poisoned())?;
        let mut b = TableBuilder::new(self.layout.clone());
        let mut cells: Vec<Value<'_>> = Vec::new();
        for k in &keys {
            let Some((_, Some(row))) = cache.get(k) else {
                continue;
            };
            cells.clear();
            for part in eventide_engine::key::parts(k) {
                cells.push(part.map_or(Value::Null, Value::Str));
            }
            cells.extend(row.iter().cloned());
            b.push_row(&cells).map_err(|e| AwsError::Corrupt {
                what: format!("dynamodb table {}", self.table),
                message: e.to_string(),
            })?;
        }
        b.try_finish("dynamodb").map_err(|e| AwsError::Corrupt {
            what: format!("dynamodb table {}", self.table),
            message: e.to_string(),
        })
    }

    /// Fetches up to 100 keys, retrying unprocessed keys with exponential backoff.
    async fn fetch_chunk(
        &self,
        keys: Vec<String>,
    ) -> Result<(HashMap<String, Vec<Value<'static>>>, u64, u64), AwsError> {
        let op = format!("BatchGetItem {}", self.table);
        let mut names: HashMap<String, String> = HashMap::new();
        let mut projection = Vec::new();
        for (i, (n, _)) in self.key_attrs.iter().chain(self.columns.iter()).enumerate() {
            names.insert(format!("#a{i}"), n.clone());
            projection.push(format!("#a{i}"));
        }
        let mut pending: Vec<HashMap<String, AttributeValue>> =
            keys.iter().map(|k| self.key_item(k)).collect();
        let mut out = HashMap::new();
        let (mut calls, mut retries) = (0u64, 0u64);
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .projection_expression(projection.join(", "))
                .set_expression_attribute_names(Some(names.clone()))
                .build()
                .map_err(|e| AwsError::service(&op, e))?;
            calls += 1;
            let resp = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(|e| AwsError::service(&op, e))?;
            for item in resp
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                if let Some(k) = self.encode_item_key(item) {
                    let row = self
                        .columns
                        .iter()
                        .map(|(n, _)| item.get(n).map_or(Value::Null, attr_value))
                        .collect();
                    out.insert(k, row);
                }
            }
            if let Some(u) = resp.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                pending = u.keys().to_vec();
            }
            if !pending.is_empty() {
                attempt += 1;
                retries += 1;
                if attempt >= MAX_ATTEMPTS {
                    return Err(AwsError::Service {
                        op,
                        message: format!(
                            "{} keys still unprocessed after {attempt} attempts",
                            pending.len()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
            }
        }
        Ok((out, calls, retries))
    }
}

fn poisoned() -> AwsError {
    AwsError::Corrupt {
        what: "dynamodb lookup cache".into(),
        message: "a lookup panicked while holding the cache".into(),
    }
}

fn attr_value(v: &AttributeValue) -> Value<'static> {
    match v {
        AttributeValue::S(s) => Value::Str(s.clone().into()),
        AttributeValue::N(n) => n.parse().map_or(Value::Str(n.clone().into()), Value::Num),
        AttributeValue::Bool(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}
