//! The lease table: which worker consumes which shard, with fencing (KCL-like).
//!
//! One item per (pipeline, shard), as in `docs/aws-runtime.md`: `pk` = `<pipeline>#<shard>`,
//! `owner` (worker id, absent when free), `counter` (the fencing token, +1 on every
//! take-over), `expires` (epoch ms), `checkpoint` (last committed sequence number or
//! `TRIM_HORIZON`), `parents` (SS, absent when none) and `finished` (BOOL).
//!
//! Every write by an owner ([`LeaseTable::renew`], [`checkpoint`](LeaseTable::checkpoint),
//! [`finish`](LeaseTable::finish), [`release`](LeaseTable::release)) is conditional on
//! `owner` and `counter`: once another worker has taken the lease over, the old owner's
//! writes fail with [`AwsError::Conflict`] and it must stop processing the shard. The state
//! table uses the same counter as its fence.
//!
//! Time is passed in (`now_ms`), never read from the clock here, so tests are deterministic
//! and all workers of a test can share one notion of "now". Worker ids must be unique per
//! process incarnation (e.g. host + pid + start time): a restarted worker must not reuse the
//! id of its zombie predecessor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use crate::kinesis::{ShardInfo, TRIM_HORIZON};
use crate::AwsError;

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------------------
// Table creation (shared with `control`)
// ---------------------------------------------------------------------------------------

/// Creates an on-demand table with string keys (`hash`, and `range` if given) unless it
/// exists, and waits until it is ACTIVE.
pub(crate) async fn create_table_if_missing(
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
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
                message: "table not ACTIVE after 60 s".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

pub(crate) fn is_condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    error_code(err) == Some("ConditionalCheckFailedException")
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(
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

pub(crate) fn get_bool(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------

/// Creates the lease table (`pk` HASH S) unless it exists, and waits until it is ACTIVE.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// eventide_aws::leases::ensure_table(&clients.dynamodb, "eventide-leases").await?;
/// # Ok(()) }
/// ```
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), AwsError> {
    create_table_if_missing(client, table, "pk", None).await
}

/// One lease as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The shard it is for.
    pub shard_id: String,
    /// The worker holding it; `None` when free.
    pub owner: Option<String>,
    /// The fencing token: +1 on every take-over.
    pub counter: u64,
    /// Until when the owner holds it (epoch ms); after that anyone may take it.
    pub expires_ms: i64,
    /// The last sequence number whose effects are committed, or `TRIM_HORIZON`.
    pub checkpoint: String,
    /// The parent shards; this shard may start only when they are all finished.
    pub parents: Vec<String>,
    /// The shard reached SHARD_END and everything is committed.
    pub finished: bool,
}

impl Lease {
    /// Whether the lease has expired at `now_ms` (a free lease counts as expired).
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.owner.is_none() || self.expires_ms <= now_ms
    }

    /// Whether `worker` holds it with an unexpired lease at `now_ms`.
    pub fn is_held_by(&self, worker: &str, now_ms: i64) -> bool {
        self.owner.as_deref() == Some(worker) && !self.is_expired(now_ms)
    }
}

/// The lease table of one pipeline.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::leases::LeaseTable;
/// let leases = LeaseTable::new(clients.dynamodb.clone(), "eventide-leases", "q1", 30_000);
/// leases.sync_shards(&eventide_aws::kinesis::list_shards(&clients.kinesis, "events").await?).await?;
/// let now = 1_700_000_000_000;
/// for mut lease in leases.assign("worker-1", 8, now).await? {
///     // … read the shard from lease.checkpoint, commit state, then:
///     leases.checkpoint(&mut lease, "49590338271490256608559692538361571095921575989136588898").await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LeaseTable {
    client: Client,
    table: String,
    pipeline: String,
    lease_duration_ms: i64,
}

/// Attribute-name placeholders used in `exprs` (`owner` is a DynamoDB reserved word, and
/// DynamoDB rejects unused placeholders).
fn names(exprs: &[&str]) -> HashMap<String, String> {
    let used: HashSet<&str> = exprs
        .iter()
        .flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '#' || c == '_')))
        .collect();
    [
        ("#o", "owner"),
        ("#c", "counter"),
        ("#e", "expires"),
        ("#cp", "checkpoint"),
        ("#f", "finished"),
    ]
    .into_iter()
    .filter(|(k, _)| used.contains(k))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl LeaseTable {
    /// The leases of `pipeline` in `table`; an owner holds a lease for `lease_duration_ms`
    /// after each acquire or renew.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        pipeline: impl Into<String>,
        lease_duration_ms: i64,
    ) -> Self {
        LeaseTable {
            client,
            table: table.into(),
            pipeline: pipeline.into(),
            lease_duration_ms,
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The pipeline whose leases this manages.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// How long an acquire or renew holds the lease, in ms.
    pub fn lease_duration_ms(&self) -> i64 {
        self.lease_duration_ms
    }

    fn pk(&self, shard_id: &str) -> String {
        format!("{}#{}", self.pipeline, shard_id)
    }

    fn key(&self, shard_id: &str) -> Item {
        HashMap::from([("pk".to_string(), s(self.pk(shard_id)))])
    }

    fn op(&self, call: &str, shard_id: &str) -> String {
        format!("{call} table {} lease {}", self.table, self.pk(shard_id))
    }

    fn parse(&self, item: &Item) -> Result<Lease, AwsError> {
        let pk = get_s(item, "pk").unwrap_or_default();
        let what = format!("lease table {} item {pk:?}", self.table);
        let shard_id = pk
            .strip_prefix(&self.pipeline)
            .and_then(|r| r.strip_prefix('#'))
            .ok_or_else(|| AwsError::Corrupt {
                what: what.clone(),
                message: "pk not <pipeline>#<shard>".into(),
            })?;
        let mut parents: Vec<String> = item
            .get("parents")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        parents.sort();
        Ok(Lease {
            shard_id: shard_id.to_string(),
            owner: get_s(item, "owner").map(str::to_string),
            counter: get_n(item, "counter", &what)?.unwrap_or(0),
            expires_ms: get_n(item, "expires", &what)?.unwrap_or(0),
            checkpoint: get_s(item, "checkpoint")
                .unwrap_or(TRIM_HORIZON)
                .to_string(),
            parents,
            finished: get_bool(item, "finished"),
        })
    }

    /// The lease of `shard_id` (strongly consistent read), if it exists.
    pub async fn get(&self, shard_id: &str) -> Result<Option<Lease>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(shard_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::service(self.op("GetItem", shard_id), e))?;
        out.item().map(|i| self.parse(i)).transpose()
    }

    /// All leases of the pipeline (strongly consistent scan), sorted by shard id.
    pub async fn list(&self) -> Result<Vec<Lease>, AwsError> {
        let op = format!("Scan table {} pipeline {}", self.table, self.pipeline);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", s(format!("{}#", self.pipeline)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::service(op.clone(), e))?;
            for item in page.items() {
                out.push(self.parse(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(out)
    }

    /// Creates a free lease (checkpoint `TRIM_HORIZON`, with its parents) for every shard
    /// that has none yet; existing leases are never touched. Returns how many it created.
    ///
    /// Call it at start and whenever a shard ends (its children appear).
    pub async fn sync_shards(&self, shards: &[ShardInfo]) -> Result<usize, AwsError> {
        let existing: HashSet<String> =
            self.list().await?.into_iter().map(|l| l.shard_id).collect();
        let mut created = 0;
        for shard in shards.iter().filter(|s| !existing.contains(&s.shard_id)) {
            let mut item = self.key(&shard.shard_id);
            item.insert("counter".into(), n(0));
            item.insert("expires".into(), n(0));
            item.insert("checkpoint".into(), s(TRIM_HORIZON));
            item.insert("finished".into(), AttributeValue::Bool(false));
            let parents = shard.parents();
            if !parents.is_empty() {
                item.insert("parents".into(), AttributeValue::Ss(parents));
            }
            match self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
            {
                Ok(_) => {
                    created += 1;
                    tracing::info!(pipeline = %self.pipeline, shard = %shard.shard_id, "created lease");
                }
                // Another worker created it between our scan and our put.
                Err(e) if is_condition_failed(&e) => {}
                Err(e) => return Err(AwsError::service(self.op("PutItem", &shard.shard_id), e)),
            }
        }
        Ok(created)
    }

    /// Takes the lease of `shard_id` for `worker` if it is free, expired or already its own,
    /// holding it until `now_ms + lease_duration`. Taking it from someone else (free or
    /// expired) increments `counter`; renewing one's own keeps it.
    ///
    /// Returns `None` when another worker holds it unexpired, when it is finished or missing,
    /// or when another worker won the race for it. It does not check the parents; see
    /// [`assign`](Self::assign) for that.
    pub async fn try_acquire(
        &self,
        shard_id: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<Lease>, AwsError> {
        let Some(lease) = self.get(shard_id).await? else {
            return Ok(None);
        };
        if lease.finished {
            return Ok(None);
        }
        if lease.owner.as_deref() != Some(worker) && !lease.is_expired(now_ms) {
            return Ok(None);
        }
        self.take(&lease, worker, now_ms).await
    }

    /// Conditional take-over of `seen` (as read) by `worker`: fails (None) if the lease
    /// changed since it was read.
    async fn take(
        &self,
        seen: &Lease,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<Lease>, AwsError> {
        let own = seen.owner.as_deref() == Some(worker);
        let counter = if own { seen.counter } else { seen.counter + 1 };
        let mut values = HashMap::from([
            (":me".to_string(), s(worker)),
            (":newc".to_string(), n(counter)),
            (":exp".to_string(), n(now_ms + self.lease_duration_ms)),
            (":oldc".to_string(), n(seen.counter)),
            (":olde".to_string(), n(seen.expires_ms)),
            (":true".to_string(), AttributeValue::Bool(true)),
        ]);
        let owner_cond = match &seen.owner {
            None => "attribute_not_exists(#o)".to_string(),
            Some(o) => {
                values.insert(":oldo".into(), s(o));
                "#o = :oldo".to_string()
            }
        };
        let cond = format!("{owner_cond} AND #c = :oldc AND #e = :olde AND NOT #f = :true");
        let update = "SET #o = :me, #c = :newc, #e = :exp";
        let names = names(&[&cond, update]);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&seen.shard_id)))
            .update_expression(update)
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let lease = match out.attributes() {
                    Some(a) => self.parse(a)?,
                    None => Lease {
                        owner: Some(worker.to_string()),
                        counter,
                        expires_ms: now_ms + self.lease_duration_ms,
                        ..seen.clone()
                    },
                };
                if !own {
                    tracing::info!(pipeline = %self.pipeline, shard = %seen.shard_id, worker, counter,
                        previous = ?seen.owner, "took lease");
                }
                Ok(Some(lease))
            }
            Err(e) if is_condition_failed(&e) => {
                tracing::debug!(pipeline = %self.pipeline, shard = %seen.shard_id, worker, "lost the race for a lease");
                Ok(None)
            }
            Err(e) => Err(AwsError::service(
                self.op("UpdateItem(acquire)", &seen.shard_id),
                e,
            )),
        }
    }

    /// Runs an owner-only update of `lease`: conditional on `owner` and `counter`.
    async fn owner_update(
        &self,
        call: &str,
        lease: &Lease,
        update: &str,
        extra: Vec<(&str, AttributeValue)>,
    ) -> Result<(), AwsError> {
        let op = self.op(call, &lease.shard_id);
        let Some(owner) = &lease.owner else {
            return Err(AwsError::Conflict {
                op,
                what: "the lease has no owner".into(),
            });
        };
        let mut values = HashMap::from([
            (":me".to_string(), s(owner.as_str())),
            (":c".to_string(), n(lease.counter)),
        ]);
        values.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        let cond = "#o = :me AND #c = :c";
        let names = names(&[cond, update]);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&lease.shard_id)))
            .update_expression(update)
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                tracing::warn!(%op, owner = %owner, counter = lease.counter, "lease lost (owner or counter changed)");
                Err(AwsError::Conflict {
                    op,
                    what: format!("owner {owner} counter {} no longer current", lease.counter),
                })
            }
            Err(e) => Err(AwsError::service(op, e)),
        }
    }

    /// Extends `lease` to `now_ms + lease_duration`. [`AwsError::Conflict`] if it was taken over.
    pub async fn renew(&self, lease: &mut Lease, now_ms: i64) -> Result<(), AwsError> {
        let expires = now_ms + self.lease_duration_ms;
        self.owner_update(
            "UpdateItem(renew)",
            lease,
            "SET #e = :exp",
            vec![(":exp", n(expires))],
        )
        .await?;
        lease.expires_ms = expires;
        Ok(())
    }

    /// Records that the effects of every record up to `sequence_number` are committed.
    /// [`AwsError::Conflict`] if the lease was taken over (the caller is a zombie).
    pub async fn checkpoint(
        &self,
        lease: &mut Lease,
        sequence_number: &str,
    ) -> Result<(), AwsError> {
        self.owner_update(
            "UpdateItem(checkpoint)",
            lease,
            "SET #cp = :cp",
            vec![(":cp", s(sequence_number))],
        )
        .await?;
        lease.checkpoint = sequence_number.to_string();
        Ok(())
    }

    /// Marks the shard finished: SHARD_END was reached and everything is committed, so its
    /// children may start. [`AwsError::Conflict`] if the lease was taken over.
    pub async fn finish(&self, lease: &mut Lease) -> Result<(), AwsError> {
        self.owner_update(
            "UpdateItem(finish)",
            lease,
            "SET #f = :t",
            vec![(":t", AttributeValue::Bool(true))],
        )
        .await?;
        lease.finished = true;
        tracing::info!(pipeline = %self.pipeline, shard = %lease.shard_id, "shard finished");
        Ok(())
    }

    /// Gives the lease up (e.g. on shutdown) so another worker can take it at once.
    /// [`AwsError::Conflict`] if it was already taken over.
    pub async fn release(&self, lease: Lease) -> Result<(), AwsError> {
        self.owner_update(
            "UpdateItem(release)",
            &lease,
            "REMOVE #o SET #e = :zero",
            vec![(":zero", n(0))],
        )
        .await
    }

    /// Balances leases: `worker` keeps what it holds and takes free or expired startable
    /// leases up to its fair share, `ceil(startable unfinished leases / live workers)` capped
    /// at `max_leases`, where live workers are the owners of unexpired leases plus `worker`.
    /// If it is still under its share and no lease is free, it steals at most one lease
    /// from the most-loaded worker, provided that one holds at least two more than `worker`
    /// (so stealing always improves the balance and never oscillates).
    ///
    /// A lease is startable when every parent lease is finished (a parent with no lease,
    /// e.g. beyond retention, counts as finished). Returns the leases `worker` holds
    /// afterwards, sorted by shard id. Call it periodically (e.g. every lease duration / 3),
    /// renewing held leases in between.
    pub async fn assign(
        &self,
        worker: &str,
        max_leases: usize,
        now_ms: i64,
    ) -> Result<Vec<Lease>, AwsError> {
        let all = self.list().await?;
        let finished: HashSet<&str> = all
            .iter()
            .filter(|l| l.finished)
            .map(|l| l.shard_id.as_str())
            .collect();
        let known: HashSet<&str> = all.iter().map(|l| l.shard_id.as_str()).collect();
        let startable = |l: &Lease| {
            !l.finished
                && l.parents
                    .iter()
                    .all(|p| finished.contains(p.as_str()) || !known.contains(p.as_str()))
        };
        let candidates: Vec<&Lease> = all.iter().filter(|l| startable(l)).collect();

        // Live load per worker (unexpired, unfinished leases), including ours.
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        load.insert(worker, 0);
        for l in all.iter().filter(|l| !l.finished && !l.is_expired(now_ms)) {
            if let Some(o) = l.owner.as_deref() {
                *load.entry(o).or_default() += 1;
            }
        }
        let share = candidates.len().div_ceil(load.len()).min(max_leases);

        let mut held: Vec<Lease> = Vec::new();
        // Our own leases first (renewing expired ones we still own), then free/expired ones.
        let (own, others): (Vec<&Lease>, Vec<&Lease>) = candidates
            .iter()
            .partition(|l| l.owner.as_deref() == Some(worker));
        for l in own {
            if l.is_expired(now_ms) && held.len() >= share {
                continue; // over our share: let it go to others
            }
            if !l.is_expired(now_ms) {
                held.push(l.clone());
            } else if let Some(taken) = self.take(l, worker, now_ms).await? {
                held.push(taken);
            }
        }
        for l in others.iter().filter(|l| l.is_expired(now_ms)) {
            if held.len() >= share {
                break;
            }
            if let Some(taken) = self.take(l, worker, now_ms).await? {
                held.push(taken);
            }
        }
        if held.len() < share {
            let victim = load
                .iter()
                .filter(|(w, _)| **w != worker)
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(w, c)| (*w, *c));
            if let Some((victim, count)) = victim {
                if count > held.len() + 1 {
                    let target = others
                        .iter()
                        .find(|l| l.owner.as_deref() == Some(victim) && !l.is_expired(now_ms));
                    if let Some(l) = target {
                        if let Some(taken) = self.take(l, worker, now_ms).await? {
                            tracing::info!(pipeline = %self.pipeline, shard = %l.shard_id, worker, victim,
                                "stole lease to balance");
                            held.push(taken);
                        }
                    }
                }
            }
        }
        held.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let l = Lease {
            shard_id: "s".into(),
            owner: Some("w".into()),
            counter: 1,
            expires_ms: 100,
            checkpoint: TRIM_HORIZON.into(),
            parents: vec![],
            finished: false,
        };
        assert!(l.is_held_by("w", 99));
        assert!(!l.is_held_by("w", 100));
        assert!(!l.is_held_by("x", 50));
        assert!(Lease { owner: None, ..l }.is_expired(0));
    }
}
