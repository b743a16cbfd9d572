//! A shard's durable state: a changelog of versioned entries plus snapshots.
//!
//! The shard consumer is the only writer of its shard's state and keeps it in memory. Each
//! batch appends one entry (version `n + 1`, written only if no entry `n + 1` exists, so of
//! two writers that both built on version `n` exactly one commits). Every so often the
//! consumer writes a snapshot of its whole state, then an entry that points at it, and
//! trims the entries before that one. Recovery reads the kept entries, loads the snapshot
//! that the newest one names, and replays the entries after it.
//!
//! The entry's body is opaque here (the runtime encodes it); this port only stores it.
//!
//! ## Items
//! On DynamoDB an entry is one item, or several when its body is larger than
//! [`MAX_PART`]: the parts before the last are written first under names that include a
//! writer nonce, and the entry's own item (the commit) is written last and names the nonce.
//! [`item_sizes`] gives the items' billed sizes; the AWS adapter and the in-memory meter
//! both use it, so the benchmark bills what AWS would.

use crate::{BoxFuture, PortError};

/// The largest body part stored in one item (DynamoDB allows 400 KB per item, names
/// included).
pub const MAX_PART: usize = 380_000;

/// One entry of a shard's changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// 1, 2, 3, …: one more than the entry it was built on.
    pub version: u64,
    /// The encoded entry (see `eventide_runtime::state`).
    pub body: Vec<u8>,
}

/// The store of every shard's changelog and snapshots of one pipeline.
///
/// # Cancel safety
/// Every call is one conditional or idempotent request (or a sequence of idempotent
/// requests ending with one conditional one): a cancelled [`StateLog::append`] either
/// committed the entry or did not, and the caller finds out by reading the log.
pub trait StateLog: Send + Sync {
    /// Every kept entry of `shard`, in version order: at least the newest entry that names
    /// a snapshot and all entries after it.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the read fails, [`PortError::Corrupt`] for an entry
    /// whose parts are missing.
    fn read(&self, shard: &str) -> BoxFuture<'_, Result<Vec<LogEntry>, PortError>>;

    /// Appends `entry` to `shard`'s log if no entry has its version yet.
    ///
    /// # Errors
    /// [`PortError::Conflict`] when an entry with that version exists (another writer built
    /// on the same version and won: this writer's view is stale);
    /// [`PortError::Unavailable`] when the write fails (the entry may or may not be
    /// committed; read the log to know).
    fn append<'a>(
        &'a self,
        shard: &'a str,
        entry: &'a LogEntry,
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// Deletes entries of `shard`'s log, given as (version, body length): the writer knows
    /// what it wrote and read, so trimming reads nothing (only an entry split into parts
    /// needs a look-up of its parts).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when a delete fails; trimming again later is safe.
    fn trim<'a>(
        &'a self,
        shard: &'a str,
        entries: &'a [(u64, usize)],
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// Stores a snapshot under `name` (unique per writer and version).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the write fails.
    fn put_snapshot<'a>(
        &'a self,
        name: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// Reads the snapshot `name`.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the read fails, [`PortError::Corrupt`] when it does
    /// not exist.
    fn get_snapshot<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<u8>, PortError>>;

    /// Deletes the snapshot `name` (no error if it is gone).
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the delete fails.
    fn delete_snapshot<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), PortError>>;
}

/// The partition key of a shard's log items: `<pipeline>#<shard>`.
pub fn log_pk(pipeline: &str, shard: &str) -> String {
    format!("{pipeline}#{shard}")
}

/// The sort key of entry `version`'s commit item: `v#` and 20 zero-padded digits, so that
/// string order is version order.
///
/// ```
/// assert!(eventide_ports::state::entry_sk(9) < eventide_ports::state::entry_sk(10));
/// ```
pub fn entry_sk(version: u64) -> String {
    format!("v#{version:020}")
}

/// The sort key of part `i` (before the last) of entry `version` written by `nonce`. It
/// sorts between the entry's commit item and the next entry's.
pub fn part_sk(version: u64, nonce: u64, i: usize) -> String {
    format!("v#{version:020}#{nonce:016x}#{i:04}")
}

/// The billed sizes in bytes (attribute names plus values, as DynamoDB counts them) of the
/// items that store an entry of `body_len` bytes of `pipeline`/`shard`: the parts first,
/// the commit item last.
///
/// ```
/// let sizes = eventide_ports::state::item_sizes("p", "shardId-000000000000", 2_000);
/// assert_eq!(sizes.len(), 1);
/// assert!(sizes[0] > 2_000 && sizes[0] < 2_100);
/// ```
pub fn item_sizes(pipeline: &str, shard: &str, body_len: usize) -> Vec<usize> {
    let pk = 2 + log_pk(pipeline, shard).len();
    let parts = body_len.div_ceil(MAX_PART).max(1);
    let mut sizes = Vec::with_capacity(parts);
    for i in 0..parts {
        let len = (body_len - i * MAX_PART).min(MAX_PART);
        if i + 1 < parts {
            // pk, sk (part), b
            sizes.push(pk + 2 + part_sk(0, 0, 0).len() + 1 + len);
        } else {
            // pk, sk, b, and on a split entry `n` (nonce) and `p` (parts)
            let extra = if parts > 1 { 1 + 9 + 1 + 3 } else { 0 };
            sizes.push(pk + 2 + entry_sk(0).len() + 1 + len + extra);
        }
    }
    sizes
}

/// The write units of writing one item of `size` bytes (1 per started KB).
pub fn write_units(size: usize) -> u64 {
    size.div_ceil(1024).max(1) as u64
}
