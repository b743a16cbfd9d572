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

// ---------------------------------------------------------------------------------------
// Scenarios: the decision table of the documentation
// ---------------------------------------------------------------------------------------

/// One observation of a [`Scenario`]: the load at a time (the shard count comes from the
/// scenario's previous decisions).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Minutes since the scenario's start.
    pub minute: i64,
    /// Records per second over the stream.
    pub rps: f64,
    /// Bytes per second over the stream.
    pub bps: f64,
    /// The largest consumer lag, ms.
    pub lag_ms: i64,
}

/// A named sequence of observations run through [`decide`], each decision applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// What it shows.
    pub name: &'static str,
    /// The policy.
    pub policy: ScalePolicy,
    /// Open shards at the start.
    pub start_shards: u32,
    /// Calls made before the start, in minutes relative to it (negative: before).
    pub earlier_calls_min: Vec<i64>,
    /// The observations.
    pub steps: Vec<Step>,
}

/// One line of the decision table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    /// The scenario.
    pub scenario: &'static str,
    /// The observation.
    pub step: Step,
    /// Open shards before the decision.
    pub shards: u32,
    /// Calls in the rolling 24 h before the decision.
    pub calls_24h: usize,
    /// The decision.
    pub decision: ScaleDecision,
}

fn step(minute: i64, rps: f64, lag_ms: i64) -> Step {
    Step {
        minute,
        rps,
        bps: rps * 100.0,
        lag_ms,
    }
}

/// The scenarios of the decision table: ramp, spike, flapping, lag, the 24 h limit, the
/// reserve for scale-ups, and the min/max bounds. Records are 100 bytes.
pub fn scenarios() -> Vec<Scenario> {
    let p = ScalePolicy::default();
    let hour = 60;
    vec![
        Scenario {
            name: "ramp",
            policy: p.clone(),
            start_shards: 1,
            earlier_calls_min: vec![],
            steps: [
                (0, 500.0),
                (5, 1_000.0),
                (10, 2_500.0),
                (15, 6_000.0),
                (20, 12_000.0),
                (25, 20_000.0),
                (30, 20_000.0),
            ]
            .into_iter()
            .map(|(m, r)| step(m, r, 0))
            .collect(),
        },
        Scenario {
            name: "spike",
            policy: p.clone(),
            start_shards: 4,
            earlier_calls_min: vec![-2],
            steps: vec![
                step(0, 2_000.0, 0),
                step(1, 9_000.0, 0),
                step(3, 2_000.0, 0),
                step(10, 2_000.0, 0),
            ],
        },
        Scenario {
            name: "flapping",
            policy: p.clone(),
            start_shards: 4,
            earlier_calls_min: vec![],
            steps: [
                (0, 3_500.0),
                (5, 300.0),
                (10, 3_500.0),
                (15, 300.0),
                (20, 300.0),
                (35, 300.0),
                (40, 3_500.0),
            ]
            .into_iter()
            .map(|(m, r)| step(m, r, 0))
            .collect(),
        },
        Scenario {
            name: "lag",
            policy: p.clone(),
            start_shards: 2,
            earlier_calls_min: vec![],
            steps: vec![
                step(0, 500.0, 120_000),
                step(2, 500.0, 90_000),
                step(6, 500.0, 70_000),
                step(12, 500.0, 0),
            ],
        },
        Scenario {
            name: "24h limit",
            policy: p.clone(),
            start_shards: 4,
            earlier_calls_min: (0..10).map(|i| -20 * hour + i * hour).collect(),
            steps: vec![
                step(0, 50_000.0, 0),
                step(4 * hour - 1, 50_000.0, 0),
                step(4 * hour, 50_000.0, 0),
            ],
        },
        Scenario {
            name: "up reserve",
            policy: p.clone(),
            start_shards: 8,
            earlier_calls_min: (0..8).map(|i| -10 * hour + i * hour).collect(),
            steps: vec![step(0, 100.0, 0), step(1, 9_000.0, 0)],
        },
        Scenario {
            name: "min 2, max 8",
            policy: ScalePolicy {
                min_shards: 2,
                max_shards: 8,
                ..p.clone()
            },
            start_shards: 1,
            earlier_calls_min: vec![],
            steps: vec![
                step(0, 0.0, 0),
                step(5, 20_000.0, 0),
                step(10, 20_000.0, 0),
                step(15, 20_000.0, 0),
                step(40, 0.0, 0),
                step(60, 0.0, 0),
            ],
        },
    ]
}

/// Runs a scenario: one [`decide`] per step, applying every scale decision.
pub fn run_scenario(s: &Scenario) -> Vec<TableRow> {
    const T0: i64 = 1_767_225_600_000;
    let mut history = ScaleHistory {
        calls_ms: s
            .earlier_calls_min
            .iter()
            .map(|m| T0 + m * 60_000)
            .collect(),
    };
    let mut shards = s.start_shards;
    let mut rows = Vec::new();
    for st in &s.steps {
        let now = T0 + st.minute * 60_000;
        let input = ScaleInput {
            open_shards: shards,
            rps: st.rps,
            bps: st.bps,
            max_lag_ms: st.lag_ms,
        };
        let decision = decide(&input, &s.policy, &history, now);
        rows.push(TableRow {
            scenario: s.name,
            step: st.clone(),
            shards,
            calls_24h: history.calls_in_day(now),
            decision: decision.clone(),
        });
        if let ScaleDecision::Scale { to, .. } = decision {
            history.record(now);
            shards = to;
        }
    }
    rows
}

/// The decision table of every [`scenarios`] as Markdown.
pub fn decision_table() -> String {
    let mut out = String::from(
        "| scenario | t (min) | shards | rec/s | lag s | calls/24h | decision | reason |\n|---|---|---|---|---|---|---|---|\n",
    );
    for s in scenarios() {
        for r in run_scenario(&s) {
            let (decision, reason) = match &r.decision {
                ScaleDecision::Keep { reason } => (format!("keep {}", r.shards), reason),
                ScaleDecision::Scale { from, to, reason } => (format!("**{from} → {to}**"), reason),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} |\n",
                r.scenario,
                r.step.minute,
                r.shards,
                r.step.rps,
                r.step.lag_ms / 1000,
                r.calls_24h,
                decision,
                reason.replace('|', "/")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_700_000_000_000;

    fn input(cur: u32, rps: f64) -> ScaleInput {
        ScaleInput {
            open_shards: cur,
            rps,
            bps: rps * 100.0,
            max_lag_ms: 0,
        }
    }

    fn policy() -> ScalePolicy {
        ScalePolicy::default()
    }

    fn to(d: &ScaleDecision) -> Option<u32> {
        match d {
            ScaleDecision::Scale { to, .. } => Some(*to),
            ScaleDecision::Keep { .. } => None,
        }
    }

    fn reason(d: &ScaleDecision) -> &str {
        match d {
            ScaleDecision::Keep { reason } | ScaleDecision::Scale { reason, .. } => reason,
        }
    }

    /// Runs `decide` every minute for `minutes` with a load given per minute, applying
    /// every decision; returns (minute, from, to) of the calls.
    fn simulate(
        mut cur: u32,
        minutes: i64,
        load: impl Fn(i64) -> f64,
        policy: &ScalePolicy,
        history: &mut ScaleHistory,
    ) -> (u32, Vec<(i64, u32, u32)>) {
        let mut calls = Vec::new();
        for m in 0..minutes {
            let now = T0 + m * MIN;
            if let ScaleDecision::Scale { from, to, .. } =
                decide(&input(cur, load(m)), policy, history, now)
            {
                assert_eq!(from, cur);
                assert!(to <= from * 2 && to >= from.div_ceil(2), "{from} -> {to}");
                history.record(now);
                calls.push((m, from, to));
                cur = to;
            }
        }
        (cur, calls)
    }

    #[test]
    fn steady_state_keeps() {
        let mut h = ScaleHistory::default();
        // 4 shards at 2,000 rec/s: 50% utilisation.
        let (cur, calls) = simulate(4, 24 * 60, |_| 2_000.0, &policy(), &mut h);
        assert_eq!((cur, calls), (4, vec![]));
        // The load wants 3; 4 are kept because 3 would run at 67% >= 30%.
        let d = decide(&input(4, 2_000.0), &policy(), &h, T0);
        assert!(reason(&d).starts_with("hysteresis"), "{d:?}");
        let d = decide(&input(3, 2_000.0), &policy(), &h, T0);
        assert!(reason(&d).contains("fit"), "{d:?}");
    }

    #[test]
    fn ramp_scales_up_in_doubling_steps_respecting_cooldown() {
        let mut h = ScaleHistory::default();
        // From 1 shard to 20,000 rec/s at once: needs ceil(20 / 0.7) = 29 shards.
        let (cur, calls) = simulate(1, 60, |_| 20_000.0, &policy(), &mut h);
        assert_eq!(cur, 29);
        assert_eq!(
            calls,
            vec![(0, 1, 2), (5, 2, 4), (10, 4, 8), (15, 8, 16), (20, 16, 29)]
        );
    }

    #[test]
    fn short_spike_within_cooldown_does_not_flap() {
        let mut h = ScaleHistory::default();
        // 2 shards at 1,000 rec/s; a 3 minute spike to 5,000 at minute 10 right after a
        // call at minute 8; load goes back to normal.
        h.record(T0 + 8 * MIN);
        let load = |m| {
            if (10..13).contains(&m) {
                5_000.0
            } else {
                1_000.0
            }
        };
        let (cur, calls) = simulate(2, 120, load, &policy(), &mut h);
        assert_eq!((cur, calls), (2, vec![]));
        let d = decide(&input(2, 5_000.0), &policy(), &h, T0 + 10 * MIN);
        assert!(reason(&d).starts_with("up-cooldown"), "{d:?}");
    }

    #[test]
    fn scale_down_only_after_long_cooldown_and_below_hysteresis() {
        let p = policy();
        let mut h = ScaleHistory::default();
        h.record(T0);
        // 8 shards, load 0.5 shards: 4 shards would run at 12.5% < 30%.
        let low = input(8, 500.0);
        for m in [1, 5, 10, 14] {
            let d = decide(&low, &p, &h, T0 + m * MIN);
            assert!(reason(&d).starts_with("down-cooldown"), "{m}: {d:?}");
        }
        assert_eq!(to(&decide(&low, &p, &h, T0 + 15 * MIN)), Some(4));
        // 8 shards, load 1.5 shards: target 4 would run at 37.5% >= 30%: keep.
        let d = decide(&input(8, 1_500.0), &p, &h, T0 + 60 * MIN);
        assert!(reason(&d).starts_with("hysteresis"), "{d:?}");
        // Down steps 8 -> 4 -> 2, then 2 is kept (1 would run at 50%).
        let mut h = ScaleHistory::default();
        let (cur, calls) = simulate(8, 120, |_| 500.0, &p, &mut h);
        assert_eq!((cur, calls), (2, vec![(0, 8, 4), (15, 4, 2)]));
        // No scale-down while lagging.
        let lag = ScaleInput {
            max_lag_ms: 120_000,
            ..input(2, 100.0)
        };
        let d = decide(&lag, &ScalePolicy { max_shards: 2, ..p }, &h, T0 + DAY_MS);
        assert!(reason(&d).contains("fit"), "{d:?}");
    }

    #[test]
    fn at_most_ten_calls_per_rolling_day() {
        let p = policy();
        let mut h = ScaleHistory::default();
        for i in 0..10 {
            h.record(T0 + i * 3600 * 1000);
        }
        let big = input(4, 50_000.0);
        let late = T0 + 20 * 3600 * 1000;
        let d = decide(&big, &p, &h, late);
        assert!(reason(&d).starts_with("daily limit"), "{d:?}");
        // Refused until the oldest call is 24 h old.
        let d = decide(&big, &p, &h, T0 + DAY_MS - 1);
        assert!(reason(&d).starts_with("daily limit"), "{d:?}");
        assert_eq!(to(&decide(&big, &p, &h, T0 + DAY_MS)), Some(8));

        // A random-walk of load over 3 days with no cooldown never exceeds 10 per day.
        let p = ScalePolicy {
            cooldown_up_ms: 0,
            cooldown_down_ms: 0,
            ..policy()
        };
        let mut h = ScaleHistory::default();
        let load = |m: i64| if (m / 7) % 2 == 0 { 30_000.0 } else { 100.0 };
        let (_, calls) = simulate(1, 3 * 24 * 60, load, &p, &mut h);
        assert!(calls.len() >= 20, "{}", calls.len());
        for (i, &(m, _, _)) in calls.iter().enumerate() {
            let in_day = calls[..=i].iter().filter(|c| m - c.0 < 24 * 60).count();
            assert!(in_day <= 10, "call {i} at minute {m}: {in_day} in 24 h");
        }
    }

    #[test]
    fn scale_down_keeps_budget_for_scale_up() {
        let p = policy();
        let mut h = ScaleHistory::default();
        for i in 0..8 {
            h.record(T0 + i * 3600 * 1000);
        }
        let now = T0 + 10 * 3600 * 1000;
        let d = decide(&input(8, 100.0), &p, &h, now);
        assert!(reason(&d).starts_with("daily limit"), "{d:?}");
        assert_eq!(to(&decide(&input(2, 5_000.0), &p, &h, now)), Some(4));
    }

    #[test]
    fn never_beyond_double_or_half() {
        let p = ScalePolicy {
            max_shards: 10_000,
            ..policy()
        };
        let h = ScaleHistory::default();
        assert_eq!(to(&decide(&input(3, 1e9), &p, &h, T0)), Some(6));
        assert_eq!(to(&decide(&input(100, 0.0), &p, &h, T0)), Some(50));
        assert_eq!(to(&decide(&input(7, 0.0), &p, &h, T0)), Some(4));
    }

    #[test]
    fn min_and_max_bounds() {
        let p = ScalePolicy {
            min_shards: 4,
            max_shards: 10,
            ..policy()
        };
        let h = ScaleHistory::default();
        // Load wants 29, max is 10.
        assert_eq!(to(&decide(&input(8, 20_000.0), &p, &h, T0)), Some(10));
        let d = decide(&input(10, 20_000.0), &p, &h, T0);
        assert!(reason(&d).contains("fit"), "{d:?}");
        // No load: not below 4.
        assert_eq!(to(&decide(&input(8, 0.0), &p, &h, T0)), Some(4));
        assert_eq!(decide(&input(4, 0.0), &p, &h, T0).shards_after(4), 4);
        // Below the minimum: up to it, doubling at most.
        assert_eq!(to(&decide(&input(1, 0.0), &p, &h, T0)), Some(2));
        assert_eq!(to(&decide(&input(2, 0.0), &p, &h, T0)), Some(4));
        // Above the maximum: down to it, halving at most.
        assert_eq!(to(&decide(&input(30, 0.0), &p, &h, T0)), Some(15));
        assert_eq!(to(&decide(&input(15, 0.0), &p, &h, T0)), Some(8));
    }

    #[test]
    fn lag_triggers_scale_up() {
        let p = policy();
        let mut h = ScaleHistory::default();
        // 4 shards at 20% utilisation, but the consumers are 2 minutes behind.
        let lag = ScaleInput {
            max_lag_ms: 120_000,
            ..input(4, 800.0)
        };
        let d = decide(&lag, &p, &h, T0);
        assert_eq!(to(&d), Some(8));
        assert!(reason(&d).starts_with("lag"), "{d:?}");
        // Below the threshold: this load would keep (8 -> 4 would be hysteresis-free
        // but 4 -> 2 runs at 40%).
        let calm = ScaleInput {
            max_lag_ms: 59_000,
            ..input(4, 800.0)
        };
        assert_eq!(to(&decide(&calm, &p, &h, T0)), None);
        // Still within the up-cooldown and max_shards.
        h.record(T0);
        let d = decide(&lag, &p, &h, T0 + MIN);
        assert!(reason(&d).starts_with("up-cooldown"), "{d:?}");
        let d = decide(&lag, &ScalePolicy { max_shards: 6, ..p }, &h, T0 + 10 * MIN);
        assert_eq!(to(&d), Some(6));
    }

    #[test]
    fn history_pruning_keeps_the_rolling_day() {
        let h = ScaleHistory {
            calls_ms: vec![T0 + 5, T0, T0 - DAY_MS, T0 - DAY_MS + 1],
        };
        let p = h.pruned(T0);
        assert_eq!(p.calls_ms, vec![T0 - DAY_MS + 1, T0, T0 + 5]);
        assert_eq!(h.calls_in_day(T0 + 1), 2);
        assert_eq!(h.calls_in_day(T0 + DAY_MS), 1);
        assert_eq!(p.pruned(T0 + DAY_MS + 5).calls_ms, Vec::<i64>::new());
        // Pruning changes no decision: only calls within 24 h count.
        let big = input(2, 50_000.0);
        for now in [T0 + 10 * MIN, T0 + DAY_MS - 1, T0 + DAY_MS + 6] {
            assert_eq!(
                decide(&big, &policy(), &h, now),
                decide(&big, &policy(), &h.pruned(now), now)
            );
        }
    }

    #[test]
    fn scenario_table_shows_each_rule() {
        let rows: Vec<TableRow> = scenarios().iter().flat_map(run_scenario).collect();
        let find = |name: &str, minute: i64| {
            rows.iter()
                .find(|r| r.scenario == name && r.step.minute == minute)
                .map(|r| (r.shards, r.decision.clone()))
                .unwrap_or_else(|| panic!("no row {name} {minute}"))
        };
        let ramp: Vec<u32> = rows
            .iter()
            .filter(|r| r.scenario == "ramp")
            .map(|r| r.decision.shards_after(r.shards))
            .collect();
        assert_eq!(ramp, vec![1, 2, 4, 8, 16, 29, 29]);
        assert!(reason(&find("spike", 1).1).starts_with("up-cooldown"));
        assert_eq!(find("spike", 10).1.shards_after(4), 4);
        assert!(reason(&find("flapping", 5).1).starts_with("down-cooldown"));
        assert!(reason(&find("lag", 0).1).starts_with("lag"));
        assert!(reason(&find("24h limit", 239).1).starts_with("daily limit"));
        assert_eq!(to(&find("24h limit", 240).1), Some(8));
        assert!(reason(&find("up reserve", 0).1).starts_with("daily limit"));
        assert_eq!(to(&find("up reserve", 1).1), Some(13));
        assert_eq!(to(&find("min 2, max 8", 0).1), Some(2));
        assert!(reason(&find("min 2, max 8", 15).1).contains("fit"));
        for r in &rows {
            if let ScaleDecision::Scale { from, to, .. } = r.decision {
                assert!(to <= from * 2 && to >= from.div_ceil(2), "{r:?}");
                assert!(r.calls_24h < 10, "{r:?}");
            }
        }
        let table = super::decision_table();
        assert_eq!(table.lines().count(), rows.len() + 2);
        assert!(
            table.contains("| ramp | 10 | 2 | 2500 | 0 | 1 | **2 → 4** |"),
            "{table}"
        );
    }

    #[test]
    fn decision_table() {
        // (records/s, bytes/s, current) -> count after one call, default policy.
        let p = policy();
        let h = ScaleHistory::default();
        let mib = 1_048_576.0;
        #[rustfmt::skip]
        let table: &[(f64, f64, u32, u32)] = &[
            //  rps       bps          cur  after
            (      0.0,        0.0,      1,   1),
            (    700.0,        0.0,      1,   1), // exactly 70%
            (    701.0,        0.0,      1,   2),
            (  1_400.0,        0.0,      2,   2),
            (  1_500.0,        0.0,      2,   3),
            (  5_000.0,        0.0,      2,   4), // wants 8, doubling cap
            (  5_000.0,        0.0,      8,   8),
            (  2_000.0,        0.0,      8,   8), // 4 would run at 50%: hysteresis
            (    900.0,        0.0,      8,   4), // 4 would run at 22.5%
            (    100.0,        0.0,      2,   1), // 1 would run at 10%
            (    400.0,        0.0,      2,   2), // 1 would run at 40%
            (      0.0,   10.0 * mib,   4,   8), // bytes-bound: wants 15
            (      0.0,   10.0 * mib,  15,  15),
            (  3_000.0,    0.5 * mib,   5,   5), // records-bound: wants 5
            (    100.0,   60.0 * mib,  40,  64), // wants 86, max 64
            (      0.0,        0.0,     64,  32),
        ];
        for &(rps, bps, cur, after) in table {
            let input = ScaleInput {
                open_shards: cur,
                rps,
                bps,
                max_lag_ms: 0,
            };
            let d = decide(&input, &p, &h, T0);
            assert_eq!(
                d.shards_after(cur),
                after,
                "{rps} rec/s {bps} B/s on {cur}: {d:?}"
            );
        }
    }
}
