//! The codec: the one place where the bytes of a record become a typed [`Line`].
//!
//! Every runtime decodes through a [`Codec`]: `eventide replay` (all its executions), the
//! Kinesis worker and the Lambda handler (through [`crate::Pipeline`]), and the enrichment
//! loaders' key collection. A codec is the input format's [`Decoder`] ([`json`] or
//! [`csv`], chosen by `[input] format`, or one of your own) followed by the pipeline's
//! enrichments. The bad-data policy is the same everywhere: a record that cannot be decoded
//! is an `Err` with the reason, which the caller sends to the dead letters with the
//! record's original bytes; nothing is dropped silently.
//!
//! Splitting files into records (compression, header and footer lines) is the file layer's
//! job (`eventide_connectors::input`); a Kinesis record is one record.
//!
//! # A decoder of your own
//!
//! A binary format needs only [`Decoder`]: implement it in your crate and build the
//! pipeline with [`Codec::with_decoder`] / [`crate::Pipeline::with_codec`].
//!
//! ```
//! use std::sync::Arc;
//! use eventide_engine::codec::{Codec, Decoder};
//! use eventide_engine::record::{Line, Record, Value};
//! use eventide_engine::{PipelineSpec, RecordError};
//!
//! /// 8 bytes of big-endian epoch ms, then the user name.
//! struct Binary;
//! impl Decoder for Binary {
//!     fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
//!         let (t, name) = raw.split_first_chunk::<8>().ok_or(RecordError::Missing("t".into()))?;
//!         let name = std::str::from_utf8(name).map_err(|_| RecordError::Field {
//!             field: "user".into(), reason: "not valid UTF-8".into() })?;
//!         Ok(Line::Event(Record { time: i64::from_be_bytes(*t), values: std::iter::once(Value::Str(name.into())).collect() }))
//!     }
//! }
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { user = "string" }
//!     [[aggregation]]
//!     name = "a"
//!     group_by = ["user"]
//!     window = { type = "global" }
//!     aggregates = [{ name = "n", fn = "count" }]
//! "#).unwrap();
//! let codec = Codec::with_decoder(&spec, Arc::new(Binary));
//! let mut raw = 42i64.to_be_bytes().to_vec();
//! raw.extend_from_slice(b"ann");
//! assert!(matches!(codec.decode(&raw).unwrap(), Line::Event(r) if r.time == 42));
//! assert!(codec.decode(b"short").is_err());
//! ```

pub mod csv;
pub mod decoder;
pub mod json;

use std::fmt;
use std::sync::Arc;

pub use decoder::Decoder;

use crate::enrich::{decoded_input, Enricher, Snapshot};
use crate::error::RecordError;
use crate::record::Line;
use crate::spec::format::Format;
use crate::spec::model::PipelineSpec;

impl Decoder for json::Schema {
    #[inline]
    fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        self.parse_line(raw)
    }
}

impl Decoder for csv::CsvDecoder {
    #[inline]
    fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        csv::CsvDecoder::decode(self, raw)
    }
}

/// The format decoders, dispatched statically for the built-in ones.
#[derive(Clone)]
enum Inner {
    Json(json::Schema),
    Csv(csv::CsvDecoder),
    /// CSV whose columns come from a header row not read yet.
    CsvNoColumns,
    Custom(Arc<dyn Decoder>),
}

/// A pipeline's decoder: its input format, then its enrichments.
///
/// Cloning is cheap enough to do once per thread (the enrichment snapshot is shared).
#[derive(Clone)]
pub struct Codec {
    inner: Inner,
    enricher: Enricher,
    /// The aggregates' expressions that can fail, checked on every record.
    guards: Arc<Vec<Guard>>,
}

/// The conditions and expressions of one aggregation that can fail (integer division),
/// with the aggregation's filter: Flink evaluates the filter on every row, and the
/// aggregates' arguments and `FILTER` conditions on every row that passes it.
#[derive(Debug)]
struct Guard {
    aggregation: String,
    filter: Option<crate::filter::Filter>,
    cells: Vec<crate::aggregate::CellSource>,
}

/// The guards of a spec's aggregations.
fn guards(spec: &PipelineSpec) -> Arc<Vec<Guard>> {
    Arc::new(
        spec.aggregations
            .iter()
            .filter_map(|a| {
                let cells: Vec<_> = crate::aggregate::CompiledAggregates::new(&a.aggregates)
                    .cells
                    .into_iter()
                    .filter(crate::aggregate::CellSource::fallible)
                    .collect();
                let filter_fails = a.filter.as_ref().is_some_and(|f| f.fallible());
                (!cells.is_empty() || filter_fails).then(|| Guard {
                    aggregation: a.name.clone(),
                    filter: a.filter.clone(),
                    cells,
                })
            })
            .collect(),
    )
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match &self.inner {
            Inner::Json(_) => "json",
            Inner::Csv(_) | Inner::CsvNoColumns => "csv",
            Inner::Custom(_) => "custom",
        };
        f.debug_struct("Codec")
            .field("format", &format)
            .field("enrichments", &!self.enricher.is_empty())
            .finish()
    }
}

impl Codec {
    /// The codec of `spec`'s `[input] format`, with no enrichment table loaded yet.
    ///
    /// A CSV format whose columns come from a header row decodes nothing until
    /// [`Codec::with_csv_columns`] gives it the header (every record is an error saying so).
    pub fn new(spec: &PipelineSpec) -> Self {
        let input = decoded_input(spec);
        let inner = match &spec.format {
            Format::Json => Inner::Json(json::Schema::new(&input)),
            Format::Csv(c) => match &c.columns {
                Some(cols) => Inner::Csv(csv::CsvDecoder::new(&input, c, cols)),
                None => Inner::CsvNoColumns,
            },
            Format::Custom(d) => Inner::Custom(d.0.clone()),
        };
        Codec {
            inner,
            enricher: Enricher::new(spec),
            guards: guards(spec),
        }
    }

    /// A codec decoding with `decoder` instead of the spec's format (a format of your own,
    /// see the [module docs](self)); the spec's enrichments still apply.
    pub fn with_decoder(spec: &PipelineSpec, decoder: Arc<dyn Decoder>) -> Self {
        Codec {
            inner: Inner::Custom(decoder),
            enricher: Enricher::new(spec),
            guards: guards(spec),
        }
    }

    /// This codec reading CSV rows of `columns` (from a header row): a JSON or custom codec
    /// is returned unchanged.
    pub fn with_csv_columns(&self, spec: &PipelineSpec, columns: &[String]) -> Self {
        let mut c = self.clone();
        if let Format::Csv(csv) = &spec.format {
            c.inner = Inner::Csv(csv::CsvDecoder::new(&decoded_input(spec), csv, columns));
        }
        c
    }

    /// The CSV decoder, if the format is CSV with known columns (e.g. to split a header).
    pub fn csv(&self) -> Option<&csv::CsvDecoder> {
        match &self.inner {
            Inner::Csv(c) => Some(c),
            _ => None,
        }
    }

    /// Installs the enrichment table versions that the following records see.
    pub fn set_lookups(&mut self, snapshot: Snapshot) {
        self.enricher.set_snapshot(snapshot);
    }

    /// The enricher, e.g. to collect a batch's keys for live lookups.
    pub fn enricher(&self) -> &Enricher {
        &self.enricher
    }

    /// Decodes one record without enriching it.
    ///
    /// # Errors
    /// The record is malformed (see [`Decoder::decode`]).
    #[inline]
    pub fn decode_unenriched<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        match &self.inner {
            Inner::Json(s) => s.parse_line(raw),
            Inner::Csv(c) => c.decode(raw),
            Inner::CsvNoColumns => Err(RecordError::Csv(
                "the columns come from a header row, which this input has none of; declare \
                 input.csv.columns"
                    .into(),
            )),
            Inner::Custom(d) => d.decode(raw),
        }
    }

    /// Decodes one record and adds the enrichments' columns.
    ///
    /// # Errors
    /// The record is malformed, or an enrichment's `on_miss` policy refuses it
    /// ([`RecordError::Dropped`] is a drop on purpose, not a dead letter), or an aggregate's
    /// expression fails on it ([`RecordError::Expr`]: an integer division by zero, which
    /// would fail a Flink job).
    #[inline]
    pub fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        let mut line = self.decode_unenriched(raw)?;
        self.complete(&mut line)?;
        Ok(line)
    }

    /// Completes a line from [`Codec::decode_unenriched`] as [`Codec::decode`] does: adds
    /// the enrichments' columns and checks the aggregates' expressions that can fail.
    ///
    /// # Errors
    /// As [`Codec::decode`], less the decoding.
    #[inline]
    pub fn complete(&self, line: &mut Line<'_>) -> Result<(), RecordError> {
        self.enricher.apply_line(line)?;
        if let (Line::Event(rec), false) = (&*line, self.guards.is_empty()) {
            for g in self.guards.iter() {
                if let Some(f) = &g.filter {
                    match f.eval(rec) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            return Err(RecordError::Expr {
                                aggregation: g.aggregation.clone(),
                                expr: f.text().to_string(),
                                reason: e.to_string(),
                            })
                        }
                    }
                }
                for c in &g.cells {
                    c.check(rec).map_err(|(expr, e)| RecordError::Expr {
                        aggregation: g.aggregation.clone(),
                        expr,
                        reason: e.to_string(),
                    })?;
                }
            }
        }
        Ok(())
    }
}
