//! What every file sink shares: the [`PaneSink`] trait, the [`RowFormat`] of a file's
//! rows, the [`RowLayout`] (columns) of an aggregation's rows, and output file creation.

use std::path::Path;

use eventide_engine::pane::Pane;
use eventide_engine::spec::{AccumulationMode, AggregationSpec, ColumnSource, PipelineSpec};

use crate::error::ConnectorError;

/// A destination for the panes of one aggregation.
pub trait PaneSink {
    /// Writes (or buffers) one pane.
    fn write(&mut self, pane: &Pane<'_>) -> Result<(), ConnectorError>;
    /// Flushes everything; called once at the end.
    fn finish(&mut self) -> Result<(), ConnectorError>;
}

/// Creates an output file, replacing any old one. The old file is removed rather than
/// truncated: ext4 (`auto_da_alloc`) writes a truncated and rewritten file back to disk when
/// it is closed, which makes the close as slow as a `sync` of the file.
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::File::create(path)
}

/// Formats the rows of one aggregation into bytes, for a file of its format.
pub trait RowFormat: Send {
    /// What the file starts with (the CSV header line; nothing for JSON lines).
    fn header(&self) -> Vec<u8>;
    /// Appends the row of one pane, with its line end.
    fn row(&mut self, buf: &mut Vec<u8>, pane: &Pane<'_>);
}

/// What a file sink needs to know about its aggregation's rows.
#[derive(Debug, Clone)]
pub struct RowLayout {
    pub group_by: Vec<String>,
    pub aggregates: Vec<(String, Option<u8>)>,
    /// Add `timing` and `pane_index`.
    pub multi_pane: bool,
    /// Add `retraction`.
    pub retracting: bool,
    /// A rows window's output columns in order (its spec's `columns`); empty for the other
    /// windows, whose rows are the key, the window and the aggregates.
    pub row: Vec<(String, RowCell)>,
}

/// What a column of a rows window's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCell {
    /// The `i`-th group-by value.
    Key(usize),
    /// The row's event time ([`Pane::window`]'s start), in epoch milliseconds.
    Time,
    /// The pane's `i`-th value, printed with these decimals.
    Value(usize, Option<u8>),
}

impl RowLayout {
    /// The layout of an aggregation's rows.
    pub fn of(spec: &PipelineSpec, agg: &AggregationSpec) -> Self {
        RowLayout {
            group_by: agg
                .group_by
                .iter()
                .map(|&i| spec.input.fields[i].0.clone())
                .collect(),
            aggregates: agg
                .aggregates
                .iter()
                .map(|a| (a.name.clone(), a.decimals))
                .collect(),
            multi_pane: agg.multi_pane(),
            retracting: agg.accumulation == AccumulationMode::Retracting,
            row: agg
                .columns
                .iter()
                .map(|c| {
                    let cell = match c.source {
                        ColumnSource::Key(k) => RowCell::Key(k),
                        ColumnSource::Time => RowCell::Time,
                        ColumnSource::Aggregate(a) => {
                            RowCell::Value(a, agg.aggregates.get(a).and_then(|x| x.decimals))
                        }
                        ColumnSource::Field { value, .. } => RowCell::Value(value, None),
                    };
                    (c.name.clone(), cell)
                })
                .collect(),
        }
    }

    /// The column names, in order.
    pub fn columns(&self) -> Vec<String> {
        if !self.row.is_empty() {
            return self.row.iter().map(|(n, _)| n.clone()).collect();
        }
        let mut c = self.group_by.clone();
        c.push("window_start".into());
        c.push("window_end".into());
        c.extend(self.aggregates.iter().map(|(n, _)| n.clone()));
        if self.multi_pane {
            c.push("timing".into());
            c.push("pane_index".into());
        }
        if self.retracting {
            c.push("retraction".into());
        }
        c
    }
}
