//! Leases: which worker consumes which shard, fenced so a stale owner can never write (as
//! the KCL's lease table).
//!
//! The port stores leases and makes conditional writes; the policy (which leases a worker
//! takes, when it renews) is the worker's, in `eventide-runtime`. Time is passed in, never
//! read here.

use crate::shard::ShardInfo;
use crate::{BoxFuture, PortError};

/// The checkpoint of a shard nothing was read from yet: read it from its oldest record.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
/// The checkpoint of a shard nothing was read from yet, to be read from the records that
/// arrive after its reader opens (Kinesis' `LATEST`).
pub const LATEST: &str = "LATEST";
/// The prefix of the checkpoint of a shard nothing was read from yet, to be read from its
/// first record that arrived at or after a time: `AT_TIMESTAMP:<epoch ms>`.
pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP:";

/// Where a consumer starts the shards it has no lease of yet: Flink's
/// `source.init.position`, the KCL's initial position in the stream. A shard whose parent
/// the consumer has read (a child of a reshard after it started) always starts at its
/// oldest record, so nothing between the parent's end and the child's start is skipped.
///
/// ```
/// use eventide_ports::lease::InitialPosition;
/// for p in [InitialPosition::TrimHorizon, InitialPosition::Latest, InitialPosition::AtTimestamp(1_700_000_000_000)] {
///     assert_eq!(InitialPosition::of_checkpoint(&p.checkpoint()), Some(p));
/// }
/// assert_eq!(InitialPosition::of_checkpoint("49590338271490256608559692538361571095921575989136588898"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest record the stream retains.
    #[default]
    TrimHorizon,
    /// The records that arrive after the reader opens. Until the consumer commits its first
    /// batch of a shard, a restart starts it at the newest record again (as the KCL does).
    Latest,
    /// The first record that arrived at or after this time (epoch ms).
    AtTimestamp(i64),
}

impl InitialPosition {
    /// The lease checkpoint that starts a shard here.
    pub fn checkpoint(&self) -> String {
        match self {
            InitialPosition::TrimHorizon => TRIM_HORIZON.to_string(),
            InitialPosition::Latest => LATEST.to_string(),
            InitialPosition::AtTimestamp(ms) => format!("{AT_TIMESTAMP}{ms}"),
        }
    }

    /// The start position a checkpoint names, or `None` for a position in the shard (a
    /// sequence number: read after it). An empty checkpoint is [`TRIM_HORIZON`].
    pub fn of_checkpoint(checkpoint: &str) -> Option<InitialPosition> {
        match checkpoint {
            "" | TRIM_HORIZON => Some(InitialPosition::TrimHorizon),
            LATEST => Some(InitialPosition::Latest),
            c => c
                .strip_prefix(AT_TIMESTAMP)
                .and_then(|ms| ms.parse().ok())
                .map(InitialPosition::AtTimestamp),
        }
    }
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
    /// The last position whose effects are committed, or [`TRIM_HORIZON`].
    pub checkpoint: String,
    /// The parent shards, sorted; this shard may start only when they are all finished.
    pub parents: Vec<String>,
    /// The shard reached its end and everything is committed.
    pub finished: bool,
}

impl Lease {
    /// A free lease of `shard`, to be read from [`TRIM_HORIZON`].
    pub fn free(shard: &ShardInfo) -> Self {
        Lease::free_at(shard, InitialPosition::TrimHorizon)
    }

    /// A free lease of `shard`, to be read from `start`.
    pub fn free_at(shard: &ShardInfo, start: InitialPosition) -> Self {
        let mut parents = shard.parents();
        parents.sort();
        Lease {
            shard_id: shard.shard_id.clone(),
            owner: None,
            counter: 0,
            expires_ms: 0,
            checkpoint: start.checkpoint(),
            parents,
            finished: false,
        }
    }

    /// Whether the lease has expired at `now_ms` (a free lease counts as expired).
    ///
    /// ```
    /// # use eventide_ports::lease::Lease;
    /// # use eventide_ports::shard::ShardInfo;
    /// # let shard = ShardInfo { shard_id: "s".into(), parent_shard_id: None,
    /// #     adjacent_parent_shard_id: None, starting_hash_key: 0, ending_hash_key: u128::MAX, closed: false };
    /// let mut l = Lease::free(&shard);
    /// assert!(l.is_expired(0));
    /// l.owner = Some("w".into());
    /// l.expires_ms = 100;
    /// assert!(l.is_held_by("w", 99) && !l.is_held_by("w", 100) && !l.is_held_by("x", 50));
    /// ```
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.owner.is_none() || self.expires_ms <= now_ms
    }

    /// Whether `worker` holds it with an unexpired lease at `now_ms`.
    pub fn is_held_by(&self, worker: &str, now_ms: i64) -> bool {
        self.owner.as_deref() == Some(worker) && !self.is_expired(now_ms)
    }

    /// The lease after `worker` took `self` over (or renewed its own) until `expires_ms`.
    pub fn taken_by(&self, worker: &str, expires_ms: i64) -> Lease {
        let own = self.owner.as_deref() == Some(worker);
        Lease {
            owner: Some(worker.to_string()),
            counter: if own { self.counter } else { self.counter + 1 },
            expires_ms,
            ..self.clone()
        }
    }

    /// Applies an owner's update to this copy.
    pub fn apply(&mut self, update: &LeaseUpdate) {
        match update {
            LeaseUpdate::Renew { expires_ms } => self.expires_ms = *expires_ms,
            LeaseUpdate::Checkpoint(position) => self.checkpoint.clone_from(position),
            LeaseUpdate::Finish => self.finished = true,
            LeaseUpdate::Release => {
                self.owner = None;
                self.expires_ms = 0;
            }
        }
    }
}

/// An owner's write to its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// Hold it until `expires_ms`.
    Renew { expires_ms: i64 },
    /// Everything up to this position is committed.
    Checkpoint(String),
    /// The shard ended and everything is committed: its children may start.
    Finish,
    /// Give it up (shutdown), so another worker takes it at once.
    Release,
}

/// The lease table of one pipeline.
///
/// Every write is conditional: [`take`](Leases::take) on the lease being unchanged since it
/// was read, [`update`](Leases::update) on `owner` and `counter`, so once another worker has
/// taken a lease over the old owner's writes fail with [`PortError::Conflict`].
pub trait Leases: Send + Sync {
    /// All leases of the pipeline, sorted by shard id (a strongly consistent read).
    ///
    /// # Errors
    /// A failed read, or a lease that cannot be decoded.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Lease>, PortError>>;

    /// Creates [`Lease::free_at`] `start` of `shard` unless a lease exists; returns whether
    /// it did.
    ///
    /// # Errors
    /// A failed write (an existing lease is not an error).
    fn create<'a>(
        &'a self,
        shard: &'a ShardInfo,
        start: InitialPosition,
    ) -> BoxFuture<'a, Result<bool, PortError>>;

    /// Writes [`Lease::taken_by`] of `seen` if the stored lease is still `seen` (owner,
    /// counter and expiry) and not finished; `None` if it changed (another worker won).
    ///
    /// # Errors
    /// A failed write.
    fn take<'a>(
        &'a self,
        seen: &'a Lease,
        worker: &'a str,
        expires_ms: i64,
    ) -> BoxFuture<'a, Result<Option<Lease>, PortError>>;

    /// Applies `update` if `lease`'s owner and counter are still current.
    ///
    /// # Errors
    /// [`PortError::Conflict`] if the lease was taken over (or has no owner); a failed write.
    fn update<'a>(
        &'a self,
        lease: &'a Lease,
        update: &'a LeaseUpdate,
    ) -> BoxFuture<'a, Result<(), PortError>>;
}
