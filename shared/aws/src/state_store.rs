//! The DynamoDB state table: one item per (pipeline, aggregation, key) holding the key's
//! serialized state, the input positions it includes and the fence of its writer.
//!
//! This is the storage half of the exactly-once invariant of `docs/aws-runtime.md`:
//! *a state item's blob includes the effects of exactly the records of shard S with sequence
//! number ≤ `pos[S]`*. [`StateStore::load`] reads items with strongly consistent reads so a
//! new lease owner sees everything its predecessor committed, and [`StateStore::commit`]
//! writes each dirty item with a condition that lets only the current lease owner of the
//! writing shard (or a writer of another shard, after resharding) overwrite it.
//!
//! Layout (see the design page): `pk` = `<pipeline>#<aggregation>#<key>`, `sk` = `state`,
//! `blob` (B), `pos` (M of S), `fence` (N), `shard` (S), `hk` (S, 39-digit decimal),
//! `tidx` (S, only while a timer is pending; sparse GSI `timers`), `ttl` (N).
//!
//! Pipeline and aggregation names must not contain `#`; the key may contain anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::error::AwsError;

/// Sort key of every state item (one item per key; see "Granularity" in the design).
pub const STATE_SK: &str = "state";
/// Name of the sparse global secondary index of keys with pending timers.
pub const TIMERS_INDEX: &str = "timers";
/// BatchGetItem accepts at most 100 keys per call.
const BATCH_GET_MAX: usize = 100;
/// Conditional writes in flight at once during [`StateStore::commit`].
const WRITE_CONCURRENCY: usize = 16;
/// BatchGetItem calls in flight at once during [`StateStore::load`].
const READ_CONCURRENCY: usize = 4;
/// Attempts for a BatchGetItem chunk whose keys keep coming back unprocessed.
const MAX_ATTEMPTS: u32 = 10;

/// The condition of every state write: the item is new, or its writer was this shard with
/// an older or equal fence, or it was written by another shard (a parent or a child after
/// resharding, whose lease counter is not comparable with ours).
const FENCE_CONDITION: &str = "attribute_not_exists(#pk) OR #fence <= :fence OR #shard <> :shard";

/// Identifies a state item: `pk` = `<pipeline>#<aggregation>#<key>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey {
    pub pipeline: String,
    pub aggregation: String,
    /// Group-by values joined by U+001F (`eventide_engine::pane::KEY_SEP`).
    pub key: String,
}

impl StateKey {
    /// A key from its parts.
    pub fn new(
        pipeline: impl Into<String>,
        aggregation: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        StateKey {
            pipeline: pipeline.into(),
            aggregation: aggregation.into(),
            key: key.into(),
        }
    }

    /// The partition key: `<pipeline>#<aggregation>#<key>`.
    ///
    /// ```
    /// use eventide_aws::state_store::StateKey;
    /// let k = StateKey::new("p", "q1", "a#b");
    /// assert_eq!(k.pk(), "p#q1#a#b");
    /// assert_eq!(StateKey::from_pk(&k.pk()), Some(k));
    /// ```
    pub fn pk(&self) -> String {
        format!("{}#{}#{}", self.pipeline, self.aggregation, self.key)
    }

    /// Parses a partition key written by [`StateKey::pk`]; `None` when it has fewer than
    /// three `#`-separated parts.
    pub fn from_pk(pk: &str) -> Option<Self> {
        let mut it = pk.splitn(3, '#');
        let (pipeline, aggregation, key) = (it.next()?, it.next()?, it.next()?);
        Some(StateKey::new(pipeline, aggregation, key))
    }

    fn primary_key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pk())),
            ("sk".to_string(), AttributeValue::S(STATE_SK.to_string())),
        ])
    }
}

/// A state item as read by [`StateStore::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// The serialized key state.
    pub blob: Vec<u8>,
    /// Per input shard, the last sequence number whose effects `blob` includes.
    pub pos: BTreeMap<String, String>,
    /// The lease counter of the writer.
    pub fence: u64,
    /// The shard whose consumer wrote it.
    pub shard: String,
}

/// One dirty state item for [`StateStore::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub key: StateKey,
    /// The new state; `None` deletes the item (the key's state became empty).
    pub blob: Option<Vec<u8>>,
    /// Per input shard, the last sequence number whose effects `blob` includes.
    pub pos: BTreeMap<String, String>,
    /// The Kinesis hash key of the key's partition key (stored as a 39-digit decimal).
    pub hk: u128,
    /// The earliest pending timer (epoch ms); `Some` puts the item in the `timers` index.
    pub next_timer: Option<i64>,
    /// Epoch seconds after which DynamoDB may expire the item.
    pub ttl_epoch_s: Option<i64>,
}

/// The hash key as stored in `hk`: 39-digit zero-padded decimal, so that string order is
/// numeric order (u128::MAX has 39 digits).
///
/// ```
/// assert_eq!(eventide_aws::state_store::hk_string(42).len(), 39);
/// assert!(eventide_aws::state_store::hk_string(9) < eventide_aws::state_store::hk_string(10));
/// ```
pub fn hk_string(hk: u128) -> String {
    format!("{hk:039}")
}

/// Reads and conditionally writes the state table. Cheap to clone (clones share the write
/// counter).
///
/// ```no_run
/// # async fn f() -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::state_store::{StateKey, StateStore, StateWrite};
/// let clients = eventide_aws::config::Clients::from_env().await;
/// StateStore::ensure_table(&clients.dynamodb, "demo-state").await?;
/// let store = StateStore::new(clients.dynamodb.clone(), "demo-state");
/// let key = StateKey::new("demo", "q1", "sensor-1");
/// let write = StateWrite {
///     key: key.clone(),
///     blob: Some(vec![1, 2, 3]),
///     pos: [("shardId-000000000000".to_string(), "4958".to_string())].into(),
///     hk: 17,
///     next_timer: Some(60_000),
///     ttl_epoch_s: None,
/// };
/// store.commit(vec![write], "shardId-000000000000", 3).await?;
/// let loaded = store.load(&[key.clone()]).await?;
/// assert_eq!(loaded[&key].blob, vec![1, 2, 3]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StateStore {
    client: Client,
    table: Arc<str>,
    writes: Arc<AtomicU64>,
}

impl StateStore {
    /// A store over an existing table (see [`StateStore::ensure_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        StateStore {
            client,
            table: Arc::from(table.into()),
            writes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Write requests (PutItem and DeleteItem calls) sent so far by this store and its clones.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Creates the state table if it does not exist (on-demand, `pk`/`sk`, the sparse GSI
    /// `timers` with HASH `tidx` and RANGE `hk`), waits until it is active and enables TTL
    /// on `ttl`. Idempotent. In AWS the infra template creates the table with the same
    /// schema; this is for tests and the local demo.
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
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(TIMERS_INDEX)
            .key_schema(key("tidx", KeyType::Hash)?)
            .key_schema(key("hk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(|e| AwsError::service(&op, e))?;
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("tidx")?)
            .attribute_definitions(attr("hk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match created {
            Ok(_) => info!(table = name, "created state table"),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), CreateTableError::ResourceInUseException(_)) =>
            {
                debug!(table = name, "state table exists");
            }
            Err(e) => return Err(AwsError::service(op, e)),
        }
        wait_active(client, name).await?;
        enable_ttl(client, name, "ttl").await
    }

    /// Loads the items of `keys` (duplicates allowed); keys without an item are absent from
    /// the result. Strongly consistent BatchGetItem in chunks of 100, a few chunks in
    /// flight, with unprocessed keys retried with exponential backoff.
    pub async fn load(
        &self,
        keys: &[StateKey],
    ) -> Result<HashMap<StateKey, StoredState>, AwsError> {
        let mut seen = HashSet::with_capacity(keys.len());
        let unique: Vec<&StateKey> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let mut out = HashMap::with_capacity(unique.len());
        let mut tasks = JoinSet::new();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            if tasks.len() >= READ_CONCURRENCY {
                if let Some(joined) = tasks.join_next().await {
                    collect_loaded(joined, &self.table, &mut out)?;
                }
            }
            let keys: Vec<_> = chunk.iter().map(|k| k.primary_key()).collect();
            tasks.spawn(batch_get(self.client.clone(), self.table.clone(), keys));
        }
        while let Some(joined) = tasks.join_next().await {
            collect_loaded(joined, &self.table, &mut out)?;
        }
        debug!(table = %self.table, asked = unique.len(), found = out.len(), "loaded state");
        Ok(out)
    }

    /// Writes each item with a conditional PutItem (or DeleteItem when `blob` is `None`),
    /// at most 16 in flight: the write succeeds when the item is new, was last written by
    /// `shard` with a fence ≤ `fence`, or was written by another shard. Returns
    /// [`AwsError::Conflict`] naming the key when a newer owner of `shard` wrote it — the
    /// caller has lost its lease and must stop. Writes are independent (no transaction):
    /// after an error some items may be written, which the exactly-once invariant allows
    /// because each item carries its own `pos`.
    pub async fn commit(
        &self,
        items: Vec<StateWrite>,
        shard: &str,
        fence: u64,
    ) -> Result<(), AwsError> {
        let count = items.len();
        let shard: Arc<str> = Arc::from(shard);
        let mut tasks = JoinSet::new();
        let mut first_err: Option<AwsError> = None;
        for item in items {
            if tasks.len() >= WRITE_CONCURRENCY {
                if let Some(joined) = tasks.join_next().await {
                    keep_first(&mut first_err, joined, &self.table);
                }
                if first_err.is_some() {
                    break;
                }
            }
            let this = self.clone();
            let shard = shard.clone();
            tasks.spawn(async move { this.write_one(item, &shard, fence).await });
        }
        while let Some(joined) = tasks.join_next().await {
            keep_first(&mut first_err, joined, &self.table);
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                debug!(table = %self.table, %shard, fence, items = count, "committed state");
                Ok(())
            }
        }
    }

    async fn write_one(&self, item: StateWrite, shard: &str, fence: u64) -> Result<(), AwsError> {
        let pk = item.key.pk();
        let names = HashMap::from([
            ("#pk".to_string(), "pk".to_string()),
            ("#fence".to_string(), "fence".to_string()),
            ("#shard".to_string(), "shard".to_string()),
        ]);
        let values = HashMap::from([
            (":fence".to_string(), AttributeValue::N(fence.to_string())),
            (":shard".to_string(), AttributeValue::S(shard.to_string())),
        ]);
        self.writes.fetch_add(1, Ordering::Relaxed);
        match item.blob {
            None => {
                let op = format!("DeleteItem {} {pk:?}", self.table);
                let res = self
                    .client
                    .delete_item()
                    .table_name(&*self.table)
                    .set_key(Some(item.key.primary_key()))
                    .condition_expression(FENCE_CONDITION)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match res {
                    Ok(_) => Ok(()),
                    Err(SdkError::ServiceError(e)) => match e.into_err() {
                        DeleteItemError::ConditionalCheckFailedException(c) => {
                            Err(conflict(op, &pk, shard, fence, c.item()))
                        }
                        other => Err(AwsError::service(op, other)),
                    },
                    Err(e) => Err(AwsError::service(op, e)),
                }
            }
            Some(blob) => {
                let op = format!("PutItem {} {pk:?}", self.table);
                let mut row = item.key.primary_key();
                row.insert("blob".into(), AttributeValue::B(Blob::new(blob)));
                let pos = item
                    .pos
                    .into_iter()
                    .map(|(s, seq)| (s, AttributeValue::S(seq)))
                    .collect();
                row.insert("pos".into(), AttributeValue::M(pos));
                row.insert("fence".into(), AttributeValue::N(fence.to_string()));
                row.insert("shard".into(), AttributeValue::S(shard.to_string()));
                row.insert("hk".into(), AttributeValue::S(hk_string(item.hk)));
                if item.next_timer.is_some() {
                    row.insert("tidx".into(), AttributeValue::S(item.key.pipeline.clone()));
                }
                if let Some(ttl) = item.ttl_epoch_s {
                    row.insert("ttl".into(), AttributeValue::N(ttl.to_string()));
                }
                let res = self
                    .client
                    .put_item()
                    .table_name(&*self.table)
                    .set_item(Some(row))
                    .condition_expression(FENCE_CONDITION)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match res {
                    Ok(_) => Ok(()),
                    Err(SdkError::ServiceError(e)) => match e.into_err() {
                        PutItemError::ConditionalCheckFailedException(c) => {
                            Err(conflict(op, &pk, shard, fence, c.item()))
                        }
                        other => Err(AwsError::service(op, other)),
                    },
                    Err(e) => Err(AwsError::service(op, e)),
                }
            }
        }
    }

    /// The keys of `pipeline` with a pending timer whose hash key lies in `[hk_lo, hk_hi]`
    /// (a shard's hash key range), from the sparse `timers` index, all pages. The index is
    /// eventually consistent: a consumer taking over a shard uses it to find keys whose
    /// timers it must re-arm, then loads them with [`StateStore::load`].
    pub async fn pending_timers(
        &self,
        pipeline: &str,
        hk_lo: u128,
        hk_hi: u128,
    ) -> Result<Vec<StateKey>, AwsError> {
        let op = format!("Query {} index {TIMERS_INDEX}", self.table);
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&*self.table)
                .index_name(TIMERS_INDEX)
                .key_condition_expression("#t = :p AND #hk BETWEEN :lo AND :hi")
                .expression_attribute_names("#t", "tidx")
                .expression_attribute_names("#hk", "hk")
                .expression_attribute_values(":p", AttributeValue::S(pipeline.to_string()))
                .expression_attribute_values(":lo", AttributeValue::S(hk_string(hk_lo)))
                .expression_attribute_values(":hi", AttributeValue::S(hk_string(hk_hi)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::service(&op, e))?;
            for item in page.items() {
                let pk = string_attr(item, "pk").ok_or_else(|| AwsError::Corrupt {
                    what: format!("{op}: item without pk"),
                    message: format!("{item:?}"),
                })?;
                let key = StateKey::from_pk(pk).ok_or_else(|| AwsError::Corrupt {
                    what: format!("{op}: pk {pk:?}"),
                    message: "expected <pipeline>#<aggregation>#<key>".into(),
                })?;
                out.push(key);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        debug!(table = %self.table, pipeline, keys = out.len(), "pending timers");
        Ok(out)
    }
}

/// Exponential backoff with a little jitter: 25 ms, 50 ms, … capped at 2 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 25u64.saturating_mul(1 << attempt.min(7)).min(2_000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (base / 4 + 1))
        .unwrap_or(0);
    Duration::from_millis(base + jitter)
}

type Item = HashMap<String, AttributeValue>;

/// One BatchGetItem chunk, retrying unprocessed keys.
async fn batch_get(
    client: Client,
    table: Arc<str>,
    mut keys: Vec<Item>,
) -> Result<Vec<Item>, AwsError> {
    let op = format!("BatchGetItem {table}");
    let mut found = Vec::with_capacity(keys.len());
    for attempt in 0..MAX_ATTEMPTS {
        let ka = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut keys)))
            .consistent_read(true)
            .build()
            .map_err(|e| AwsError::service(&op, e))?;
        let out = client
            .batch_get_item()
            .request_items(&*table, ka)
            .send()
            .await
            .map_err(|e| AwsError::service(&op, e))?;
        if let Some(items) = out.responses().and_then(|r| r.get(&*table)) {
            found.extend(items.iter().cloned());
        }
        keys = out
            .unprocessed_keys()
            .and_then(|u| u.get(&*table))
            .map(|ka| ka.keys().to_vec())
            .unwrap_or_default();
        if keys.is_empty() {
            return Ok(found);
        }
        let wait = backoff(attempt);
        warn!(%table, unprocessed = keys.len(), attempt, ?wait, "BatchGetItem: retrying unprocessed keys");
        tokio::time::sleep(wait).await;
    }
    Err(AwsError::Service {
        op,
        message: format!(
            "{} keys still unprocessed after {MAX_ATTEMPTS} attempts",
            keys.len()
        ),
    })
}

fn collect_loaded(
    joined: Result<Result<Vec<Item>, AwsError>, tokio::task::JoinError>,
    table: &str,
    out: &mut HashMap<StateKey, StoredState>,
) -> Result<(), AwsError> {
    let items = joined.map_err(|e| AwsError::Service {
        op: format!("BatchGetItem {table}"),
        message: format!("task failed: {e}"),
    })??;
    for item in items {
        let (key, state) = decode(&item, table)?;
        out.insert(key, state);
    }
    Ok(())
}

fn keep_first(
    first: &mut Option<AwsError>,
    joined: Result<Result<(), AwsError>, tokio::task::JoinError>,
    table: &str,
) {
    let res = joined.unwrap_or_else(|e| {
        Err(AwsError::Service {
            op: format!("commit {table}"),
            message: format!("task failed: {e}"),
        })
    });
    if let Err(e) = res {
        match first {
            // A conflict (lost lease) matters more than a transient error.
            Some(AwsError::Conflict { .. }) => {}
            Some(_) if !matches!(e, AwsError::Conflict { .. }) => {}
            _ => *first = Some(e),
        }
    }
}

fn conflict(op: String, pk: &str, shard: &str, fence: u64, old: Option<&Item>) -> AwsError {
    let holder = old
        .map(|o| {
            format!(
                " (item has fence {} from shard {})",
                o.get("fence")
                    .and_then(|v| v.as_n().ok())
                    .map_or("?", |s| s.as_str()),
                string_attr(o, "shard").unwrap_or("?")
            )
        })
        .unwrap_or_default();
    warn!(%op, pk, shard, fence, "state write rejected: newer owner");
    AwsError::Conflict {
        op,
        what: format!(
            "state {pk:?} was written by a newer owner of {shard} than fence {fence}{holder}"
        ),
    }
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn decode(item: &Item, table: &str) -> Result<(StateKey, StoredState), AwsError> {
    let corrupt = |what: &str, message: String| AwsError::Corrupt {
        what: format!("state table {table}: {what}"),
        message,
    };
    let pk = string_attr(item, "pk").ok_or_else(|| corrupt("item", "no pk".into()))?;
    let key = StateKey::from_pk(pk).ok_or_else(|| {
        corrupt(
            &format!("pk {pk:?}"),
            "expected <pipeline>#<aggregation>#<key>".into(),
        )
    })?;
    let blob = match item.get("blob") {
        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
        other => {
            return Err(corrupt(
                &format!("{pk:?} blob"),
                format!("expected B, got {other:?}"),
            ))
        }
    };
    let pos = match item.get("pos") {
        Some(AttributeValue::M(m)) => m
            .iter()
            .map(|(s, v)| match v {
                AttributeValue::S(seq) => Ok((s.clone(), seq.clone())),
                other => Err(corrupt(
                    &format!("{pk:?} pos[{s}]"),
                    format!("expected S, got {other:?}"),
                )),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        None => BTreeMap::new(),
        Some(other) => {
            return Err(corrupt(
                &format!("{pk:?} pos"),
                format!("expected M, got {other:?}"),
            ))
        }
    };
    let fence = match item.get("fence") {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|e| corrupt(&format!("{pk:?} fence {n:?}"), e.to_string()))?,
        other => {
            return Err(corrupt(
                &format!("{pk:?} fence"),
                format!("expected N, got {other:?}"),
            ))
        }
    };
    let shard = string_attr(item, "shard")
        .ok_or_else(|| corrupt(&format!("{pk:?} shard"), "missing or not S".into()))?
        .to_string();
    Ok((
        key,
        StoredState {
            blob,
            pos,
            fence,
            shard,
        },
    ))
}

async fn wait_active(client: &Client, name: &str) -> Result<(), AwsError> {
    let op = format!("DescribeTable {name}");
    for attempt in 0..120 {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| AwsError::service(&op, e))?;
        let table = out.table();
        let active = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let gsis_active = table
            .map(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .all(|g| g.index_status().is_none_or(|s| s.as_str() == "ACTIVE"))
            })
            .unwrap_or(true);
        if active && gsis_active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(if attempt < 10 { 100 } else { 500 })).await;
    }
    Err(AwsError::Service {
        op,
        message: "table did not become ACTIVE within about a minute".into(),
    })
}

/// Enables TTL on `attr` unless it already is (enabling twice is an error in DynamoDB).
pub(crate) async fn enable_ttl(client: &Client, table: &str, attr: &str) -> Result<(), AwsError> {
    let desc = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AwsError::service(format!("DescribeTimeToLive {table}"), e))?;
    let status = desc
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let op = format!("UpdateTimeToLive {table}");
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attr)
        .enabled(true)
        .build()
        .map_err(|e| AwsError::service(&op, e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| AwsError::service(&op, e))?;
    info!(table, attr, "enabled TTL");
    Ok(())
}
