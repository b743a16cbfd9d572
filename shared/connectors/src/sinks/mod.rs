//! Where panes go. One sink per file, behind [`PaneSink`].
//!
//! File sinks write the columns described in `docs/pipeline-spec.md`: the group-by
//! fields, `window_start`, `window_end`, the aggregates, then `timing` and `pane_index`
//! when a window can fire more than once, and `retraction` in retracting mode; a rows
//! window's sink writes its `columns` instead.

pub mod csv;
pub mod dead_letter;
pub mod jsonl;
pub mod ordered;
pub mod rows;

use std::path::Path;

use eventide_engine::spec::{AggregationSpec, PipelineSpec, SinkFormat, SinkOrder};

use crate::error::ConnectorError;
pub use rows::{create_file, PaneSink, RowCell, RowFormat, RowLayout};

/// The row format of an aggregation's file sink, and the file's name under the output
/// directory.
pub fn row_format(spec: &PipelineSpec, agg: &AggregationSpec) -> (Box<dyn RowFormat>, String) {
    let layout = RowLayout::of(spec, agg);
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

/// Creates (truncates) the output file of an aggregation under `dir` and returns its row
/// writer, in the format its spec says.
pub fn open_row_writer(
    dir: &Path,
    spec: &PipelineSpec,
    agg: &AggregationSpec,
) -> Result<Box<dyn ordered::RowWriter + Send>, ConnectorError> {
    let layout = RowLayout::of(spec, agg);
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
        SinkOrder::Key => Box::new(ordered::KeyOrdered::new(row, agg.value_count())),
    })
}
