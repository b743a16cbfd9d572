//! The Kinesis autoscaler's brain: a pure decision function, no I/O.
//!
//! [`decide`] looks at the observed load of a stream ([`ScaleInput`]), a [`ScalePolicy`]
//! and the times of past `UpdateShardCount` calls ([`ScaleHistory`]) and says whether to
//! keep the shard count or to change it ([`ScaleDecision`]). The caller does the I/O: it
//! aggregates the control table's rows ([`ScaleInput::from_status`]), calls
//! `UpdateShardCount` (with `UNIFORM_SCALING`) on a [`ScaleDecision::Scale`] and then
//! records the call with [`ScaleHistory::record`].
//!
//! ## Rules
//!
//! * **Load.** A shard accepts at most 1,000 records/s and 1 MiB/s of writes. The load in
//!   shards is `need = max(rps / limit_rps, bps / limit_bps)` and the wanted count is
//!   `ceil(need / headroom)`: with a headroom of 0.7 every shard runs at most 70% full.
//!   Consumers publish *read* rates; when they keep up, that is the write rate. When they
//!   lag, the read rate says nothing about the write rate, which is what the lag rule is for.
//!   Rates are totals over the stream: `UNIFORM_SCALING` spreads the hash range evenly, so
//!   scaling cannot fix a single hot key anyway.
//! * **AWS limits.** One call may at most double or halve the count, so the target is
//!   clamped to `[ceil(cur / 2), cur * 2]` (after `[min_shards, max_shards]`: the AWS limit
//!   wins, a far-away bound is reached in several calls). At most 10 calls per rolling 24 h:
//!   an 11th is refused until the oldest call is 24 h old. The last
//!   [`ScalePolicy::up_reserve`] calls of the budget are kept for scaling up, so scale-downs
//!   cannot leave a stream unable to grow.
//! * **Cooldown.** A scale-up needs [`ScalePolicy::cooldown_up_ms`] since the last call
//!   (resharding takes time to show in the rates, and a short spike must not flap the
//!   count); a scale-down needs the longer [`ScalePolicy::cooldown_down_ms`].
//! * **Hysteresis.** A scale-down happens only if the smaller count would run below
//!   [`ScalePolicy::scale_down_below`] (e.g. 0.3) utilisation, so the load can more than
//!   double before the next scale-up (at 0.7). Never while the consumers lag.
//! * **Lag.** When the maximum lag exceeds [`ScalePolicy::lag_threshold_ms`], scale up
//!   (double, within `max_shards`) without waiting for the rates to ask for it, still
//!   within the up-cooldown and the daily budget (otherwise one lag episode, which takes a
//!   while to drain after a resharding, would spend the whole budget).

use eventide_ports::control::ShardStatus;

/// The 24 h window of AWS's `UpdateShardCount` call limit.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// The observed load of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleInput {
    /// The number of open shards now.
    pub open_shards: u32,
    /// Records per second over all open shards.
    pub rps: f64,
    /// Bytes per second over all open shards.
    pub bps: f64,
    /// The largest lag of any consumer behind the tip of its shard, ms.
    pub max_lag_ms: i64,
}

impl ScaleInput {
    /// Aggregates control-table rows: sums the rates and takes the maximum lag over the
    /// shards that are not finished (closed parents no longer take writes).
    ///
    /// ```
    /// use eventide_ports::control::ShardStatus;
    /// use eventide_runtime::autoscale::ScaleInput;
    /// let row = |id: &str, rps, lag, finished| ShardStatus {
    ///     shard_id: id.into(), wm: 0, heartbeat_ms: 0, rps, bps: rps * 100.0, lag_ms: lag, late: 0, finished,
    /// };
    /// let input = ScaleInput::from_status(2, &[row("a", 300.0, 50, false), row("b", 200.0, 900, false), row("p", 999.0, 9_999, true)]);
    /// assert_eq!(input, ScaleInput { open_shards: 2, rps: 500.0, bps: 50_000.0, max_lag_ms: 900 });
    /// ```
    pub fn from_status(open_shards: u32, rows: &[ShardStatus]) -> Self {
        let live = || rows.iter().filter(|r| !r.finished);
        ScaleInput {
            open_shards,
            rps: live().map(|r| r.rps.max(0.0)).sum(),
            bps: live().map(|r| r.bps.max(0.0)).sum(),
            max_lag_ms: live().map(|r| r.lag_ms).max().unwrap_or(0),
        }
    }
}

/// The autoscaling policy. [`Default`] gives the values of the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePolicy {
    /// Write limit of one shard, records/s (AWS: 1,000).
    pub shard_limit_rps: f64,
    /// Write limit of one shard, bytes/s (AWS: 1 MiB).
    pub shard_limit_bps: f64,
    /// Target utilisation after scaling, in (0, 1] (e.g. 0.7).
    pub headroom: f64,
    /// Scale down only if the smaller count would run below this utilisation (e.g. 0.3).
    pub scale_down_below: f64,
    /// Minimum time since the last call before scaling up, ms.
    pub cooldown_up_ms: i64,
    /// Minimum time since the last call before scaling down, ms.
    pub cooldown_down_ms: i64,
    /// Never fewer shards than this.
    pub min_shards: u32,
    /// Never more shards than this.
    pub max_shards: u32,
    /// At most this many calls per rolling 24 h (AWS: 10).
    pub max_calls_per_day: usize,
    /// Calls of the daily budget that scale-downs may not use.
    pub up_reserve: usize,
    /// Scale up when the maximum lag exceeds this, ms.
    pub lag_threshold_ms: i64,
}

impl Default for ScalePolicy {
    fn default() -> Self {
        ScalePolicy {
            shard_limit_rps: 1_000.0,
            shard_limit_bps: 1_048_576.0,
            headroom: 0.7,
            scale_down_below: 0.3,
            cooldown_up_ms: 5 * 60 * 1000,
            cooldown_down_ms: 15 * 60 * 1000,
            min_shards: 1,
            max_shards: 64,
            max_calls_per_day: 10,
            up_reserve: 2,
            lag_threshold_ms: 60_000,
        }
    }
}

impl ScalePolicy {
    /// The load in shards at 100% utilisation: `max(rps / limit_rps, bps / limit_bps)`.
    pub fn need(&self, input: &ScaleInput) -> f64 {
        let n = (input.rps / self.shard_limit_rps).max(input.bps / self.shard_limit_bps);
        if n.is_finite() {
            n.max(0.0)
        } else {
            0.0
        }
    }

    /// The shard count the load asks for: `ceil(need / headroom)`, at least 1, clamped to
    /// `[min_shards, max_shards]` and then to `[ceil(cur / 2), cur * 2]`.
    pub fn target(&self, input: &ScaleInput) -> u32 {
        let raw = self.unbounded_target(input);
        clamp_step(
            raw.clamp(self.min_shards, self.max_shards.max(self.min_shards)),
            input.open_shards,
        )
    }
}

impl ScalePolicy {
    /// `ceil(need / headroom)`, at least 1, before any bound or step limit.
    fn unbounded_target(&self, input: &ScaleInput) -> u32 {
        // The epsilon keeps 700 rps / 1000 / 0.7 = 1.0000000000000002 at 1 shard.
        let raw = (self.need(input) / self.headroom - 1e-9).ceil().max(1.0);
        if raw >= u32::MAX as f64 {
            u32::MAX
        } else {
            raw as u32
        }
    }
}

/// Clamps `to` to what one `UpdateShardCount` call may reach from `cur`.
fn clamp_step(to: u32, cur: u32) -> u32 {
    to.clamp(cur.div_ceil(2), cur.saturating_mul(2))
}

/// The times (epoch ms) of past `UpdateShardCount` calls on the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleHistory {
    /// Call times, epoch ms, in any order. Calls older than 24 h may be dropped.
    pub calls_ms: Vec<i64>,
}

impl ScaleHistory {
    /// Records a call made at `now_ms` and forgets calls older than 24 h.
    pub fn record(&mut self, now_ms: i64) {
        self.calls_ms.retain(|&t| now_ms - t < DAY_MS);
        self.calls_ms.push(now_ms);
    }

    /// The calls within the rolling 24 h before `now_ms`, oldest first: what is worth
    /// persisting (older calls no longer count against the limit).
    ///
    /// ```
    /// use eventide_runtime::autoscale::{ScaleHistory, DAY_MS};
    /// let h = ScaleHistory { calls_ms: vec![5_000, 1_000, DAY_MS + 2_000] };
    /// assert_eq!(h.pruned(DAY_MS + 3_000).calls_ms, vec![5_000, DAY_MS + 2_000]);
    /// ```
    pub fn pruned(&self, now_ms: i64) -> ScaleHistory {
        ScaleHistory {
            calls_ms: self.recent(now_ms),
        }
    }

    /// How many calls count against the limit at `now_ms`.
    pub fn calls_in_day(&self, now_ms: i64) -> usize {
        self.recent(now_ms).len()
    }

    /// The last call, if any.
    pub fn last_ms(&self) -> Option<i64> {
        self.calls_ms.iter().copied().max()
    }

    /// Calls within the rolling 24 h before `now_ms`, oldest first.
    fn recent(&self, now_ms: i64) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .calls_ms
            .iter()
            .copied()
            .filter(|&t| now_ms - t < DAY_MS)
            .collect();
        v.sort_unstable();
        v
    }
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Keep the current shard count.
    Keep {
        /// Why.
        reason: String,
    },
    /// Call `UpdateShardCount` from `from` to `to` shards.
    Scale {
        /// The current count.
        from: u32,
        /// The target count, within `[ceil(from / 2), from * 2]`.
        to: u32,
        /// Why.
        reason: String,
    },
}

impl ScaleDecision {
    /// The count after the decision.
    pub fn shards_after(&self, current: u32) -> u32 {
        match self {
            ScaleDecision::Keep { .. } => current,
            ScaleDecision::Scale { to, .. } => *to,
        }
    }
}

fn keep(reason: impl Into<String>) -> ScaleDecision {
    ScaleDecision::Keep {
        reason: reason.into(),
    }
}

/// Decides whether to change the shard count of a stream now (see the module
/// documentation for the rules). Pure: the same arguments give the same decision.
///
/// ```
/// use eventide_runtime::autoscale::{decide, ScaleDecision, ScaleHistory, ScaleInput, ScalePolicy};
/// let input = ScaleInput { open_shards: 2, rps: 3_000.0, bps: 300_000.0, max_lag_ms: 0 };
/// let d = decide(&input, &ScalePolicy::default(), &ScaleHistory::default(), 1_000_000);
/// assert!(matches!(d, ScaleDecision::Scale { from: 2, to: 4, .. }));
/// ```
pub fn decide(
    input: &ScaleInput,
    policy: &ScalePolicy,
    history: &ScaleHistory,
    now_ms: i64,
) -> ScaleDecision {
    let cur = input.open_shards;
    if cur == 0 {
        return keep("no open shards");
    }
    let need = policy.need(input);
    let lagging = input.max_lag_ms > policy.lag_threshold_ms;
    let mut to = policy.target(input);
    let raw = policy.unbounded_target(input);
    let bounded = if raw == to {
        String::new()
    } else {
        format!(
            " -> {to} (bounds {}..={}, at most 2x/0.5x per call)",
            policy.min_shards, policy.max_shards
        )
    };
    let mut why = format!(
        "load {need:.2} shards ({:.0} rec/s, {:.0} B/s) wants {raw} at {:.0}% headroom{bounded}",
        input.rps,
        input.bps,
        policy.headroom * 100.0
    );
    if lagging {
        let doubled = clamp_step(cur.saturating_mul(2).min(policy.max_shards), cur);
        if doubled > to {
            to = doubled;
            why = format!(
                "lag {} ms > {} ms",
                input.max_lag_ms, policy.lag_threshold_ms
            );
        }
    }
    if to == cur {
        return keep(format!("{cur} shards fit: {why}"));
    }

    let since_last = history.last_ms().map(|t| now_ms - t);
    let recent = history.recent(now_ms);
    let budget_left = policy.max_calls_per_day.saturating_sub(recent.len());
    let budget_msg = |left: usize| {
        let next = recent.first().map_or(0, |t| t + DAY_MS - now_ms);
        format!(
            "{} of {} calls in the last 24 h ({left} left for this direction); next in {} s",
            recent.len(),
            policy.max_calls_per_day,
            (next.max(0) + 999) / 1000
        )
    };

    if to > cur {
        if let Some(s) = since_last.filter(|&s| s < policy.cooldown_up_ms) {
            return keep(format!(
                "up-cooldown: {why}, but last call {} s ago < {} s",
                s / 1000,
                policy.cooldown_up_ms / 1000
            ));
        }
        if budget_left == 0 {
            return keep(format!("daily limit: {why}, but {}", budget_msg(0)));
        }
        return ScaleDecision::Scale {
            from: cur,
            to,
            reason: why,
        };
    }

    // to < cur: scale down, with hysteresis.
    let util = need / f64::from(to);
    if util >= policy.scale_down_below {
        return keep(format!(
            "hysteresis: {to} shards would run at {:.0}% >= {:.0}%",
            util * 100.0,
            policy.scale_down_below * 100.0
        ));
    }
    if lagging {
        return keep(format!(
            "no scale-down while lag {} ms > {} ms",
            input.max_lag_ms, policy.lag_threshold_ms
        ));
    }
    if let Some(s) = since_last.filter(|&s| s < policy.cooldown_down_ms) {
        return keep(format!(
            "down-cooldown: {why}, but last call {} s ago < {} s",
            s / 1000,
            policy.cooldown_down_ms / 1000
        ));
    }
    let down_left = budget_left.saturating_sub(policy.up_reserve);
    if down_left == 0 {
        return keep(format!("daily limit: {why}, but {}", budget_msg(0)));
    }
    ScaleDecision::Scale {
        from: cur,
        to,
        reason: format!("{why}; {:.0}% utilisation at {to}", util * 100.0),
    }
}

pub mod scenarios;
#[cfg(test)]
mod tests;
