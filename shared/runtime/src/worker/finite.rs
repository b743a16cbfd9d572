//! Finite-input mode ([`WorkerSettings::finite_quiet_ms`](super::WorkerSettings)): when the
//! input is over (every shard caught up and quiet) and when every shard has fired
//! everything, decided from the leases and control rows as read (pure; the worker loop
//! reads them).

use eventide_ports::control::ShardStatus;
use eventide_ports::lease::Lease;

/// Whether the input is over at `now_ms`: there are leases, and every one is finished,
/// held by this worker (`is_mine`: its own tasks report their quiet time), or held by
/// another worker whose consumer's control row shows it ended (`wm = i64::MAX`) or has
/// been caught up with no new data for `quiet_ms`.
pub(super) fn input_is_quiet(
    all: &[Lease],
    rows: &[ShardStatus],
    is_mine: impl Fn(&str) -> bool,
    now_ms: i64,
    quiet_ms: i64,
) -> bool {
    !all.is_empty()
        && all.iter().all(|l| {
            if l.finished || is_mine(&l.shard_id) {
                return true;
            }
            // Another worker's shard: held, and its consumer reports no lag for a while.
            l.is_held_by(l.owner.as_deref().unwrap_or_default(), now_ms)
                && rows.iter().any(|r| {
                    r.shard_id == l.shard_id
                        && (r.wm == i64::MAX
                            || (r.lag_ms == 0 && now_ms - r.heartbeat_ms >= quiet_ms))
                })
        })
}

/// Whether every shard is finished or has published `wm = i64::MAX`.
pub(super) fn input_has_ended(all: &[Lease], rows: &[ShardStatus]) -> bool {
    all.iter().all(|l| {
        l.finished
            || rows
                .iter()
                .any(|r| r.shard_id == l.shard_id && (r.finished || r.wm == i64::MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100_000;
    const QUIET: i64 = 2_000;

    fn lease(id: &str, owner: &str, finished: bool) -> Lease {
        Lease {
            shard_id: id.into(),
            owner: Some(owner.into()),
            counter: 1,
            expires_ms: NOW + 1,
            checkpoint: "TRIM_HORIZON".into(),
            parents: vec![],
            finished,
        }
    }

    fn row(id: &str, wm: i64, lag_ms: i64, heartbeat_ms: i64) -> ShardStatus {
        ShardStatus {
            shard_id: id.into(),
            wm,
            heartbeat_ms,
            rps: 0.0,
            bps: 0.0,
            lag_ms,
            late: 0,
            finished: false,
        }
    }

    #[test]
    fn quiet_when_every_other_shard_is_caught_up_and_quiet() {
        let mine = |s: &str| s == "s0";
        let all = [
            lease("s0", "w1", false),
            lease("s1", "w2", false),
            lease("s2", "w2", true),
        ];
        let quiet = [row("s1", 5, 0, NOW - QUIET)];
        assert!(input_is_quiet(&all, &quiet, mine, NOW, QUIET));
        // Lagging, or data too recently: not yet.
        assert!(!input_is_quiet(
            &all,
            &[row("s1", 5, 10, NOW - QUIET)],
            mine,
            NOW,
            QUIET
        ));
        assert!(!input_is_quiet(
            &all,
            &[row("s1", 5, 0, NOW - 1)],
            mine,
            NOW,
            QUIET
        ));
        // Ended already: quiet whatever its lag.
        assert!(input_is_quiet(
            &all,
            &[row("s1", i64::MAX, 10, NOW)],
            mine,
            NOW,
            QUIET
        ));
        // No row, or an expired owner (its consumer may be dead): not quiet.
        assert!(!input_is_quiet(&all, &[], mine, NOW, QUIET));
        let mut expired = all.clone();
        expired[1].expires_ms = NOW;
        assert!(!input_is_quiet(&expired, &quiet, mine, NOW, QUIET));
        // No leases yet: nothing has started.
        assert!(!input_is_quiet(&[], &quiet, mine, NOW, QUIET));
    }

    #[test]
    fn ended_when_every_shard_is_finished_or_flushed() {
        let all = [lease("s0", "w1", true), lease("s1", "w2", false)];
        assert!(!input_has_ended(&all, &[row("s1", 5, 0, NOW)]));
        assert!(input_has_ended(&all, &[row("s1", i64::MAX, 0, NOW)]));
        let mut finished = row("s1", 5, 0, NOW);
        finished.finished = true;
        assert!(input_has_ended(&all, &[finished]));
    }
}
