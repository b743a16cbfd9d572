//! The pipeline spec: what a user writes in a TOML file, validated into a [`PipelineSpec`].
//!
//! Layers from the bottom up, each importing only layers above it in this table:
//!
//! | layer | module |
//! |---|---|
//! | the input schema: field types and names | [`schema`] |
//! | how records and files are encoded | [`format`](mod@format) |
//! | the validated model the engine runs | [`model`] |
//! | the TOML front end | [`toml_parser`] |
//!
//! The SQL front end (`eventide_sql`) compiles onto the same model.
//!
//! The format is documented with examples in `docs/pipeline-spec.md`. Every error names the
//! field and the reason, for example `aggregation[0].window.slide: slide (3h) is larger than
//! size (2h)`.
//!
//! ```
//! let spec = eventide_engine::spec::PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "ts", format = "epoch_ms" }
//!     fields = { user = "string", amount = "number" }
//!     [watermark]
//!     max_out_of_orderness = "5s"
//!     [[aggregation]]
//!     name = "spend"
//!     group_by = ["user"]
//!     window = { type = "tumbling", size = "1m" }
//!     aggregates = [{ name = "total", fn = "sum", field = "amount" }]
//! "#).unwrap();
//! assert_eq!(spec.aggregations[0].name, "spend");
//! ```

pub mod format;
pub mod model;
pub mod schema;
pub mod toml_parser;

pub use format::{
    Compression, CsvSpec, CustomDecoder, FileSpec, FooterSpec, Format, DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_MAX_LINE_BYTES,
};
pub use model::{
    AccumulationMode, AggregationSpec, ColumnSource, OnTime, OutputColumn, PipelineSpec,
    SinkFormat, SinkOrder, SinkSpec, WatermarkSpec,
};
pub use schema::{FieldType, InputSpec, TimeFormat};
pub use toml_parser::{
    DEFAULT_MAX_PENDING_ROWS, DEFAULT_MAX_WINDOWS_PER_EVENT, DEFAULT_MIN_PROCESSING_TIME_PERIOD,
};
