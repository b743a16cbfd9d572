//! The lease table: the [`Leases`] port on DynamoDB (the balancing policy that uses it is
//! `eventide_runtime::lease`, pure in `eventide_runtime::lease::balance`).
//!
//! One item per (pipeline, shard), as in `docs/aws-runtime.md`: `pk` = `<pipeline>#<shard>`,
//! `owner` (worker id, absent when free), `counter` (the fencing token, +1 on every
//! take-over), `expires` (epoch ms), `checkpoint` (last committed sequence number, or
//! where a shard not read yet starts: `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP:<epoch ms>`),
//! `parents` (SS, absent when none) and `finished` (BOOL).
//!
//! A take-over is conditional on the item being unchanged since it was read; every write
//! by an owner is conditional on `owner` and `counter`. Once another worker has taken the
//! lease over, the old owner's writes fail with [`PortError::Conflict`] and it must stop
//! processing the shard.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use eventide_ports::lease::{InitialPosition, Lease, LeaseUpdate, Leases, TRIM_HORIZON};
use eventide_ports::shard::ShardInfo;
use eventide_ports::{BoxFuture, PortError};

use crate::sdk::dynamodb::{get_bool, get_n, get_s, n, s, Item};
use crate::sdk::is_condition_failed;
use crate::AwsError;

/// Creates the lease table (`pk` HASH S) unless it exists, and waits until it is ACTIVE.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// eventide_aws::leases::ensure_table(&clients.dynamodb, "eventide-leases").await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`crate::sdk::dynamodb::ensure_table`].
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), AwsError> {
    crate::sdk::dynamodb::ensure_table(client, table, "pk", None).await
}

/// The lease table of one pipeline.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_ports::PortError> {
/// use std::sync::Arc;
/// use eventide_aws::leases::LeaseTable;
/// use eventide_runtime::lease::LeaseKeeper;
/// let table = LeaseTable::new(clients.dynamodb.clone(), "eventide-leases", "q1");
/// let keeper = LeaseKeeper::new(Arc::new(table), 30_000);
/// let now = 1_700_000_000_000;
/// for mut lease in keeper.assign("worker-1", 8, now).await? {
///     // … read the shard from lease.checkpoint, commit state, then:
///     keeper.checkpoint(&mut lease, "49590338271490256608559692538361571095921575989136588898").await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LeaseTable {
    client: Client,
    table: String,
    pipeline: String,
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

impl LeaseTable {
    /// The leases of `pipeline` in `table`.
    pub fn new(client: Client, table: impl Into<String>, pipeline: impl Into<String>) -> Self {
        LeaseTable {
            client,
            table: table.into(),
            pipeline: pipeline.into(),
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
    ///
    /// # Errors
    /// [`AwsError::Service`] when GetItem fails, [`AwsError::Corrupt`] for an item that
    /// cannot be read.
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
    ///
    /// # Errors
    /// [`AwsError::Service`] when a Scan fails, [`AwsError::Corrupt`] for an item that
    /// cannot be read.
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
}

impl LeaseTable {
    /// Runs the conditional update of `lease` (owner and counter unchanged).
    async fn owner_update(&self, lease: &Lease, update: &LeaseUpdate) -> Result<(), AwsError> {
        let (call, expr, extra) = match update {
            LeaseUpdate::Renew { expires_ms } => {
                ("UpdateItem(renew)", "SET #e = :x", Some(n(expires_ms)))
            }
            LeaseUpdate::Checkpoint(position) => (
                "UpdateItem(checkpoint)",
                "SET #cp = :x",
                Some(s(position.as_str())),
            ),
            LeaseUpdate::Finish => (
                "UpdateItem(finish)",
                "SET #f = :x",
                Some(AttributeValue::Bool(true)),
            ),
            LeaseUpdate::Release => ("UpdateItem(release)", "REMOVE #o SET #e = :x", Some(n(0))),
        };
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
        values.extend(extra.map(|v| (":x".to_string(), v)));
        let cond = "#o = :me AND #c = :c";
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&lease.shard_id)))
            .update_expression(expr)
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names(&[cond, expr])))
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

    /// The conditional take-over of `seen` (as read); `None` if it changed since.
    async fn take_over(
        &self,
        seen: &Lease,
        worker: &str,
        expires_ms: i64,
    ) -> Result<Option<Lease>, AwsError> {
        let taken = seen.taken_by(worker, expires_ms);
        let mut values = HashMap::from([
            (":me".to_string(), s(worker)),
            (":newc".to_string(), n(taken.counter)),
            (":exp".to_string(), n(expires_ms)),
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
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&seen.shard_id)))
            .update_expression(update)
            .condition_expression(&cond)
            .set_expression_attribute_names(Some(names(&[&cond, update])))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => match out.attributes() {
                Some(a) => self.parse(a).map(Some),
                None => Ok(Some(taken)),
            },
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

    /// Creates the free lease of `shard`, to be read from `start`, unless one exists.
    async fn create_lease(
        &self,
        shard: &ShardInfo,
        start: InitialPosition,
    ) -> Result<bool, AwsError> {
        let lease = Lease::free_at(shard, start);
        let mut item = self.key(&shard.shard_id);
        item.insert("counter".into(), n(0));
        item.insert("expires".into(), n(0));
        item.insert("checkpoint".into(), s(&lease.checkpoint));
        item.insert("finished".into(), AttributeValue::Bool(false));
        if !lease.parents.is_empty() {
            item.insert("parents".into(), AttributeValue::Ss(lease.parents));
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
            Ok(_) => Ok(true),
            // Another worker created it first.
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(AwsError::service(self.op("PutItem", &shard.shard_id), e)),
        }
    }
}

impl Leases for LeaseTable {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Lease>, PortError>> {
        Box::pin(async move { Ok(LeaseTable::list(self).await?) })
    }

    fn create<'a>(
        &'a self,
        shard: &'a ShardInfo,
        start: InitialPosition,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(async move { Ok(self.create_lease(shard, start).await?) })
    }

    fn take<'a>(
        &'a self,
        seen: &'a Lease,
        worker: &'a str,
        expires_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Lease>, PortError>> {
        Box::pin(async move { Ok(self.take_over(seen, worker, expires_ms).await?) })
    }

    fn update<'a>(
        &'a self,
        lease: &'a Lease,
        update: &'a LeaseUpdate,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move { Ok(self.owner_update(lease, update).await?) })
    }
}
