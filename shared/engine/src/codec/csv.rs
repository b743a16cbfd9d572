//! CSV rows, one per record (per line of a file), decoded against the input schema.
//!
//! The columns are declared (`[input] csv = { columns = [...] }`) or read from a header row
//! of each file (`header = true`, see [`crate::spec::CsvSpec`]). Columns that are not input
//! fields are ignored; a row with another number of fields than there are columns is
//! refused with the count, never padded or cut. Quoting follows RFC 4180 (doubled quotes
//! inside a quoted field) through `csv-core`, except that a row is one line: a quoted field
//! cannot hold a line break. Numbers, bools and times may be surrounded by spaces; an
//! empty number or bool is null, an empty event time is missing. Text that is not UTF-8
//! in a field the pipeline reads is an error naming the field (the dead letter keeps the
//! original bytes); bytes of ignored columns are not looked at.
//!
//! ```
//! use eventide_engine::codec::Codec;
//! use eventide_engine::record::{Line, Value};
//! use eventide_engine::PipelineSpec;
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     format = "csv"
//!     csv = { columns = ["t", "user", "amount", "note"], delimiter = ";" }
//!     event_time = { field = "t" }
//!     fields = { user = "string", amount = "number" }
//!     [[aggregation]]
//!     name = "a"
//!     group_by = ["user"]
//!     window = { type = "global" }
//!     aggregates = [{ name = "n", fn = "count" }]
//! "#).unwrap();
//! let codec = Codec::new(&spec);
//! let Line::Event(r) = codec.decode(br#"17;"ann ""a"";b";2.5;whatever"#).unwrap() else { unreachable!() };
//! assert_eq!((r.time, r.values[0].clone(), r.values[1].clone()),
//!            (17, Value::Num(2.5), Value::Str("ann \"a\";b".into())));
//! assert_eq!(codec.decode(b"17;ann;2.5").unwrap_err().to_string(),
//!            "not a valid CSV row: expected 4 fields, got 3");
//! ```

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::error::RecordError;
use crate::record::{parse_rfc3339, Line, Record, Value};
use crate::spec::format::CsvSpec;
use crate::spec::schema::{FieldType, InputSpec, TimeFormat};

/// What a CSV column holds.
#[derive(Debug, Clone, Copy)]
enum ColumnRole {
    Field(usize),
    Time,
    Ignore,
}

/// The fields of one row, unquoted; borrowed from the row when it has no quotes.
pub type Fields<'a> = SmallVec<[Cow<'a, [u8]>; 8]>;

/// Decodes CSV rows with a fixed list of columns.
#[derive(Debug, Clone)]
pub struct CsvDecoder {
    delimiter: u8,
    quote: u8,
    columns: Vec<String>,
    roles: Vec<ColumnRole>,
    names: Vec<String>,
    types: Vec<FieldType>,
    time_field: String,
    time_format: TimeFormat,
}

impl CsvDecoder {
    /// A decoder of rows of `columns` into the fields of `input`.
    pub fn new(input: &InputSpec, csv: &CsvSpec, columns: &[String]) -> Self {
        let roles = columns
            .iter()
            .map(|c| match input.field_index(c) {
                Some(i) => ColumnRole::Field(i),
                None if *c == input.time_field => ColumnRole::Time,
                None => ColumnRole::Ignore,
            })
            .collect();
        CsvDecoder {
            delimiter: csv.delimiter,
            quote: csv.quote,
            columns: columns.to_vec(),
            roles,
            names: input.fields.iter().map(|(n, _)| n.clone()).collect(),
            types: input.fields.iter().map(|(_, t)| *t).collect(),
            time_field: input.time_field.clone(),
            time_format: input.time_format,
        }
    }

    /// The columns of a row, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Splits a row into at most `max` fields, unquoted (see [`split`]).
    ///
    /// # Errors
    /// More than `max` fields, or a line break inside the row ([`RecordError::Csv`]).
    pub fn split<'a>(&self, raw: &'a [u8], max: usize) -> Result<Fields<'a>, RecordError> {
        split(raw, self.delimiter, self.quote, max)
    }

    /// Decodes one row. A CSV record is always an event.
    ///
    /// # Errors
    /// Another number of fields than columns, a field that is not of its declared type or
    /// not UTF-8, or no event time.
    pub fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        let n = self.roles.len();
        let fields = self.split(raw, n)?;
        if fields.len() != n {
            return Err(RecordError::Csv(format!(
                "expected {n} fields, got {}",
                fields.len()
            )));
        }
        let mut values: SmallVec<[Value<'a>; 4]> =
            SmallVec::from_elem(Value::Null, self.names.len());
        let mut time = None;
        for (role, f) in self.roles.iter().zip(fields) {
            match *role {
                ColumnRole::Field(i) => values[i] = self.value(i, f)?,
                ColumnRole::Time => time = self.time(f)?,
                ColumnRole::Ignore => {}
            }
        }
        match time {
            Some(time) => Ok(Line::Event(Record { time, values })),
            None => Err(RecordError::Missing(self.time_field.clone())),
        }
    }

    fn value<'a>(&self, i: usize, f: Cow<'a, [u8]>) -> Result<Value<'a>, RecordError> {
        let name = &self.names[i];
        let text = utf8(f, name)?;
        let wrong = |what: &str| RecordError::Field {
            field: name.clone(),
            reason: format!(
                "expected a {}, got {what}",
                super::json::type_name(self.types[i])
            ),
        };
        match self.types[i] {
            FieldType::String => Ok(Value::Str(text)),
            FieldType::Number => match text.trim() {
                "" => Ok(Value::Null),
                t => match t.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(Value::Num(v)),
                    _ => Err(wrong(&format!("{t:?}"))),
                },
            },
            FieldType::Bool => match text.trim() {
                "" => Ok(Value::Null),
                "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
                "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
                t => Err(wrong(&format!("{t:?}"))),
            },
        }
    }

    fn time(&self, f: Cow<'_, [u8]>) -> Result<Option<i64>, RecordError> {
        let name = &self.time_field;
        let text = utf8(f, name)?;
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let bad = |reason: String| RecordError::Field {
            field: name.clone(),
            reason,
        };
        match self.time_format {
            TimeFormat::EpochMs => t
                .parse::<i64>()
                .map(Some)
                .map_err(|_| bad(format!("expected whole epoch milliseconds, got {t:?}"))),
            TimeFormat::Rfc3339 => parse_rfc3339(t)
                .map(Some)
                .ok_or_else(|| bad(format!("{t:?} is not an RFC 3339 timestamp"))),
        }
    }
}

/// Splits a row into at most `max` fields, unquoted: borrowed from the row when it has no
/// quote, through `csv-core` otherwise.
///
/// # Errors
/// More than `max` fields, or a line break inside the row ([`RecordError::Csv`]).
pub fn split(raw: &[u8], delimiter: u8, quote: u8, max: usize) -> Result<Fields<'_>, RecordError> {
    let too_many = || RecordError::Csv(format!("expected {max} fields, got more"));
    if memchr::memchr3(quote, b'\r', b'\n', raw).is_none() {
        // No quoting: the fields are the row's own bytes between delimiters.
        let mut out = Fields::new();
        for f in raw.split(|&b| b == delimiter) {
            if out.len() == max {
                return Err(too_many());
            }
            out.push(Cow::Borrowed(f));
        }
        return Ok(out);
    }
    READER.with(|cell| {
        let mut cached = cell.borrow_mut();
        let reader = match &mut *cached {
            Some((d, q, r)) if (*d, *q) == (delimiter, quote) => {
                r.reset();
                r
            }
            slot => {
                let r = csv_core::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .quote(quote)
                    .build();
                &mut slot.insert((delimiter, quote, r)).2
            }
        };
        split_quoted(reader, raw, max)
    })
}

thread_local! {
    /// A `csv-core` reader per thread: building one (its DFA) costs more than a row.
    static READER: std::cell::RefCell<Option<(u8, u8, csv_core::Reader)>> =
        const { std::cell::RefCell::new(None) };
}

/// Splits a row with quotes through `csv-core`.
fn split_quoted<'a>(
    reader: &mut csv_core::Reader,
    raw: &'a [u8],
    max: usize,
) -> Result<Fields<'a>, RecordError> {
    let too_many = || RecordError::Csv(format!("expected {max} fields, got more"));
    // Unquoting never makes a field longer, and `max + 1` ends tell "too many" apart.
    let mut output = vec![0u8; raw.len() + 1];
    let mut ends = vec![0usize; max + 1];
    let (mut input, mut o, mut e) = (raw, 0usize, 0usize);
    let mut fed_end = false;
    loop {
        let (result, nin, nout, nend) = reader.read_record(input, &mut output[o..], &mut ends[e..]);
        input = &input[nin..];
        o += nout;
        e += nend;
        match result {
            csv_core::ReadRecordResult::InputEmpty if !fed_end => fed_end = input.is_empty(),
            csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
            csv_core::ReadRecordResult::OutputEndsFull => return Err(too_many()),
            csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::OutputFull => {
                return Err(RecordError::Csv("the row does not end".into()))
            }
        }
    }
    if e > max {
        return Err(too_many());
    }
    // A line break inside the row (only a lone `\r` can be left in a line) ends a
    // record early: what follows would be lost, so the row is refused.
    if !input.is_empty() {
        return Err(RecordError::Csv(
            "a line break inside the row (a row is one line)".into(),
        ));
    }
    let mut out = Fields::new();
    let mut start = 0;
    for &end in &ends[..e] {
        out.push(Cow::Owned(
            output.get(start..end).unwrap_or_default().to_vec(),
        ));
        start = end;
    }
    Ok(out)
}

fn utf8<'a>(f: Cow<'a, [u8]>, name: &str) -> Result<Cow<'a, str>, RecordError> {
    let bad = || RecordError::Field {
        field: name.to_string(),
        reason: "not valid UTF-8".into(),
    };
    match f {
        Cow::Borrowed(b) => std::str::from_utf8(b).map(Cow::Borrowed).map_err(|_| bad()),
        Cow::Owned(v) => String::from_utf8(v).map(Cow::Owned).map_err(|_| bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> CsvDecoder {
        let input = InputSpec {
            fields: vec![
                ("k".into(), FieldType::String),
                ("v".into(), FieldType::Number),
                ("ok".into(), FieldType::Bool),
            ],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        };
        let csv = CsvSpec {
            delimiter: b',',
            quote: b'"',
            header: false,
            columns: None,
        };
        let cols: Vec<String> = ["t", "k", "skip", "v", "ok"].map(String::from).to_vec();
        CsvDecoder::new(&input, &csv, &cols)
    }

    fn event(d: &CsvDecoder, raw: &[u8]) -> Result<(i64, Vec<Value<'static>>), RecordError> {
        match d.decode(raw)? {
            Line::Event(r) => Ok((
                r.time,
                r.values
                    .into_iter()
                    .map(|v| match v {
                        Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
                        Value::Num(n) => Value::Num(n),
                        Value::Bool(b) => Value::Bool(b),
                        Value::Null => Value::Null,
                    })
                    .collect(),
            )),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn plain_and_quoted_rows_decode_alike() {
        let d = decoder();
        let want = (
            5,
            vec![Value::Str("a".into()), Value::Num(1.5), Value::Bool(true)],
        );
        assert_eq!(event(&d, b"5,a,x,1.5,true").unwrap(), want);
        assert_eq!(event(&d, br#""5","a","x,y"," 1.5 ",true"#).unwrap(), want);
        let (_, v) = event(&d, br#"5,"say ""hi"", ok",,,"#).unwrap();
        assert_eq!(
            v,
            vec![
                Value::Str("say \"hi\", ok".into()),
                Value::Null,
                Value::Null
            ]
        );
    }

    #[test]
    fn wrong_rows_are_refused_with_the_reason() {
        let d = decoder();
        let err = |raw: &[u8]| d.decode(raw).unwrap_err().to_string();
        assert_eq!(
            err(b"5,a,x,1"),
            "not a valid CSV row: expected 5 fields, got 4"
        );
        assert_eq!(
            err(b"5,a,x,1,true,extra"),
            "not a valid CSV row: expected 5 fields, got more"
        );
        assert_eq!(
            err(br#"5,"a",x,1,true,"extra""#),
            "not a valid CSV row: expected 5 fields, got more"
        );
        assert_eq!(
            err(b"5,a,x,one,true"),
            "field `v`: expected a number, got \"one\""
        );
        assert_eq!(err(b"5,a\xff,x,1,true"), "field `k`: not valid UTF-8");
        assert_eq!(err(b"5,\"a\xff\",x,1,true"), "field `k`: not valid UTF-8");
        assert_eq!(err(b",a,x,1,true"), "missing field `t`");
        assert_eq!(
            err(b"5.5,a,x,1,true"),
            "field `t`: expected whole epoch milliseconds, got \"5.5\""
        );
        assert_eq!(
            err(b"5,a,x,inf,true"),
            "field `v`: expected a number, got \"inf\""
        );
        // Invalid UTF-8 in a column the pipeline does not read is not looked at.
        assert!(d.decode(b"5,a,\xff,1,true").is_ok());
        assert!(
            err(b"5,a\rb,x,1,true").contains("line break"),
            "{}",
            err(b"5,a\rb,x,1,true")
        );
    }
}
