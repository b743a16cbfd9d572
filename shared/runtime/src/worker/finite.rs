//! Finite-input mode ([`WorkerSettings::finite_quiet_ms`](super::WorkerSettings)): deciding
//! when the input is over (every shard caught up and quiet) and when every shard has fired
//! everything.

use std::sync::atomic::Ordering;

use eventide_ports::control::ShardStatus;
use eventide_ports::lease::Lease;
use tracing::warn;

use super::Worker;

impl Worker {
    /// The leases and control rows, or `None` (logged) when either cannot be read.
    pub(super) async fn leases_and_rows(&self) -> Option<(Vec<Lease>, Vec<ShardStatus>)> {
        match (
            self.shared.leases.list().await,
            self.shared.ports.io.control.shards_status().await,
        ) {
            (Ok(all), Ok(rows)) => Some((all, rows)),
            (Err(e), _) | (_, Err(e)) => {
                warn!(worker = %self.settings.worker_id, error = %e, "cannot read leases or control rows");
                None
            }
        }
    }

    /// Finite mode: whether the input is over. Every lease must be finished or held by a
    /// running consumer that has been caught up with no new records for `quiet_ms`: this
    /// worker's own shards by their tasks' flags, other workers' by their control rows
    /// showing no lag.
    pub(super) async fn all_quiet(&self, quiet_ms: i64) -> bool {
        let now = self.now_ms();
        let mine_quiet = self.active.values().all(|a| {
            let since = a.flags.quiet_since_ms.load(Ordering::SeqCst);
            since > 0 && now - since >= quiet_ms
        });
        if !mine_quiet {
            return false;
        }
        let Some((all, rows)) = self.leases_and_rows().await else {
            return false;
        };
        !all.is_empty()
            && all.iter().all(|l| {
                if l.finished || self.active.contains_key(&l.shard_id) {
                    return true;
                }
                // Another worker's shard: held, and its consumer reports no lag for a while.
                l.is_held_by(l.owner.as_deref().unwrap_or_default(), now)
                    && rows.iter().any(|r| {
                        r.shard_id == l.shard_id
                            && (r.wm == i64::MAX
                                || (r.lag_ms == 0 && now - r.heartbeat_ms >= quiet_ms))
                    })
            })
    }

    /// Finite mode: whether every shard is finished or has published `wm = i64::MAX`.
    pub(super) async fn all_ended(&self) -> bool {
        let Some((all, rows)) = self.leases_and_rows().await else {
            return false;
        };
        all.iter().all(|l| {
            l.finished
                || rows
                    .iter()
                    .any(|r| r.shard_id == l.shard_id && (r.finished || r.wm == i64::MAX))
        })
    }
}
