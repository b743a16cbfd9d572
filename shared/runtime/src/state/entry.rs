//! The changelog entry of one batch: the engine calls that the batch made, in order, with
//! the decoded (and enriched) records, so that replaying an entry on the state it was built
//! on gives the state after the batch, exactly.
//!
//! An entry is logical, not physical: it costs the bytes of the records it applied (strings
//! interned once per entry, event times as deltas), whatever the size of the state they
//! touched. A q4 key holding 72 one-hour slices costs nothing more per event than a key
//! holding one. Encoded with `postcard` and compressed with Snappy.
//!
//! An entry is committed before its batch's output is written, so replaying it must also
//! give that output back (a consumer that crashed in between writes it again): the panes
//! come from the replay itself, and the records set aside (malformed, or too late for an
//! aggregation) keep their original bytes in the entry.

use std::borrow::Cow;
use std::collections::HashMap;

use eventide_engine::record::{Record, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::codec::{compress, decompress, StateError};

/// A snapshot that an entry names: the state after entry `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub name: String,
    pub version: u64,
}

/// A record set aside: its position, its original bytes and (for a dead letter) the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aside {
    pub seq: String,
    pub reason: String,
    pub raw: Vec<u8>,
}

/// A field value of a logged record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Val {
    Null,
    /// An index into [`Entry::strings`].
    Str(u32),
    Num(f64),
    Bool(bool),
}

/// One engine call of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// The rules file that runs from here on (`None`: the spec's own rules).
    Rules(Option<String>),
    /// Resume this shard's watermark (a new shard, from its predecessors).
    Resume(i64),
    /// The minimum watermark of the other active shards, which caps this one's.
    Others(Option<i64>),
    /// Advance processing time.
    Time(i64),
    /// Apply a record: `pk` indexes the partition key in [`Entry::strings`], `dt` is its
    /// event time minus the previous record's in this entry (the first: minus 0). `late`
    /// keeps its position and bytes when it was too late for an aggregation.
    Record {
        pk: u32,
        dt: i64,
        values: Vec<Val>,
        late: Option<Aside>,
    },
    /// A malformed record, set aside (no effect on the state).
    Dead(Aside),
    /// Advance the watermark.
    Watermark(i64),
}

/// One batch's changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The batch's name for the sinks (idempotent per name).
    pub batch_id: String,
    /// The last input position whose effects the state includes after this entry.
    pub position: Option<String>,
    /// The newest snapshot: the state after its version. An entry that writes a snapshot
    /// names the state before its own calls (its version minus one).
    pub snapshot: Option<SnapshotRef>,
    pub strings: Vec<String>,
    pub ops: Vec<Op>,
}

impl Entry {
    /// The entry as stored: postcard, then Snappy.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        let raw = postcard::to_allocvec(self).map_err(|e| StateError::Encode(e.to_string()))?;
        compress(&raw)
    }

    /// Decodes a stored entry of at most `max_bytes` uncompressed.
    pub fn decode(body: &[u8], max_bytes: usize) -> Result<Self, StateError> {
        let raw = decompress(body, max_bytes)?;
        postcard::from_bytes(&raw).map_err(|e| StateError::Decode(format!("log entry: {e}")))
    }

    /// True when replaying it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many records it applies.
    pub fn records(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| matches!(o, Op::Record { .. }))
            .count()
    }
}

/// Builds an [`Entry`] as a batch runs.
#[derive(Debug, Default)]
pub struct EntryBuilder {
    entry: Entry,
    interned: HashMap<String, u32>,
    last_time: i64,
}

impl EntryBuilder {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.interned.get(s) {
            return i;
        }
        let i = self.entry.strings.len() as u32;
        self.entry.strings.push(s.to_string());
        self.interned.insert(s.to_string(), i);
        i
    }

    /// Logs a call other than a record.
    pub fn push(&mut self, op: Op) {
        self.entry.ops.push(op);
    }

    /// Logs a record of partition key `pk`.
    pub fn record(&mut self, pk: &str, rec: &Record<'_>) {
        let pk = self.intern(pk);
        let values = rec
            .values
            .iter()
            .map(|v| match v {
                Value::Null => Val::Null,
                Value::Str(s) => Val::Str(self.intern(s)),
                Value::Num(n) => Val::Num(*n),
                Value::Bool(b) => Val::Bool(*b),
            })
            .collect();
        let dt = rec.time.wrapping_sub(self.last_time);
        self.last_time = rec.time;
        self.entry.ops.push(Op::Record {
            pk,
            dt,
            values,
            late: None,
        });
    }

    /// Keeps the position and bytes of the last logged record: it was too late for an
    /// aggregation.
    pub fn mark_late(&mut self, seq: &str, raw: &[u8]) {
        if let Some(Op::Record { late, .. }) = self.entry.ops.last_mut() {
            *late = Some(Aside {
                seq: seq.to_string(),
                reason: String::new(),
                raw: raw.to_vec(),
            });
        }
    }

    /// True when nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.entry.ops.is_empty()
    }

    /// The entry so far, leaving the builder empty.
    pub fn take(&mut self) -> Entry {
        self.interned.clear();
        self.last_time = 0;
        std::mem::take(&mut self.entry)
    }
}

/// Walks the ops of an entry, rebuilding its records.
pub struct Replay<'a> {
    entry: &'a Entry,
    time: i64,
}

/// One call to replay.
pub enum Call<'a> {
    Rules(Option<&'a str>),
    Resume(i64),
    Others(Option<i64>),
    Time(i64),
    Record {
        pk: &'a str,
        rec: Record<'a>,
        late: Option<&'a Aside>,
    },
    Dead(&'a Aside),
    Watermark(i64),
}

impl<'a> Replay<'a> {
    /// A walk over `entry`.
    pub fn new(entry: &'a Entry) -> Self {
        Replay { entry, time: 0 }
    }

    fn string(&self, i: u32) -> Result<&'a str, StateError> {
        self.entry
            .strings
            .get(i as usize)
            .map(String::as_str)
            .ok_or_else(|| StateError::Decode(format!("log entry: string {i} out of range")))
    }

    /// The calls in order.
    pub fn calls(mut self) -> Result<Vec<Call<'a>>, StateError> {
        let mut out = Vec::with_capacity(self.entry.ops.len());
        for op in &self.entry.ops {
            out.push(match op {
                Op::Rules(t) => Call::Rules(t.as_deref()),
                Op::Resume(w) => Call::Resume(*w),
                Op::Others(o) => Call::Others(*o),
                Op::Time(t) => Call::Time(*t),
                Op::Watermark(w) => Call::Watermark(*w),
                Op::Dead(a) => Call::Dead(a),
                Op::Record {
                    pk,
                    dt,
                    values,
                    late,
                } => {
                    self.time = self.time.wrapping_add(*dt);
                    let mut vals: SmallVec<[Value<'a>; 4]> = SmallVec::with_capacity(values.len());
                    for v in values {
                        vals.push(match v {
                            Val::Null => Value::Null,
                            Val::Str(i) => Value::Str(Cow::Borrowed(self.string(*i)?)),
                            Val::Num(n) => Value::Num(*n),
                            Val::Bool(b) => Value::Bool(*b),
                        });
                    }
                    Call::Record {
                        pk: self.string(*pk)?,
                        rec: Record {
                            time: self.time,
                            values: vals,
                        },
                        late: late.as_ref(),
                    }
                }
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_encoding_with_interned_strings_and_time_deltas() {
        let mut b = EntryBuilder::default();
        b.push(Op::Others(Some(5)));
        let r1 = Record {
            time: 1_767_225_600_123,
            values: SmallVec::from_vec(vec![
                Value::Str("s1".into()),
                Value::Num(3.25),
                Value::Null,
            ]),
        };
        let r2 = Record {
            time: 1_767_225_500_000,
            values: SmallVec::from_vec(vec![
                Value::Str("s1".into()),
                Value::Bool(true),
                Value::Num(-0.0),
            ]),
        };
        b.record("s1", &r1);
        b.record("p2", &r2);
        b.push(Op::Watermark(i64::MAX));
        let mut e = b.take();
        e.position = Some("4950".into());
        assert_eq!(e.strings, vec!["s1".to_string(), "p2".to_string()]);
        let back = Entry::decode(&e.encode().unwrap(), 1 << 20).unwrap();
        assert_eq!(back, e);
        let calls = Replay::new(&back).calls().unwrap();
        let recs: Vec<(&str, Record<'_>)> = calls
            .into_iter()
            .filter_map(|c| match c {
                Call::Record { pk, rec, .. } => Some((pk, rec)),
                _ => None,
            })
            .collect();
        assert_eq!(
            format!("{recs:?}"),
            format!("{:?}", vec![("s1", r1), ("p2", r2)])
        );
        assert!(b.is_empty());
    }

    #[test]
    fn a_corrupt_or_oversized_entry_is_an_error_not_a_panic() {
        assert!(Entry::decode(b"\xff\x00garbage", 1 << 20).is_err());
        let mut b = EntryBuilder::default();
        for i in 0..1000 {
            b.push(Op::Time(i));
        }
        let body = b.take().encode().unwrap();
        let err = Entry::decode(&body, 100).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }
}
