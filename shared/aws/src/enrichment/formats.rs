//! Decoding slow-table objects (CSV, JSON lines, Parquet) into a [`TableBuilder`].
//!
//! Every object of a table is read the same way whatever its origin (S3 or a local file):
//! the needed columns (the join columns, then the enriched ones) are found by name in the
//! object's header, JSON keys or Parquet schema, or among the object's Hive partition
//! values (`.../region=eu/part-0.csv`).
//!
//! ```
//! use eventide_aws::enrichment::formats::load_object;
//! use eventide_engine::enrich::spec::{FormatKind, TableFormat};
//! use eventide_engine::enrich::table::{Layout, TableBuilder};
//! use eventide_engine::record::Value;
//! use eventide_engine::spec::FieldType;
//! let layout = Layout::new("t", vec![FieldType::String], vec![FieldType::Number], 10, 1 << 20);
//! let mut b = TableBuilder::new(layout);
//! let cols = ["id".to_string(), "limit".to_string()];
//! load_object(b"id,limit\na,1.5\n\"b,c\",2\n".to_vec(), &TableFormat::new(FormatKind::Csv),
//!     &cols, &[], "x.csv", &mut b).unwrap();
//! let t = b.finish("v");
//! assert_eq!(t.get("b,c").unwrap().value(0), Value::Num(2.0));
//! ```

use std::borrow::Cow;

use eventide_engine::enrich::spec::{FormatKind, TableFormat};
use eventide_engine::enrich::table::{TableBuilder, TableError};
use eventide_engine::record::Value;
use thiserror::Error;

/// An object that cannot be loaded.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("{object}: {reason}")]
    Object { object: String, reason: String },
    #[error("{object}: {source}")]
    Table {
        object: String,
        #[source]
        source: TableError,
    },
}

fn bad(object: &str, reason: impl Into<String>) -> FormatError {
    FormatError::Object {
        object: object.to_string(),
        reason: reason.into(),
    }
}

/// Where each needed column comes from in one object.
#[derive(Clone, Copy)]
enum Src {
    Col(usize),
    Part(usize),
}

fn resolve(
    object: &str,
    wanted: &[String],
    available: &[String],
    partitions: &[(String, String)],
) -> Result<Vec<Src>, FormatError> {
    wanted
        .iter()
        .map(|w| {
            if let Some(i) = available.iter().position(|a| a.eq_ignore_ascii_case(w)) {
                Ok(Src::Col(i))
            } else if let Some(i) = partitions
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(w))
            {
                Ok(Src::Part(i))
            } else {
                Err(bad(
                    object,
                    format!(
                        "no column `{w}` (columns: {}{})",
                        columns_excerpt(available),
                        if partitions.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; partition keys: {}",
                                partitions
                                    .iter()
                                    .map(|(k, _)| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ),
                ))
            }
        })
        .collect()
}

/// The column names an error lists: the first few, each quoted at most in part, so that a
/// huge header (a file of one 1 GB line) makes a short message.
fn columns_excerpt(available: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = available
        .iter()
        .take(SHOWN)
        .map(|c| {
            if c.chars().count() > eventide_engine::error::EXCERPT_CHARS {
                eventide_engine::error::excerpt(c)
            } else {
                c.clone()
            }
        })
        .collect();
    if available.len() > SHOWN {
        out.push(format!("… {} more", available.len() - SHOWN));
    }
    out.join(", ")
}

/// Loads one object's rows into `builder`. `wanted` names the join columns then the
/// enriched columns (the builder's layout order); `partitions` are the object's Hive
/// partition values; `object` names it in errors.
pub fn load_object(
    data: Vec<u8>,
    format: &TableFormat,
    wanted: &[String],
    partitions: &[(String, String)],
    object: &str,
    builder: &mut TableBuilder,
) -> Result<(), FormatError> {
    match format.kind {
        FormatKind::Csv => load_csv(&data, format, wanted, partitions, object, builder),
        FormatKind::Jsonl => load_jsonl(&data, wanted, partitions, object, builder),
        FormatKind::Parquet => load_parquet(data, wanted, partitions, object, builder),
    }
}

/// Splits one CSV line into fields, honouring `quote` (doubled quotes escape a quote).
fn split_csv<'a>(line: &'a str, delim: u8, quote: Option<u8>, out: &mut Vec<Cow<'a, str>>) {
    out.clear();
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        if let Some(q) = quote.filter(|&q| b.get(i) == Some(&q)) {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match b[j..].iter().position(|&c| c == q) {
                    None => {
                        s.push_str(&line[j..]);
                        j = b.len();
                        break;
                    }
                    Some(n) => {
                        s.push_str(&line[j..j + n]);
                        j += n + 1;
                        if b.get(j) == Some(&q) {
                            s.push(q as char);
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            while j < b.len() && b[j] != delim {
                j += 1;
            }
            out.push(Cow::Owned(s));
            if j >= b.len() {
                return;
            }
            i = j + 1;
        } else {
            match b[i..].iter().position(|&c| c == delim) {
                Some(n) => {
                    out.push(Cow::Borrowed(&line[i..i + n]));
                    i += n + 1;
                }
                None => {
                    out.push(Cow::Borrowed(&line[i..]));
                    return;
                }
            }
        }
    }
}

fn load_csv(
    data: &[u8],
    format: &TableFormat,
    wanted: &[String],
    partitions: &[(String, String)],
    object: &str,
    builder: &mut TableBuilder,
) -> Result<(), FormatError> {
    let text = std::str::from_utf8(data).map_err(|e| bad(object, format!("not UTF-8: {e}")))?;
    let mut lines = text.lines();
    let mut fields = Vec::new();
    let header: Vec<String> = if format.header {
        let Some(h) = lines.next() else {
            return Ok(());
        };
        split_csv(
            h.trim_start_matches('\u{feff}'),
            format.delimiter,
            format.quote,
            &mut fields,
        );
        fields.iter().map(|f| f.trim().to_string()).collect()
    } else {
        format.columns.clone()
    };
    let src = resolve(object, wanted, &header, partitions)?;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        split_csv(line, format.delimiter, format.quote, &mut fields);
        let mut cells: Vec<Value<'_>> = Vec::with_capacity(wanted.len());
        for s in &src {
            cells.push(match *s {
                Src::Col(i) => match fields.get(i) {
                    Some(f) if f.as_ref() == "\\N" => Value::Null,
                    Some(f) => Value::Str(Cow::Borrowed(f.as_ref())),
                    None => Value::Null,
                },
                Src::Part(i) => Value::Str(Cow::Borrowed(partitions[i].1.as_str())),
            });
        }
        builder
            .push_row(&cells)
            .map_err(|source| FormatError::Table {
                object: object.to_string(),
                source,
            })?;
    }
    Ok(())
}

fn load_jsonl(
    data: &[u8],
    wanted: &[String],
    partitions: &[(String, String)],
    object: &str,
    builder: &mut TableBuilder,
) -> Result<(), FormatError> {
    let mut cells: Vec<Value<'_>> = Vec::with_capacity(wanted.len());
    for (n, line) in data.split(|&c| c == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
            .map_err(|e| bad(object, format!("line {}: not a JSON object: {e}", n + 1)))?;
        cells.clear();
        for w in wanted {
            let v = obj.get(w.as_str()).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(w))
                    .map(|(_, v)| v)
            });
            cells.push(match v {
                Some(serde_json::Value::String(s)) => Value::Str(Cow::Owned(s.clone())),
                Some(serde_json::Value::Number(x)) => Value::Num(x.as_f64().unwrap_or(f64::NAN)),
                Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
                Some(serde_json::Value::Null) => Value::Null,
                Some(other) => Value::Str(Cow::Owned(other.to_string())),
                None => match partitions.iter().find(|(k, _)| k.eq_ignore_ascii_case(w)) {
                    Some((_, v)) => Value::Str(Cow::Owned(v.clone())),
                    None => Value::Null,
                },
            });
        }
        builder
            .push_row(&cells)
            .map_err(|source| FormatError::Table {
                object: object.to_string(),
                source,
            })?;
    }
    Ok(())
}

fn load_parquet(
    data: Vec<u8>,
    wanted: &[String],
    partitions: &[(String, String)],
    object: &str,
    builder: &mut TableBuilder,
) -> Result<(), FormatError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(bytes_of(data))
        .map_err(|e| bad(object, format!("not a Parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let available: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let src = resolve(object, wanted, &available, partitions)?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| bad(object, format!("cannot read rows: {e}")))?;
    for row in rows {
        let row = row.map_err(|e| bad(object, format!("cannot read a row: {e}")))?;
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let mut cells: Vec<Value<'_>> = Vec::with_capacity(wanted.len());
        for s in &src {
            cells.push(match *s {
                Src::Col(i) => match fields.get(i) {
                    Some(f) => field_value(f),
                    None => Value::Null,
                },
                Src::Part(i) => Value::Str(Cow::Borrowed(partitions[i].1.as_str())),
            });
        }
        builder
            .push_row(&cells)
            .map_err(|source| FormatError::Table {
                object: object.to_string(),
                source,
            })?;
    }
    Ok(())
}

fn bytes_of(data: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(data)
}

fn field_value(f: &parquet::record::Field) -> Value<'_> {
    use parquet::record::Field;
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => Value::Num(*n as f64),
        Field::Short(n) => Value::Num(*n as f64),
        Field::Int(n) => Value::Num(*n as f64),
        Field::Long(n) => Value::Num(*n as f64),
        Field::UByte(n) => Value::Num(*n as f64),
        Field::UShort(n) => Value::Num(*n as f64),
        Field::UInt(n) => Value::Num(*n as f64),
        Field::ULong(n) => Value::Num(*n as f64),
        Field::Float(n) => Value::Num(*n as f64),
        Field::Double(n) => Value::Num(*n),
        Field::Str(s) => Value::Str(Cow::Borrowed(s.as_str())),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::Str(Cow::Borrowed(s)),
            Err(_) => Value::Null,
        },
        other => Value::Str(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_engine::enrich::table::Layout;
    use eventide_engine::spec::FieldType;

    #[test]
    fn csv_quotes_delimiters_and_partitions() {
        let mut out = Vec::new();
        split_csv(r#"a,"b,""c""",,d"#, b',', Some(b'"'), &mut out);
        assert_eq!(out, vec!["a", "b,\"c\"", "", "d"]);
        split_csv("x|y", b'|', None, &mut out);
        assert_eq!(out, vec!["x", "y"]);

        let layout = Layout::new(
            "t",
            vec![FieldType::String],
            vec![FieldType::Number, FieldType::String],
            10,
            1 << 20,
        );
        let mut b = TableBuilder::new(layout);
        let f = TableFormat {
            delimiter: b'|',
            header: false,
            columns: vec!["id".into(), "lim".into()],
            ..TableFormat::new(FormatKind::Csv)
        };
        let wanted = ["id".to_string(), "lim".to_string(), "region".to_string()];
        load_object(
            b"a|1\nb|\\N\n".to_vec(),
            &f,
            &wanted,
            &[("region".into(), "eu".into())],
            "region=eu/x",
            &mut b,
        )
        .unwrap();
        let t = b.finish("v");
        assert_eq!(t.get("a").unwrap().value(1), Value::Str("eu".into()));
        assert_eq!(t.get("b").unwrap().value(0), Value::Null);
        let mut b = TableBuilder::new(Layout::new(
            "t",
            vec![FieldType::String],
            vec![],
            10,
            1 << 20,
        ));
        let e = load_object(
            b"id\n".to_vec(),
            &TableFormat::new(FormatKind::Csv),
            &["key".to_string()],
            &[],
            "s3://b/k.csv",
            &mut b,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "s3://b/k.csv: no column `key` (columns: id)");
    }

    #[test]
    fn json_lines() {
        let layout = Layout::new(
            "t",
            vec![FieldType::Number],
            vec![FieldType::String],
            10,
            1 << 20,
        );
        let mut b = TableBuilder::new(layout);
        load_object(
            b"{\"id\":1,\"tier\":\"gold\"}\n\n{\"id\":2}\n".to_vec(),
            &TableFormat::new(FormatKind::Jsonl),
            &["id".to_string(), "tier".to_string()],
            &[],
            "x",
            &mut b,
        )
        .unwrap();
        let t = b.finish("v");
        assert_eq!(t.get("1").unwrap().value(0), Value::Str("gold".into()));
        assert_eq!(t.get("2").unwrap().value(0), Value::Null);
        let mut b = TableBuilder::new(Layout::new(
            "t",
            vec![FieldType::Number],
            vec![],
            10,
            1 << 20,
        ));
        let e = load_object(
            b"[1]".to_vec(),
            &TableFormat::new(FormatKind::Jsonl),
            &["id".to_string()],
            &[],
            "x",
            &mut b,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("x: line 1: not a JSON object"),
            "{e}"
        );
    }
}
