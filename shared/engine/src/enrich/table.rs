//! The in-memory lookup table of a slow table: one version, immutable once built.
//!
//! Keys live in one string arena and the hash index holds only row numbers (4 bytes a
//! slot); values are stored by column (numbers as `f64`, strings in an arena with end
//! offsets), so a row of a short key and a few columns takes a few dozen bytes. A build
//! fails with [`TableError::TooLarge`] as soon as it passes its row or byte bound.
//!
//! ```
//! use eventide_engine::enrich::table::{TableShape, TableBuilder};
//! use eventide_engine::record::Value;
//! use eventide_engine::spec::FieldType;
//! let shape = TableShape::new("plans", vec![FieldType::String], vec![FieldType::Number], 10, 1 << 20);
//! let mut b = TableBuilder::new(shape);
//! b.push_row(&[Value::Str("s1".into()), Value::Str("12.5".into())]).unwrap();
//! let t = b.finish("v1");
//! assert_eq!(t.get("s1").unwrap().value(0), Value::Num(12.5));
//! assert!(t.get("s2").is_none());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use thiserror::Error;

use crate::record::Value;
use crate::spec::schema::FieldType;

/// Separates the parts of a composite key (text parts are escaped: see [`crate::key`]).
pub const KEY_PART_SEP: char = crate::key::SEP;

/// A table that cannot be built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TableError {
    /// The table passed its configured bound.
    #[error("enrichment `{table}`: table exceeds {what} (max_{what} = {limit}); raise the bound or shrink the table")]
    TooLarge {
        table: String,
        what: &'static str,
        limit: u64,
    },
    /// A row's value does not fit the declared column type.
    #[error("enrichment `{table}`: row {row}, column `{column}`: {reason}")]
    Value {
        table: String,
        row: u64,
        column: String,
        reason: String,
    },
}

/// The shape of a table: key types (of the record fields joined on), column types, bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct TableShape {
    pub name: String,
    pub key_types: Vec<FieldType>,
    pub column_types: Vec<FieldType>,
    /// Column names, for errors (defaults to positions).
    pub column_names: Vec<String>,
    pub max_rows: u64,
    pub max_bytes: u64,
}

impl TableShape {
    /// A shape with columns named by position.
    pub fn new(
        name: &str,
        key_types: Vec<FieldType>,
        column_types: Vec<FieldType>,
        max_rows: u64,
        max_bytes: u64,
    ) -> Self {
        let column_names = (0..column_types.len()).map(|i| format!("#{i}")).collect();
        TableShape {
            name: name.to_string(),
            key_types,
            column_types,
            column_names,
            max_rows,
            max_bytes,
        }
    }
}

#[derive(Debug)]
enum Column {
    /// Null is stored as NaN.
    Num(Vec<f64>),
    /// `ends[i]` is the end of row i's string in `arena`; null rows are set in `nulls`.
    Str {
        arena: String,
        ends: Vec<u32>,
        nulls: Vec<u64>,
    },
    /// 0 false, 1 true, 2 null.
    Bool(Vec<u8>),
}

impl Column {
    fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::Number => Column::Num(Vec::new()),
            FieldType::String => Column::Str {
                arena: String::new(),
                ends: Vec::new(),
                nulls: Vec::new(),
            },
            FieldType::Bool => Column::Bool(Vec::new()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Column::Num(v) => v.capacity() * 8,
            Column::Str { arena, ends, nulls } => {
                arena.capacity() + ends.capacity() * 4 + nulls.capacity() * 8
            }
            Column::Bool(v) => v.capacity(),
        }
    }

    fn shrink(&mut self) {
        match self {
            Column::Num(v) => v.shrink_to_fit(),
            Column::Str { arena, ends, nulls } => {
                arena.shrink_to_fit();
                ends.shrink_to_fit();
                nulls.shrink_to_fit();
            }
            Column::Bool(v) => v.shrink_to_fit(),
        }
    }
}

/// One immutable version of a slow table.
pub struct LookupTable {
    name: String,
    version: String,
    index: HashTable<u32>,
    keys: String,
    key_ends: Vec<u32>,
    columns: Vec<Column>,
    duplicates: u64,
}

impl fmt::Debug for LookupTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookupTable")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("rows", &self.rows())
            .field("bytes", &self.heap_bytes())
            .finish()
    }
}

fn hash(key: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

fn key_at<'k>(keys: &'k str, ends: &[u32], i: u32) -> &'k str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &keys[start..ends[i] as usize]
}

impl LookupTable {
    /// The table's name (its enrichment's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version this table was built from (a Glue VersionId, S3 ETags digest, …).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of distinct keys.
    pub fn rows(&self) -> usize {
        self.index.len()
    }

    /// Rows whose key repeated an earlier row's; the last row with a key wins.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Bytes of memory the table holds (allocated capacity of every part).
    pub fn heap_bytes(&self) -> usize {
        // A hashbrown slot is the value plus one control byte.
        self.index.capacity() * 5
            + self.keys.capacity()
            + self.key_ends.capacity() * 4
            + self.columns.iter().map(Column::bytes).sum::<usize>()
    }

    /// The row with this encoded key (see [`encode_key_part`]).
    #[inline]
    pub fn get(&self, key: &str) -> Option<Row<'_>> {
        let (keys, ends) = (&self.keys, &self.key_ends);
        self.index
            .find(hash(key), |&i| key_at(keys, ends, i) == key)
            .map(|&i| Row {
                table: self,
                row: i as usize,
            })
    }
}

/// One row of a [`LookupTable`].
#[derive(Clone, Copy)]
pub struct Row<'t> {
    table: &'t LookupTable,
    row: usize,
}

impl Row<'_> {
    /// The value of column `col` (in the shape's column order).
    pub fn value(&self, col: usize) -> Value<'static> {
        match &self.table.columns[col] {
            Column::Num(v) => {
                let n = v[self.row];
                if n.is_nan() {
                    Value::Null
                } else {
                    Value::Num(n)
                }
            }
            Column::Str { arena, ends, nulls } => {
                if nulls
                    .get(self.row / 64)
                    .is_some_and(|w| w & (1 << (self.row % 64)) != 0)
                {
                    return Value::Null;
                }
                let start = if self.row == 0 {
                    0
                } else {
                    ends[self.row - 1] as usize
                };
                Value::Str(Cow::Owned(arena[start..ends[self.row] as usize].to_owned()))
            }
            Column::Bool(v) => match v[self.row] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => Value::Null,
            },
        }
    }
}

/// Appends one part of a join key, normalised to the type of the record field joined on,
/// so that a table's `"42"` text and a record's `42.0` number meet. Returns `false` for a
/// null part (a null key never matches, as in SQL).
pub fn encode_key_part(buf: &mut String, v: &Value<'_>, ty: FieldType) -> Result<bool, String> {
    use std::fmt::Write;
    match (v, ty) {
        (Value::Null, _) => return Ok(false),
        (Value::Str(s), FieldType::Number) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(false);
            }
            let n: f64 = t
                .parse()
                .map_err(|_| format!("{} is not a number", crate::error::excerpt(s)))?;
            let _ = write!(buf, "{n}");
        }
        (Value::Str(s), FieldType::Bool) => match s.trim() {
            "true" | "TRUE" | "True" => buf.push_str("true"),
            "false" | "FALSE" | "False" => buf.push_str("false"),
            "" => return Ok(false),
            _ => return Err(format!("{} is not a bool", crate::error::excerpt(s))),
        },
        (Value::Str(s), FieldType::String) => crate::key::push_str(buf, s),
        (Value::Num(n), _) => {
            let _ = write!(buf, "{n}");
        }
        (Value::Bool(b), _) => buf.push_str(if *b { "true" } else { "false" }),
    }
    Ok(true)
}

/// Builds a [`LookupTable`] row by row within the shape's bounds.
pub struct TableBuilder {
    shape: TableShape,
    index: HashTable<u32>,
    keys: String,
    key_ends: Vec<u32>,
    columns: Vec<Column>,
    key: String,
    seen: u64,
    duplicates: u64,
}

impl TableBuilder {
    /// An empty table of this shape.
    pub fn new(shape: TableShape) -> Self {
        let columns = shape.column_types.iter().map(|&t| Column::new(t)).collect();
        TableBuilder {
            shape,
            index: HashTable::new(),
            keys: String::new(),
            key_ends: Vec::new(),
            columns,
            key: String::new(),
            seen: 0,
            duplicates: 0,
        }
    }

    /// The shape being built.
    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    fn bytes(&self) -> usize {
        self.index.capacity() * 5
            + self.keys.capacity()
            + self.key_ends.capacity() * 4
            + self.columns.iter().map(Column::bytes).sum::<usize>()
    }

    fn value_error(&self, col: usize, reason: String) -> TableError {
        TableError::Value {
            table: self.shape.name.clone(),
            row: self.seen,
            column: self
                .shape
                .column_names
                .get(col)
                .cloned()
                .unwrap_or_default(),
            reason,
        }
    }

    /// Adds a row: the key parts (in join order) then the columns (in shape order). Values
    /// are converted to the declared types (text `"12.5"` to a number, a number to text);
    /// an empty text is null for numbers and bools. A row with a null key part is skipped.
    pub fn push_row(&mut self, cells: &[Value<'_>]) -> Result<(), TableError> {
        self.seen += 1;
        let nk = self.shape.key_types.len();
        self.key.clear();
        for (i, ty) in self.shape.key_types.iter().enumerate() {
            if i > 0 {
                self.key.push(KEY_PART_SEP);
            }
            let v = cells.get(i).unwrap_or(&Value::Null);
            match encode_key_part(&mut self.key, v, *ty) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(reason) => {
                    return Err(TableError::Value {
                        table: self.shape.name.clone(),
                        row: self.seen,
                        column: format!("key part {i}"),
                        reason,
                    })
                }
            }
        }
        let h = hash(&self.key);
        let row = self.key_ends.len() as u32;
        if row as u64 >= self.shape.max_rows.saturating_add(self.duplicates) {
            return Err(TableError::TooLarge {
                table: self.shape.name.clone(),
                what: "rows",
                limit: self.shape.max_rows,
            });
        }
        // Every row is appended; a repeated key's index slot moves to the newest row (the
        // last row wins), leaving the older one unreachable.
        self.keys.push_str(&self.key);
        self.key_ends.push(self.keys.len() as u32);
        let (keys, ends) = (&self.keys, &self.key_ends);
        let key = key_at(keys, ends, row);
        match self
            .index
            .find_mut(h, |&i| i != row && key_at(keys, ends, i) == key)
        {
            Some(slot) => {
                *slot = row;
                self.duplicates += 1;
            }
            None => {
                self.index
                    .insert_unique(h, row, |&i| hash(key_at(keys, ends, i)));
            }
        }
        for c in 0..self.columns.len() {
            let v = cells.get(nk + c).unwrap_or(&Value::Null);
            self.set(c, v)?;
        }
        if self.seen.is_multiple_of(4096) && self.bytes() as u64 > self.shape.max_bytes {
            return Err(self.too_many_bytes());
        }
        Ok(())
    }

    fn too_many_bytes(&self) -> TableError {
        TableError::TooLarge {
            table: self.shape.name.clone(),
            what: "bytes",
            limit: self.shape.max_bytes,
        }
    }

    fn set(&mut self, c: usize, v: &Value<'_>) -> Result<(), TableError> {
        let row = self.key_ends.len() - 1;
        let ty = self.shape.column_types[c];
        let converted: Value<'_> = match (v, ty) {
            (Value::Str(s), FieldType::Number) => {
                let t = s.trim();
                if t.is_empty() {
                    Value::Null
                } else {
                    Value::Num(t.parse().map_err(|_| {
                        self.value_error(c, format!("{} is not a number", crate::error::excerpt(s)))
                    })?)
                }
            }
            (Value::Str(s), FieldType::Bool) => match s.trim() {
                "true" | "TRUE" | "True" => Value::Bool(true),
                "false" | "FALSE" | "False" => Value::Bool(false),
                "" => Value::Null,
                _ => {
                    return Err(
                        self.value_error(c, format!("{} is not a bool", crate::error::excerpt(s)))
                    )
                }
            },
            (Value::Num(n), FieldType::String) => Value::Str(Cow::Owned(n.to_string())),
            (Value::Bool(b), FieldType::String) => {
                Value::Str(Cow::Borrowed(if *b { "true" } else { "false" }))
            }
            (Value::Num(_), FieldType::Bool) | (Value::Bool(_), FieldType::Number) => {
                return Err(self.value_error(c, format!("{v:?} does not fit type {ty:?}")))
            }
            (v, _) => v.clone(),
        };
        match &mut self.columns[c] {
            Column::Num(vals) => {
                vals.push(converted.as_num().unwrap_or(f64::NAN));
            }
            Column::Bool(vals) => {
                let b = match converted {
                    Value::Bool(false) => 0,
                    Value::Bool(true) => 1,
                    _ => 2,
                };
                vals.push(b);
            }
            Column::Str { arena, ends, nulls } => {
                let s: &str = match &converted {
                    Value::Str(s) => s,
                    _ => "",
                };
                arena.push_str(s);
                ends.push(arena.len() as u32);
                let word = row / 64;
                if nulls.len() <= word {
                    nulls.resize(word + 1, 0);
                }
                if matches!(converted, Value::Null) {
                    nulls[word] |= 1 << (row % 64);
                }
            }
        }
        Ok(())
    }

    /// Finishes the table as version `version`. Fails if it ends over its byte bound.
    pub fn try_finish(mut self, version: &str) -> Result<LookupTable, TableError> {
        self.keys.shrink_to_fit();
        self.key_ends.shrink_to_fit();
        for c in &mut self.columns {
            c.shrink();
        }
        if self.bytes() as u64 > self.shape.max_bytes {
            return Err(self.too_many_bytes());
        }
        Ok(LookupTable {
            name: self.shape.name,
            version: version.to_string(),
            index: self.index,
            keys: self.keys,
            key_ends: self.key_ends,
            columns: self.columns,
            duplicates: self.duplicates,
        })
    }

    /// Like [`TableBuilder::try_finish`] for tables known to be within bounds (tests, docs).
    ///
    /// # Panics
    /// If the table exceeds its byte bound.
    pub fn finish(self, version: &str) -> LookupTable {
        match self.try_finish(version) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(max_rows: u64, max_bytes: u64) -> TableShape {
        TableShape::new(
            "t",
            vec![FieldType::Number, FieldType::String],
            vec![FieldType::String, FieldType::Number, FieldType::Bool],
            max_rows,
            max_bytes,
        )
    }

    #[test]
    fn composite_keys_normalise_types_and_nulls() {
        let mut b = TableBuilder::new(shape(10, 1 << 20));
        b.push_row(&[
            Value::Str("42".into()),
            Value::Str("a".into()),
            Value::Str("gold".into()),
            Value::Str("".into()),
            Value::Str("true".into()),
        ])
        .unwrap();
        // A null key part: skipped.
        b.push_row(&[Value::Null, Value::Str("a".into())]).unwrap();
        // A duplicate key: the last row wins.
        b.push_row(&[
            Value::Num(42.0),
            Value::Str("a".into()),
            Value::Str("platinum".into()),
            Value::Num(7.0),
            Value::Null,
        ])
        .unwrap();
        let t = b.finish("v");
        assert_eq!(t.rows(), 1);
        assert_eq!(t.duplicates(), 1);
        let mut key = String::new();
        encode_key_part(&mut key, &Value::Num(42.0), FieldType::Number).unwrap();
        key.push(KEY_PART_SEP);
        encode_key_part(&mut key, &Value::Str("a".into()), FieldType::String).unwrap();
        let row = t.get(&key).unwrap();
        assert_eq!(row.value(0), Value::Str("platinum".into()));
        assert_eq!(row.value(1), Value::Num(7.0));
        assert_eq!(row.value(2), Value::Null);
        assert!(t.get("42").is_none());
    }

    #[test]
    fn bounds_and_bad_values_are_clear_errors() {
        let mut b = TableBuilder::new(shape(2, 1 << 20));
        for i in 0..2 {
            b.push_row(&[Value::Num(i as f64), Value::Str("k".into())])
                .unwrap();
        }
        let e = b
            .push_row(&[Value::Num(9.0), Value::Str("k".into())])
            .unwrap_err();
        assert!(e.to_string().contains("max_rows = 2"), "{e}");
        let mut b = TableBuilder::new(shape(100, 1 << 20));
        let e = b
            .push_row(&[
                Value::Num(1.0),
                Value::Str("k".into()),
                Value::Null,
                Value::Str("lots".into()),
            ])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("row 1, column `#1`: \"lots\" is not a number"),
            "{e}"
        );
        // A huge bad value is quoted in part: the message stays short.
        let mut b = TableBuilder::new(shape(100, 1 << 30));
        let huge = "9".repeat(1 << 20) + "x";
        let e = b
            .push_row(&[Value::Str(huge.as_str().into()), Value::Str("k".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.len() < 300 && e.contains("(1048577 bytes)"),
            "{}",
            &e[..300.min(e.len())]
        );
        let mut b = TableBuilder::new(shape(1000, 64));
        for i in 0..10 {
            b.push_row(&[Value::Num(i as f64), Value::Str("k".into())])
                .unwrap();
        }
        assert!(matches!(
            b.try_finish("v"),
            Err(TableError::TooLarge { what: "bytes", .. })
        ));
    }
}
