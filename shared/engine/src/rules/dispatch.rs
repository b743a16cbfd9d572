//! The dispatcher: a pipeline's running rules, each record and watermark handed to every
//! rule's operator, with their per-key state.

use std::collections::HashMap;

use super::alert::Alert;
use super::condition::CondOp;
use super::model::{RuleKind, RuleSpec};
use super::pattern::PatOp;
use crate::error::StateError;
use crate::key::encode_key;
use crate::record::Record;

enum Op {
    Cond(CondOp),
    Pat(PatOp),
}

impl Op {
    fn new(spec: RuleSpec) -> Op {
        match spec.kind {
            RuleKind::Condition(_) => Op::Cond(CondOp::new(spec)),
            RuleKind::Pattern(_) => Op::Pat(PatOp::new(spec)),
        }
    }

    fn spec(&self) -> &RuleSpec {
        match self {
            Op::Cond(o) => &o.spec,
            Op::Pat(o) => &o.spec,
        }
    }
}

/// The running rules of a pipeline, with their per-key state.
#[derive(Default)]
pub struct Rules {
    ops: Vec<Op>,
    key: String,
}

impl Rules {
    /// Rules with empty state.
    pub fn new(specs: &[RuleSpec]) -> Self {
        Rules {
            ops: specs.iter().cloned().map(Op::new).collect(),
            key: String::new(),
        }
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The running rules.
    pub fn specs(&self) -> impl Iterator<Item = &RuleSpec> {
        self.ops.iter().map(Op::spec)
    }

    /// Swaps in a new rule set. A rule whose id and text are unchanged keeps its state; a
    /// new or changed rule starts empty (it sees records from now on); a removed rule's
    /// state is dropped. Returns the ids of the rules that (re)started.
    pub fn replace(&mut self, specs: &[RuleSpec]) -> Vec<String> {
        let mut old: HashMap<String, Op> = self
            .ops
            .drain(..)
            .map(|o| (o.spec().id.clone(), o))
            .collect();
        let mut started = Vec::new();
        for s in specs {
            match old.remove(&s.id) {
                Some(o) if o.spec().source == s.source => self.ops.push(o),
                _ => {
                    started.push(s.id.clone());
                    self.ops.push(Op::new(s.clone()));
                }
            }
        }
        started
    }

    /// Adds a record to every rule; `wm` is the watermark before it. With `keep`, only keys
    /// it accepts get state (see [`crate::Pipeline::set_key_filter`]).
    pub fn on_record(&mut self, rec: &Record<'_>, wm: i64, keep: Option<&dyn Fn(&str) -> bool>) {
        self.on_record_masked(rec, wm, keep, &[]);
    }

    /// Evaluates what the watermark `wm` makes due, handing alerts to `out`.
    pub fn on_watermark(&mut self, wm: i64, out: &mut dyn FnMut(Alert)) {
        for op in self.ops.iter_mut() {
            match op {
                Op::Cond(o) => o.on_watermark(wm, out),
                Op::Pat(o) => o.on_watermark(wm, out),
            }
        }
    }

    /// Per rule: id, keys holding state, records too late for any evaluation.
    pub fn stats(&self) -> Vec<(String, usize, u64)> {
        self.ops
            .iter()
            .map(|o| match o {
                Op::Cond(c) => (c.spec.id.clone(), c.keys(), c.late),
                Op::Pat(p) => (p.spec.id.clone(), p.keys(), p.late),
            })
            .collect()
    }

    /// Calls `out` with (rule index, key, serialized state) for every key of every rule
    /// that holds state, serialized as for [`Rules::restore_key`].
    ///
    /// # Errors
    ///
    /// A key's state that cannot be serialized, naming the rule and the key.
    pub fn snapshot(&self, out: &mut dyn FnMut(usize, &str, Vec<u8>)) -> Result<(), StateError> {
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Cond(o) => o.snapshot(&mut |k, b| out(i, k, b)),
                Op::Pat(o) => o.snapshot(&mut |k, b| out(i, k, b)),
            }
            .map_err(|e| StateError {
                aggregation: op.spec().id.clone(),
                key: e.key,
                reason: e.reason,
            })?;
        }
        Ok(())
    }

    /// The (rule index, key) pairs a record updates, rules in [`Rules::specs`] order.
    pub fn keys_of(&self, rec: &Record<'_>) -> Vec<(usize, String)> {
        let mut key = String::new();
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                encode_key(&mut key, &op.spec().key, rec);
                (i, key.clone())
            })
            .collect()
    }

    /// Like [`Rules::on_record`], but leaves out the rules `i` with `skip[i]`: their stored
    /// state already includes this record (a redelivery).
    pub fn on_record_masked(
        &mut self,
        rec: &Record<'_>,
        wm: i64,
        keep: Option<&dyn Fn(&str) -> bool>,
        skip: &[bool],
    ) {
        let Rules { ops, key, .. } = self;
        for (i, op) in ops.iter_mut().enumerate() {
            if skip.get(i).copied().unwrap_or(false) {
                continue;
            }
            encode_key(key, &op.spec().key, rec);
            if keep.is_some_and(|keep| !keep(key)) {
                continue;
            }
            match op {
                Op::Cond(o) => o.on_record(key, rec, wm),
                Op::Pat(o) => o.on_record(key, rec, wm),
            }
        }
    }

    /// Replaces the state of `key` in rule `rule` with a stored one.
    pub fn restore_key(&mut self, rule: &str, key: &str, blob: &[u8]) -> Result<(), String> {
        let op = self
            .ops
            .iter_mut()
            .find(|o| o.spec().id == rule)
            .ok_or_else(|| format!("no rule {rule:?}"))?;
        match op {
            Op::Cond(o) => o.restore_key(key, blob),
            Op::Pat(o) => o.restore_key(key, blob),
        }
    }
}
