//! JSON-lines file sink: one object per pane, with a deterministic `pane_id`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eventide_engine::pane::Pane;
use serde_json::{Map, Value};

use super::ordered::RowWriter;
use super::Layout;
use crate::error::ConnectorError;

/// Writes one JSON object per pane.
pub struct JsonRows {
    path: PathBuf,
    out: BufWriter<File>,
    layout: Layout,
    name: String,
}

impl JsonRows {
    /// Creates (truncates) the file.
    pub fn create(
        path: &Path,
        layout: Layout,
        aggregation: String,
    ) -> Result<Self, ConnectorError> {
        let file = File::create(path).map_err(|source| ConnectorError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonRows {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            layout,
            name: aggregation,
        })
    }
}

/// The JSON object of a pane: group-by fields, window, aggregates, timing, index, retraction, id.
pub fn pane_json(p: &Pane<'_>, layout: &Layout, aggregation: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("aggregation".into(), Value::from(aggregation));
    for (name, part) in layout.group_by.iter().zip(p.key_parts()) {
        m.insert(name.clone(), Value::from(part));
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
        let m = pane_json(p, &self.layout, &self.name);
        let err = |source| ConnectorError::Write {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, &m).map_err(|e| err(e.into()))?;
        self.out.write_all(b"\n").map_err(err)
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().map_err(|source| ConnectorError::Write {
            path: self.path.clone(),
            source,
        })
    }
}
