//! A shard's engine state and the exactly-once bookkeeping around it, with no I/O.
//!
//! A [`ShardProcessor`] owns the shard's [`Pipeline`] (all its keys, in memory) and logs
//! every engine call a batch makes into an [`Entry`] (see [`crate::state`]): replaying the
//! entries on the state they were built on rebuilds the state exactly. It keeps the input
//! position (sequence number, and sub-sequence number for a user record of a KPL aggregate:
//! see [`InputRecord::position`]) of the last record whose effects the state includes, and
//! skips every record at or before it: a redelivered record never counts twice.
//!
//! Per batch:
//! 1. [`ShardProcessor::begin`] sets the other shards' watermark and processing time;
//! 2. [`ShardProcessor::apply`] runs the records, collecting panes, dead letters and late
//!    records;
//! 3. [`ShardProcessor::advance_watermark`] fires what the global watermark makes due;
//! 4. [`ShardProcessor::take_entry`] hands the batch's entry to the log.
//!
//! Each rule's per-key state lives in the same pipeline; in a snapshot it is named by the
//! rule's slot `rule:<id>@<hash of its text>`, so a changed rule never restores an older
//! version's state.

use std::cmp::Ordering;
use std::collections::HashMap;

use eventide_engine::ids::rule_slot;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::record::{Line, Record};
use eventide_engine::rules::RuleSpec;
use eventide_engine::{Output, Pipeline, PipelineSpec};
use eventide_ports::rows::{alert_row, DeadLetter, PaneRow};
use eventide_ports::rules::RulesVersion;
use eventide_ports::shard::hash_key;

use eventide_ports::source::{cmp_position, InputRecord};

use crate::state::codec::StateError;
use crate::state::entry::{Aside, Call, Entry, EntryBuilder, Op, Replay};
use crate::state::snapshot::{split_hash_key, KeyState, Snapshot};

/// A record of a batch decoded once, not enriched yet ([`ShardProcessor::decode_batch`]).
pub type Decoded<'a> = Result<Line<'a>, eventide_engine::RecordError>;

/// True for the ticker's heartbeat records, which are not data.
fn is_heartbeat_record(r: &InputRecord) -> bool {
    r.data.starts_with(HEARTBEAT_PREFIX) && is_heartbeat(&r.data)
}

/// The prefix of heartbeat records written by the ticker into every shard. They move a
/// quiet shard's heartbeat but are never counted as data.
pub const HEARTBEAT_PREFIX: &[u8] = b"{\"eventide_heartbeat\"";

pub use eventide_ports::source::cmp_seq;

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub panes: Vec<PaneRow>,
    pub dead_letters: Vec<DeadLetter>,
    /// Records too late for an aggregation, with the reason (one per aggregation).
    pub late: Vec<DeadLetter>,
    /// Data records processed (heartbeats, dead letters and skipped records excluded).
    pub records: u64,
    pub heartbeats: u64,
    /// Records at or before the committed position (a redelivery), skipped.
    pub skipped: u64,
    pub bytes: u64,
    /// Records dropped by an enrichment's `on_miss = "drop"`.
    pub dropped: u64,
}

struct PaneSchema {
    aggregations: Vec<String>,
    group_by: Vec<Vec<String>>,
    aggregates: Vec<Vec<String>>,
}

/// The engine's output during a batch: panes, and late records with their position.
struct BatchOutput<'a> {
    names: &'a PaneSchema,
    /// `None` while replaying entries whose output is not needed.
    panes: Option<&'a mut Vec<PaneRow>>,
    late: Option<&'a mut Vec<DeadLetter>>,
    seq: &'a str,
    wm: i64,
}

impl<'a> BatchOutput<'a> {
    /// A sink of panes only (no record is applied, so nothing can be late).
    fn panes(names: &'a PaneSchema, panes: Option<&'a mut Vec<PaneRow>>) -> Self {
        BatchOutput {
            names,
            panes,
            late: None,
            seq: "",
            wm: i64::MIN,
        }
    }
}

impl Emit for BatchOutput<'_> {
    fn pane(&mut self, p: &Pane<'_>) {
        let Some(panes) = self.panes.as_deref_mut() else {
            return;
        };
        let i = p.aggregation;
        panes.push(PaneRow::from_pane(
            p,
            &self.names.aggregations[i],
            &self.names.group_by[i],
            &self.names.aggregates[i],
        ));
    }
}

impl Output for BatchOutput<'_> {
    fn late(&mut self, aggregation: usize, raw: &[u8]) {
        if let Some(late) = self.late.as_deref_mut() {
            late.push(DeadLetter {
                sequence_number: self.seq.to_string(),
                reason: format!(
                    "too late for aggregation `{}`: behind the watermark {} by more than the allowed lateness",
                    self.names.aggregations[aggregation], self.wm
                ),
                data: raw.to_vec(),
            });
        }
    }

    fn refused(&mut self, aggregation: usize, raw: &[u8], reason: &str) {
        if let Some(late) = self.late.as_deref_mut() {
            late.push(DeadLetter {
                sequence_number: self.seq.to_string(),
                reason: format!(
                    "refused by aggregation `{}`: {reason}",
                    self.names.aggregations[aggregation]
                ),
                data: raw.to_vec(),
            });
        }
    }

    /// Alerts go to the pane sinks as rows of `alert:<rule>`, with their ids.
    fn alert(&mut self, alert: &eventide_engine::rules::Alert) {
        if let Some(panes) = self.panes.as_deref_mut() {
            panes.push(alert_row(alert));
        }
    }
}

/// The exactly-once state machine of one shard consumer.
pub struct ShardProcessor {
    shard: String,
    pipeline: Pipeline,
    names: PaneSchema,
    /// The spec's own rules, for a log that returns to them.
    spec_rules: Vec<RuleSpec>,
    /// The rules file running, `None` for the spec's rules.
    rules_text: Option<String>,
    /// The version of the hot-reloaded rules running (0: the spec's rules, or unknown
    /// after a recovery).
    rules_version: u64,
    /// The hash key of the partition key of each group key's last record.
    hash_keys: HashMap<String, u128>,
    /// The last input position whose effects the state includes.
    position: Option<String>,
    /// The minimum published watermark of the other active shards; `None` when this is the
    /// only one.
    others: Option<i64>,
    /// The calls of the batch so far.
    log: EntryBuilder,
    /// Whether the batch so far changed the state.
    changed: bool,
}

impl ShardProcessor {
    /// A processor for `shard` with empty state.
    pub fn new(shard: &str, spec: PipelineSpec) -> Self {
        let names = PaneSchema {
            aggregations: spec.aggregations.iter().map(|a| a.name.clone()).collect(),
            group_by: spec
                .aggregations
                .iter()
                .map(|a| {
                    a.group_by
                        .iter()
                        .map(|&i| spec.input.fields[i].0.clone())
                        .collect()
                })
                .collect(),
            aggregates: spec.aggregations.iter().map(|a| a.value_names()).collect(),
        };
        let spec_rules = spec.rules.clone();
        ShardProcessor {
            shard: shard.to_string(),
            pipeline: Pipeline::with_external_watermark(spec),
            names,
            spec_rules,
            rules_text: None,
            rules_version: 0,
            hash_keys: HashMap::new(),
            position: None,
            others: None,
            log: EntryBuilder::default(),
            changed: false,
        }
    }

    /// The shard this processor consumes.
    pub fn shard(&self) -> &str {
        &self.shard
    }

    /// The last input position whose effects the state includes.
    pub fn position(&self) -> Option<&str> {
        self.position.as_deref()
    }

    /// Keys holding state, per aggregation.
    pub fn state_keys(&self) -> Vec<usize> {
        self.pipeline.state_keys()
    }

    /// Starts a batch: the other shards' watermark (it caps this shard's from now on) and
    /// processing time `now_ms`. Returns the panes that processing time fires.
    pub fn begin(&mut self, others: Option<i64>, now_ms: i64) -> Vec<PaneRow> {
        self.log.push(Op::Others(others));
        self.others = others;
        self.log.push(Op::Time(now_ms));
        let mut panes = Vec::new();
        self.do_time(now_ms, Some(&mut panes));
        self.changed |= !panes.is_empty();
        panes
    }

    fn do_time(&mut self, now_ms: i64, panes: Option<&mut Vec<PaneRow>>) {
        let mut sink = BatchOutput::panes(&self.names, panes);
        self.pipeline.advance_processing_time(now_ms, &mut sink);
    }

    /// Runs a batch. Malformed records become dead letters, records too late for an
    /// aggregation late records; records at or before the committed position are skipped.
    pub fn apply(&mut self, batch: &[InputRecord]) -> BatchOutcome {
        let decoded = self.decode_batch(batch);
        self.apply_decoded(batch, decoded)
    }

    /// Decodes each record of a batch once, before its enrichment tables are chosen (live
    /// lookups need the decoded keys); `None` for heartbeats. Pass the result to
    /// [`ShardProcessor::apply_decoded`].
    pub fn decode_batch<'a>(&self, batch: &'a [InputRecord]) -> Vec<Option<Decoded<'a>>> {
        let codec = self.pipeline.codec();
        batch
            .iter()
            .map(|r| {
                let data = r.malformed.is_none() && !is_heartbeat_record(r);
                data.then(|| codec.decode_unenriched(&r.data))
            })
            .collect()
    }

    /// [`ShardProcessor::apply`] with the batch decoded by [`ShardProcessor::decode_batch`]:
    /// each record is enriched with the installed tables and run, never parsed again.
    pub fn apply_decoded<'a>(
        &mut self,
        batch: &'a [InputRecord],
        decoded: Vec<Option<Decoded<'a>>>,
    ) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        let mut decoded = decoded.into_iter();
        for r in batch {
            let pre = decoded.next().flatten();
            // A user record of a KPL aggregate has its own position (sequence number,
            // sub-sequence number): a batch redelivered in the middle of an aggregate counts
            // each user record once.
            let position = r.position();
            if self
                .position
                .as_deref()
                .is_some_and(|p| cmp_position(&position, p) != Ordering::Greater)
            {
                out.skipped += 1;
                continue;
            }
            self.position = Some(position.clone());
            if let Some(reason) = &r.malformed {
                self.set_aside(&position, r, reason.clone(), &mut out.dead_letters);
                continue;
            }
            if is_heartbeat_record(r) {
                out.heartbeats += 1;
                continue;
            }
            let line = match pre {
                Some(line) => line.and_then(|mut line| {
                    self.pipeline.codec().complete(&mut line)?;
                    Ok(line)
                }),
                None => self.pipeline.decode(&r.data),
            };
            let rec = match line {
                Ok(Line::Event(rec)) => rec,
                Ok(_) => {
                    let reason = "control lines are not accepted from a stream".to_string();
                    self.set_aside(&position, r, reason, &mut out.dead_letters);
                    continue;
                }
                Err(eventide_engine::RecordError::Dropped(_)) => {
                    out.dropped += 1;
                    continue;
                }
                Err(e) => {
                    self.set_aside(&position, r, e.to_string(), &mut out.dead_letters);
                    continue;
                }
            };
            // Processing time is the record's arrival in the stream: one dated far ahead of
            // it must not move the watermark (a source without arrival times is not checked).
            let guard = self.pipeline.spec().future_guard;
            if let Some(Err(e)) = r.arrival_ms.map(|at| guard.check(rec.time, at)) {
                self.set_aside(&position, r, e.to_string(), &mut out.dead_letters);
                continue;
            }
            self.log.record(&r.partition_key, &rec);
            self.changed = true;
            out.records += 1;
            out.bytes += r.data.len() as u64;
            let late = run_record(
                &mut self.pipeline,
                &self.names,
                &mut self.hash_keys,
                &self.shard,
                self.others,
                &rec,
                &r.partition_key,
                &r.data,
                &position,
                Some(&mut out.panes),
                Some(&mut out.late),
            );
            if late {
                self.log.mark_late(&position, &r.data);
            }
        }
        out
    }

    /// Sets a malformed record aside: a dead letter at `position`, logged with its bytes so
    /// that a replay of the entry gives it back.
    fn set_aside(
        &mut self,
        position: &str,
        r: &InputRecord,
        reason: String,
        out: &mut Vec<DeadLetter>,
    ) {
        self.log.push(Op::Dead(Aside {
            seq: position.to_string(),
            reason: reason.clone(),
            raw: r.data.clone(),
        }));
        out.push(DeadLetter {
            sequence_number: position.to_string(),
            reason,
            data: r.data.clone(),
        });
    }

    /// Runs `rules` from now on unless this version already runs (a hot reload: unchanged
    /// rules keep their state, see [`Pipeline::set_rules`]).
    pub fn apply_rules(&mut self, rules: &RulesVersion) {
        if rules.version != self.rules_version
            && self.rules_text.as_deref() != Some(rules.text.as_str())
        {
            let started = self.pipeline.set_rules(&rules.rules);
            tracing::info!(shard = %self.shard, version = rules.version, ?started, "rules swapped");
            self.rules_text = Some(rules.text.clone());
            self.log.push(Op::Rules(Some(rules.text.clone())));
            self.changed = true;
        }
        self.rules_version = rules.version;
    }

    fn do_rules(&mut self, text: Option<&str>) -> Result<(), StateError> {
        let rules = match text {
            Some(t) => eventide_engine::rules::parse_rules(t, &self.pipeline.spec().input)
                .map_err(|e| StateError::Rules(e.to_string()))?,
            None => self.spec_rules.clone(),
        };
        self.pipeline.set_rules(&rules);
        self.rules_text = text.map(str::to_string);
        Ok(())
    }

    /// Resumes from a watermark published earlier (by this shard, or a new shard's parents),
    /// so that records are judged late as they were before.
    pub fn resume_watermark(&mut self, wm: i64) {
        self.log.push(Op::Resume(wm));
        self.changed = true;
        self.do_resume(wm);
    }

    fn do_resume(&mut self, wm: i64) {
        // Only the shard's own watermark: the engine's moves with the next batch, which
        // collects what it fires. Moving it here would fire adopted windows (a merge
        // child's parent that was behind the other) into nothing.
        self.pipeline.resume_partition(&self.shard, wm);
    }

    /// This shard's own watermark (max event time seen − bound), to publish.
    pub fn local_watermark(&self) -> Option<i64> {
        self.pipeline.partition_watermark(&self.shard)
    }

    /// Moves to watermark `wm` (never back) and returns the panes it fires.
    pub fn advance_watermark(&mut self, wm: i64) -> Vec<PaneRow> {
        let before = self.pipeline.watermark();
        self.log.push(Op::Watermark(wm));
        let mut panes = Vec::new();
        self.do_watermark(wm, Some(&mut panes));
        self.changed |= self.pipeline.watermark() != before || !panes.is_empty();
        panes
    }

    fn do_watermark(&mut self, wm: i64, panes: Option<&mut Vec<PaneRow>>) {
        let mut sink = BatchOutput::panes(&self.names, panes);
        self.pipeline.advance_watermark(wm, &mut sink);
    }

    /// The batch's entry, named `batch_id`, with the position reached; empty when the batch
    /// changed no state.
    pub fn take_entry(&mut self, batch_id: &str) -> Entry {
        let mut entry = self.log.take();
        if !std::mem::take(&mut self.changed) {
            entry.ops.clear();
            entry.strings.clear();
        }
        entry.position = self.position.clone();
        entry.batch_id = batch_id.to_string();
        entry
    }

    /// Replays a committed entry on the state it was built on. With `keep_output`, returns
    /// what it output the first time: its panes, dead letters and late records (to write
    /// again when a consumer may have crashed before writing them; the sinks are
    /// idempotent); without, builds none of it.
    ///
    /// # Errors
    /// A malformed entry, or rules that no longer parse.
    pub fn replay(&mut self, entry: &Entry, keep_output: bool) -> Result<BatchOutcome, StateError> {
        let mut out = BatchOutcome::default();
        for call in Replay::new(entry).calls()? {
            let panes = keep_output.then_some(&mut out.panes);
            match call {
                Call::Rules(t) => self.do_rules(t)?,
                Call::Resume(wm) => self.do_resume(wm),
                Call::Others(o) => self.others = o,
                Call::Time(t) => self.do_time(t, panes),
                Call::Watermark(wm) => self.do_watermark(wm, panes),
                Call::Dead(_) if !keep_output => {}
                Call::Dead(a) => out.dead_letters.push(DeadLetter {
                    sequence_number: a.seq.clone(),
                    reason: a.reason.clone(),
                    data: a.raw.clone(),
                }),
                Call::Record { pk, rec, late } => {
                    out.records += 1;
                    run_record(
                        &mut self.pipeline,
                        &self.names,
                        &mut self.hash_keys,
                        &self.shard,
                        self.others,
                        &rec,
                        pk,
                        late.map_or(&[][..], |a| a.raw.as_slice()),
                        late.map_or("", |a| a.seq.as_str()),
                        panes,
                        keep_output.then_some(&mut out.late),
                    );
                }
            }
        }
        if entry.position.is_some() {
            self.position = entry.position.clone();
        }
        Ok(out)
    }

    /// The slot names of the running rules, in [`Pipeline::rules`] order.
    fn rule_slots(&self) -> Vec<String> {
        self.pipeline
            .rules()
            .specs()
            .map(|r| rule_slot(&r.id, &r.source))
            .collect()
    }

    /// A snapshot of the whole state.
    ///
    /// # Errors
    /// Key state that cannot be serialized.
    pub fn snapshot(&mut self) -> Result<Snapshot, StateError> {
        let mut keys = Vec::new();
        let hks = &self.hash_keys;
        let hk = |key: &str| split_hash_key(hks.get(key).copied().unwrap_or(0));
        let names = &self.names.aggregations;
        self.pipeline.snapshot(&mut |agg, key, blob| {
            keys.push(KeyState {
                slot: names[agg].clone(),
                key: key.to_string(),
                hk: hk(key),
                blob,
            })
        })?;
        let slots = self.rule_slots();
        self.pipeline.rules().snapshot(&mut |r, key, blob| {
            keys.push(KeyState {
                slot: slots[r].clone(),
                key: key.to_string(),
                hk: hk(key),
                blob,
            })
        })?;
        // Forget the routes of keys that hold no state any more.
        let live: std::collections::HashSet<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        self.hash_keys.retain(|k, _| live.contains(k.as_str()));
        Ok(Snapshot {
            position: self.position.clone(),
            local_wm: self.local_watermark(),
            wm: self.pipeline.watermark(),
            now: self.pipeline.processing_time(),
            others: self.others,
            rules: self.rules_text.clone(),
            keys,
        })
    }

    /// Installs a snapshot in a new processor.
    ///
    /// # Errors
    /// Rules or key state that cannot be restored.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StateError> {
        self.restore_parts(std::slice::from_ref(snapshot), None)?;
        self.position = snapshot.position.clone();
        self.others = snapshot.others;
        Ok(())
    }

    /// Takes over the keys of `parents` (the final states of a new shard's parent shards)
    /// whose hash key is in `[start, end]`: a child shard after a split or a merge.
    ///
    /// # Errors
    /// Rules or key state that cannot be restored.
    pub fn adopt(
        &mut self,
        parents: &[Snapshot],
        start: u128,
        end: u128,
    ) -> Result<(), StateError> {
        self.restore_parts(parents, Some((start, end)))
    }

    fn restore_parts(
        &mut self,
        parts: &[Snapshot],
        range: Option<(u128, u128)>,
    ) -> Result<(), StateError> {
        if let Some(text) = parts.iter().find_map(|s| s.rules.as_deref()) {
            self.do_rules(Some(text))?;
        }
        let slots = self.rule_slots();
        let ids: Vec<String> = self
            .pipeline
            .rules()
            .specs()
            .map(|r| r.id.clone())
            .collect();
        for k in parts.iter().flat_map(|s| &s.keys) {
            let hk = k.hash_key();
            if range.is_some_and(|(a, b)| hk < a || hk > b) {
                continue;
            }
            if let Some(agg) = self.names.aggregations.iter().position(|a| *a == k.slot) {
                self.pipeline.restore_key(agg, &k.key, &k.blob)?;
            } else if let Some(r) = slots.iter().position(|s| *s == k.slot) {
                self.pipeline
                    .rules_mut()
                    .restore_key(&ids[r], &k.key, &k.blob)
                    .map_err(|reason| eventide_engine::StateError {
                        aggregation: k.slot.clone(),
                        key: k.key.clone(),
                        reason,
                    })?;
            } else {
                // A rule that no longer runs: its state goes with it.
                continue;
            }
            self.hash_keys.insert(k.key.clone(), hk);
        }
        if let Some(local) = parts.iter().filter_map(|s| s.local_wm).max() {
            self.pipeline.resume_partition(&self.shard, local);
        }
        // The slowest part's time and watermark: a merged parent that was ahead has fired
        // its windows up to its watermark already (they are gone from its state), while the
        // other parent's windows beyond its own watermark must fire later, with their
        // output kept, not here where nothing is collected.
        if let Some(now) = parts.iter().map(|s| s.now).min() {
            self.do_time(now, None);
        }
        if let Some(wm) = parts.iter().map(|s| s.wm).min() {
            self.do_watermark(wm, None);
        }
        Ok(())
    }

    /// Installs the enrichment tables the next batch sees (one version of each).
    pub fn set_lookups(&mut self, snapshot: eventide_engine::enrich::Snapshot) {
        self.pipeline.set_lookups(snapshot);
    }
}

/// True for a ticker heartbeat: a JSON object whose only key is `eventide_heartbeat`.
/// Anything else that merely starts like one is data (and is decoded, or dead-lettered).
fn is_heartbeat(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data)
        .is_ok_and(|m| m.len() == 1 && m.contains_key("eventide_heartbeat"))
}

/// Applies one record and moves the watermark after it, as in Flink: this shard's own,
/// capped by what the other shards have published. The same code runs a batch and
/// replays a logged one, so both reach the same state. Returns whether the record was too
/// late for an aggregation.
#[allow(clippy::too_many_arguments)]
fn run_record(
    pipeline: &mut Pipeline,
    names: &PaneSchema,
    hash_keys: &mut HashMap<String, u128>,
    shard: &str,
    others: Option<i64>,
    rec: &Record<'_>,
    partition_key: &str,
    raw: &[u8],
    seq: &str,
    panes: Option<&mut Vec<PaneRow>>,
    late: Option<&mut Vec<DeadLetter>>,
) -> bool {
    let hk = hash_key(partition_key);
    for (_, key) in pipeline.keys_of(rec) {
        hash_keys.insert(key, hk);
    }
    for (_, key) in pipeline.rules().keys_of(rec) {
        hash_keys.insert(key, hk);
    }
    let before = late.as_ref().map_or(0, |l| l.len());
    let mut sink = BatchOutput {
        names,
        panes,
        late,
        seq,
        wm: pipeline.watermark(),
    };
    pipeline.process_record(rec, raw, shard, &mut sink);
    if let Some(local) = pipeline.partition_watermark(shard) {
        let wm = others.map_or(local, |o| o.min(local));
        pipeline.advance_watermark(wm, &mut sink);
    }
    sink.late.as_ref().map_or(0, |l| l.len()) > before
}
