//! Decoding enrichment-table objects (CSV, JSON lines, Parquet) into a [`TableBuilder`].
//!
//! Every object of a table is read the same way whatever its origin (S3 or a local file):
//! the needed columns (the join columns, then the enriched ones) are found by name in the
//! object's header, JSON keys or Parquet schema, or among the object's Hive partition
//! values (`.../region=eu/part-0.csv`).
//!
//! ```
//! use eventide_connectors::tables::formats::load_object;
//! use eventide_engine::enrich::spec::{FormatKind, TableFormat};
//! use eventide_engine::enrich::table::{TableShape, TableBuilder};
//! use eventide_engine::record::Value;
//! use eventide_engine::spec::FieldType;
//! let shape = TableShape::new("t", vec![FieldType::String], vec![FieldType::Number], 10, 1 << 20);
//! let mut b = TableBuilder::new(shape);
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

/// Loads one object's rows into `builder`: [`ObjectLoader`] over bytes already in memory.
/// `wanted` names the join columns then the enriched columns (the builder's layout order);
/// `partitions` are the object's Hive partition values; `object` names it in errors.
///
/// # Errors
/// As [`ObjectLoader::push`] and [`ObjectLoader::finish`].
pub fn load_object(
    data: Vec<u8>,
    format: &TableFormat,
    wanted: &[String],
    partitions: &[(String, String)],
    object: &str,
    builder: &mut TableBuilder,
) -> Result<(), FormatError> {
    let mut loader = ObjectLoader::new(format, wanted, partitions, object, builder);
    loader.push(&data)?;
    loader.finish()
}

/// Loads one object's rows as its bytes arrive, so that memory follows the table, not the
/// object: CSV and JSON lines are parsed line by line as chunks come in, and an object
/// that would not fit the table's `max_bytes` is refused early: a line longer than
/// `max_bytes`, or a Parquet object (read whole, for its footer) larger than `max_bytes`.
/// The table's own bounds (`max_rows`, `max_bytes`) are checked as rows are added.
///
/// ```
/// use eventide_connectors::tables::formats::ObjectLoader;
/// use eventide_engine::enrich::spec::{FormatKind, TableFormat};
/// use eventide_engine::enrich::table::{TableShape, TableBuilder};
/// use eventide_engine::spec::FieldType;
/// let shape = TableShape::new("t", vec![FieldType::String], vec![FieldType::Number], 10, 1 << 20);
/// let mut b = TableBuilder::new(shape);
/// let (format, cols) = (TableFormat::new(FormatKind::Csv), ["id".into(), "n".into()]);
/// let mut loader = ObjectLoader::new(&format, &cols, &[], "x.csv", &mut b);
/// for chunk in [&b"id,n\na,"[..], b"1\nb,2"] {
///     loader.push(chunk).unwrap();
/// }
/// loader.finish().unwrap();
/// assert_eq!(b.finish("v").rows(), 2);
/// ```
pub struct ObjectLoader<'a> {
    format: &'a TableFormat,
    wanted: &'a [String],
    partitions: &'a [(String, String)],
    object: &'a str,
    builder: &'a mut TableBuilder,
    /// Bytes not parsed yet: a line's start, or a whole Parquet object.
    pending: Vec<u8>,
    /// Lines parsed so far (for errors).
    line: u64,
    /// CSV: where each wanted column is, once the header (or the declared columns) is known.
    csv: Option<Vec<Src>>,
}

impl<'a> ObjectLoader<'a> {
    /// A loader of one object into `builder`.
    pub fn new(
        format: &'a TableFormat,
        wanted: &'a [String],
        partitions: &'a [(String, String)],
        object: &'a str,
        builder: &'a mut TableBuilder,
    ) -> Self {
        ObjectLoader {
            format,
            wanted,
            partitions,
            object,
            builder,
            pending: Vec::new(),
            line: 0,
            csv: None,
        }
    }

    fn max_bytes(&self) -> u64 {
        self.builder.shape().max_bytes
    }

    fn too_big(&self, what: &str) -> FormatError {
        bad(
            self.object,
            format!(
                "{what} is over the table's max_bytes ({} bytes); raise `max_bytes` of enrichment `{}` to load it",
                self.max_bytes(),
                self.builder.shape().name
            ),
        )
    }

    /// Takes the object's next bytes.
    ///
    /// # Errors
    /// A line that cannot be parsed, a row the table refuses (over `max_rows` or
    /// `max_bytes`, a bad key), or an object too large to hold (see the type's docs).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), FormatError> {
        if self.format.kind == FormatKind::Parquet {
            if (self.pending.len() + chunk.len()) as u64 > self.max_bytes() {
                return Err(self.too_big("the Parquet object (read whole)"));
            }
            self.pending.extend_from_slice(chunk);
            return Ok(());
        }
        let mut rest = chunk;
        while let Some(n) = rest.iter().position(|&c| c == b'\n') {
            let (line, tail) = rest.split_at(n);
            rest = &tail[1..];
            if self.pending.is_empty() {
                self.line(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.check_line_length(whole.len())?;
                self.line(&whole)?;
            }
        }
        self.check_line_length(self.pending.len() + rest.len())?;
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    fn check_line_length(&self, len: usize) -> Result<(), FormatError> {
        if len as u64 > self.max_bytes() {
            return Err(self.too_big(&format!("line {} ({len} bytes so far)", self.line + 1)));
        }
        Ok(())
    }

    /// The end of the object: parses what is left.
    ///
    /// # Errors
    /// As [`ObjectLoader::push`].
    pub fn finish(mut self) -> Result<(), FormatError> {
        let rest = std::mem::take(&mut self.pending);
        match self.format.kind {
            FormatKind::Parquet => load_parquet(
                rest,
                self.wanted,
                self.partitions,
                self.object,
                self.builder,
            ),
            FormatKind::Csv if rest.is_empty() && self.csv.is_none() && !self.format.header => {
                // An empty object still names its columns: a wrong one is an error.
                self.resolve_declared()
            }
            _ if rest.is_empty() => Ok(()),
            _ => self.line(&rest),
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), FormatError> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.format.kind {
            FormatKind::Csv => self.csv_line(line),
            FormatKind::Jsonl => self.json_line(line),
            FormatKind::Parquet => Ok(()),
        }
    }

    fn csv_line(&mut self, line: &[u8]) -> Result<(), FormatError> {
        let object = self.object;
        let text = std::str::from_utf8(line)
            .map_err(|e| bad(object, format!("line {}: not UTF-8: {e}", self.line)))?;
        if self.csv.is_none() {
            if self.format.header {
                let mut fields = Vec::new();
                let header = text.trim_start_matches('\u{feff}');
                split_csv(
                    header,
                    self.format.delimiter,
                    self.format.quote,
                    &mut fields,
                );
                let names: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
                self.csv = Some(resolve(object, self.wanted, &names, self.partitions)?);
                return Ok(());
            }
            self.resolve_declared()?;
        }
        self.csv_row(text)
    }

    /// CSV without a header: the wanted columns among the declared ones.
    fn resolve_declared(&mut self) -> Result<(), FormatError> {
        let columns = &self.format.columns;
        self.csv = Some(resolve(self.object, self.wanted, columns, self.partitions)?);
        Ok(())
    }

    fn csv_row(&mut self, text: &str) -> Result<(), FormatError> {
        if text.is_empty() {
            return Ok(());
        }
        let Some(src) = &self.csv else {
            return Ok(());
        };
        let mut fields = Vec::new();
        split_csv(text, self.format.delimiter, self.format.quote, &mut fields);
        let mut cells: Vec<Value<'_>> = Vec::with_capacity(self.wanted.len());
        for s in src {
            cells.push(match *s {
                Src::Col(i) => match fields.get(i) {
                    Some(f) if f.as_ref() == "\\N" => Value::Null,
                    Some(f) => Value::Str(Cow::Borrowed(f.as_ref())),
                    None => Value::Null,
                },
                Src::Part(i) => Value::Str(Cow::Borrowed(self.partitions[i].1.as_str())),
            });
        }
        push(self.builder, self.object, &cells)
    }

    fn json_line(&mut self, line: &[u8]) -> Result<(), FormatError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
            .map_err(|e| {
                bad(
                    self.object,
                    format!("line {}: not a JSON object: {e}", self.line),
                )
            })?;
        let mut cells: Vec<Value<'_>> = Vec::with_capacity(self.wanted.len());
        for w in self.wanted {
            let v = obj.get(w.as_str()).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(w))
                    .map(|(_, v)| v)
            });
            cells.push(match v {
                Some(serde_json::Value::String(s)) => Value::Str(Cow::Borrowed(s.as_str())),
                Some(serde_json::Value::Number(x)) => Value::Num(x.as_f64().unwrap_or(f64::NAN)),
                Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
                Some(serde_json::Value::Null) => Value::Null,
                Some(other) => Value::Str(Cow::Owned(other.to_string())),
                None => match self
                    .partitions
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(w))
                {
                    Some((_, v)) => Value::Str(Cow::Borrowed(v.as_str())),
                    None => Value::Null,
                },
            });
        }
        push(self.builder, self.object, &cells)
    }
}

fn push(builder: &mut TableBuilder, object: &str, cells: &[Value<'_>]) -> Result<(), FormatError> {
    builder
        .push_row(cells)
        .map_err(|source| FormatError::Table {
            object: object.to_string(),
            source,
        })
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
    use eventide_engine::enrich::table::TableShape;
    use eventide_engine::spec::FieldType;

    #[test]
    fn csv_quotes_delimiters_and_partitions() {
        let mut out = Vec::new();
        split_csv(r#"a,"b,""c""",,d"#, b',', Some(b'"'), &mut out);
        assert_eq!(out, vec!["a", "b,\"c\"", "", "d"]);
        split_csv("x|y", b'|', None, &mut out);
        assert_eq!(out, vec!["x", "y"]);

        let shape = TableShape::new(
            "t",
            vec![FieldType::String],
            vec![FieldType::Number, FieldType::String],
            10,
            1 << 20,
        );
        let mut b = TableBuilder::new(shape);
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
        let mut b = TableBuilder::new(TableShape::new(
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
        let shape = TableShape::new(
            "t",
            vec![FieldType::Number],
            vec![FieldType::String],
            10,
            1 << 20,
        );
        let mut b = TableBuilder::new(shape);
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
        let mut b = TableBuilder::new(TableShape::new(
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

    fn builder(max_rows: u64, max_bytes: u64) -> TableBuilder {
        TableBuilder::new(TableShape::new(
            "t",
            vec![FieldType::String],
            vec![FieldType::Number],
            max_rows,
            max_bytes,
        ))
    }

    #[test]
    fn chunks_split_anywhere_give_the_same_table() {
        let data = "id,n,other\r\na,1,x\n\"b,\"\"c\",2,y\n\nd,3,z";
        let cols = ["id".to_string(), "n".to_string()];
        let csv = TableFormat::new(FormatKind::Csv);
        let mut whole = builder(10, 1 << 20);
        load_object(data.as_bytes().to_vec(), &csv, &cols, &[], "x", &mut whole).unwrap();
        let whole = whole.finish("v");
        assert_eq!(whole.rows(), 3);
        for cut in 0..data.len() {
            let mut b = builder(10, 1 << 20);
            let mut loader = ObjectLoader::new(&csv, &cols, &[], "x", &mut b);
            let (x, y) = data.as_bytes().split_at(cut);
            loader.push(x).unwrap();
            loader.push(y).unwrap();
            loader.finish().unwrap();
            let t = b.finish("v");
            assert_eq!(t.rows(), 3, "cut at {cut}");
            for key in ["a", "b,\"c", "d"] {
                assert_eq!(
                    t.get(key).map(|r| r.value(0)),
                    whole.get(key).map(|r| r.value(0))
                );
            }
        }
    }

    /// A 1 GB object with `max_bytes = 1 MiB` is refused after about a megabyte read, and
    /// a single line longer than `max_bytes` as soon as it is: the error names the setting.
    #[test]
    fn an_object_too_large_for_the_table_is_refused_early() {
        let cols = ["id".to_string(), "n".to_string()];
        let csv = TableFormat::new(FormatKind::Csv);
        let mut b = builder(u32::MAX as u64, 1 << 20);
        let mut loader = ObjectLoader::new(&csv, &cols, &[], "big.csv", &mut b);
        loader.push(b"id,n\n").unwrap();
        let mut pushed = 0usize;
        let mut row = 0u64;
        let err = loop {
            let mut chunk = String::new();
            while chunk.len() < 1 << 16 {
                chunk.push_str(&format!("key-{row},{row}\n"));
                row += 1;
            }
            pushed += chunk.len();
            assert!(pushed < 1 << 30, "read 1 GB without refusing it");
            if let Err(e) = loader.push(chunk.as_bytes()) {
                break e;
            }
        };
        assert!(pushed < 8 << 20, "refused after {pushed} bytes");
        assert!(err.to_string().contains("max_bytes"), "{err}");

        for kind in [FormatKind::Csv, FormatKind::Jsonl, FormatKind::Parquet] {
            let format = TableFormat::new(kind);
            let mut b = builder(10, 1 << 10);
            let mut loader = ObjectLoader::new(&format, &cols, &[], "one-line", &mut b);
            let mut refused = None;
            for _ in 0..100 {
                if let Err(e) = loader.push(&[b'a'; 100]) {
                    refused = Some(e);
                    break;
                }
            }
            let e = refused.expect("a line over max_bytes is refused");
            let msg = e.to_string();
            assert!(msg.starts_with("one-line: "), "{msg}");
            assert!(msg.contains("raise `max_bytes` of enrichment `t`"), "{msg}");
        }
    }

    #[test]
    fn a_header_less_csv_checks_its_declared_columns_even_when_empty() {
        let format = TableFormat {
            header: false,
            columns: vec!["id".into()],
            ..TableFormat::new(FormatKind::Csv)
        };
        let cols = ["id".to_string(), "n".to_string()];
        let mut b = builder(10, 1 << 20);
        let e = load_object(Vec::new(), &format, &cols, &[], "e.csv", &mut b).unwrap_err();
        assert!(e.to_string().contains("no column `n`"), "{e}");
    }
}
