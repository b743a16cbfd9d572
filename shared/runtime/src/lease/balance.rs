//! The balancing policy, pure: which leases a worker keeps, takes and steals, given every
//! lease as read (no I/O; [`LeaseKeeper::assign`](super::LeaseKeeper::assign) carries the
//! plan out with the port's conditional writes).
//!
//! As the KCL does: a worker keeps what it holds and takes free or expired startable leases
//! up to its fair share, `ceil(startable unfinished leases / live workers)` capped at
//! `max_leases`, where live workers are the owners of unexpired leases plus itself. If it is
//! still under its share and no lease is free, it steals at most one lease from the
//! most-loaded worker, provided that one holds at least two more than it (so stealing
//! always improves the balance and never oscillates).
//!
//! A lease is startable when every parent lease is finished (a parent with no lease, e.g.
//! beyond retention, counts as finished).

use std::collections::{BTreeMap, HashSet};

use eventide_ports::lease::Lease;

/// One step of a [`Plan`], in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Keep a lease this worker holds and that has not expired.
    Keep(&'a Lease),
    /// Take this lease (free, expired, or this worker's own expired one) if the worker
    /// still holds fewer than [`Plan::share`] at this point; the take may lose a race.
    TakeIfUnderShare(&'a Lease),
}

/// What a worker does with the leases in one balancing round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The fair share: how many leases the worker should hold.
    pub share: usize,
    /// Keeps and takes, in order: the worker's own leases, then free or expired ones, each
    /// by shard id.
    pub steps: Vec<Step<'a>>,
    /// The lease to steal when the worker is still under its share after the steps: one
    /// held by the most-loaded other worker, with that worker's load.
    pub steal: Option<(&'a Lease, usize)>,
}

impl<'a> Plan<'a> {
    /// The lease to steal once the worker holds `held` leases: [`Plan::steal`], if the
    /// worker is under its share and the victim holds at least two more than it.
    pub fn steal_at(&self, held: usize) -> Option<&'a Lease> {
        match self.steal {
            Some((lease, load)) if held < self.share && load > held + 1 => Some(lease),
            _ => None,
        }
    }
}

/// The plan of `worker` (holding at most `max_leases`) over `all` (every lease, sorted by
/// shard id) at `now_ms`.
///
/// ```
/// use eventide_ports::lease::Lease;
/// use eventide_runtime::lease::balance::{plan, Step};
/// let lease = |id: &str, owner: Option<&str>| Lease {
///     shard_id: id.into(), owner: owner.map(str::to_string), counter: 1, expires_ms: 2_000,
///     checkpoint: "TRIM_HORIZON".into(), parents: vec![], finished: false,
/// };
/// // w2 holds both leases; w1 arrives: its share is 1, nothing is free, so it steals one.
/// let all = [lease("s0", Some("w2")), lease("s1", Some("w2"))];
/// let p = plan(&all, "w1", 10, 1_000);
/// assert_eq!((p.share, p.steps.len()), (1, 0));
/// assert_eq!(p.steal_at(0).map(|l| l.shard_id.as_str()), Some("s0"));
/// ```
pub fn plan<'a>(all: &'a [Lease], worker: &str, max_leases: usize, now_ms: i64) -> Plan<'a> {
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

    // Our own leases first (renewing expired ones we still own), then free/expired ones.
    let (own, others): (Vec<&Lease>, Vec<&Lease>) = candidates
        .iter()
        .partition(|l| l.owner.as_deref() == Some(worker));
    let mut steps: Vec<Step<'a>> = own
        .iter()
        .map(|l| {
            if l.is_expired(now_ms) {
                Step::TakeIfUnderShare(l)
            } else {
                Step::Keep(l)
            }
        })
        .collect();
    steps.extend(
        others
            .iter()
            .filter(|l| l.is_expired(now_ms))
            .map(|l| Step::TakeIfUnderShare(l)),
    );

    let steal = load
        .iter()
        .filter(|(w, _)| **w != worker)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .and_then(|(victim, count)| {
            others
                .iter()
                .find(|l| l.owner.as_deref() == Some(*victim) && !l.is_expired(now_ms))
                .map(|l| (*l, *count))
        });
    Plan {
        share,
        steps,
        steal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100_000;

    /// A lease held by `owner` until `expires_ms`.
    fn lease(id: &str, owner: Option<&str>, expires_ms: i64) -> Lease {
        Lease {
            shard_id: id.into(),
            owner: owner.map(str::to_string),
            counter: u64::from(owner.is_some()),
            expires_ms,
            checkpoint: "TRIM_HORIZON".into(),
            parents: vec![],
            finished: false,
        }
    }

    fn live(id: &str, owner: &str) -> Lease {
        lease(id, Some(owner), NOW + 1)
    }

    fn free(id: &str) -> Lease {
        lease(id, None, 0)
    }

    /// The steps as `keep s0` / `take s1`.
    fn steps(p: &Plan<'_>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Keep(l) => format!("keep {}", l.shard_id),
                Step::TakeIfUnderShare(l) => format!("take {}", l.shard_id),
            })
            .collect()
    }

    #[test]
    fn a_lone_worker_takes_every_free_lease_up_to_max_leases() {
        let all = [free("s0"), free("s1"), free("s2")];
        let p = plan(&all, "w1", 10, NOW);
        assert_eq!(p.share, 3);
        assert_eq!(steps(&p), ["take s0", "take s1", "take s2"]);
        assert_eq!(p.steal, None);
        assert_eq!(plan(&all, "w1", 2, NOW).share, 2);
    }

    #[test]
    fn the_share_counts_live_owners_and_this_worker() {
        // w2 holds one: two live workers, share ceil(4 / 2) = 2.
        let all = [free("s0"), free("s1"), free("s2"), live("s3", "w2")];
        let p = plan(&all, "w1", 10, NOW);
        assert_eq!(p.share, 2);
        assert_eq!(steps(&p), ["take s0", "take s1", "take s2"]);
        // An expired owner is not live: its lease is free to take and it has no share.
        let all = [free("s0"), lease("s1", Some("w2"), NOW)];
        let p = plan(&all, "w1", 10, NOW);
        assert_eq!(
            (p.share, steps(&p)),
            (2, vec!["take s0".into(), "take s1".into()])
        );
    }

    #[test]
    fn own_leases_come_first_and_expired_own_ones_are_retaken() {
        let all = [
            free("s0"),
            live("s1", "w1"),
            lease("s2", Some("w1"), NOW - 1),
            live("s3", "w2"),
        ];
        let p = plan(&all, "w1", 10, NOW);
        assert_eq!(p.share, 2);
        assert_eq!(steps(&p), ["keep s1", "take s2", "take s0"]);
    }

    #[test]
    fn steals_one_lease_only_from_a_worker_two_ahead() {
        let all = [live("s0", "w2"), live("s1", "w2"), live("s2", "w2")];
        let p = plan(&all, "w1", 10, NOW);
        assert_eq!(p.share, 2);
        assert_eq!(p.steal_at(0).map(|l| l.shard_id.as_str()), Some("s0"));
        // Holding one already, 3 > 1 + 1 still: steal; at its share, never.
        assert!(p.steal_at(1).is_some());
        assert!(p.steal_at(2).is_none());
        // w2 holds 2 and w1 1: stealing would only swap the imbalance.
        let all = [live("s0", "w1"), live("s1", "w2"), live("s2", "w2")];
        let p = plan(&all, "w1", 10, NOW);
        assert_eq!(p.share, 2);
        assert_eq!(steps(&p), ["keep s0"]);
        assert!(p.steal_at(1).is_none());
    }

    #[test]
    fn the_victim_is_the_most_loaded_worker_ties_by_name() {
        let all = [
            live("a0", "w3"),
            live("a1", "w3"),
            live("a2", "w3"),
            live("b0", "w2"),
            live("b1", "w2"),
            live("b2", "w2"),
            live("c0", "w4"),
        ];
        let p = plan(&all, "w1", 10, NOW);
        let (victim, load) = p.steal.unwrap();
        assert_eq!((victim.shard_id.as_str(), load), ("b0", 3));
    }

    #[test]
    fn children_start_after_every_known_parent_finished() {
        let mut parent = live("p0", "w2");
        let mut child = free("c1");
        child.parents = vec!["p0".into(), "gone".into()];
        let all = [child.clone(), parent.clone()];
        assert_eq!(steps(&plan(&all, "w1", 10, NOW)), Vec::<String>::new());
        parent.finished = true;
        let all = [child, parent];
        let p = plan(&all, "w1", 10, NOW);
        // The finished parent is no candidate, and its owner no longer counts as live.
        assert_eq!((p.share, steps(&p)), (1, vec!["take c1".into()]));
    }
}
