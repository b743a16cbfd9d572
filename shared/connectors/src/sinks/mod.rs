//! Where panes go. One sink per file, behind [`PaneSink`].
//!
//! File sinks write the columns described in `docs/pipeline-spec.md`: the group-by
//! fields, `window_start`, `window_end`, the aggregates, then `timing` and `pane_index`
//! when a window can fire more than once, and `retraction` in retracting mode.

pub mod csv;
pub mod dead_letter;
pub mod jsonl;
pub mod ordered;

use std::path::Path;

use eventide_engine::pane::Pane;
use eventide_engine::spec::{
    AccumulationMode, AggregationSpec, PipelineSpec, SinkFormat, SinkOrder,
};

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

/// The row format of an aggregation's file sink, and the file's name under the output
/// directory.
pub fn row_format(spec: &PipelineSpec, agg: &AggregationSpec) -> (Box<dyn RowFormat>, String) {
    let layout = Layout::of(spec, agg);
    match agg.sink.format {
        SinkFormat::Csv => (
            Box::new(csv::CsvFormat::new(layout)),
            format!("{}.csv", agg.name),
        ),
        SinkFormat::Jsonl => (
            Box::new(jsonl::JsonFormat::new(layout, agg.name.clone())),
            format!("{}.jsonl", agg.name),
        ),
    }
}

/// What a file sink needs to know about its aggregation's rows.
#[derive(Debug, Clone)]
pub struct Layout {
    pub group_by: Vec<String>,
    pub aggregates: Vec<(String, Option<u8>)>,
    /// Add `timing` and `pane_index`.
    pub multi_pane: bool,
    /// Add `retraction`.
    pub retracting: bool,
}

impl Layout {
    /// The layout of an aggregation's rows.
    pub fn of(spec: &PipelineSpec, agg: &AggregationSpec) -> Self {
        Layout {
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
        }
    }

    /// The column names, in order.
    pub fn columns(&self) -> Vec<String> {
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

/// Creates (truncates) the output file of an aggregation under `dir` and returns its row
/// writer, in the format its spec says.
pub fn open_row_writer(
    dir: &Path,
    spec: &PipelineSpec,
    agg: &AggregationSpec,
) -> Result<Box<dyn ordered::RowWriter + Send>, ConnectorError> {
    let layout = Layout::of(spec, agg);
    Ok(match agg.sink.format {
        SinkFormat::Csv => Box::new(csv::CsvRows::create(
            &dir.join(format!("{}.csv", agg.name)),
            layout,
        )?),
        SinkFormat::Jsonl => Box::new(jsonl::JsonRows::create(
            &dir.join(format!("{}.jsonl", agg.name)),
            layout,
            agg.name.clone(),
        )?),
    })
}

/// Opens the file sink of an aggregation under `dir`, as its spec says.
pub fn open_file_sink(
    dir: &Path,
    spec: &PipelineSpec,
    agg: &AggregationSpec,
) -> Result<Box<dyn PaneSink + Send>, ConnectorError> {
    let row = open_row_writer(dir, spec, agg)?;
    Ok(match agg.sink.order {
        SinkOrder::Fired => Box::new(ordered::Streaming::new(row)),
        SinkOrder::Key => Box::new(ordered::KeyOrdered::new(row, agg.aggregates.len())),
    })
}
