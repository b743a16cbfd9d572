//! The shard state log on AWS: the [`StateLog`] port over a DynamoDB table (the log
//! entries) and an S3 prefix (the snapshots).
//!
//! Table `<prefix>-state`: `pk` (S, HASH) = `<pipeline>#<shard>`, `sk` (S, RANGE) =
//! `v#<20-digit version>` for an entry's commit item, with its body in `b` (B). An entry
//! larger than [`MAX_PART`] is split: the parts before the last go first, unconditionally,
//! under `v#<version>#<nonce>#<i>`; the commit item, written last and only if no entry of
//! its version exists, holds the last part, the nonce `n` and the number of parts `p`. A
//! zombie writer's parts never overwrite the winner's (other nonce), and parts without a
//! commit item are ignored and deleted with the next trim.
//!
//! Snapshots are objects `s3://<bucket>/state/<pipeline>/<name>`.
//!
//! Costs (on-demand): an entry of `n` KB is `n` WRU once, plus `n` WRU when a later
//! snapshot deletes it (by key: the writer knows its entries, so trimming reads nothing); a
//! recovery reads the kept entries once (strongly consistent); a snapshot is one PUT, a
//! cold start one GET.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use aws_sdk_s3::primitives::ByteStream;
use eventide_ports::state::{entry_sk, log_pk, part_sk, LogEntry, StateLog, MAX_PART};
use eventide_ports::{BoxFuture, PortError};
use tracing::debug;

use crate::error::AwsError;
use crate::sdk::dynamodb::{batch_write, get_s, s, Item};
use crate::sdk::is_condition_failed;

/// The snapshot key prefix in the data bucket.
pub const SNAPSHOT_PREFIX: &str = "state";

/// The state log of one pipeline.
///
/// ```no_run
/// # async fn f() -> Result<(), eventide_ports::PortError> {
/// use eventide_ports::state::{LogEntry, StateLog};
/// let clients = eventide_aws::config::Clients::from_env().await;
/// eventide_aws::state_log::ensure_table(&clients.dynamodb, "demo-state").await.ok();
/// let log = eventide_aws::state_log::DynamoStateLog::new(&clients, "demo-state", "demo-data", "q");
/// log.append("shardId-000000000000", &LogEntry { version: 1, body: vec![1, 2, 3] }).await?;
/// assert_eq!(log.read("shardId-000000000000").await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoStateLog {
    dynamodb: Client,
    s3: aws_sdk_s3::Client,
    table: String,
    bucket: String,
    pipeline: String,
}

/// Creates the state table (`pk` HASH S, `sk` RANGE S; no index) unless it exists.
///
/// # Errors
/// A failed CreateTable or DescribeTable.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), AwsError> {
    crate::sdk::dynamodb::ensure_table(client, table, "pk", Some("sk")).await
}

fn port(e: AwsError) -> PortError {
    e.into()
}

impl DynamoStateLog {
    /// The log of `pipeline` in `table`, with snapshots in `bucket`.
    pub fn new(
        clients: &crate::config::Clients,
        table: &str,
        bucket: &str,
        pipeline: &str,
    ) -> Self {
        DynamoStateLog {
            dynamodb: clients.dynamodb.clone(),
            s3: clients.s3.clone(),
            table: table.to_string(),
            bucket: bucket.to_string(),
            pipeline: pipeline.to_string(),
        }
    }

    fn snapshot_key(&self, name: &str) -> String {
        format!("{SNAPSHOT_PREFIX}/{}/{name}", self.pipeline)
    }

    /// Every item of `shard`'s partition (strongly consistent), paginated.
    async fn query_all(&self, shard: &str) -> Result<Vec<Item>, AwsError> {
        self.query(shard, None).await
    }

    /// The keys of `shard`'s items whose sort key starts with `prefix`.
    async fn query_prefix(&self, shard: &str, prefix: &str) -> Result<Vec<Item>, AwsError> {
        self.query(shard, Some(prefix)).await
    }

    async fn query(&self, shard: &str, prefix: Option<&str>) -> Result<Vec<Item>, AwsError> {
        let pk = log_pk(&self.pipeline, shard);
        let op = format!("Query table {} pk {pk}", self.table);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .consistent_read(prefix.is_none())
                .expression_attribute_values(":p", AttributeValue::S(pk.clone()))
                .set_exclusive_start_key(start.take());
            q = match prefix {
                Some(p) => q
                    .key_condition_expression("pk = :p AND begins_with(sk, :s)")
                    .expression_attribute_values(":s", AttributeValue::S(p.to_string()))
                    .projection_expression("pk, sk"),
                None => q.key_condition_expression("pk = :p"),
            };
            let page = q
                .send()
                .await
                .map_err(|e| AwsError::service(op.clone(), e))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn put(&self, item: Item, conditional: bool) -> Result<(), PortError> {
        let mut req = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if conditional {
            req = req.condition_expression("attribute_not_exists(pk)");
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if conditional && is_condition_failed(&e) => Err(PortError::Conflict {
                op: format!("PutItem table {}", self.table),
                what: "an entry of this version exists".into(),
            }),
            Err(e) => Err(port(AwsError::service(
                format!("PutItem table {}", self.table),
                e,
            ))),
        }
    }
}

/// Parses `v#<20 digits>` (a commit item) or `v#<20 digits>#<nonce>#<i>` (a part).
fn parse_sk(sk: &str) -> Option<(u64, Option<(&str, usize)>)> {
    let rest = sk.strip_prefix("v#")?;
    let (v, tail) = rest.split_at_checked(20)?;
    let version = v.parse().ok()?;
    if tail.is_empty() {
        return Some((version, None));
    }
    let mut it = tail.strip_prefix('#')?.split('#');
    let nonce = it.next()?;
    let i = it.next()?.parse().ok()?;
    Some((version, Some((nonce, i))))
}

impl StateLog for DynamoStateLog {
    fn read(&self, shard: &str) -> BoxFuture<'_, Result<Vec<LogEntry>, PortError>> {
        let shard = shard.to_string();
        Box::pin(async move {
            let items = self.query_all(&shard).await.map_err(port)?;
            let what = |sk: &str| {
                format!(
                    "state table {} item {}/{sk}",
                    self.table,
                    log_pk(&self.pipeline, &shard)
                )
            };
            let mut parts: HashMap<(u64, String), BTreeMap<usize, Vec<u8>>> = HashMap::new();
            let mut commits: BTreeMap<u64, &Item> = BTreeMap::new();
            for item in &items {
                let sk = get_s(item, "sk").unwrap_or_default();
                let Some((version, part)) = parse_sk(sk) else {
                    return Err(PortError::Corrupt {
                        what: what(sk),
                        message: "unexpected sort key".into(),
                    });
                };
                let body = item
                    .get("b")
                    .and_then(|v| v.as_b().ok())
                    .map(|b| b.as_ref().to_vec());
                match part {
                    Some((nonce, i)) => {
                        parts
                            .entry((version, nonce.to_string()))
                            .or_default()
                            .insert(i, body.unwrap_or_default());
                    }
                    None => {
                        commits.insert(version, item);
                    }
                }
            }
            let mut out = Vec::with_capacity(commits.len());
            for (version, item) in commits {
                let sk = entry_sk(version);
                let last = item
                    .get("b")
                    .and_then(|v| v.as_b().ok())
                    .map(|b| b.as_ref().to_vec())
                    .ok_or_else(|| PortError::Corrupt {
                        what: what(&sk),
                        message: "no body".into(),
                    })?;
                let count: usize = item
                    .get("p")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let mut body = Vec::new();
                if count > 1 {
                    let nonce = get_s(item, "n").unwrap_or_default().to_string();
                    let mine = parts
                        .get(&(version, nonce))
                        .ok_or_else(|| PortError::Corrupt {
                            what: what(&sk),
                            message: "its parts are missing".into(),
                        })?;
                    for i in 0..count - 1 {
                        body.extend_from_slice(mine.get(&i).ok_or_else(|| PortError::Corrupt {
                            what: what(&sk),
                            message: format!("part {i} of {count} is missing"),
                        })?);
                    }
                }
                body.extend_from_slice(&last);
                out.push(LogEntry { version, body });
            }
            debug!(table = %self.table, shard, entries = out.len(), "read state log");
            Ok(out)
        })
    }

    fn append<'a>(
        &'a self,
        shard: &'a str,
        entry: &'a LogEntry,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let pk = log_pk(&self.pipeline, shard);
            let chunks: Vec<&[u8]> = if entry.body.is_empty() {
                vec![&[][..]]
            } else {
                entry.body.chunks(MAX_PART).collect()
            };
            let n = chunks.len();
            // Parts are named by this writer's nonce, so a zombie never overwrites a winner's.
            let nonce =
                crate::kinesis::hash_key(&format!("{pk}{:?}", std::time::SystemTime::now())) as u64;
            for (i, chunk) in chunks[..n - 1].iter().enumerate() {
                let mut item = Item::new();
                item.insert("pk".into(), s(pk.clone()));
                item.insert("sk".into(), s(part_sk(entry.version, nonce, i)));
                item.insert("b".into(), AttributeValue::B(Blob::new(chunk.to_vec())));
                self.put(item, false).await?;
            }
            let mut item = Item::new();
            item.insert("pk".into(), s(pk));
            item.insert("sk".into(), s(entry_sk(entry.version)));
            item.insert(
                "b".into(),
                AttributeValue::B(Blob::new(chunks[n - 1].to_vec())),
            );
            if n > 1 {
                item.insert("n".into(), s(format!("{nonce:016x}")));
                item.insert("p".into(), AttributeValue::N(n.to_string()));
            }
            self.put(item, true).await
        })
    }

    fn trim<'a>(
        &'a self,
        shard: &'a str,
        entries: &'a [(u64, usize)],
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let pk = log_pk(&self.pipeline, shard);
            let mut keys: Vec<Item> = Vec::new();
            for &(version, len) in entries {
                if len > MAX_PART {
                    // A split entry: its parts' names carry the writer's nonce.
                    let prefix = format!("{}#", entry_sk(version));
                    keys.extend(self.query_prefix(shard, &prefix).await.map_err(port)?);
                }
                keys.push(Item::from([
                    ("pk".to_string(), s(pk.clone())),
                    ("sk".to_string(), s(entry_sk(version))),
                ]));
            }
            let op = format!("BatchWriteItem table {}", self.table);
            let requests: Vec<WriteRequest> = keys
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| port(AwsError::service(op.clone(), e)))
                })
                .collect::<Result<_, _>>()?;
            batch_write(&self.dynamodb, &self.table, requests, &op)
                .await
                .map_err(port)?;
            debug!(table = %self.table, shard, deleted = keys.len(), "trimmed state log");
            Ok(())
        })
    }

    fn put_snapshot<'a>(
        &'a self,
        name: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let key = self.snapshot_key(name);
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type("application/octet-stream")
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| {
                    port(AwsError::service(
                        format!("PutObject s3://{}/{key}", self.bucket),
                        e,
                    ))
                })?;
            Ok(())
        })
    }

    fn get_snapshot<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u8>, PortError>> {
        Box::pin(async move {
            let key = self.snapshot_key(name);
            let op = format!("GetObject s3://{}/{key}", self.bucket);
            let out = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| port(AwsError::service(op.clone(), e)))?;
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| port(AwsError::service(op, e)))?;
            Ok(bytes.into_bytes().to_vec())
        })
    }

    fn delete_snapshot<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let key = self.snapshot_key(name);
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| {
                    port(AwsError::service(
                        format!("DeleteObject s3://{}/{key}", self.bucket),
                        e,
                    ))
                })?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_parse_back() {
        assert_eq!(parse_sk(&entry_sk(42)), Some((42, None)));
        let p = part_sk(7, 0xabc, 3);
        assert_eq!(parse_sk(&p), Some((7, Some(("0000000000000abc", 3)))));
        assert_eq!(parse_sk("state"), None);
        assert_eq!(parse_sk("v#12"), None);
    }
}
