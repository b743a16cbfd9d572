//! The autoscaler's scenarios: named sequences of load run through [`decide`], whose
//! decisions make the decision table of the documentation
//! (`eventide-consumer decision-table`). They illustrate the policy; its rules are in the
//! parent module.

use super::{decide, ScaleDecision, ScaleHistory, ScaleInput, ScalePolicy};

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
