//! In-memory implementations of every port, for tests and the cost benchmark.
//!
//! They share an [`Env`]: a [`Meter`] that bills each request as AWS would, a latency added
//! to every request, and [`Faults`] that fail a chosen call before or after it takes effect
//! (a crash, or a timeout whose write went through).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::control::{ControlPlane, ShardStatus};
use crate::lease::{InitialPosition, Lease, LeaseUpdate, Leases};
use crate::meter::Meter;
use crate::rows::{DeadLetter, PaneRow};
use crate::shard::ShardInfo;
use crate::sink::{PaneSink, RecordSink};
use crate::source::{InputRecord, ShardReader, ShardSource, SourceBatch};
use crate::state::{entry_sk, item_sizes, log_pk, LogEntry, StateLog};
use crate::{BoxFuture, PortError};

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The call fails and has no effect.
    Before,
    /// The call takes effect, then reports a failure (a lost response).
    After,
}

/// Calls to fail: the `nth` call (from 1) of operation `op` (e.g. `"state.append"`).
#[derive(Debug, Default)]
pub struct Faults {
    planned: Mutex<Vec<(String, u64, When)>>,
    calls: Mutex<HashMap<String, u64>>,
}

impl Faults {
    /// Fails the `nth` call of `op` from now on (counting calls made so far).
    pub fn fail(&self, op: &str, nth: u64, when: When) {
        let done = self.calls().get(op).copied().unwrap_or(0);
        self.planned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((op.to_string(), done + nth, when));
    }

    /// Calls made so far, by operation.
    pub fn calls(&self) -> HashMap<String, u64> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a call of `op`; returns the fault planned for it, if any.
    fn hit(&self, op: &str) -> Option<When> {
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            let c = calls.entry(op.to_string()).or_default();
            *c += 1;
            *c
        };
        let mut planned = self.planned.lock().unwrap_or_else(PoisonError::into_inner);
        let i = planned.iter().position(|(o, k, _)| o == op && *k == n)?;
        Some(planned.remove(i).2)
    }
}

/// What the in-memory ports share: the meter, the latency per request and the faults.
#[derive(Debug, Default)]
pub struct Env {
    pub meter: Meter,
    pub faults: Faults,
    /// Added to every request (default none).
    pub latency: Mutex<Duration>,
}

impl Env {
    /// An environment with `latency` per request.
    pub fn with_latency(latency: Duration) -> Arc<Self> {
        let env = Env::default();
        *env.latency.lock().unwrap_or_else(PoisonError::into_inner) = latency;
        Arc::new(env)
    }

    /// Waits the latency, then applies the planned fault of `op` around `effect`.
    async fn call<T>(
        &self,
        op: &str,
        effect: impl FnOnce() -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let latency = *self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fault = self.faults.hit(op);
        let failed = || PortError::Unavailable {
            op: op.to_string(),
            message: "injected fault".into(),
        };
        if fault == Some(When::Before) {
            return Err(failed());
        }
        let out = effect()?;
        if fault == Some(When::After) {
            return Err(failed());
        }
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`StateLog`] in memory, billed as the DynamoDB table (`state`) and the S3 snapshots
/// (`snapshots`) of the AWS adapter.
#[derive(Debug)]
pub struct MemoryStateLog {
    env: Arc<Env>,
    pipeline: String,
    logs: Mutex<HashMap<String, BTreeMap<u64, Vec<u8>>>>,
    snapshots: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStateLog {
    /// An empty store of pipeline `pipeline`.
    pub fn new(env: Arc<Env>, pipeline: &str) -> Self {
        MemoryStateLog {
            env,
            pipeline: pipeline.to_string(),
            logs: Mutex::default(),
            snapshots: Mutex::default(),
        }
    }

    /// The versions kept for `shard`.
    pub fn versions(&self, shard: &str) -> Vec<u64> {
        lock(&self.logs)
            .get(shard)
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The names of the snapshots kept.
    pub fn snapshot_names(&self) -> BTreeSet<String> {
        lock(&self.snapshots).keys().cloned().collect()
    }

    fn sizes(&self, shard: &str, len: usize) -> Vec<usize> {
        item_sizes(&self.pipeline, shard, len)
    }
}

impl StateLog for MemoryStateLog {
    fn read(&self, shard: &str) -> BoxFuture<'_, Result<Vec<LogEntry>, PortError>> {
        let shard = shard.to_string();
        Box::pin(async move {
            self.env
                .call("state.read", || {
                    let logs = lock(&self.logs);
                    let entries: Vec<LogEntry> = logs
                        .get(&shard)
                        .map(|l| {
                            l.iter()
                                .map(|(v, b)| LogEntry {
                                    version: *v,
                                    body: b.clone(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let size: usize = entries
                        .iter()
                        .flat_map(|e| self.sizes(&shard, e.body.len()))
                        .sum();
                    self.env.meter.dynamodb_read("state", size, true);
                    Ok(entries)
                })
                .await
        })
    }

    fn append<'a>(
        &'a self,
        shard: &'a str,
        entry: &'a LogEntry,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.env
                .call("state.append", || {
                    for size in self.sizes(shard, entry.body.len()) {
                        self.env.meter.dynamodb_write("state", size);
                    }
                    let mut logs = lock(&self.logs);
                    let log = logs.entry(shard.to_string()).or_default();
                    if log.contains_key(&entry.version) {
                        return Err(PortError::Conflict {
                            op: format!("append {}", log_pk(&self.pipeline, shard)),
                            what: format!("{} exists", entry_sk(entry.version)),
                        });
                    }
                    log.insert(entry.version, entry.body.clone());
                    Ok(())
                })
                .await
        })
    }

    fn trim<'a>(
        &'a self,
        shard: &'a str,
        entries: &'a [(u64, usize)],
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.env
                .call("state.trim", || {
                    let mut logs = lock(&self.logs);
                    let Some(log) = logs.get_mut(shard) else {
                        return Ok(());
                    };
                    for (v, len) in entries {
                        let sizes = self.sizes(shard, *len);
                        if sizes.len() > 1 {
                            // The parts of a split entry are looked up by a query.
                            self.env
                                .meter
                                .dynamodb_read("state", sizes.iter().sum(), false);
                        }
                        // A delete per item, billed by the item's size.
                        for size in sizes {
                            self.env.meter.dynamodb_write("state", size);
                        }
                        log.remove(v);
                    }
                    Ok(())
                })
                .await
        })
    }

    fn put_snapshot<'a>(
        &'a self,
        name: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.env
                .call("state.put_snapshot", || {
                    self.env.meter.s3_put("snapshots", body.len());
                    lock(&self.snapshots).insert(name.to_string(), body);
                    Ok(())
                })
                .await
        })
    }

    fn get_snapshot<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u8>, PortError>> {
        Box::pin(async move {
            self.env
                .call("state.get_snapshot", || {
                    let body = lock(&self.snapshots).get(name).cloned().ok_or_else(|| {
                        PortError::Corrupt {
                            what: format!("snapshot {name}"),
                            message: "not found".into(),
                        }
                    })?;
                    self.env.meter.s3_get("snapshots", body.len());
                    Ok(body)
                })
                .await
        })
    }

    fn delete_snapshot<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.env
                .call("state.delete_snapshot", || {
                    self.env.meter.s3_put("snapshots", 0);
                    lock(&self.snapshots).remove(name);
                    Ok(())
                })
                .await
        })
    }
}

/// The billed size of a control row (names and values as the AWS adapter writes them).
fn control_row_size(s: &ShardStatus) -> usize {
    // pk, sk, wm, hb, rps, bps, lag, late, finished
    60 + s.shard_id.len()
}

/// [`ControlPlane`] in memory, billed as the control table (`control`).
#[derive(Debug)]
pub struct MemoryControl {
    env: Arc<Env>,
    rows: Mutex<BTreeMap<String, ShardStatus>>,
}

impl MemoryControl {
    /// An empty control table.
    pub fn new(env: Arc<Env>) -> Self {
        MemoryControl {
            env,
            rows: Mutex::default(),
        }
    }
}

impl MemoryControl {
    /// Writes `status` (unless `only_if_absent` and a row exists); returns whether it did.
    async fn put(&self, status: &ShardStatus, only_if_absent: bool) -> Result<bool, PortError> {
        self.env
            .call("control.publish", || {
                self.env
                    .meter
                    .dynamodb_write("control", control_row_size(status));
                let mut rows = lock(&self.rows);
                if only_if_absent && rows.contains_key(&status.shard_id) {
                    return Ok(false);
                }
                rows.insert(status.shard_id.clone(), status.clone());
                Ok(true)
            })
            .await
    }
}

impl ControlPlane for MemoryControl {
    fn publish<'a>(&'a self, status: &'a ShardStatus) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move { self.put(status, false).await.map(|_| ()) })
    }

    fn publish_if_absent<'a>(
        &'a self,
        status: &'a ShardStatus,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(self.put(status, true))
    }

    fn shards_status(&self) -> BoxFuture<'_, Result<Vec<ShardStatus>, PortError>> {
        Box::pin(async move {
            self.env
                .call("control.read", || {
                    let rows: Vec<ShardStatus> = lock(&self.rows).values().cloned().collect();
                    let size = rows.iter().map(control_row_size).sum();
                    self.env.meter.dynamodb_read("control", size, true);
                    Ok(rows)
                })
                .await
        })
    }
}

/// [`PaneSink`] in memory, idempotent by pane id, billed as the DynamoDB results table
/// (`results`: one item per pane) plus the S3 pane objects (`panes`: one object per
/// aggregation and hour of window end per batch).
#[derive(Debug)]
pub struct MemoryPanes {
    env: Arc<Env>,
    rows: Mutex<BTreeMap<String, PaneRow>>,
    writes: Mutex<u64>,
}

impl MemoryPanes {
    /// An empty sink.
    pub fn new(env: Arc<Env>) -> Self {
        MemoryPanes {
            env,
            rows: Mutex::default(),
            writes: Mutex::default(),
        }
    }

    /// Every pane written, once each, by pane id.
    pub fn rows(&self) -> BTreeMap<String, PaneRow> {
        lock(&self.rows).clone()
    }

    /// Pane rows received, redeliveries included.
    pub fn received(&self) -> u64 {
        *lock(&self.writes)
    }
}

impl PaneSink for MemoryPanes {
    fn write<'a>(
        &'a self,
        rows: &'a [PaneRow],
        _batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.env
                .call("panes.write", || {
                    let mut objects = BTreeSet::new();
                    for r in rows {
                        self.env
                            .meter
                            .dynamodb_write("results", r.to_json_string().len() + 40);
                        objects.insert((r.aggregation.clone(), r.window_end.div_euclid(3_600_000)));
                    }
                    for _ in objects {
                        self.env.meter.s3_put("panes", 0);
                    }
                    *lock(&self.writes) += rows.len() as u64;
                    let mut kept = lock(&self.rows);
                    for r in rows {
                        kept.insert(r.pane_id.clone(), r.clone());
                    }
                    Ok(())
                })
                .await
        })
    }
}

/// [`RecordSink`] in memory, one object per (shard, first record) as the S3 adapter
/// writes them, billed under the name given (`dead-letters` or `late`).
#[derive(Debug)]
pub struct MemoryRecords {
    env: Arc<Env>,
    resource: String,
    objects: Mutex<BTreeMap<(String, String), Vec<DeadLetter>>>,
}

impl MemoryRecords {
    /// An empty sink billed as `resource`.
    pub fn new(env: Arc<Env>, resource: &str) -> Self {
        MemoryRecords {
            env,
            resource: resource.to_string(),
            objects: Mutex::default(),
        }
    }

    /// Every record kept, once each (a replayed batch overwrote its object).
    pub fn records(&self) -> Vec<DeadLetter> {
        lock(&self.objects).values().flatten().cloned().collect()
    }
}

impl RecordSink for MemoryRecords {
    fn write<'a>(
        &'a self,
        shard: &'a str,
        records: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let Some(first) = records.first() else {
                return Ok(());
            };
            self.env
                .call(&format!("{}.write", self.resource), || {
                    let size = records
                        .iter()
                        .map(|r| r.data.len() + r.reason.len() + 60)
                        .sum();
                    self.env.meter.s3_put(&self.resource, size);
                    lock(&self.objects).insert(
                        (shard.to_string(), first.sequence_number.clone()),
                        records.to_vec(),
                    );
                    Ok(())
                })
                .await
        })
    }
}

/// The billed size of a lease item (key, owner, counter, expiry, checkpoint, parents).
fn lease_size(l: &Lease) -> usize {
    80 + l.shard_id.len()
        + l.owner.as_deref().map_or(0, str::len)
        + l.checkpoint.len()
        + l.parents.iter().map(String::len).sum::<usize>()
}

/// [`Leases`] in memory, billed as the lease table (`leases`).
#[derive(Debug)]
pub struct MemoryLeases {
    env: Arc<Env>,
    leases: Mutex<BTreeMap<String, Lease>>,
}

impl MemoryLeases {
    /// An empty lease table.
    pub fn new(env: Arc<Env>) -> Self {
        MemoryLeases {
            env,
            leases: Mutex::default(),
        }
    }
}

impl Leases for MemoryLeases {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Lease>, PortError>> {
        Box::pin(self.env.call("leases.list", || {
            let all: Vec<Lease> = lock(&self.leases).values().cloned().collect();
            let size = all.iter().map(lease_size).sum();
            self.env.meter.dynamodb_read("leases", size, true);
            Ok(all)
        }))
    }

    fn create<'a>(
        &'a self,
        shard: &'a ShardInfo,
        start: InitialPosition,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(self.env.call("leases.create", move || {
            let lease = Lease::free_at(shard, start);
            self.env.meter.dynamodb_write("leases", lease_size(&lease));
            let mut all = lock(&self.leases);
            if all.contains_key(&shard.shard_id) {
                return Ok(false);
            }
            all.insert(shard.shard_id.clone(), lease);
            Ok(true)
        }))
    }

    fn take<'a>(
        &'a self,
        seen: &'a Lease,
        worker: &'a str,
        expires_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Lease>, PortError>> {
        Box::pin(self.env.call("leases.take", move || {
            self.env.meter.dynamodb_write("leases", lease_size(seen));
            let mut all = lock(&self.leases);
            let Some(stored) = all.get_mut(&seen.shard_id) else {
                return Ok(None);
            };
            let unchanged = stored.owner == seen.owner
                && stored.counter == seen.counter
                && stored.expires_ms == seen.expires_ms
                && !stored.finished;
            if !unchanged {
                return Ok(None);
            }
            *stored = stored.taken_by(worker, expires_ms);
            Ok(Some(stored.clone()))
        }))
    }

    fn update<'a>(
        &'a self,
        lease: &'a Lease,
        update: &'a LeaseUpdate,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(self.env.call("leases.update", move || {
            self.env.meter.dynamodb_write("leases", lease_size(lease));
            let mut all = lock(&self.leases);
            let stored = all.get_mut(&lease.shard_id).filter(|s| {
                lease.owner.is_some() && s.owner == lease.owner && s.counter == lease.counter
            });
            let Some(stored) = stored else {
                return Err(PortError::Conflict {
                    op: format!("lease {} {update:?}", lease.shard_id),
                    what: format!(
                        "owner {:?} counter {} no longer current",
                        lease.owner, lease.counter
                    ),
                });
            };
            stored.apply(update);
            Ok(())
        }))
    }
}

/// One shard of a [`MemoryStream`].
#[derive(Debug)]
struct StreamShard {
    info: ShardInfo,
    records: Vec<InputRecord>,
    children: Vec<String>,
}

#[derive(Debug, Default)]
struct StreamState {
    shards: Vec<StreamShard>,
    next_sequence: u64,
}

impl StreamState {
    fn add(&mut self, start: u128, end: u128, parents: &[&str]) -> String {
        let id = format!("shardId-{:012}", self.shards.len());
        self.shards.push(StreamShard {
            info: ShardInfo {
                shard_id: id.clone(),
                parent_shard_id: parents.first().map(|p| p.to_string()),
                adjacent_parent_shard_id: parents.get(1).map(|p| p.to_string()),
                starting_hash_key: start,
                ending_hash_key: end,
                closed: false,
            },
            records: Vec::new(),
            children: Vec::new(),
        });
        id
    }

    fn open_shard(&mut self, id: &str) -> Result<&mut StreamShard, PortError> {
        self.shards
            .iter_mut()
            .find(|s| s.info.shard_id == id && !s.info.closed)
            .ok_or_else(|| PortError::Unavailable {
                op: format!("reshard {id}"),
                message: "no such open shard".into(),
            })
    }

    fn close(&mut self, id: &str, children: &[String]) -> Result<(), PortError> {
        let shard = self.open_shard(id)?;
        shard.info.closed = true;
        shard.children = children.to_vec();
        Ok(())
    }
}

/// [`ShardSource`] in memory: a stream whose records are put by partition key (routed by
/// [`hash_key`](crate::shard::hash_key) as Kinesis does), and which can be split and merged.
/// Its readers de-aggregate KPL records as the Kinesis reader does ([`crate::kpl`]).
///
/// ```
/// use eventide_ports::memory::{Env, MemoryStream};
/// let stream = MemoryStream::new(Env::with_latency(Default::default()), 2);
/// stream.put("key", b"{}".to_vec(), None);
/// let (a, b) = stream.split("shardId-000000000000").unwrap();
/// assert_eq!((a.as_str(), b.as_str()), ("shardId-000000000002", "shardId-000000000003"));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStream {
    env: Arc<Env>,
    state: Arc<Mutex<StreamState>>,
}

impl MemoryStream {
    /// A stream of `shards` open shards splitting the hash-key range evenly.
    pub fn new(env: Arc<Env>, shards: usize) -> Self {
        let mut state = StreamState::default();
        let n = shards.max(1) as u128;
        let width = u128::MAX / n;
        for i in 0..n {
            let end = if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * width - 1
            };
            state.add(i * width, end, &[]);
        }
        MemoryStream {
            env,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Appends a record to the open shard of `partition_key`; returns its shard and position.
    pub fn put(
        &self,
        partition_key: &str,
        data: Vec<u8>,
        arrival_ms: Option<i64>,
    ) -> (String, String) {
        let key = crate::shard::hash_key(partition_key);
        let mut state = lock(&self.state);
        state.next_sequence += 1;
        let sequence_number = format!("{:020}", state.next_sequence);
        let shard = state
            .shards
            .iter_mut()
            .find(|s| !s.info.closed && s.info.contains(key));
        let Some(shard) = shard else {
            // The open shards always cover the whole range.
            return (String::new(), sequence_number);
        };
        shard.records.push(InputRecord::new(
            sequence_number.clone(),
            partition_key,
            data,
            arrival_ms,
        ));
        (shard.info.shard_id.clone(), sequence_number)
    }

    /// Splits open shard `id` into two halves of its range; returns the children.
    ///
    /// # Errors
    /// `id` is not an open shard.
    pub fn split(&self, id: &str) -> Result<(String, String), PortError> {
        let mut state = lock(&self.state);
        let (start, end) = {
            let s = &state.open_shard(id)?.info;
            (s.starting_hash_key, s.ending_hash_key)
        };
        let mid = start + (end - start) / 2;
        let a = state.add(start, mid, &[id]);
        let b = state.add(mid + 1, end, &[id]);
        state.close(id, &[a.clone(), b.clone()])?;
        Ok((a, b))
    }

    /// Merges two open shards of adjacent ranges; returns the child.
    ///
    /// # Errors
    /// Either is not an open shard, or their ranges are not adjacent.
    pub fn merge(&self, a: &str, b: &str) -> Result<String, PortError> {
        let mut state = lock(&self.state);
        let ra = {
            let s = &state.open_shard(a)?.info;
            (s.starting_hash_key, s.ending_hash_key)
        };
        let rb = {
            let s = &state.open_shard(b)?.info;
            (s.starting_hash_key, s.ending_hash_key)
        };
        let (lo, hi) = if ra.0 < rb.0 { (ra, rb) } else { (rb, ra) };
        if lo.1.checked_add(1) != Some(hi.0) {
            return Err(PortError::Unavailable {
                op: format!("merge {a} {b}"),
                message: "the ranges are not adjacent".into(),
            });
        }
        let child = state.add(lo.0, hi.1, &[a, b]);
        state.close(a, std::slice::from_ref(&child))?;
        state.close(b, std::slice::from_ref(&child))?;
        Ok(child)
    }

    /// The records of shard `id`, in order.
    pub fn records(&self, id: &str) -> Vec<InputRecord> {
        lock(&self.state)
            .shards
            .iter()
            .find(|s| s.info.shard_id == id)
            .map(|s| s.records.clone())
            .unwrap_or_default()
    }
}

impl ShardSource for MemoryStream {
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, PortError>> {
        Box::pin(self.env.call("source.list", || {
            Ok(lock(&self.state)
                .shards
                .iter()
                .map(|s| s.info.clone())
                .collect())
        }))
    }

    fn open(&self, shard: &str, checkpoint: &str, limit: usize) -> Box<dyn ShardReader> {
        let start = match InitialPosition::of_checkpoint(checkpoint) {
            None => Start::After(checkpoint.to_string()),
            Some(InitialPosition::TrimHorizon) => Start::After(String::new()),
            Some(p) => Start::Pending(p),
        };
        Box::new(MemoryReader {
            stream: self.clone(),
            shard: shard.to_string(),
            start,
            limit: limit.max(1),
        })
    }
}

/// A reader of one [`MemoryStream`] shard.
struct MemoryReader {
    stream: MemoryStream,
    shard: String,
    start: Start,
    limit: usize,
}

/// Where a [`MemoryReader`] reads next.
enum Start {
    /// After this position (the last record returned, or the checkpoint); empty for the
    /// shard's oldest record.
    After(String),
    /// `LATEST` or `AT_TIMESTAMP`, resolved against the shard at the first read (as a
    /// Kinesis iterator is at GetShardIterator).
    Pending(InitialPosition),
}

impl ShardReader for MemoryReader {
    fn next_batch(&mut self) -> BoxFuture<'_, Result<SourceBatch, PortError>> {
        Box::pin(async move {
            let env = self.stream.env.clone();
            let batch = env
                .call("source.read", || {
                    let state = lock(&self.stream.state);
                    let Some(shard) = state.shards.iter().find(|s| s.info.shard_id == self.shard)
                    else {
                        return Err(PortError::Unavailable {
                            op: format!("read {}", self.shard),
                            message: "no such shard".into(),
                        });
                    };
                    if let Start::Pending(p) = self.start {
                        // The position right before the first record to read.
                        let first = match p {
                            InitialPosition::Latest => shard.records.len(),
                            InitialPosition::AtTimestamp(ms) => shard
                                .records
                                .iter()
                                .position(|r| r.arrival_ms.is_some_and(|a| a >= ms))
                                .unwrap_or(shard.records.len()),
                            InitialPosition::TrimHorizon => 0,
                        };
                        self.start = Start::After(match first.checked_sub(1) {
                            Some(i) => shard.records[i].sequence_number.clone(),
                            None => String::new(),
                        });
                    }
                    let after = match &self.start {
                        Start::After(a) => a.as_str(),
                        Start::Pending(_) => "",
                    };
                    let newer = |r: &&InputRecord| {
                        after.is_empty()
                            || crate::source::cmp_seq(&r.sequence_number, after).is_gt()
                    };
                    let rest: Vec<&InputRecord> = shard.records.iter().filter(newer).collect();
                    let read = rest.len().min(self.limit);
                    let caught_up = read == rest.len();
                    // As Kinesis: `limit` counts Kinesis records; each is de-aggregated.
                    let mut records = Vec::with_capacity(read);
                    for r in &rest[..read] {
                        crate::kpl::deaggregate(
                            &self.shard,
                            (*r).clone(),
                            crate::kpl::DEFAULT_MAX_RECORDS,
                            &mut records,
                        );
                    }
                    Ok(SourceBatch {
                        records,
                        millis_behind_latest: Some(if caught_up { 0 } else { 1_000 }),
                        shard_end: (caught_up && shard.info.closed).then(|| shard.children.clone()),
                    })
                })
                .await?;
            if let Some(last) = batch.records.last() {
                self.start = Start::After(last.sequence_number.clone());
            }
            Ok(batch)
        })
    }
}
