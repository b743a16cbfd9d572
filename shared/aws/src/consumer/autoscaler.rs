//! The autoscaler's I/O around the pure [`decide`]: one pass reads
//! the load, decides, and reshards.
//!
//! A pass ([`run_pass`]):
//! 1. reads the stream's status and open shard count (DescribeStreamSummary), the
//!    consumers' rows in the control table (rates and lag per shard) and the call history
//!    ([`ScaleLog`], in the pipeline's partition of the control table, so the 10-calls-per-24 h
//!    limit and the cooldowns survive restarts and Lambda cold starts);
//! 2. calls [`decide`] (a stream that is not ACTIVE, i.e. still
//!    resharding, is kept as it is);
//! 3. on a scale decision, first records the call in the log, conditional on the version it
//!    read (two overlapping passes cannot both call), then calls `UpdateShardCount`
//!    (UNIFORM_SCALING). If the call fails, the record is rolled back; if the rollback
//!    fails too, the history over-counts a call, which only makes the autoscaler more
//!    cautious. A keep decision is recorded as the last decision, without a call.
//!
//! Every decision is logged with tracing (input, target, reason).

use std::fmt;

use crate::config::Clients;
use crate::control::ControlTable;
use crate::kinesis::{stream_summary, update_shard_count};
use crate::scale_log::ScaleLog;
use crate::AwsError;
use tracing::{info, warn};

use crate::consumer::resources::Resources;
use eventide_runtime::autoscale::{decide, ScaleDecision, ScaleHistory, ScaleInput, ScalePolicy};

/// What the autoscaler of one pipeline watches and how it decides.
#[derive(Clone, Debug)]
pub struct AutoscalerConfig {
    /// The pipeline's name (its partition of the control table).
    pub pipeline: String,
    /// The stream to reshard.
    pub stream: String,
    /// The tables (only the control table is used).
    pub resources: Resources,
    /// Limits, headroom, hysteresis and cooldowns.
    pub policy: ScalePolicy,
    /// Decide and report, but call nothing and record nothing.
    pub dry_run: bool,
}

/// What one pass saw, decided and did.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePass {
    /// The stream.
    pub stream: String,
    /// When, epoch ms.
    pub at_ms: i64,
    /// The stream's status (`ACTIVE`, `UPDATING`, …).
    pub stream_status: String,
    /// The load.
    pub input: ScaleInput,
    /// Calls in the rolling 24 h before the pass (before this pass's own call).
    pub calls_24h: usize,
    /// The decision.
    pub decision: ScaleDecision,
    /// Whether `UpdateShardCount` was called.
    pub called: bool,
}

impl ScalePass {
    /// The decision as one JSON object (the Lambda response).
    pub fn to_json(&self) -> serde_json::Value {
        let (action, to, reason) = match &self.decision {
            ScaleDecision::Keep { reason } => ("keep", self.input.open_shards, reason),
            ScaleDecision::Scale { to, reason, .. } => ("scale", *to, reason),
        };
        serde_json::json!({
            "stream": self.stream,
            "at_ms": self.at_ms,
            "stream_status": self.stream_status,
            "open_shards": self.input.open_shards,
            "rps": self.input.rps,
            "bps": self.input.bps,
            "max_lag_ms": self.input.max_lag_ms,
            "calls_24h": self.calls_24h,
            "action": action,
            "target": to,
            "reason": reason,
            "called": self.called,
        })
    }
}

impl fmt::Display for ScalePass {
    /// ```text
    /// stream events (ACTIVE): 1 open shard, 1500 rec/s, 150000 B/s, max lag 0 ms; 0 calls in 24 h
    /// decision: scale 1 -> 2 (UpdateShardCount called): load 1.50 shards (…) wants 3 at 70% headroom
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.input;
        writeln!(
            f,
            "stream {} ({}): {} open shard{}, {:.0} rec/s, {:.0} B/s, max lag {} ms; {} call{} in 24 h",
            self.stream,
            self.stream_status,
            i.open_shards,
            if i.open_shards == 1 { "" } else { "s" },
            i.rps,
            i.bps,
            i.max_lag_ms,
            self.calls_24h,
            if self.calls_24h == 1 { "" } else { "s" },
        )?;
        match &self.decision {
            ScaleDecision::Keep { reason } => {
                writeln!(f, "decision: keep {}: {reason}", i.open_shards)
            }
            ScaleDecision::Scale { from, to, reason } => writeln!(
                f,
                "decision: scale {from} -> {to} ({}): {reason}",
                if self.called {
                    "UpdateShardCount called"
                } else {
                    "dry run, nothing called"
                }
            ),
        }
    }
}

/// Runs one autoscaler pass at `now_ms` (see the module docs).
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_runtime::autoscale::ScalePolicy;
/// use eventide_aws::consumer::autoscaler::{run_pass, AutoscalerConfig};
/// use eventide_aws::consumer::resources::Resources;
/// let config = AutoscalerConfig {
///     pipeline: "demo".into(),
///     stream: "events".into(),
///     resources: Resources::from_prefix("demo"),
///     policy: ScalePolicy { min_shards: 1, max_shards: 8, ..ScalePolicy::default() },
///     dry_run: false,
/// };
/// use eventide_ports::clock::{Clock, SystemClock};
/// let pass = run_pass(&clients, &config, SystemClock.now_ms()).await?;
/// print!("{pass}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`AwsError`] from reading the stream, the control rows or the log, from writing the
/// log (not a conflict: a pass that lost the race keeps the count) or from
/// UpdateShardCount (after rolling the record back).
///
/// # Cancel safety
/// Not cancel safe between recording a call and making it: a pass cancelled there leaves
/// a recorded call that did not happen, which only makes the next passes more cautious
/// (the same as a failed rollback). Cancelled anywhere else, it did nothing or all of it.
pub async fn run_pass(
    clients: &Clients,
    config: &AutoscalerConfig,
    now_ms: i64,
) -> Result<ScalePass, AwsError> {
    let summary = stream_summary(&clients.kinesis, &config.stream).await?;
    let control = ControlTable::new(
        clients.dynamodb.clone(),
        &config.resources.control_table,
        &config.pipeline,
    );
    let rows = control.shards_status().await?;
    let log = ScaleLog::new(
        clients.dynamodb.clone(),
        &config.resources.control_table,
        &config.pipeline,
        &config.stream,
    );
    let seen = log.load().await?;
    let history = ScaleHistory {
        calls_ms: seen.calls_ms.clone(),
    }
    .pruned(now_ms);
    let input = ScaleInput::from_status(summary.open_shards, &rows);
    let decision = if summary.is_active() {
        decide(&input, &config.policy, &history, now_ms)
    } else {
        ScaleDecision::Keep {
            reason: format!(
                "stream is {}, not ACTIVE (a resharding is in progress)",
                summary.status
            ),
        }
    };
    let mut pass = ScalePass {
        stream: config.stream.clone(),
        at_ms: now_ms,
        stream_status: summary.status.clone(),
        input: input.clone(),
        calls_24h: history.calls_in_day(now_ms),
        decision: decision.clone(),
        called: false,
    };
    log_decision(&pass);
    if config.dry_run {
        return Ok(pass);
    }
    match &decision {
        ScaleDecision::Keep { reason } => {
            let text = format!("keep {}: {reason}", input.open_shards);
            match log
                .save(seen.version, &history.calls_ms, &text, now_ms)
                .await
            {
                Ok(()) => {}
                // Another pass wrote meanwhile; its record is as good as ours.
                Err(AwsError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        ScaleDecision::Scale { from, to, reason } => {
            let mut after = history.clone();
            after.record(now_ms);
            let text = format!("scale {from} -> {to}: {reason}");
            match log.save(seen.version, &after.calls_ms, &text, now_ms).await {
                Ok(()) => {}
                Err(AwsError::Conflict { .. }) => {
                    warn!(stream = %config.stream, "another autoscaler pass acted meanwhile; not resharding");
                    pass.decision = ScaleDecision::Keep {
                        reason: "another autoscaler pass acted meanwhile".into(),
                    };
                    return Ok(pass);
                }
                Err(e) => return Err(e),
            }
            let target = i32::try_from(*to).unwrap_or(i32::MAX);
            if let Err(e) = update_shard_count(&clients.kinesis, &config.stream, target).await {
                let undo = format!("failed: {text}: {e}");
                if let Err(e2) = log
                    .save(seen.version + 1, &history.calls_ms, &undo, now_ms)
                    .await
                {
                    warn!(stream = %config.stream, error = %e2, "cannot roll the failed call back from the history");
                }
                return Err(e);
            }
            pass.called = true;
            info!(stream = %config.stream, from, to, "UpdateShardCount called");
        }
    }
    Ok(pass)
}

fn log_decision(pass: &ScalePass) {
    let i = &pass.input;
    let (action, target, reason) = match &pass.decision {
        ScaleDecision::Keep { reason } => ("keep", i.open_shards, reason.as_str()),
        ScaleDecision::Scale { to, reason, .. } => ("scale", *to, reason.as_str()),
    };
    info!(
        stream = %pass.stream,
        status = %pass.stream_status,
        open_shards = i.open_shards,
        rps = i.rps,
        bps = i.bps,
        max_lag_ms = i.max_lag_ms,
        calls_24h = pass.calls_24h,
        action,
        target,
        reason,
        "autoscaler decision"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_prints_and_serializes_the_decision() {
        let pass = ScalePass {
            stream: "events".into(),
            at_ms: 1,
            stream_status: "ACTIVE".into(),
            input: ScaleInput {
                open_shards: 1,
                rps: 1_500.0,
                bps: 150_000.0,
                max_lag_ms: 0,
            },
            calls_24h: 0,
            decision: ScaleDecision::Scale {
                from: 1,
                to: 2,
                reason: "load".into(),
            },
            called: true,
        };
        let text = pass.to_string();
        assert!(text.contains("1 open shard, 1500 rec/s"), "{text}");
        assert!(
            text.contains("scale 1 -> 2 (UpdateShardCount called): load"),
            "{text}"
        );
        let v = pass.to_json();
        assert_eq!(v["action"], "scale");
        assert_eq!(v["target"], 2);
        assert_eq!(v["called"], true);
    }
}
