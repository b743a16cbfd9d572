//! Input lines decoded once and shared, in batches, by the lanes of a replay
//! ([`super::lanes`]).
//!
//! A replay in lanes needs every line in every lane (all lanes must see the same
//! watermarks), but decoding JSON is a large part of the work; so one thread decodes and
//! the lanes read the decoded batches. A batch owns its data: the raw text of its lines
//! (for the late-data outputs), the decoded strings in one arena and the other field values
//! inline, so no record allocates.

use std::ops::Range;

use eventide_engine::record::{Line, Record, Value};
use smallvec::SmallVec;

/// A decoded field value; strings are ranges of the batch's string arena.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Null,
    Str(Range<usize>),
    Num(f64),
    Bool(bool),
}

/// What a line holds.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// An event: its time and its fields, a range of the batch's fields.
    Event {
        time: i64,
        fields: Range<usize>,
    },
    AdvanceProcessingTime(i64),
    AdvanceWatermark(i64),
}

/// One well-formed line: its place in the whole input (1-based, across files), its text (a range of the batch's text)
/// and what it holds.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    line_no: u64,
    raw: Range<usize>,
    kind: Kind,
}

/// Decoded lines in input order.
#[derive(Debug, Default)]
pub struct Batch {
    text: Vec<u8>,
    strings: String,
    fields: Vec<Field>,
    entries: Vec<Entry>,
}

impl Batch {
    /// Number of lines in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no line.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the line at place `line_no` of the input, with text `raw`, decoded as `line`.
    pub fn push(&mut self, line_no: u64, raw: &[u8], line: &Line<'_>) {
        let start = self.text.len();
        self.text.extend_from_slice(raw);
        let kind = match line {
            Line::Event(rec) => {
                let first = self.fields.len();
                for v in &rec.values {
                    let f = match v {
                        Value::Null => Field::Null,
                        Value::Str(s) => {
                            let a = self.strings.len();
                            self.strings.push_str(s);
                            Field::Str(a..self.strings.len())
                        }
                        Value::Num(n) => Field::Num(*n),
                        Value::Bool(b) => Field::Bool(*b),
                    };
                    self.fields.push(f);
                }
                Kind::Event {
                    time: rec.time,
                    fields: first..self.fields.len(),
                }
            }
            Line::AdvanceProcessingTime(t) => Kind::AdvanceProcessingTime(*t),
            Line::AdvanceWatermark(t) => Kind::AdvanceWatermark(*t),
        };
        self.entries.push(Entry {
            line_no,
            raw: start..self.text.len(),
            kind,
        });
    }

    /// Calls `f` with the place, text and decoded form of each line, in order.
    pub fn for_each(&self, mut f: impl FnMut(u64, &[u8], &Line<'_>)) {
        for e in &self.entries {
            let raw = self.text.get(e.raw.clone()).unwrap_or_default();
            let line = match &e.kind {
                Kind::Event { time, fields } => {
                    let values: SmallVec<[Value<'_>; 4]> = self
                        .fields
                        .get(fields.clone())
                        .unwrap_or_default()
                        .iter()
                        .map(|v| match v {
                            Field::Null => Value::Null,
                            Field::Str(r) => {
                                Value::Str(self.strings.get(r.clone()).unwrap_or_default().into())
                            }
                            Field::Num(n) => Value::Num(*n),
                            Field::Bool(b) => Value::Bool(*b),
                        })
                        .collect();
                    Line::Event(Record {
                        time: *time,
                        values,
                    })
                }
                Kind::AdvanceProcessingTime(t) => Line::AdvanceProcessingTime(*t),
                Kind::AdvanceWatermark(t) => Line::AdvanceWatermark(*t),
            };
            f(e.line_no, raw, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_engine::codec::json::Schema;
    use eventide_engine::spec::{FieldType, InputSpec, TimeFormat};

    #[test]
    fn lines_read_back_as_decoded() {
        let schema = Schema::new(&InputSpec {
            fields: vec![
                ("k".into(), FieldType::String),
                ("v".into(), FieldType::Number),
                ("b".into(), FieldType::Bool),
            ],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        });
        let lines: [&[u8]; 3] = [
            br#"{"k":"a\"b","v":1.5,"b":true,"t":10}"#,
            br#"{"advance_watermark":"+inf"}"#,
            br#"{"k":"c","t":11}"#,
        ];
        let mut batch = Batch::default();
        let mut want = Vec::new();
        for (i, raw) in lines.iter().enumerate() {
            let line = schema.parse_line(raw).unwrap();
            batch.push(i as u64 + 1, raw, &line);
            want.push((i as u64 + 1, raw.to_vec(), line));
        }
        let mut seen = 0;
        batch.for_each(|n, raw, line| {
            let (wn, wraw, wline) = &want[seen];
            assert_eq!((n, raw), (*wn, wraw.as_slice()));
            // `Line` is invariant in its lifetime: compare the printed forms.
            assert_eq!(format!("{line:?}"), format!("{wline:?}"));
            seen += 1;
        });
        assert_eq!((seen, batch.len()), (3, 3));
    }
}
