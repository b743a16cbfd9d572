//! The shard's durable state: a changelog in the [`StateLog`] port.
//!
//! A shard consumer is the only writer of its shard's state, so it keeps the state in
//! memory (the engine's) and makes it durable as a log:
//!
//! - every batch appends one [`entry::Entry`]: the engine calls the batch made, with its
//!   decoded records, as version `n + 1` of the shard's log, written only if no entry
//!   `n + 1` exists. Two writers that both built on version `n` (a zombie worker and the new
//!   lease owner, two Lambda containers) cannot both commit: the loser gets a conflict, and
//!   its state is dropped and reloaded, never committed;
//! - every [`SnapshotPolicy::every_entries`] entries or [`SnapshotPolicy::every_bytes`]
//!   logged bytes, the batch's entry also names a [`snapshot::Snapshot`] of the whole state
//!   as it was before the batch (written first, under a name no other writer uses); once the
//!   entry is committed, the entries before it and the previous snapshot are deleted;
//! - the entry is committed **before** the batch's output is written, so a consumer whose
//!   state went stale never writes anything: its commit conflicts first. Replaying the
//!   newest entry gives its output back, and [`ShardLog::open`] hands it over to be written
//!   again (the sinks are idempotent), in case the last writer crashed before writing it;
//! - [`ShardLog::open`] reads the kept entries, loads the snapshot that the newest names
//!   and replays the entries after it.
//!
//! The invariant: **the state after entry `v` is the snapshot named by `v` (or the empty
//! state) with every entry after the snapshot's version up to `v` replayed, and it includes
//! the effects of exactly the input records up to `v`'s position.** Records at or before
//! the position are skipped, so a redelivered batch counts once.
//!
//! See `docs/aws-runtime.md` for the design and its costs.

pub(crate) mod codec;
pub mod entry;
pub mod snapshot;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use eventide_ports::state::{LogEntry, StateLog};
use eventide_ports::PortError;
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::processor::{BatchOutcome, ShardProcessor};
pub use codec::StateError;
use entry::{Entry, SnapshotRef};

/// The largest log entry decoded (uncompressed). A batch of Kinesis is at most 10 MB of
/// data; its entry is smaller than the data.
pub const MAX_ENTRY_BYTES: usize = 256 << 20;
/// The largest snapshot decoded (uncompressed).
pub const MAX_SNAPSHOT_BYTES: usize = 8 << 30;

/// When a batch's entry carries a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// After this many entries since the last snapshot.
    pub every_entries: u64,
    /// After this many logged bytes (compressed) since the last snapshot.
    pub every_bytes: usize,
}

impl Default for SnapshotPolicy {
    /// Every 100 entries or 4 MiB: a cold start replays at most about 100 batches.
    fn default() -> Self {
        SnapshotPolicy {
            every_entries: 100,
            every_bytes: 4 << 20,
        }
    }
}

/// A state log failure.
#[derive(Debug, Error)]
pub enum LogError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl LogError {
    /// True when another writer committed first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LogError::Port(e) if e.is_conflict())
    }
}

/// What one commit wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// The version committed; `None` when the batch changed nothing and nothing was written.
    pub version: Option<u64>,
    /// Bytes of the entry as stored.
    pub bytes: usize,
    /// Whether the entry carries a snapshot.
    pub snapshot: bool,
}

/// What [`ShardLog::open`] found: the output of the newest entry, to write again.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The newest entry's batch name.
    pub batch_id: String,
    /// Its panes, dead letters and late records.
    pub output: BatchOutcome,
}

/// One shard's log, as its single writer sees it.
pub struct ShardLog {
    log: Arc<dyn StateLog>,
    shard: String,
    version: u64,
    snapshot: Option<SnapshotRef>,
    entries_since: u64,
    bytes_since: usize,
    policy: SnapshotPolicy,
    snapshot_due: bool,
    nonce: u64,
    /// The entries in the store, as (version, body length), for trimming by key.
    kept: Vec<(u64, usize)>,
}

/// A random number, different in every process and call.
fn nonce() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl ShardLog {
    /// Reads `shard`'s log and rebuilds its state in `processor` (a new one for the shard):
    /// the snapshot the newest entry names, then every entry after it. Returns the log and
    /// whether the shard had one.
    ///
    /// # Errors
    /// A failed read, a missing snapshot or a gap in the versions (the state cannot be
    /// rebuilt exactly, so nothing runs).
    ///
    /// # Cancel safety
    /// Reads only: cancelling leaves nothing behind.
    pub async fn open(
        log: Arc<dyn StateLog>,
        shard: &str,
        policy: SnapshotPolicy,
        processor: &mut ShardProcessor,
    ) -> Result<(ShardLog, Option<Recovered>), LogError> {
        let entries = log.read(shard).await?;
        let mut this = ShardLog {
            log,
            shard: shard.to_string(),
            version: 0,
            snapshot: None,
            entries_since: 0,
            bytes_since: 0,
            policy,
            snapshot_due: false,
            nonce: nonce(),
            kept: entries.iter().map(|e| (e.version, e.body.len())).collect(),
        };
        let Some(head) = entries.last() else {
            return Ok((this, None));
        };
        let head_entry = Entry::decode(&head.body, MAX_ENTRY_BYTES)?;
        let mut from = 0;
        if let Some(snap) = &head_entry.snapshot {
            let body = this.log.get_snapshot(&snap.name).await?;
            let snapshot = snapshot::Snapshot::decode(&body, MAX_SNAPSHOT_BYTES)?;
            processor.restore(&snapshot)?;
            from = snap.version;
            this.snapshot = Some(snap.clone());
        }
        let mut replayed = 0usize;
        let mut last = (String::new(), BatchOutcome::default());
        let head_version = head.version;
        for (expected, e) in (from + 1..).zip(entries.iter().filter(|e| e.version > from)) {
            if e.version != expected {
                return Err(StateError::Gap {
                    shard: shard.to_string(),
                    after: expected - 1,
                    found: e.version,
                }
                .into());
            }
            let entry = Entry::decode(&e.body, MAX_ENTRY_BYTES)?;
            let output = processor.replay(&entry, e.version == head_version)?;
            replayed += entry.records();
            last = (entry.batch_id, output);
            this.entries_since += 1;
            this.bytes_since += e.body.len();
        }
        this.version = head.version;
        info!(shard, version = this.version, snapshot = ?this.snapshot.as_ref().map(|s| s.version),
            entries = this.entries_since, records = replayed, "state recovered from the log");
        Ok((
            this,
            Some(Recovered {
                batch_id: last.0,
                output: last.1,
            }),
        ))
    }

    /// The version of the last committed entry (0: none).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Makes the next commit carry a snapshot (e.g. a child shard's first, holding what it
    /// took from its parents).
    pub fn require_snapshot(&mut self) {
        self.snapshot_due = true;
    }

    /// Whether the next commit carries a snapshot: take it (of the state before the batch)
    /// and hand it to [`ShardLog::commit`].
    pub fn wants_snapshot(&self) -> bool {
        self.snapshot_due
            || self.entries_since + 1 >= self.policy.every_entries
            || self.bytes_since >= self.policy.every_bytes
    }

    /// Commits what `processor` did since the last commit as the next version, named
    /// `batch_id`. A batch that changed nothing writes nothing. With `before` (a snapshot of
    /// the state before the batch, see [`ShardLog::wants_snapshot`]) the snapshot is written
    /// first and the entry names it; after the entry is committed the older entries and
    /// snapshot are deleted (best effort: what is left is deleted by a later snapshot).
    ///
    /// # Errors
    /// [`LogError::is_conflict`] when another writer committed this version first: the
    /// processor's state is stale and must be dropped. Any other error leaves it unknown
    /// whether the entry was committed: drop the processor too, and reopen the log.
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled commit may or may not have committed; drop the
    /// processor and reopen the log.
    pub async fn commit(
        &mut self,
        processor: &mut ShardProcessor,
        batch_id: &str,
        before: Option<snapshot::Snapshot>,
    ) -> Result<Committed, LogError> {
        let mut entry = processor.take_entry(batch_id);
        if entry.is_empty() && !self.snapshot_due {
            return Ok(Committed::default());
        }
        let version = self.version + 1;
        let mut written = None;
        if let Some(snap) = before {
            let body = snap.encode()?;
            let name = format!("{}/{:020}-{:016x}", self.shard, version - 1, self.nonce);
            let size = body.len();
            self.log.put_snapshot(&name, body).await?;
            debug!(shard = %self.shard, version, keys = snap.keys.len(), bytes = size, "snapshot written");
            written = Some(SnapshotRef {
                name,
                version: version - 1,
            });
        }
        entry.snapshot = written.clone().or_else(|| self.snapshot.clone());
        let body = entry.encode()?;
        let bytes = body.len();
        let appended = self
            .log
            .append(&self.shard, &LogEntry { version, body })
            .await;
        if let Err(e) = appended {
            if let (true, Some(s)) = (e.is_conflict(), &written) {
                // Ours lost: nobody will name this snapshot.
                let _ = self.log.delete_snapshot(&s.name).await;
            }
            return Err(e.into());
        }
        self.version = version;
        self.kept.push((version, bytes));
        let snapshot = written.is_some();
        if let Some(s) = written {
            let old = self.snapshot.replace(s);
            self.entries_since = 1;
            self.bytes_since = bytes;
            self.snapshot_due = false;
            let older: Vec<(u64, usize)> = self
                .kept
                .iter()
                .copied()
                .filter(|(v, _)| *v < version)
                .collect();
            match self.log.trim(&self.shard, &older).await {
                Ok(()) => self.kept.retain(|(v, _)| *v >= version),
                Err(e) => {
                    warn!(shard = %self.shard, error = %e, "cannot trim the log; a later snapshot will")
                }
            }
            if let Some(old) = old {
                if let Err(e) = self.log.delete_snapshot(&old.name).await {
                    warn!(shard = %self.shard, error = %e, snapshot = %old.name, "cannot delete an old snapshot");
                }
            }
        } else {
            self.entries_since += 1;
            self.bytes_since += bytes;
        }
        Ok(Committed {
            version: Some(version),
            bytes,
            snapshot,
        })
    }
}
