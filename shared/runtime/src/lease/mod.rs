//! The worker's lease policy over the [`Leases`] port: creating leases for new shards,
//! taking and balancing them among workers (as the KCL does; the pure policy is
//! [`balance`]), and the owner's writes.
//!
//! Every write goes through the port's conditional writes, so the policy never needs a lock:
//! of two workers racing for a lease one wins, and a worker whose lease was taken over gets
//! [`PortError::Conflict`] on its next write and stops.

pub mod balance;

use std::collections::HashSet;
use std::sync::Arc;

use eventide_ports::lease::{InitialPosition, Lease, LeaseUpdate, Leases};
use eventide_ports::shard::ShardInfo;
use eventide_ports::PortError;
use tracing::info;

use balance::Step;

/// A pipeline's leases, held for `duration_ms` after each take or renewal.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use eventide_ports::memory::{Env, MemoryLeases};
/// use eventide_ports::shard::ShardInfo;
/// use eventide_runtime::lease::LeaseKeeper;
///
/// let keeper = LeaseKeeper::new(Arc::new(MemoryLeases::new(Arc::new(Env::default()))), 10_000);
/// let shard = ShardInfo { shard_id: "s0".into(), parent_shard_id: None,
///     adjacent_parent_shard_id: None, starting_hash_key: 0, ending_hash_key: u128::MAX, closed: false };
/// keeper.sync_shards(&[shard]).await?;
/// let mut held = keeper.assign("w1", 8, 1_000).await?;
/// keeper.checkpoint(&mut held[0], "42").await?;
/// assert_eq!(keeper.list().await?[0].checkpoint, "42");
/// # Ok::<(), eventide_ports::PortError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct LeaseKeeper {
    leases: Arc<dyn Leases>,
    duration_ms: i64,
    initial: InitialPosition,
}

impl LeaseKeeper {
    /// The policy over `leases`, holding each lease for `duration_ms`.
    pub fn new(leases: Arc<dyn Leases>, duration_ms: i64) -> Self {
        LeaseKeeper {
            leases,
            duration_ms,
            initial: InitialPosition::TrimHorizon,
        }
    }

    /// Starts the shards it creates leases for at `initial` (default: their oldest record),
    /// except the children of a shard that already had a lease, which start at their oldest
    /// record.
    pub fn starting_at(mut self, initial: InitialPosition) -> Self {
        self.initial = initial;
        self
    }

    /// How long a take or renewal holds a lease, in ms.
    pub fn duration_ms(&self) -> i64 {
        self.duration_ms
    }

    /// Every lease, sorted by shard id.
    ///
    /// # Errors
    /// A failed read.
    pub async fn list(&self) -> Result<Vec<Lease>, PortError> {
        self.leases.list().await
    }

    /// Creates a free lease for every shard that has none; existing leases are never
    /// touched. Returns how many it created. Call it at start and whenever a shard ends.
    ///
    /// A new lease starts at the keeper's initial position ([`LeaseKeeper::starting_at`]),
    /// unless a parent of its shard already had a lease: the child of a shard this pipeline
    /// read starts at its oldest record, so no record between the two is skipped.
    ///
    /// # Errors
    /// A failed read or write.
    pub async fn sync_shards(&self, shards: &[ShardInfo]) -> Result<usize, PortError> {
        let existing: HashSet<String> =
            self.list().await?.into_iter().map(|l| l.shard_id).collect();
        let mut created = 0;
        for shard in shards.iter().filter(|s| !existing.contains(&s.shard_id)) {
            let start = if shard.parents().iter().any(|p| existing.contains(p)) {
                InitialPosition::TrimHorizon
            } else {
                self.initial
            };
            if self.leases.create(shard, start).await? {
                info!(shard = %shard.shard_id, start = %start.checkpoint(), "created lease");
                created += 1;
            }
        }
        Ok(created)
    }

    async fn take(
        &self,
        seen: &Lease,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<Lease>, PortError> {
        let taken = self
            .leases
            .take(seen, worker, now_ms + self.duration_ms)
            .await?;
        if let Some(l) = &taken {
            if seen.owner.as_deref() != Some(worker) {
                info!(shard = %l.shard_id, worker, counter = l.counter, previous = ?seen.owner, "took lease");
            }
        }
        Ok(taken)
    }

    /// Balances leases by the [`balance`] policy: `worker` keeps what it holds, takes free
    /// or expired startable leases up to its fair share (capped at `max_leases`) and, still
    /// under it, steals at most one lease from the most-loaded worker. Returns the leases
    /// `worker` holds afterwards, sorted by shard id. Call it periodically, renewing in
    /// between.
    ///
    /// # Errors
    /// A failed read or write.
    ///
    /// # Cancel safety
    /// A cancelled round may have taken some leases without returning them; they are this
    /// worker's until they expire, and the next round keeps them.
    pub async fn assign(
        &self,
        worker: &str,
        max_leases: usize,
        now_ms: i64,
    ) -> Result<Vec<Lease>, PortError> {
        let all = self.list().await?;
        let plan = balance::plan(&all, worker, max_leases, now_ms);
        let mut held: Vec<Lease> = Vec::new();
        for step in &plan.steps {
            match *step {
                Step::Keep(l) => held.push(l.clone()),
                Step::TakeIfUnderShare(l) if held.len() < plan.share => {
                    if let Some(taken) = self.take(l, worker, now_ms).await? {
                        held.push(taken);
                    }
                }
                Step::TakeIfUnderShare(_) => {}
            }
        }
        if let Some(l) = plan.steal_at(held.len()) {
            if let Some(taken) = self.take(l, worker, now_ms).await? {
                info!(shard = %l.shard_id, worker, victim = ?l.owner, "stole lease to balance");
                held.push(taken);
            }
        }
        held.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(held)
    }

    async fn update(&self, lease: &mut Lease, update: LeaseUpdate) -> Result<(), PortError> {
        self.leases.update(lease, &update).await?;
        lease.apply(&update);
        Ok(())
    }

    /// Holds `lease` until `now_ms + duration`.
    ///
    /// # Errors
    /// [`PortError::Conflict`] if it was taken over; a failed write.
    ///
    /// # Cancel safety
    /// Every owner write is one conditional write: a cancelled call wrote or did not, and
    /// `lease` is updated only after it succeeded. The same holds for
    /// [`checkpoint`](Self::checkpoint), [`finish`](Self::finish) and
    /// [`release`](Self::release).
    pub async fn renew(&self, lease: &mut Lease, now_ms: i64) -> Result<(), PortError> {
        let expires_ms = now_ms + self.duration_ms;
        self.update(lease, LeaseUpdate::Renew { expires_ms }).await
    }

    /// Records that every record up to `position` is committed.
    ///
    /// # Errors
    /// [`PortError::Conflict`] if the lease was taken over (the caller is a zombie).
    pub async fn checkpoint(&self, lease: &mut Lease, position: &str) -> Result<(), PortError> {
        self.update(lease, LeaseUpdate::Checkpoint(position.to_string()))
            .await
    }

    /// Marks the shard finished (its end was reached and everything committed), so its
    /// children may start.
    ///
    /// # Errors
    /// [`PortError::Conflict`] if the lease was taken over.
    pub async fn finish(&self, lease: &mut Lease) -> Result<(), PortError> {
        self.update(lease, LeaseUpdate::Finish).await?;
        info!(shard = %lease.shard_id, "shard finished");
        Ok(())
    }

    /// Gives the lease up (shutdown) so another worker takes it at once.
    ///
    /// # Errors
    /// [`PortError::Conflict`] if it was already taken over.
    pub async fn release(&self, mut lease: Lease) -> Result<(), PortError> {
        self.update(&mut lease, LeaseUpdate::Release).await
    }
}
