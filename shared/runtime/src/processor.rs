//! Exactly-once processing of a shard's batches, with no I/O.
//!
//! A [`ShardProcessor`] owns a [`Pipeline`] whose state is loaded per key from the state
//! store. It keeps, per (aggregation, key), the position (sequence number) of the last
//! record of each shard that the key's state includes, so a redelivered record is skipped
//! exactly for the aggregations whose state already includes it:
//!
//! 1. [`ShardProcessor::keys_to_load`] names the keys a batch touches that are not cached;
//! 2. [`ShardProcessor::restore`] installs what the store returned;
//! 3. [`ShardProcessor::apply`] runs the records, collecting panes and dead letters;
//! 4. [`ShardProcessor::advance_watermark`] fires what the global watermark makes due;
//! 5. [`ShardProcessor::drain_writes`] returns each dirty key's new state once.
//!
//! Each rule is one more slot in this bookkeeping, named `rule:<id>@<version>` where the
//! version is a hash of the rule's text: its per-key state (window contents, last truth
//! value, a pattern's partial matches) is stored, restored and skipped on redelivery like an
//! aggregation's, so a consumer that takes over neither re-alerts nor forgets a partial
//! match. A changed rule has a new slot name, so it never restores an older version's state.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use eventide_aws::dead_letter::DeadLetter;
use eventide_aws::kinesis::hash_key;
use eventide_aws::sinks::PaneRow;
use eventide_aws::state_store::{StateKey, StateWrite, StoredState};
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::record::Line;
use eventide_engine::rules::RuleKind;
use eventide_engine::{Output, Pipeline, PipelineSpec};

/// The prefix of heartbeat records written by the ticker into every shard. They move a
/// quiet shard's heartbeat but are never counted as data.
pub const HEARTBEAT_PREFIX: &[u8] = b"{\"eventide_heartbeat\"";

/// One input record of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Compares Kinesis sequence numbers: decimal strings of up to 128 bits or more.
pub fn cmp_seq(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[derive(Debug, Clone, Default)]
struct KeyMeta {
    pos: BTreeMap<String, String>,
    hk: u128,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub panes: Vec<PaneRow>,
    pub dead_letters: Vec<DeadLetter>,
    /// Data records processed (heartbeats and dead letters excluded).
    pub records: u64,
    pub heartbeats: u64,
    /// Records whose effects were already committed (redelivery), per aggregation skipped.
    pub skipped: u64,
    pub bytes: u64,
    /// Records dropped by an enrichment's `on_miss = "drop"`.
    pub dropped: u64,
}

struct Names {
    aggregations: Vec<String>,
    group_by: Vec<Vec<String>>,
    aggregates: Vec<Vec<String>>,
}

struct Collect<'a> {
    names: &'a Names,
    panes: &'a mut Vec<PaneRow>,
}

impl Emit for Collect<'_> {
    fn pane(&mut self, p: &Pane<'_>) {
        let i = p.aggregation;
        self.panes.push(PaneRow::from_pane(
            p,
            &self.names.aggregations[i],
            &self.names.group_by[i],
            &self.names.aggregates[i],
        ));
    }
}

impl Output for Collect<'_> {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {}

    /// Alerts go to the pane sinks as rows of `alert:<rule>`, with their ids.
    fn alert(&mut self, alert: &eventide_engine::rules::Alert) {
        self.panes.push(eventide_aws::rules::alert_row(alert));
    }
}

/// The exactly-once state machine of one shard consumer.
pub struct ShardProcessor {
    /// How long an untouched state item is kept (DynamoDB TTL), `None` for forever.
    retention_ms: Option<i64>,
    pipeline_name: String,
    shard: String,
    pipeline: Pipeline,
    names: Names,
    meta: HashMap<(usize, String), KeyMeta>,
    /// The minimum published watermark of the other active shards; `None` when this is the
    /// only one.
    others: Option<i64>,
    /// The version of the hot-reloaded rules running (0: the spec's rules).
    rules_version: u64,
    /// The state slot of each running rule, in [`Pipeline::rules`] order.
    rule_slots: Vec<String>,
    /// Positions per (rule slot, key), as `meta` for aggregations.
    rule_meta: HashMap<(String, String), KeyMeta>,
}

/// The state slot name of a rule: `rule:<id>@<hash of its text>`.
///
/// ```
/// use eventide_runtime::processor::rule_slot;
/// assert!(rule_slot("busy", "count(1m) >= 2").starts_with("rule:busy@"));
/// assert_ne!(rule_slot("busy", "count(1m) >= 2"), rule_slot("busy", "count(1m) >= 3"));
/// ```
pub fn rule_slot(id: &str, source: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("rule:{id}@{h:016x}")
}

fn rule_slots(pipeline: &Pipeline) -> Vec<String> {
    pipeline
        .rules()
        .specs()
        .map(|r| rule_slot(&r.id, &r.source))
        .collect()
}

impl ShardProcessor {
    /// A processor for `shard` of the pipeline named `pipeline_name`, with empty state.
    pub fn new(pipeline_name: &str, shard: &str, spec: PipelineSpec) -> Self {
        let names = Names {
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
            aggregates: spec
                .aggregations
                .iter()
                .map(|a| a.aggregates.iter().map(|x| x.name.clone()).collect())
                .collect(),
        };
        let pipeline = Pipeline::with_external_watermark(spec);
        ShardProcessor {
            retention_ms: retention_ms(pipeline.spec()),
            pipeline_name: pipeline_name.to_string(),
            shard: shard.to_string(),
            rule_slots: rule_slots(&pipeline),
            pipeline,
            names,
            meta: HashMap::new(),
            others: None,
            rules_version: 0,
            rule_meta: HashMap::new(),
        }
    }

    /// The shard this processor consumes.
    pub fn shard(&self) -> &str {
        &self.shard
    }

    fn state_key(&self, agg: usize, key: &str) -> StateKey {
        StateKey::new(&self.pipeline_name, &self.names.aggregations[agg], key)
    }

    /// The state keys a batch touches whose state is not loaded yet.
    pub fn keys_to_load(&self, batch: &[InputRecord]) -> Vec<StateKey> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut seen_rules = std::collections::HashSet::new();
        for r in batch {
            if r.data.starts_with(HEARTBEAT_PREFIX) {
                continue;
            }
            let Ok(Line::Event(rec)) = self.pipeline.decode(&r.data) else {
                continue;
            };
            for (agg, key) in self.pipeline.keys_of(&rec) {
                if !self.meta.contains_key(&(agg, key.clone())) && seen.insert((agg, key.clone())) {
                    out.push(self.state_key(agg, &key));
                }
            }
            for (r, key) in self.pipeline.rules().keys_of(&rec) {
                let slot = &self.rule_slots[r];
                if !self.rule_meta.contains_key(&(slot.clone(), key.clone()))
                    && seen_rules.insert((r, key.clone()))
                {
                    out.push(StateKey::new(&self.pipeline_name, slot.as_str(), key));
                }
            }
        }
        out
    }

    /// The keys of `keys` whose state is not loaded yet.
    pub fn uncached(&self, keys: Vec<StateKey>) -> Vec<StateKey> {
        keys.into_iter()
            .filter(|k| {
                if self.rule_slots.contains(&k.aggregation) {
                    return !self
                        .rule_meta
                        .contains_key(&(k.aggregation.clone(), k.key.clone()));
                }
                let agg = self
                    .names
                    .aggregations
                    .iter()
                    .position(|a| *a == k.aggregation);
                agg.is_some_and(|a| !self.meta.contains_key(&(a, k.key.clone())))
            })
            .collect()
    }

    /// Installs loaded state. Keys asked for but absent from `loaded` start empty.
    pub fn restore(
        &mut self,
        asked: &[StateKey],
        loaded: &HashMap<StateKey, StoredState>,
    ) -> Result<(), eventide_engine::StateError> {
        for k in asked {
            if let Some(r) = self.rule_slots.iter().position(|s| *s == k.aggregation) {
                let mut meta = KeyMeta::default();
                if let Some(s) = loaded.get(k) {
                    if !s.blob.is_empty() {
                        let id = self.pipeline.spec().rules[r].id.clone();
                        self.pipeline
                            .rules_mut()
                            .restore_key(&id, &k.key, &s.blob)
                            .map_err(|reason| eventide_engine::StateError {
                                aggregation: k.aggregation.clone(),
                                key: k.key.clone(),
                                reason,
                            })?;
                    }
                    meta.pos = s.pos.clone();
                }
                self.rule_meta
                    .insert((k.aggregation.clone(), k.key.clone()), meta);
                continue;
            }
            let Some(agg) = self
                .names
                .aggregations
                .iter()
                .position(|a| *a == k.aggregation)
            else {
                continue;
            };
            let mut meta = KeyMeta::default();
            if let Some(s) = loaded.get(k) {
                if !s.blob.is_empty() {
                    self.pipeline.restore_key(agg, &k.key, &s.blob)?;
                }
                meta.pos = s.pos.clone();
            }
            self.meta.insert((agg, k.key.clone()), meta);
        }
        Ok(())
    }

    /// Runs a batch whose keys are loaded. Malformed records become dead letters; a record
    /// whose effects a key's state already includes is skipped for that aggregation.
    pub fn apply(&mut self, batch: &[InputRecord]) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        let ShardProcessor {
            pipeline,
            names,
            meta,
            shard,
            others,
            rule_slots,
            rule_meta,
            ..
        } = self;
        for r in batch {
            if r.data.starts_with(HEARTBEAT_PREFIX) {
                out.heartbeats += 1;
                continue;
            }
            let rec = match pipeline.decode(&r.data) {
                Ok(Line::Event(rec)) => rec,
                Ok(_) => {
                    out.dead_letters.push(DeadLetter {
                        sequence_number: r.sequence_number.clone(),
                        reason: "control lines are not accepted from a stream".into(),
                        data: r.data.clone(),
                    });
                    continue;
                }
                Err(eventide_engine::RecordError::Dropped(_)) => {
                    out.dropped += 1;
                    continue;
                }
                Err(e) => {
                    out.dead_letters.push(DeadLetter {
                        sequence_number: r.sequence_number.clone(),
                        reason: e.to_string(),
                        data: r.data.clone(),
                    });
                    continue;
                }
            };
            let keys = pipeline.keys_of(&rec);
            let aggs = names.aggregations.len();
            let mut skip = vec![true; aggs + rule_slots.len()];
            for (agg, key) in &keys {
                let m = meta.entry((*agg, key.clone())).or_default();
                let done = m
                    .pos
                    .get(shard.as_str())
                    .is_some_and(|p| cmp_seq(p, &r.sequence_number) != Ordering::Less);
                if done {
                    out.skipped += 1;
                } else {
                    skip[*agg] = false;
                    m.pos.insert(shard.clone(), r.sequence_number.clone());
                    m.hk = hash_key(&r.partition_key);
                }
            }
            for (i, key) in pipeline.rules().keys_of(&rec) {
                let m = rule_meta.entry((rule_slots[i].clone(), key)).or_default();
                let done = m
                    .pos
                    .get(shard.as_str())
                    .is_some_and(|p| cmp_seq(p, &r.sequence_number) != Ordering::Less);
                if done {
                    out.skipped += 1;
                } else {
                    skip[aggs + i] = false;
                    m.pos.insert(shard.clone(), r.sequence_number.clone());
                    m.hk = hash_key(&r.partition_key);
                }
            }
            out.records += 1;
            out.bytes += r.data.len() as u64;
            let mut sink = Collect {
                names,
                panes: &mut out.panes,
            };
            pipeline.process_record_masked(&rec, &r.data, shard, &mut sink, &skip);
            // As in Flink, the watermark advances after every record: this shard's own,
            // capped by what the other shards have published.
            if let Some(local) = pipeline.partition_watermark(shard) {
                let wm = others.map_or(local, |o| o.min(local));
                pipeline.advance_watermark(wm, &mut sink);
            }
        }
        out
    }

    /// Installs the enrichment tables the next batch sees (one version of each).
    pub fn set_lookups(&mut self, snapshot: eventide_engine::enrich::Snapshot) {
        self.pipeline.set_lookups(snapshot);
    }

    /// Runs `rules` from now on unless this version already runs (a hot reload: unchanged
    /// rules keep their state, see [`Pipeline::set_rules`]).
    pub fn apply_rules(&mut self, rules: &eventide_aws::rules::RulesVersion) {
        if rules.version != self.rules_version {
            let started = self.pipeline.set_rules(&rules.rules);
            tracing::info!(shard = %self.shard, version = rules.version, ?started, "rules swapped");
            self.rules_version = rules.version;
            // A changed rule has a new slot: it starts empty and loads its own stored state.
            self.rule_slots = rule_slots(&self.pipeline);
            self.retention_ms = retention_ms(self.pipeline.spec());
            let slots = &self.rule_slots;
            self.rule_meta.retain(|(slot, _), _| slots.contains(slot));
        }
    }

    /// Sets the minimum watermark published by the other active shards (`None` when this
    /// shard is the only one); it caps this shard's watermark from then on.
    pub fn set_other_shards_watermark(&mut self, others: Option<i64>) {
        self.others = others;
    }

    /// Resumes from a committed watermark (the one this shard last published), so that a
    /// replayed batch judges lateness as the first run did.
    pub fn resume_watermark(&mut self, wm: i64) {
        self.pipeline.resume_partition(&self.shard, wm);
        let mut panes = Vec::new();
        let mut sink = Collect {
            names: &self.names,
            panes: &mut panes,
        };
        self.pipeline.advance_watermark(wm, &mut sink);
    }

    /// This shard's own watermark (max event time seen − bound), to publish.
    pub fn local_watermark(&self) -> Option<i64> {
        self.pipeline.partition_watermark(&self.shard)
    }

    /// Moves to the global watermark and returns the panes it fires.
    pub fn advance_watermark(&mut self, global: i64) -> Vec<PaneRow> {
        let mut panes = Vec::new();
        let mut sink = Collect {
            names: &self.names,
            panes: &mut panes,
        };
        self.pipeline.advance_watermark(global, &mut sink);
        panes
    }

    /// Advances processing time (early and late processing-time triggers).
    pub fn advance_processing_time(&mut self, now_ms: i64) -> Vec<PaneRow> {
        let mut panes = Vec::new();
        let mut sink = Collect {
            names: &self.names,
            panes: &mut panes,
        };
        self.pipeline.advance_processing_time(now_ms, &mut sink);
        panes
    }

    /// The new state of every key changed since the last call, once each. `now_ms` (wall
    /// clock) sets the items' expiry.
    pub fn drain_writes(&mut self, now_ms: i64) -> Vec<StateWrite> {
        let ttl_epoch_s = self
            .retention_ms
            .map(|r| now_ms.saturating_add(r).div_euclid(1000));
        let mut writes = Vec::new();
        for (aggregation, d) in self.pipeline.drain_dirty() {
            let meta = self
                .meta
                .get(&(aggregation, d.key.clone()))
                .cloned()
                .unwrap_or_default();
            // A key whose state became empty keeps an item with no state but with its
            // positions (until its TTL), so that a redelivered record is still recognised.
            writes.push(StateWrite {
                key: self.state_key(aggregation, &d.key),
                blob: Some(d.blob.unwrap_or_default()),
                pos: meta.pos,
                hk: meta.hk,
                next_timer: d.next_timer,
                ttl_epoch_s,
            });
        }
        let ShardProcessor {
            pipeline,
            rule_slots,
            rule_meta,
            pipeline_name,
            ..
        } = self;
        let ids: Vec<String> = pipeline.rules().specs().map(|r| r.id.clone()).collect();
        pipeline.rules_mut().drain_dirty(&mut |id, d| {
            let Some(slot) = ids.iter().position(|x| x == id).map(|i| &rule_slots[i]) else {
                return;
            };
            let meta = rule_meta
                .get(&(slot.clone(), d.key.clone()))
                .cloned()
                .unwrap_or_default();
            writes.push(StateWrite {
                key: StateKey::new(pipeline_name.as_str(), slot.as_str(), d.key.as_str()),
                blob: Some(d.blob.unwrap_or_default()),
                pos: meta.pos,
                hk: meta.hk,
                next_timer: d.next_timer,
                ttl_epoch_s,
            });
        });
        writes
    }
}

/// How long state must outlive its last update: the longest window span plus allowed
/// lateness (or the longest rule window) plus a day of margin; `None` (keep forever) for
/// global and count windows.
fn retention_ms(spec: &PipelineSpec) -> Option<i64> {
    use eventide_engine::window::WindowSpec;
    let mut longest = 0i64;
    for a in &spec.aggregations {
        let span = match a.window {
            WindowSpec::Sliding { size, .. } => size,
            WindowSpec::Session { gap } => gap,
            WindowSpec::Count { .. } | WindowSpec::Global => return None,
        };
        longest = longest.max(span.saturating_add(a.allowed_lateness_ms));
    }
    // A rule's state must outlive its longest window (or a pattern's `within`) too.
    for r in &spec.rules {
        let span = match &r.kind {
            RuleKind::Condition(c) => c.span_ms.saturating_add(c.every_ms),
            RuleKind::Pattern(p) => p.within_ms,
        };
        longest = longest.max(span);
    }
    Some(longest.saturating_add(86_400_000))
}
