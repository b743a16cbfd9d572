//! The control plane: each shard consumer publishes its watermark, heartbeat and
//! throughput, and reads the others' to agree on the global watermark.

use crate::{BoxFuture, PortError};

/// The published state of one shard (one control-table row).
#[derive(Clone, Debug, PartialEq)]
pub struct ShardStatus {
    /// The shard.
    pub shard_id: String,
    /// The shard's watermark, epoch ms.
    pub wm: i64,
    /// The last time the shard delivered new data, epoch ms.
    pub heartbeat_ms: i64,
    /// Records per second over the last interval.
    pub rps: f64,
    /// Bytes per second over the last interval.
    pub bps: f64,
    /// How far behind the tip of the shard the consumer is, ms.
    pub lag_ms: i64,
    /// Records too late for an aggregation (set aside to the late output) over the last
    /// interval.
    pub late: u64,
    /// The shard reached SHARD_END and everything is committed.
    pub finished: bool,
}

impl ShardStatus {
    /// Whether the shard is idle at `now_ms`: no new data for longer than `idle_timeout_ms`.
    pub fn is_idle(&self, idle_timeout_ms: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.heartbeat_ms) > idle_timeout_ms
    }
}

/// The global watermark of `rows` at `now_ms`: the minimum `wm` over shards that are
/// neither finished nor idle; if every shard is idle or finished, the maximum of their
/// `wm`; `None` when there are no rows.
///
/// ```
/// use eventide_ports::control::{global_watermark_of, ShardStatus};
/// let row = |id: &str, wm, hb| ShardStatus {
///     shard_id: id.into(), wm, heartbeat_ms: hb, rps: 0.0, bps: 0.0, lag_ms: 0, late: 0, finished: false,
/// };
/// // Shard b is idle (no data for 60 s > 10 s), so only a counts.
/// assert_eq!(global_watermark_of(&[row("a", 500, 100_000), row("b", 100, 40_000)], 10_000, 100_000), Some(500));
/// ```
pub fn global_watermark_of(rows: &[ShardStatus], idle_timeout_ms: i64, now_ms: i64) -> Option<i64> {
    rows.iter()
        .filter(|r| !r.finished && !r.is_idle(idle_timeout_ms, now_ms))
        .map(|r| r.wm)
        .min()
        .or_else(|| rows.iter().map(|r| r.wm).max())
}

/// Where shard consumers publish their status and read each other's.
///
/// # Cancel safety
/// Publishing is a single idempotent write: a cancelled call either wrote the row or not.
pub trait ControlPlane: Send + Sync {
    /// Writes (replaces) the row of `status.shard_id`.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the write fails.
    fn publish<'a>(&'a self, status: &'a ShardStatus) -> BoxFuture<'a, Result<(), PortError>>;
    /// Writes the row only if the shard has none yet; returns whether it did.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the write fails.
    fn publish_if_absent<'a>(
        &'a self,
        status: &'a ShardStatus,
    ) -> BoxFuture<'a, Result<bool, PortError>>;
    /// Every shard's row, sorted by shard id.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the read fails, [`PortError::Corrupt`] for a row
    /// that cannot be read.
    fn shards_status(&self) -> BoxFuture<'_, Result<Vec<ShardStatus>, PortError>>;
}

/// The watermark that caps shard `me`'s: the minimum over the other shards that are
/// neither finished nor idle at `now_ms`; `None` when there are none.
///
/// ```
/// use eventide_ports::control::{others_watermark, ShardStatus};
/// let row = |id: &str, wm, finished| ShardStatus {
///     shard_id: id.into(), wm, heartbeat_ms: 1_000, rps: 0.0, bps: 0.0, lag_ms: 0, late: 0, finished,
/// };
/// let rows = [row("a", 5, false), row("b", 3, true), row("c", 9, false)];
/// assert_eq!(others_watermark(&rows, "a", 60_000, 2_000), Some(9));
/// assert_eq!(others_watermark(&rows, "a", 60_000, 100_000), None);
/// ```
pub fn others_watermark(
    rows: &[ShardStatus],
    me: &str,
    idle_timeout_ms: i64,
    now_ms: i64,
) -> Option<i64> {
    rows.iter()
        .filter(|r| r.shard_id != me && !r.finished && !r.is_idle(idle_timeout_ms, now_ms))
        .map(|r| r.wm)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, wm: i64, hb: i64, finished: bool) -> ShardStatus {
        ShardStatus {
            shard_id: id.into(),
            wm,
            heartbeat_ms: hb,
            rps: 0.0,
            bps: 0.0,
            lag_ms: 0,
            late: 0,
            finished,
        }
    }

    #[test]
    fn global_watermark_rules() {
        let now = 100_000;
        assert_eq!(global_watermark_of(&[], 10_000, now), None);
        // min over active shards
        let rows = [row("a", 500, now, false), row("b", 300, now, false)];
        assert_eq!(global_watermark_of(&rows, 10_000, now), Some(300));
        // idle and finished shards don't hold it back
        let rows = [
            row("a", 500, now, false),
            row("b", 300, 1, false),
            row("c", 200, now, true),
        ];
        assert_eq!(global_watermark_of(&rows, 10_000, now), Some(500));
        // all idle or finished: the max
        let rows = [row("b", 300, 1, false), row("c", 200, now, true)];
        assert_eq!(global_watermark_of(&rows, 10_000, now), Some(300));
    }
}
