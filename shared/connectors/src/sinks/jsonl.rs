//! JSON-lines file sink: one object per pane ([`Pane::to_json`], the shape of every JSON
//! sink), with a deterministic `pane_id`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eventide_engine::pane::Pane;

use super::ordered::RowWriter;
use super::rows::{RowCell, RowFormat, RowLayout};
use crate::error::ConnectorError;

/// Formats panes as JSON objects, one per line.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    group_by: Vec<String>,
    aggregates: Vec<String>,
    name: String,
    /// A rows window's columns (empty for the other windows).
    row: Vec<(String, RowCell)>,
}

impl JsonFormat {
    pub fn new(layout: RowLayout, aggregation: String) -> Self {
        JsonFormat {
            group_by: layout.group_by,
            aggregates: layout.aggregates.into_iter().map(|(n, _)| n).collect(),
            name: aggregation,
            row: layout.row,
        }
    }

    /// The object of a rows window's row: `aggregation`, its columns by name and `pane_id`.
    fn rows_object(&self, p: &Pane<'_>) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let parts: Vec<_> = p.key_parts().collect();
        let mut m = serde_json::Map::new();
        m.insert("aggregation".into(), Value::from(self.name.as_str()));
        for (name, cell) in &self.row {
            let v = match *cell {
                RowCell::Key(k) => Value::from(parts.get(k).and_then(|x| x.as_deref())),
                RowCell::Time => Value::from(p.window.start),
                RowCell::Value(i, _) => p
                    .values
                    .get(i)
                    .copied()
                    .flatten()
                    .map_or(Value::Null, Value::from),
            };
            m.insert(name.clone(), v);
        }
        m.insert("pane_id".into(), Value::from(p.id(&self.name)));
        m
    }
}

impl RowFormat for JsonFormat {
    fn header(&self) -> Vec<u8> {
        Vec::new()
    }

    fn row(&mut self, buf: &mut Vec<u8>, p: &Pane<'_>) {
        let m = if self.row.is_empty() {
            p.to_json(&self.name, &self.group_by, &self.aggregates)
        } else {
            self.rows_object(p)
        };
        // A map of strings and numbers always serializes.
        let _ = serde_json::to_writer(&mut *buf, &m);
        buf.push(b'\n');
    }
}

/// Writes one JSON object per pane.
pub struct JsonRows {
    path: PathBuf,
    out: BufWriter<File>,
    format: JsonFormat,
    buf: Vec<u8>,
}

impl JsonRows {
    /// Creates (truncates) the file.
    pub fn create(
        path: &Path,
        layout: RowLayout,
        aggregation: String,
    ) -> Result<Self, ConnectorError> {
        let file = super::rows::create_file(path).map_err(|source| ConnectorError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonRows {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            format: JsonFormat::new(layout, aggregation),
            buf: Vec::new(),
        })
    }
}

impl RowWriter for JsonRows {
    fn row(&mut self, p: &Pane<'_>) -> Result<(), ConnectorError> {
        self.buf.clear();
        self.format.row(&mut self.buf, p);
        self.out
            .write_all(&self.buf)
            .map_err(|source| ConnectorError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().map_err(|source| ConnectorError::Write {
            path: self.path.clone(),
            source,
        })
    }
}
