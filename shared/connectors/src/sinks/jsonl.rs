//! JSON-lines file sink: one object per pane, with a deterministic `pane_id`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eventide_engine::pane::Pane;
use serde_json::{Map, Value};

use super::ordered::RowWriter;
use super::{Layout, RowFormat};
use crate::error::ConnectorError;

/// Formats panes as JSON objects, one per line.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    layout: Layout,
    name: String,
}

impl JsonFormat {
    pub fn new(layout: Layout, aggregation: String) -> Self {
        JsonFormat {
            layout,
            name: aggregation,
        }
    }
}

impl RowFormat for JsonFormat {
    fn header(&self) -> Vec<u8> {
        Vec::new()
    }

    fn row(&mut self, buf: &mut Vec<u8>, p: &Pane<'_>) {
        let m = pane_json(p, &self.layout, &self.name);
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
        layout: Layout,
        aggregation: String,
    ) -> Result<Self, ConnectorError> {
        let file = super::create_file(path).map_err(|source| ConnectorError::Write {
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

/// The JSON object of a pane: group-by fields, window, aggregates, timing, index, retraction, id.
pub fn pane_json(p: &Pane<'_>, layout: &Layout, aggregation: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("aggregation".into(), Value::from(aggregation));
    for (name, part) in layout.group_by.iter().zip(p.key_parts()) {
        m.insert(name.clone(), Value::from(part.as_deref()));
    }
    m.insert("window_start".into(), Value::from(p.window.start));
    m.insert("window_end".into(), Value::from(p.window.end));
    for ((name, _), v) in layout.aggregates.iter().zip(p.values) {
        m.insert(name.clone(), v.map_or(Value::Null, Value::from));
    }
    m.insert("timing".into(), Value::from(p.timing.as_str()));
    m.insert("pane_index".into(), Value::from(p.index));
    m.insert("retraction".into(), Value::from(p.retraction));
    m.insert("pane_id".into(), Value::from(p.id(aggregation)));
    m
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
