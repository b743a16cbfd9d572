//! The policy's tests: its rules one by one, a table of loads and counts, and the
//! scenarios of the decision table.

use super::scenarios::{self, run_scenario, scenarios, TableRow};
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
    let table = scenarios::decision_table();
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
