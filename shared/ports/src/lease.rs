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
        let mut parents = shard.parents();
        parents.sort();
        Lease {
            shard_id: shard.shard_id.clone(),
            owner: None,
            counter: 0,
            expires_ms: 0,
            checkpoint: TRIM_HORIZON.to_string(),
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

    /// Creates [`Lease::free`] of `shard` unless a lease exists; returns whether it did.
    ///
    /// # Errors
    /// A failed write (an existing lease is not an error).
    fn create<'a>(&'a self, shard: &'a ShardInfo) -> BoxFuture<'a, Result<bool, PortError>>;

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
