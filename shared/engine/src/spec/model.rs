//! The validated model of a pipeline: what the front ends (the TOML parser in
//! [`super::toml_parser`], and the SQL compiler through it) produce and the engine runs.
//! Every value here has been checked: indices are in range, durations positive, names
//! unique.

use serde::Deserialize;

use super::format::{CustomDecoder, FileSpec, Format};
use super::schema::InputSpec;
use crate::aggregate::AggregateSpec;
use crate::codec::decoder::Decoder;
use crate::enrich::spec::EnrichmentSpec;
use crate::filter::Filter;
use crate::rules::model::RuleSpec;
use crate::trigger::Trigger;
use crate::watermark::{FutureGuard, WatermarkTracker};
use crate::window::WindowSpec;

/// How the watermark advances.
#[derive(Debug, Clone, PartialEq)]
pub enum WatermarkSpec {
    /// Flink SQL's `WATERMARK FOR ts AS ts - bound`, advanced after every record.
    Bounded {
        bound_ms: i64,
        idle_timeout_ms: Option<i64>,
    },
    /// Only `{"advance_watermark": …}` control lines move the watermark.
    Explicit,
}

impl WatermarkSpec {
    /// The tracker this watermark strategy calls for.
    pub fn tracker(&self) -> WatermarkTracker {
        match *self {
            WatermarkSpec::Bounded {
                bound_ms,
                idle_timeout_ms,
            } => WatermarkTracker::bounded(bound_ms, idle_timeout_ms),
            WatermarkSpec::Explicit => WatermarkTracker::explicit(),
        }
    }
}

/// How successive panes of one window relate (Beam's "how").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccumulationMode {
    /// Each pane holds only the elements since the previous pane.
    #[default]
    Discarding,
    /// Each pane holds everything seen so far for the window.
    Accumulating,
    /// Like accumulating, but each later pane first retracts the value it replaces.
    Retracting,
}

/// Whether a window's on-time pane comes when nothing arrived since its previous pane
/// (Beam's `OnTimeBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnTime {
    /// Always (Beam's `FIRE_ALWAYS`): in discarding mode an empty pane (count and sum 0),
    /// otherwise the unchanged value; the pane indexes after it count it.
    #[default]
    Always,
    /// Only with new elements (Beam's `FIRE_IF_NON_EMPTY`; what Flink does).
    IfNonEmpty,
}

impl std::fmt::Display for AccumulationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccumulationMode::Discarding => "discarding",
            AccumulationMode::Accumulating => "accumulating",
            AccumulationMode::Retracting => "accumulating and retracting",
        })
    }
}

/// Output encoding of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    #[default]
    Csv,
    Jsonl,
}

/// Row order of a file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SinkOrder {
    /// Panes are written as they fire.
    #[default]
    Fired,
    /// Rows are buffered and written at the end, sorted by group-by fields then window start.
    Key,
}

/// Where and how an aggregation's panes are written.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    #[serde(default)]
    pub format: SinkFormat,
    #[serde(default)]
    pub order: SinkOrder,
}

/// Where a column of a rows aggregation's output row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// The `i`-th group-by value.
    Key(usize),
    /// The row's event time, in epoch milliseconds.
    Time,
    /// The row's own value of input field `field` (a number), carried as the pane value
    /// `value` (after the aggregates: see [`AggregationSpec::value_names`]).
    Field { field: usize, value: usize },
    /// The `i`-th aggregate.
    Aggregate(usize),
}

/// One column of a rows aggregation's output row (`columns` in the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub source: ColumnSource,
}

/// One named aggregation, validated.
#[derive(Debug, Clone)]
pub struct AggregationSpec {
    pub name: String,
    /// Indices into [`InputSpec::fields`].
    pub group_by: Vec<usize>,
    pub filter: Option<Filter>,
    pub window: WindowSpec,
    pub aggregates: Vec<AggregateSpec>,
    /// A filter on the emitted rows, over the aggregates' values in aggregate order (SQL's
    /// `HAVING`); only for aggregations with one pane per window.
    pub having: Option<Filter>,
    pub trigger: Trigger,
    pub allowed_lateness_ms: i64,
    pub accumulation: AccumulationMode,
    pub on_time: OnTime,
    pub sink: SinkSpec,
    /// The output row of a rows window (`window = { type = "rows" }`), in order; empty
    /// for the other windows, whose row is the key, the window and the aggregates.
    pub columns: Vec<OutputColumn>,
    /// `[limits] max_pending_rows`: most rows of one key a rows window holds until the
    /// watermark passes them.
    pub max_pending_rows: u64,
}

impl AggregationSpec {
    /// The input fields a rows aggregation carries into its output rows (see
    /// [`ColumnSource::Field`]), in pane value order.
    pub fn carried_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().filter_map(|c| match c.source {
            ColumnSource::Field { field, .. } => Some(field),
            _ => None,
        })
    }

    /// The names of a pane's values: the aggregates, then the carried fields' output
    /// columns.
    pub fn value_names(&self) -> Vec<String> {
        let carried = self.columns.iter().filter_map(|c| match c.source {
            ColumnSource::Field { .. } => Some(c.name.clone()),
            _ => None,
        });
        self.aggregates
            .iter()
            .map(|a| a.name.clone())
            .chain(carried)
            .collect()
    }

    /// Number of values in each pane: [`AggregationSpec::value_names`]' length.
    pub fn value_count(&self) -> usize {
        self.aggregates.len() + self.carried_fields().count()
    }

    /// True when a window can produce more than one pane, or a pane that is not on time,
    /// so panes carry timing and index.
    pub fn multi_pane(&self) -> bool {
        !self.trigger.is_on_time_only()
            || self.allowed_lateness_ms > 0
            || matches!(self.window, WindowSpec::Count { .. })
    }
}

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub input: InputSpec,
    pub watermark: WatermarkSpec,
    /// `[watermark] max_future_skew`: records dated further ahead of processing time are
    /// dead letters (see [`crate::watermark::FutureGuard`]).
    pub future_guard: FutureGuard,
    pub aggregations: Vec<AggregationSpec>,
    /// Rules evaluated per key alongside the aggregations (see [`crate::rules`]).
    pub rules: Vec<RuleSpec>,
    /// Slow-table and live lookups whose columns are appended to the input fields.
    pub enrichments: Vec<EnrichmentSpec>,
    /// How each record is encoded (`[input] format`; see [`crate::codec`]).
    pub format: Format,
    /// How input files are laid out: compression and framing (`[input]`).
    pub files: FileSpec,
}

impl PipelineSpec {
    /// The aggregation with this name.
    pub fn aggregation(&self, name: &str) -> Option<&AggregationSpec> {
        self.aggregations.iter().find(|a| a.name == name)
    }

    /// This spec decoding each record with `decoder` instead of its `[input] format`: the
    /// hook for a binary format of your own in a consumer binary you build around the
    /// library (see `examples/custom-decoder/`). Every [`crate::codec::Codec`] made from
    /// the spec (by [`crate::Pipeline::new`], the shard consumer, Lambda) uses it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use eventide_engine::codec::{Codec, Decoder};
    /// use eventide_engine::record::Line;
    /// use eventide_engine::{PipelineSpec, RecordError};
    /// struct Nothing;
    /// impl Decoder for Nothing {
    ///     fn decode<'a>(&self, _: &'a [u8]) -> Result<Line<'a>, RecordError> {
    ///         Err(RecordError::Field { field: "t".into(), reason: "never".into() })
    ///     }
    /// }
    /// let spec = PipelineSpec::from_toml(r#"
    /// [input]
    /// event_time = { field = "t" }
    /// fields = { user = "string" }
    /// [[aggregation]]
    /// name = "n"
    /// window = { type = "tumbling", size = "1m" }
    /// aggregates = [{ name = "n", fn = "count" }]
    /// "#).unwrap().with_decoder(Arc::new(Nothing));
    /// assert!(Codec::new(&spec).decode(b"{}").is_err());
    /// ```
    pub fn with_decoder(mut self, decoder: std::sync::Arc<dyn Decoder>) -> Self {
        self.format = Format::Custom(CustomDecoder(decoder));
        self
    }
}
