//! Enrichment: joining each record with slow tables (or live per-key lookups) by key.
//!
//! A pipeline's `[[enrichment]]` sections ([`spec`]) add columns to its records. Each
//! enrichment reads one [`table::LookupTable`] version from a [`Snapshot`]; the runtime
//! installs a snapshot per batch ([`crate::Pipeline::set_lookups`]), so every record of a
//! batch sees one version of every table, never a mix, while a newer version loads in the
//! background. Loading tables is I/O and lives in `eventide-aws` (Glue, S3, DynamoDB,
//! local files); here is only the pure part: applying a version to a record.
//!
//! Enriched columns are record fields placed after the decoded input fields, so group-by,
//! filters, aggregates and rules see them like any other field.
//!
//! ```
//! use std::sync::Arc;
//! use eventide_engine::enrich::{table::TableBuilder, Snapshot};
//! use eventide_engine::record::{Line, Value};
//! use eventide_engine::{Pipeline, PipelineSpec};
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { sub = "string" }
//!     [[enrichment]]
//!     name = "plans"
//!     file = { path = "plans.csv" }
//!     join = ["sub"]
//!     columns = [{ column = "tier", type = "string" }]
//!     [[aggregation]]
//!     name = "a"
//!     group_by = ["tier"]
//!     window = { type = "global" }
//!     aggregates = [{ name = "n", fn = "count" }]
//! "#).unwrap();
//! let mut b = TableBuilder::new(eventide_engine::enrich::table_shape(&spec.enrichments[0]));
//! b.push_row(&[Value::Str("s1".into()), Value::Str("gold".into())]).unwrap();
//! let mut p = Pipeline::new(spec);
//! p.set_lookups(Snapshot::new(vec![Some(Arc::new(b.finish("v1")))]));
//! let Line::Event(r) = p.decode(br#"{"sub":"s1","t":1}"#).unwrap() else { unreachable!() };
//! assert_eq!(r.values[1], Value::Str("gold".into()));
//! let Line::Event(r) = p.decode(br#"{"sub":"s9","t":1}"#).unwrap() else { unreachable!() };
//! assert_eq!(r.values[1], Value::Null);
//! ```

pub mod spec;
pub mod table;

use std::sync::Arc;

pub use spec::{EnrichmentSpec, OnMiss, SourceSpec};
use table::{encode_key_part, LookupTable, TableShape, KEY_PART_SEP};

use crate::error::RecordError;
use crate::record::{Line, Record, Value};
use crate::spec::model::PipelineSpec;
use crate::spec::schema::InputSpec;

/// The table shape of an enrichment: its join field types and its column types.
pub fn table_shape(e: &EnrichmentSpec) -> TableShape {
    TableShape {
        name: e.name.clone(),
        key_types: e.join.iter().map(|k| k.field_type).collect(),
        column_types: e.columns.iter().map(|c| c.ty).collect(),
        column_names: e.columns.iter().map(|c| c.column.clone()).collect(),
        max_rows: e.max_rows,
        max_bytes: e.max_bytes,
    }
}

/// The fields decoded from the input: [`InputSpec::fields`] without the enriched columns.
pub fn decoded_input(spec: &PipelineSpec) -> InputSpec {
    let mut input = spec.input.clone();
    if let Some(first) = spec
        .enrichments
        .first()
        .and_then(|e| e.columns.first())
        .map(|c| c.field)
    {
        input.fields.truncate(first);
    }
    input
}

/// One version of every enrichment's table, in spec order; `None` where no version is
/// loaded (every lookup then misses). Cloning is cheap (one `Arc` per table).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    tables: Vec<Option<Arc<LookupTable>>>,
}

impl Snapshot {
    /// A snapshot of these tables, one per enrichment in spec order.
    pub fn new(tables: Vec<Option<Arc<LookupTable>>>) -> Self {
        Snapshot { tables }
    }

    /// The table of enrichment `i`.
    pub fn table(&self, i: usize) -> Option<&Arc<LookupTable>> {
        self.tables.get(i).and_then(|t| t.as_ref())
    }
}

/// Applies a pipeline's enrichments to decoded records.
#[derive(Debug, Clone, Default)]
pub struct Enricher {
    specs: Vec<EnrichmentSpec>,
    /// Number of fields decoded from the input.
    decoded: usize,
    snapshot: Snapshot,
}

impl Enricher {
    /// The enricher of a pipeline, with no table loaded yet.
    pub fn new(spec: &PipelineSpec) -> Self {
        Enricher {
            specs: spec.enrichments.clone(),
            decoded: decoded_input(spec).fields.len(),
            snapshot: Snapshot::default(),
        }
    }

    /// True when the pipeline declares no enrichment.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Installs the table versions that the following records see.
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot = snapshot;
    }

    /// The installed snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The encoded join key of enrichment `i` for a record, `None` if a key part is null.
    /// Live lookups (DynamoDB) use it to collect a batch's distinct keys.
    pub fn key_of(&self, i: usize, rec: &Record<'_>) -> Option<String> {
        let e = self.specs.get(i)?;
        let mut key = String::new();
        for (j, k) in e.join.iter().enumerate() {
            if j > 0 {
                key.push(KEY_PART_SEP);
            }
            let v = rec.values.get(k.field).unwrap_or(&Value::Null);
            match encode_key_part(&mut key, v, k.field_type) {
                Ok(true) => {}
                _ => return None,
            }
        }
        Some(key)
    }

    /// Adds the enriched columns to a decoded line (control lines are left alone).
    /// A miss is handled by the enrichment's policy: nulls, [`RecordError::Dropped`] or a
    /// [`RecordError::Field`] naming the join field, for the dead letters.
    #[inline]
    pub fn apply_line(&self, line: &mut Line<'_>) -> Result<(), RecordError> {
        match line {
            Line::Event(rec) if !self.specs.is_empty() => self.apply(rec),
            _ => Ok(()),
        }
    }

    /// Adds the enriched columns to a decoded record; see [`Enricher::apply_line`].
    pub fn apply(&self, rec: &mut Record<'_>) -> Result<(), RecordError> {
        rec.values.truncate(self.decoded);
        let mut buf = String::new();
        for (i, e) in self.specs.iter().enumerate() {
            let key: Option<&str> = match e.join.as_slice() {
                // The common case: one string key, looked up without copying.
                [k] if matches!(rec.values.get(k.field), Some(Value::Str(s)) if crate::key::is_plain(s)) => {
                    match &rec.values[k.field] {
                        Value::Str(s) => Some(s),
                        _ => None,
                    }
                }
                _ => {
                    buf.clear();
                    let mut ok = true;
                    for (j, k) in e.join.iter().enumerate() {
                        if j > 0 {
                            buf.push(KEY_PART_SEP);
                        }
                        let v = rec.values.get(k.field).unwrap_or(&Value::Null);
                        if !matches!(encode_key_part(&mut buf, v, k.field_type), Ok(true)) {
                            ok = false;
                            break;
                        }
                    }
                    ok.then_some(buf.as_str())
                }
            };
            let table = self.snapshot.table(i);
            let row = match (key, table) {
                (Some(k), Some(t)) => t.get(k),
                _ => None,
            };
            match row {
                Some(row) => {
                    for c in 0..e.columns.len() {
                        rec.values.push(row.value(c));
                    }
                }
                None => {
                    let why = || match (key, table) {
                        (None, _) => "the join key is null".to_string(),
                        (Some(k), None) => {
                            format!("no version of the table is loaded (key {:?})", printable(k))
                        }
                        (Some(k), Some(t)) => format!(
                            "no row for key {:?} in version {}",
                            printable(k),
                            t.version()
                        ),
                    };
                    match e.on_miss {
                        OnMiss::Null => {
                            for _ in &e.columns {
                                rec.values.push(Value::Null);
                            }
                        }
                        OnMiss::Drop => {
                            return Err(RecordError::Dropped(format!(
                                "enrichment `{}`: {}",
                                e.name,
                                why()
                            )))
                        }
                        OnMiss::DeadLetter => {
                            return Err(RecordError::Field {
                                field: e
                                    .join
                                    .iter()
                                    .map(|k| k.field_name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(","),
                                reason: format!("enrichment `{}`: {}", e.name, why()),
                            })
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn printable(key: &str) -> String {
    key.replace(KEY_PART_SEP, "|")
}

#[cfg(test)]
mod tests {
    use super::table::TableBuilder;
    use super::*;
    use crate::codec::Codec;

    fn spec(on_miss: &str) -> PipelineSpec {
        PipelineSpec::from_toml(&format!(
            r#"
            [input]
            event_time = {{ field = "t" }}
            fields = {{ sub = "string", n = "number", v = "number" }}
            [[enrichment]]
            name = "plans"
            file = {{ path = "p.csv" }}
            join = ["sub"]
            columns = [{{ column = "tier", type = "string" }}, {{ column = "limit", type = "number" }}]
            on_miss = "{on_miss}"
            [[enrichment]]
            name = "tiers"
            file = {{ path = "t.csv" }}
            join = [{{ field = "tier", column = "name" }}, {{ field = "n", column = "n" }}]
            columns = [{{ column = "rank", type = "number" }}]
            [[aggregation]]
            name = "a"
            group_by = ["tier"]
            filter = 'rank > 1'
            window = {{ type = "global" }}
            aggregates = [{{ name = "s", fn = "sum", field = "limit" }}]
            "#
        ))
        .unwrap()
    }

    fn tables(spec: &PipelineSpec, version: &str, limit: f64) -> Snapshot {
        let mut plans = TableBuilder::new(table_shape(&spec.enrichments[0]));
        for (s, t) in [("s1", "gold"), ("s2", "silver")] {
            plans
                .push_row(&[
                    Value::Str(s.into()),
                    Value::Str(t.into()),
                    Value::Num(limit),
                ])
                .unwrap();
        }
        let mut tiers = TableBuilder::new(table_shape(&spec.enrichments[1]));
        tiers
            .push_row(&[
                Value::Str("gold".into()),
                Value::Str("3".into()),
                Value::Num(2.0),
            ])
            .unwrap();
        Snapshot::new(vec![
            Some(Arc::new(plans.finish(version))),
            Some(Arc::new(tiers.finish(version))),
        ])
    }

    fn decode(d: &Codec, line: &str) -> Result<Vec<Value<'static>>, RecordError> {
        match d.decode(line.as_bytes())? {
            Line::Event(r) => Ok(r
                .values
                .into_iter()
                .map(|v| match v {
                    Value::Str(s) => Value::Str(s.into_owned().into()),
                    Value::Null => Value::Null,
                    Value::Num(n) => Value::Num(n),
                    Value::Bool(b) => Value::Bool(b),
                })
                .collect()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn chained_and_composite_keys() {
        let s = spec("null");
        let mut d = Codec::new(&s);
        d.set_lookups(tables(&s, "v1", 10.0));
        let v = decode(&d, r#"{"sub":"s1","n":3,"v":1,"t":1,"tier":"forged"}"#).unwrap();
        assert_eq!(
            v,
            vec![
                Value::Num(3.0),
                Value::Str("s1".into()),
                Value::Num(1.0),
                Value::Str("gold".into()),
                Value::Num(10.0),
                Value::Num(2.0)
            ]
        );
        // s2 joins plans but its tier has no rank: the second enrichment's columns are null.
        let v = decode(&d, r#"{"sub":"s2","n":3,"v":1,"t":1}"#).unwrap();
        assert_eq!(v[3], Value::Str("silver".into()));
        assert_eq!(v[5], Value::Null);
    }

    #[test]
    fn miss_policies() {
        let line = r#"{"sub":"nobody","n":1,"v":1,"t":1}"#;
        let s = spec("null");
        let mut d = Codec::new(&s);
        d.set_lookups(tables(&s, "v1", 1.0));
        assert_eq!(
            decode(&d, line).unwrap()[3..],
            [Value::Null, Value::Null, Value::Null]
        );

        let s = spec("drop");
        let mut d = Codec::new(&s);
        d.set_lookups(tables(&s, "v1", 1.0));
        assert!(matches!(decode(&d, line), Err(RecordError::Dropped(_))));

        let s = spec("dead_letter");
        let mut d = Codec::new(&s);
        // No version loaded yet: a miss with that reason.
        let e = decode(&d, line).unwrap_err().to_string();
        assert!(e.contains("no version of the table is loaded"), "{e}");
        d.set_lookups(tables(&s, "v7", 1.0));
        let e = decode(&d, line).unwrap_err().to_string();
        assert_eq!(
            e,
            "field `sub`: enrichment `plans`: no row for key \"nobody\" in version v7"
        );
        let e = decode(&d, r#"{"n":1,"v":1,"t":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the join key is null"), "{e}");
    }

    #[test]
    fn a_snapshot_is_one_version_until_replaced() {
        let s = spec("null");
        let mut d = Codec::new(&s);
        let v1 = tables(&s, "v1", 1.0);
        d.set_lookups(v1.clone());
        let held = d.enricher().snapshot().clone();
        // A newer version arrives while a batch holds the old snapshot: the batch still
        // reads v1 everywhere; the next batch reads v2 everywhere.
        let v2 = tables(&s, "v2", 2.0);
        let line = r#"{"sub":"s1","n":3,"v":1,"t":1}"#;
        assert_eq!(decode(&d, line).unwrap()[4], Value::Num(1.0));
        assert_eq!(held.table(0).unwrap().version(), "v1");
        d.set_lookups(v2);
        assert_eq!(decode(&d, line).unwrap()[4], Value::Num(2.0));
        assert_eq!(held.table(1).unwrap().version(), "v1");
        drop(v1);
    }

    #[test]
    fn enriched_fields_drive_filters_and_aggregates() {
        use crate::pane::{Emit, Pane};
        #[derive(Default)]
        struct Rows(Vec<(String, Option<f64>)>);
        impl Emit for Rows {
            fn pane(&mut self, p: &Pane<'_>) {
                self.0.push((p.key.to_string(), p.values[0]));
            }
        }
        impl crate::Output for Rows {
            fn late(&mut self, _: usize, _: &[u8]) {}
        }
        let s = spec("null");
        let snap = tables(&s, "v1", 5.0);
        let mut p = crate::Pipeline::new(s);
        p.set_lookups(snap);
        let mut out = Rows::default();
        for l in [
            r#"{"sub":"s1","n":3,"v":1,"t":1}"#,
            r#"{"sub":"s1","n":3,"v":1,"t":2}"#,
            r#"{"sub":"s2","n":3,"v":1,"t":3}"#,
        ] {
            p.process_line(l.as_bytes(), "", &mut out).unwrap();
        }
        p.finish(&mut out);
        // Only gold has rank 2 > 1; the sum is of the enriched limit.
        assert_eq!(out.0, vec![("gold".to_string(), Some(10.0))]);
    }
}
