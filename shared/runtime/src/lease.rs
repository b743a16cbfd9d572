//! The worker's lease policy over the [`Leases`] port: creating leases for new shards,
//! taking and balancing them among workers (as the KCL does), and the owner's writes.
//!
//! Every write goes through the port's conditional writes, so the policy never needs a lock:
//! of two workers racing for a lease one wins, and a worker whose lease was taken over gets
//! [`PortError::Conflict`] on its next write and stops.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use eventide_ports::lease::{Lease, LeaseUpdate, Leases};
use eventide_ports::shard::ShardInfo;
use eventide_ports::PortError;
use tracing::info;

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
}

impl LeaseKeeper {
    /// The policy over `leases`, holding each lease for `duration_ms`.
    pub fn new(leases: Arc<dyn Leases>, duration_ms: i64) -> Self {
        LeaseKeeper {
            leases,
            duration_ms,
        }
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
    /// # Errors
    /// A failed read or write.
    pub async fn sync_shards(&self, shards: &[ShardInfo]) -> Result<usize, PortError> {
        let existing: HashSet<String> =
            self.list().await?.into_iter().map(|l| l.shard_id).collect();
        let mut created = 0;
        for shard in shards.iter().filter(|s| !existing.contains(&s.shard_id)) {
            if self.leases.create(shard).await? {
                info!(shard = %shard.shard_id, "created lease");
                created += 1;
            }
        }
        Ok(created)
    }

    /// Takes `shard_id` for `worker` if it is free, expired or already its own, and not
    /// finished. `None` if another worker holds it, it is missing, or another worker won
    /// the race. It does not check the parents; [`assign`](Self::assign) does.
    ///
    /// # Errors
    /// A failed read or write.
    pub async fn try_acquire(
        &self,
        shard_id: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<Lease>, PortError> {
        let all = self.list().await?;
        let Some(lease) = all.iter().find(|l| l.shard_id == shard_id) else {
            return Ok(None);
        };
        if lease.finished || (lease.owner.as_deref() != Some(worker) && !lease.is_expired(now_ms)) {
            return Ok(None);
        }
        self.take(lease, worker, now_ms).await
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

    /// Balances leases: `worker` keeps what it holds and takes free or expired startable
    /// leases up to its fair share, `ceil(startable unfinished leases / live workers)`
    /// capped at `max_leases`, where live workers are the owners of unexpired leases plus
    /// `worker`. If it is still under its share and no lease is free, it steals at most one
    /// lease from the most-loaded worker, provided that one holds at least two more than
    /// `worker` (so stealing always improves the balance and never oscillates).
    ///
    /// A lease is startable when every parent lease is finished (a parent with no lease,
    /// e.g. beyond retention, counts as finished). Returns the leases `worker` holds
    /// afterwards, sorted by shard id. Call it periodically, renewing in between.
    ///
    /// # Errors
    /// A failed read or write.
    pub async fn assign(
        &self,
        worker: &str,
        max_leases: usize,
        now_ms: i64,
    ) -> Result<Vec<Lease>, PortError> {
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
                let target = others
                    .iter()
                    .find(|l| l.owner.as_deref() == Some(victim) && !l.is_expired(now_ms));
                if let (true, Some(l)) = (count > held.len() + 1, target) {
                    if let Some(taken) = self.take(l, worker, now_ms).await? {
                        info!(shard = %l.shard_id, worker, victim, "stole lease to balance");
                        held.push(taken);
                    }
                }
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
