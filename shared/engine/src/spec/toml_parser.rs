//! The TOML front end: a pipeline spec as written in a TOML file, validated into the
//! [model](super::model). The format is documented with examples in
//! `docs/pipeline-spec.md`; every error names the field and the reason.

use serde::Deserialize;

use super::format::{Compression, CsvSpec, FileSpec, FooterSpec, Format};
use super::format::{DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_LINE_BYTES};
use super::model::{
    AccumulationMode, AggregationSpec, ColumnSource, OnTime, OutputColumn, PipelineSpec, SinkSpec,
    WatermarkSpec,
};
use super::schema::{FieldType, InputSpec, TimeFormat};
use crate::aggregate::{AggFn, AggregateSpec};
use crate::duration::parse_ms;
use crate::enrich::spec::{validate as validate_enrichments, RawEnrichment};
use crate::error::SpecError;
use crate::expr::{Expr, ExprLimits, NumType};
use crate::filter::Filter;
use crate::rules::compile::{compile_rules, RawRule, RuleError};
use crate::trigger::{Align, Delay, Trigger, TriggerLimits};
use crate::watermark::FutureGuard;
use crate::window::WindowSpec;

impl PipelineSpec {
    /// Parses and validates a TOML pipeline spec.
    ///
    /// # Errors
    ///
    /// [`SpecError::Syntax`] for text that is not TOML of the expected shape,
    /// [`SpecError::Invalid`] naming the field and the reason for a value the engine
    /// cannot use.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let raw: RawPipeline =
            toml::from_str(text).map_err(|e| SpecError::Syntax(e.to_string()))?;
        raw.validate()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    input: RawInput,
    #[serde(default)]
    watermark: Option<RawWatermark>,
    #[serde(default)]
    aggregation: Vec<RawAggregation>,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    enrichment: Vec<RawEnrichment>,
    #[serde(default)]
    limits: RawLimits,
}

/// The default of `[limits] max_windows_per_event`.
pub const DEFAULT_MAX_WINDOWS_PER_EVENT: u64 = 10_000;

/// The default of `[limits] max_pending_rows`.
pub const DEFAULT_MAX_PENDING_ROWS: u64 = 100_000;

/// The default of `[limits] min_processing_time_period`.
pub const DEFAULT_MIN_PROCESSING_TIME_PERIOD: &str = "1s";

/// `[limits]`: bounds on the work one event may cause, so that a spec cannot make a single
/// record cost gigabytes and minutes (a 72 h window sliding by 1 ms puts each event in 259
/// million windows). Raise a bound here deliberately when a spec really needs it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// Most windows one event may fall in: a sliding window's size ÷ slide, rounded up.
    #[serde(default = "default_max_windows_per_event")]
    max_windows_per_event: u64,
    /// Shortest processing-time delay or period of a trigger: each window may fire once per
    /// period, so a shorter one multiplies the panes and timers.
    #[serde(default)]
    min_processing_time_period: Option<String>,
    /// Most rows of one key a rows window holds until the watermark passes them: each is
    /// kept until then, so a key whose watermark stalls would otherwise grow without end.
    #[serde(default = "default_max_pending_rows")]
    max_pending_rows: u64,
    /// Most operators and operands of an aggregate's `expr`.
    #[serde(default = "default_max_expression_nodes")]
    max_expression_nodes: usize,
    /// Deepest nesting of an aggregate's `expr`.
    #[serde(default = "default_max_expression_depth")]
    max_expression_depth: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_windows_per_event: DEFAULT_MAX_WINDOWS_PER_EVENT,
            min_processing_time_period: None,
            max_pending_rows: DEFAULT_MAX_PENDING_ROWS,
            max_expression_nodes: crate::expr::DEFAULT_MAX_NODES,
            max_expression_depth: crate::expr::DEFAULT_MAX_DEPTH,
        }
    }
}

fn default_max_pending_rows() -> u64 {
    DEFAULT_MAX_PENDING_ROWS
}

fn default_max_expression_nodes() -> usize {
    crate::expr::DEFAULT_MAX_NODES
}

fn default_max_expression_depth() -> usize {
    crate::expr::DEFAULT_MAX_DEPTH
}

fn default_max_windows_per_event() -> u64 {
    DEFAULT_MAX_WINDOWS_PER_EVENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    csv: Option<RawCsv>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    header_lines: Option<u64>,
    #[serde(default)]
    footer: Option<RawFooter>,
    #[serde(default)]
    max_entry_bytes: Option<u64>,
    #[serde(default)]
    max_line_bytes: Option<u64>,
    event_time: RawTime,
    #[serde(default)]
    fields: toml::Table,
    #[serde(default)]
    partition: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCsv {
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    quote: Option<String>,
    #[serde(default)]
    header: bool,
    #[serde(default)]
    columns: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFooter {
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTime {
    field: String,
    #[serde(default)]
    format: TimeFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatermark {
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    max_out_of_orderness: Option<String>,
    #[serde(default)]
    idle_timeout: Option<String>,
    #[serde(default)]
    max_future_skew: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregation {
    name: String,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    window: RawWindow,
    aggregates: Vec<RawAggregate>,
    #[serde(default)]
    having: Option<String>,
    #[serde(default)]
    trigger: Option<toml::Value>,
    #[serde(default)]
    allowed_lateness: Option<String>,
    #[serde(default)]
    accumulation: AccumulationMode,
    #[serde(default)]
    on_time: OnTime,
    #[serde(default)]
    sink: SinkSpec,
    #[serde(default)]
    columns: Option<Vec<RawColumn>>,
}

/// A column of a rows aggregation's output: `"name"`, or `{ name = "out", field = "f" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Name(String),
    Renamed { name: String, field: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: Option<toml::Value>,
    #[serde(default)]
    slide: Option<toml::Value>,
    #[serde(default)]
    gap: Option<String>,
    #[serde(default)]
    step: Option<toml::Value>,
    #[serde(default)]
    preceding: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregate {
    name: String,
    #[serde(rename = "fn")]
    func: String,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    decimals: Option<u8>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default, rename = "type")]
    ty: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(default)]
    early: Option<RawEarly>,
    #[serde(default)]
    late: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarly {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    aligned: bool,
    #[serde(default)]
    every: Option<u64>,
}

impl RawPipeline {
    fn validate(self) -> Result<PipelineSpec, SpecError> {
        let (format, files) = self.input.file_layer()?;
        let mut input = self.input.validate()?;
        let enrichments = validate_enrichments(self.enrichment, &mut input)?;
        let future_guard = match self.watermark.as_ref() {
            Some(w) => w.future_guard()?,
            None => FutureGuard::default(),
        };
        let watermark = match self.watermark {
            None => WatermarkSpec::Bounded {
                bound_ms: 0,
                idle_timeout_ms: None,
            },
            Some(w) => w.validate()?,
        };
        if self.aggregation.is_empty() && self.rule.is_empty() {
            return Err(SpecError::invalid(
                "aggregation",
                "the pipeline declares no aggregation and no rule",
            ));
        }
        let mut aggregations = Vec::with_capacity(self.aggregation.len());
        if self.limits.max_pending_rows == 0 {
            return Err(SpecError::invalid(
                "limits.max_pending_rows",
                "must be greater than zero",
            ));
        }
        if self.limits.max_windows_per_event == 0 {
            return Err(SpecError::invalid(
                "limits.max_windows_per_event",
                "must be greater than zero",
            ));
        }
        let min_period = parse_ms(
            "limits.min_processing_time_period",
            self.limits
                .min_processing_time_period
                .as_deref()
                .unwrap_or(DEFAULT_MIN_PROCESSING_TIME_PERIOD),
        )?;
        if min_period <= 0 {
            return Err(SpecError::invalid(
                "limits.min_processing_time_period",
                "must be greater than zero",
            ));
        }
        let limits = TriggerLimits {
            min_processing_time_period_ms: min_period,
        };
        for (key, value, hard) in [
            (
                "limits.max_expression_nodes",
                self.limits.max_expression_nodes,
                crate::expr::HARD_MAX_NODES,
            ),
            (
                "limits.max_expression_depth",
                self.limits.max_expression_depth,
                crate::expr::HARD_MAX_DEPTH,
            ),
        ] {
            if value == 0 || value > hard {
                return Err(SpecError::invalid(
                    key,
                    format!("must be from 1 to {hard} (expressions are evaluated recursively)"),
                ));
            }
        }
        let expr_limits = ExprLimits {
            max_nodes: self.limits.max_expression_nodes,
            max_depth: self.limits.max_expression_depth,
        };
        for (i, a) in self.aggregation.into_iter().enumerate() {
            let mut agg = a.validate(i, &input, &limits, &expr_limits)?;
            agg.max_pending_rows = self.limits.max_pending_rows;
            let per_event = match agg.window {
                WindowSpec::Sliding { size, slide } => Some((size, slide)),
                WindowSpec::Cumulate { size, step } => Some((size, step)),
                _ => None,
            };
            if let Some((size, slide)) = per_event {
                let per_event = (size as u64).div_ceil(slide as u64);
                let max = self.limits.max_windows_per_event;
                if per_event > max {
                    return Err(SpecError::invalid(
                        format!("aggregation[{i}].window.slide"),
                        format!(
                            "each event would fall in {per_event} windows (size {size} ms ÷ \
                             slide {slide} ms), more than {max}; use a larger slide, or raise \
                             [limits] max_windows_per_event"
                        ),
                    ));
                }
            }
            if aggregations
                .iter()
                .any(|x: &AggregationSpec| x.name == agg.name)
            {
                return Err(SpecError::invalid(
                    format!("aggregation[{i}].name"),
                    format!("duplicate name {:?}", agg.name),
                ));
            }
            aggregations.push(agg);
        }
        let rules = compile_rules(self.rule, &input).map_err(rule_error)?;
        Ok(PipelineSpec {
            rules,
            input,
            watermark,
            future_guard,
            aggregations,
            enrichments,
            format,
            files,
        })
    }
}

/// A rule error as a spec error naming `rule[i] (id).field`.
fn rule_error(e: RuleError) -> SpecError {
    match e {
        RuleError::Syntax(s) => SpecError::Syntax(s),
        RuleError::Invalid {
            index,
            id,
            field,
            column,
            reason,
        } => SpecError::invalid(
            format!("rule[{index}] ({id}).{field}"),
            match column {
                Some(c) => format!("at column {c}: {reason}"),
                None => reason,
            },
        ),
    }
}

/// One ASCII character of a CSV setting.
fn csv_byte(field: &str, v: Option<&str>, default: u8) -> Result<u8, SpecError> {
    match v {
        None => Ok(default),
        Some("\\t") => Ok(b'\t'),
        Some(s) if s.len() == 1 && s.is_ascii() && s != "\n" && s != "\r" => Ok(s.as_bytes()[0]),
        Some(s) => Err(SpecError::invalid(
            field,
            format!("{s:?} is not one ASCII character other than a line break"),
        )),
    }
}

impl RawInput {
    /// The format and the file layer of `[input]`.
    fn file_layer(&self) -> Result<(Format, FileSpec), SpecError> {
        let format = match self.format.as_deref() {
            None | Some("json") => {
                if self.csv.is_some() {
                    return Err(SpecError::invalid(
                        "input.csv",
                        "CSV settings need format = \"csv\"",
                    ));
                }
                Format::Json
            }
            Some("csv") => {
                let c = self.csv.as_ref();
                let delimiter = csv_byte(
                    "input.csv.delimiter",
                    c.and_then(|c| c.delimiter.as_deref()),
                    b',',
                )?;
                let quote = csv_byte("input.csv.quote", c.and_then(|c| c.quote.as_deref()), b'"')?;
                if delimiter == quote {
                    return Err(SpecError::invalid(
                        "input.csv.quote",
                        "the quote and the delimiter must differ",
                    ));
                }
                let header = c.is_some_and(|c| c.header);
                let columns = c.and_then(|c| c.columns.clone());
                match &columns {
                    None if !header => {
                        return Err(SpecError::invalid(
                            "input.csv",
                            "declare the columns (columns = [...]) or read them from a header \
                             row (header = true)",
                        ))
                    }
                    Some(cols) => {
                        if !cols.contains(&self.event_time.field) {
                            return Err(SpecError::invalid(
                                "input.csv.columns",
                                format!(
                                    "no column is the event-time field {:?}",
                                    self.event_time.field
                                ),
                            ));
                        }
                        if let Some(f) = self.fields.keys().find(|f| !cols.contains(f)) {
                            return Err(SpecError::invalid(
                                format!("input.fields.{f}"),
                                "is not one of input.csv.columns",
                            ));
                        }
                        for (i, c) in cols.iter().enumerate() {
                            if cols[..i].contains(c) {
                                return Err(SpecError::invalid(
                                    "input.csv.columns",
                                    format!("column {c:?} appears twice"),
                                ));
                            }
                        }
                    }
                    None => {}
                }
                Format::Csv(CsvSpec {
                    delimiter,
                    quote,
                    header,
                    columns,
                })
            }
            Some(f) => {
                return Err(SpecError::invalid(
                    "input.format",
                    format!("unsupported format {f:?}; use \"json\" (JSON lines) or \"csv\""),
                ))
            }
        };
        let compression = match self.compression.as_deref() {
            None | Some("auto") => Compression::Auto,
            Some("none") => Compression::None,
            Some("gzip") => Compression::Gzip,
            Some("zip") => Compression::Zip,
            Some(c) => {
                return Err(SpecError::invalid(
                    "input.compression",
                    format!("unknown compression {c:?}; use \"gzip\", \"zip\" or \"none\""),
                ))
            }
        };
        let footer = match &self.footer {
            None => None,
            Some(f) => {
                let pattern = regex_lite::RegexBuilder::new(&f.pattern)
                    .size_limit(1 << 20)
                    .nest_limit(64)
                    .build()
                    .map_err(|e| SpecError::invalid("input.footer.pattern", e.to_string()))?;
                let counts = pattern.capture_names().any(|n| n == Some("count"));
                Some(FooterSpec { pattern, counts })
            }
        };
        let positive = |field: &str, v: Option<u64>, default: u64| match v {
            Some(0) => Err(SpecError::invalid(field, "must be greater than zero")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let files = FileSpec {
            compression,
            header_lines: self.header_lines.unwrap_or(0),
            footer,
            max_entry_bytes: positive(
                "input.max_entry_bytes",
                self.max_entry_bytes,
                DEFAULT_MAX_ENTRY_BYTES,
            )?,
            max_line_bytes: positive(
                "input.max_line_bytes",
                self.max_line_bytes,
                DEFAULT_MAX_LINE_BYTES,
            )?,
        };
        Ok((format, files))
    }

    fn validate(self) -> Result<InputSpec, SpecError> {
        let mut fields = Vec::with_capacity(self.fields.len());
        for (name, ty) in self.fields {
            let ty: FieldType = ty.try_into().map_err(|_| {
                SpecError::invalid(
                    format!("input.fields.{name}"),
                    "type must be \"string\", \"number\" or \"bool\"",
                )
            })?;
            if name == self.event_time.field {
                return Err(SpecError::invalid(
                    format!("input.fields.{name}"),
                    "the event-time field is declared in input.event_time, not in fields",
                ));
            }
            fields.push((name, ty));
        }
        let partition = match &self.partition {
            None => None,
            Some(p) => Some(fields.iter().position(|(n, _)| n == p).ok_or_else(|| {
                SpecError::invalid(
                    "input.partition",
                    format!("unknown field {p:?}; declare it in input.fields"),
                )
            })?),
        };
        Ok(InputSpec {
            fields,
            time_field: self.event_time.field,
            time_format: self.event_time.format,
            partition,
        })
    }
}

impl RawWatermark {
    fn future_guard(&self) -> Result<FutureGuard, SpecError> {
        const FIELD: &str = "watermark.max_future_skew";
        match self.max_future_skew.as_deref() {
            None => Ok(FutureGuard::default()),
            Some("off") => Ok(FutureGuard::new(None)),
            Some(s) => match parse_ms(FIELD, s)? {
                ms if ms > 0 => Ok(FutureGuard::new(Some(ms))),
                _ => Err(SpecError::invalid(
                    FIELD,
                    "must be greater than zero (or \"off\" to accept any event time)",
                )),
            },
        }
    }

    fn validate(self) -> Result<WatermarkSpec, SpecError> {
        let idle = self
            .idle_timeout
            .as_deref()
            .map(|s| parse_ms("watermark.idle_timeout", s))
            .transpose()?;
        match self.strategy.as_deref().unwrap_or("bounded") {
            "bounded" => {
                let bound_ms = match &self.max_out_of_orderness {
                    Some(s) => parse_ms("watermark.max_out_of_orderness", s)?,
                    None => 0,
                };
                if let Some(0) = idle {
                    return Err(SpecError::invalid(
                        "watermark.idle_timeout",
                        "must be greater than zero",
                    ));
                }
                Ok(WatermarkSpec::Bounded {
                    bound_ms,
                    idle_timeout_ms: idle,
                })
            }
            "explicit" => {
                if self.max_out_of_orderness.is_some() {
                    return Err(SpecError::invalid(
                        "watermark.max_out_of_orderness",
                        "not used with strategy \"explicit\"",
                    ));
                }
                Ok(WatermarkSpec::Explicit)
            }
            other => Err(SpecError::invalid(
                "watermark.strategy",
                format!("unknown strategy {other:?}; use \"bounded\" or \"explicit\""),
            )),
        }
    }
}

fn duration_value(field: &str, v: &toml::Value) -> Result<i64, SpecError> {
    match v {
        toml::Value::String(s) => parse_ms(field, s),
        _ => Err(SpecError::invalid(
            field,
            "expected a duration string such as \"15m\"",
        )),
    }
}

fn count_value(field: &str, v: &toml::Value) -> Result<u64, SpecError> {
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
        _ => Err(SpecError::invalid(
            field,
            "expected a positive number of elements",
        )),
    }
}

impl RawWindow {
    fn validate(&self, p: &str) -> Result<WindowSpec, SpecError> {
        let need = |v: &Option<toml::Value>, name: &str| {
            v.clone().ok_or_else(|| {
                SpecError::invalid(
                    format!("{p}.{name}"),
                    format!("required for a {} window", self.kind),
                )
            })
        };
        let unexpected = |present: bool, name: &str| {
            if present {
                Err(SpecError::invalid(
                    format!("{p}.{name}"),
                    format!("not used by a {} window", self.kind),
                ))
            } else {
                Ok(())
            }
        };
        if self.kind != "rows" {
            unexpected(self.preceding.is_some(), "preceding")?;
        }
        let spec = match self.kind.as_str() {
            "rows" => {
                unexpected(self.size.is_some(), "size")?;
                unexpected(self.slide.is_some(), "slide")?;
                unexpected(self.step.is_some(), "step")?;
                unexpected(self.gap.is_some(), "gap")?;
                let preceding = match need(&self.preceding, "preceding")? {
                    toml::Value::Integer(n) if n >= 0 => n as u64,
                    _ => return Err(SpecError::invalid(format!("{p}.preceding"), "expected a number of rows (0 or more) before the current row")),
                };
                WindowSpec::Rows { preceding }
            }
            "tumbling" => {
                unexpected(self.step.is_some(), "step")?;
                unexpected(self.slide.is_some(), "slide")?;
                unexpected(self.gap.is_some(), "gap")?;
                let size = duration_value(&format!("{p}.size"), &need(&self.size, "size")?)?;
                WindowSpec::Sliding { size, slide: size }
            }
            "sliding" | "hopping" => {
                unexpected(self.step.is_some(), "step")?;
                unexpected(self.gap.is_some(), "gap")?;
                let size = duration_value(&format!("{p}.size"), &need(&self.size, "size")?)?;
                let slide = duration_value(&format!("{p}.slide"), &need(&self.slide, "slide")?)?;
                if slide <= 0 {
                    return Err(SpecError::invalid(format!("{p}.slide"), "must be greater than zero"));
                }
                if slide > size {
                    return Err(SpecError::invalid(format!("{p}.slide"), format!("slide ({slide} ms) is larger than size ({size} ms)")));
                }
                WindowSpec::Sliding { size, slide }
            }
            "cumulate" => {
                unexpected(self.slide.is_some(), "slide")?;
                unexpected(self.gap.is_some(), "gap")?;
                let size = duration_value(&format!("{p}.size"), &need(&self.size, "size")?)?;
                let step = duration_value(&format!("{p}.step"), &need(&self.step, "step")?)?;
                if step <= 0 {
                    return Err(SpecError::invalid(format!("{p}.step"), "must be greater than zero"));
                }
                if size <= 0 || size % step != 0 {
                    return Err(SpecError::invalid(format!("{p}.size"), format!("size ({size} ms) must be a positive multiple of step ({step} ms)")));
                }
                WindowSpec::Cumulate { size, step }
            }
            "session" => {
                unexpected(self.step.is_some(), "step")?;
                unexpected(self.size.is_some(), "size")?;
                unexpected(self.slide.is_some(), "slide")?;
                let gap = self.gap.as_deref().ok_or_else(|| SpecError::invalid(format!("{p}.gap"), "required for a session window"))?;
                let gap = parse_ms(&format!("{p}.gap"), gap)?;
                if gap <= 0 {
                    return Err(SpecError::invalid(format!("{p}.gap"), "must be greater than zero"));
                }
                WindowSpec::Session { gap }
            }
            "count" => {
                unexpected(self.step.is_some(), "step")?;
                unexpected(self.gap.is_some(), "gap")?;
                let size = count_value(&format!("{p}.size"), &need(&self.size, "size")?)?;
                let slide = match &self.slide {
                    None => 1,
                    Some(v) => count_value(&format!("{p}.slide"), v)?,
                };
                if slide > size {
                    return Err(SpecError::invalid(format!("{p}.slide"), format!("slide ({slide}) is larger than size ({size})")));
                }
                WindowSpec::Count { size, slide }
            }
            "global" => {
                unexpected(self.step.is_some(), "step")?;
                unexpected(self.size.is_some(), "size")?;
                unexpected(self.slide.is_some(), "slide")?;
                unexpected(self.gap.is_some(), "gap")?;
                WindowSpec::Global
            }
            other => {
                return Err(SpecError::invalid(format!("{p}.type"), format!("unknown window type {other:?}; use tumbling, sliding, cumulate, session, count, rows or global")))
            }
        };
        if let WindowSpec::Sliding { size, .. } = spec {
            if size <= 0 {
                return Err(SpecError::invalid(
                    format!("{p}.size"),
                    "must be greater than zero",
                ));
            }
        }
        Ok(spec)
    }
}

impl RawAggregation {
    fn validate(
        self,
        i: usize,
        input: &InputSpec,
        limits: &TriggerLimits,
        expr_limits: &ExprLimits,
    ) -> Result<AggregationSpec, SpecError> {
        let p = format!("aggregation[{i}]");
        SpecError::check_name(&p, &self.name)?;
        let p = format!("aggregation[{i}] ({})", self.name);
        let mut group_by = Vec::with_capacity(self.group_by.len());
        for (j, g) in self.group_by.iter().enumerate() {
            let idx = input.field_index(g).ok_or_else(|| {
                SpecError::invalid(
                    format!("{p}.group_by[{j}]"),
                    format!("unknown field {g:?}; declare it in input.fields"),
                )
            })?;
            group_by.push(idx);
        }
        let filter = self
            .filter
            .as_deref()
            .map(|f| {
                Filter::parse(f, input, expr_limits)
                    .map_err(|reason| SpecError::invalid(format!("{p}.filter"), reason))
            })
            .transpose()?;
        let window = self.window.validate(&format!("{p}.window"))?;
        if self.aggregates.is_empty() {
            return Err(SpecError::invalid(
                format!("{p}.aggregates"),
                "at least one aggregate is required",
            ));
        }
        let mut aggregates = Vec::with_capacity(self.aggregates.len());
        for (j, a) in self.aggregates.iter().enumerate() {
            let ap = format!("{p}.aggregates[{j}]");
            let func = AggFn::parse(&a.func).ok_or_else(|| {
                SpecError::invalid(
                    format!("{ap}.fn"),
                    format!(
                        "unknown function {:?}; use count, sum, min, max, avg, first, last, \
                         first_value, last_value or compute",
                        a.func
                    ),
                )
            })?;
            if func.arrival_ordered()
                && !matches!(window, WindowSpec::Global)
                && !matches!(window, WindowSpec::Sliding { size, slide } if size == slide)
            {
                return Err(SpecError::invalid(
                    format!("{ap}.fn"),
                    format!(
                        "{} takes values in arrival order, which only tumbling and global \
                         windows keep (each window is one accumulator); sliding, cumulate and \
                         session windows merge accumulators, which Flink's FIRST_VALUE and \
                         LAST_VALUE cannot (they have no merge method); use first or last (by \
                         event time) there",
                        a.func
                    ),
                ));
            }
            // A computed output column reads the earlier output columns, others the record.
            let earlier;
            let scope = if func == AggFn::Compute {
                if a.field.is_some() || a.filter.is_some() || a.expr.is_none() {
                    return Err(SpecError::invalid(
                        format!("{ap}.expr"),
                        "compute takes an expr over the earlier output columns, and no field \
                         or filter",
                    ));
                }
                earlier = InputSpec {
                    fields: aggregates
                        .iter()
                        .map(|x: &AggregateSpec| (x.name.clone(), FieldType::Number))
                        .collect(),
                    time_field: String::new(),
                    time_format: TimeFormat::EpochMs,
                    partition: None,
                };
                &earlier
            } else {
                input
            };
            let expr = a
                .expr
                .as_deref()
                .map(|e| {
                    Expr::parse(e, scope, expr_limits)
                        .map_err(|reason| SpecError::invalid(format!("{ap}.expr"), reason))
                })
                .transpose()?;
            if let (AggFn::Compute, Some(e)) = (func, &expr) {
                if e.fallible() {
                    return Err(SpecError::invalid(
                        format!("{ap}.expr"),
                        "an integer division or modulo of output columns could divide by zero, \
                         which fails a Flink job, and a row cannot go to the dead letters; cast \
                         an operand as double",
                    ));
                }
            }
            let ty =
                a.ty.as_deref()
                    .map(|t| {
                        NumType::parse_int(t).ok_or_else(|| {
                            SpecError::invalid(
                                format!("{ap}.type"),
                                format!(
                                    "unknown type {t:?}; the output types are tinyint, smallint, \
                                 int and bigint (integers, as Flink's integer aggregates)"
                                ),
                            )
                        })
                    })
                    .transpose()?;
            let field = match (&a.field, func) {
                (Some(_), _) if expr.is_some() => {
                    return Err(SpecError::invalid(
                        format!("{ap}.expr"),
                        "an aggregate reads a field or an expression, not both",
                    ))
                }
                (None, _) if expr.is_some() => None,
                (None, AggFn::Count) => None,
                (None, _) => {
                    return Err(SpecError::invalid(
                        format!("{ap}.field"),
                        format!("required for {} (or an expr)", a.func),
                    ))
                }
                (Some(f), _) => {
                    let idx = input.field_index(f).ok_or_else(|| {
                        SpecError::invalid(
                            format!("{ap}.field"),
                            format!("unknown field {f:?}; declare it in input.fields"),
                        )
                    })?;
                    if input.fields[idx].1 != FieldType::Number {
                        return Err(SpecError::invalid(
                            format!("{ap}.field"),
                            format!("field {f:?} is not a number"),
                        ));
                    }
                    Some(idx)
                }
            };
            if aggregates.iter().any(|x: &AggregateSpec| x.name == a.name)
                || self.group_by.contains(&a.name)
            {
                return Err(SpecError::invalid(
                    format!("{ap}.name"),
                    format!("duplicate output column {:?}", a.name),
                ));
            }
            let filter = a
                .filter
                .as_deref()
                .map(|f| {
                    Filter::parse(f, input, expr_limits)
                        .map_err(|reason| SpecError::invalid(format!("{ap}.filter"), reason))
                })
                .transpose()?;
            aggregates.push(AggregateSpec {
                name: a.name.clone(),
                func,
                field,
                expr,
                decimals: a.decimals,
                filter,
                ty,
            });
        }
        let having = self
            .having
            .as_deref()
            .map(|h| {
                // The emitted row's aggregates, as the fields of a record.
                let row = InputSpec {
                    fields: aggregates
                        .iter()
                        .map(|a| (a.name.clone(), FieldType::Number))
                        .collect(),
                    time_field: String::new(),
                    time_format: TimeFormat::EpochMs,
                    partition: None,
                };
                let f = Filter::parse(h, &row, expr_limits).map_err(|reason| {
                    SpecError::invalid(
                        format!("{p}.having"),
                        format!("{reason} (having names the aggregates' output columns)"),
                    )
                })?;
                if f.fallible() {
                    return Err(SpecError::invalid(
                        format!("{p}.having"),
                        "an integer division or modulo of output columns could divide by zero, \
                         which fails a Flink job, and a row cannot go to the dead letters; cast \
                         an operand as double",
                    ));
                }
                Ok(f)
            })
            .transpose()?;
        let allowed_lateness_ms = self
            .allowed_lateness
            .as_deref()
            .map(|s| parse_ms(&format!("{p}.allowed_lateness"), s))
            .transpose()?
            .unwrap_or(0);
        let tp = format!("{p}.trigger");
        let (trigger, late_given) = match self.trigger {
            None => (Trigger::default(), false),
            Some(toml::Value::String(text)) => {
                let t = Trigger::parse(&text)
                    .map_err(|e| SpecError::invalid(&tp, format!("{e} in {text:?}")))?;
                let late = t.has_late_firings();
                (t, late)
            }
            Some(toml::Value::Table(table)) => {
                let raw: RawTrigger =
                    toml::Value::Table(table)
                        .try_into()
                        .map_err(|e: toml::de::Error| {
                            SpecError::invalid(&tp, e.message().to_string())
                        })?;
                let late = raw.late.is_some();
                (raw.validate(&tp)?, late)
            }
            Some(_) => {
                return Err(SpecError::invalid(
                    &tp,
                    "use a trigger expression such as \"repeat(count(1))\", \
                     or a table { early = …, late = … }",
                ))
            }
        };
        trigger
            .validate(limits)
            .map_err(|reason| SpecError::invalid(&tp, reason))?;
        if matches!(window, WindowSpec::Count { .. }) && trigger != Trigger::default() {
            return Err(SpecError::invalid(
                &tp,
                "count windows fire by element count; triggers do not apply",
            ));
        }
        if having.is_some()
            && (!trigger.is_on_time_only()
                || allowed_lateness_ms > 0
                || matches!(window, WindowSpec::Count { .. }))
        {
            return Err(SpecError::invalid(
                format!("{p}.having"),
                "having filters the one pane of each window: it needs the default trigger, no \
                 allowed lateness and a window other than count (a later pane could not take \
                 back a row that an earlier one emitted)",
            ));
        }
        let rows = matches!(window, WindowSpec::Rows { .. });
        if rows {
            let fixed = [
                (trigger != Trigger::default(), "trigger"),
                (allowed_lateness_ms > 0, "allowed_lateness"),
                (
                    self.accumulation != AccumulationMode::default(),
                    "accumulation",
                ),
                (self.on_time != OnTime::default(), "on_time"),
                (having.is_some(), "having"),
            ];
            if let Some((_, name)) = fixed.iter().find(|(set, _)| *set) {
                return Err(SpecError::invalid(
                    format!("{p}.{name}"),
                    "a rows window emits each row once, when the watermark passes its time (as \
                     Flink's OVER aggregation); triggers, lateness, accumulation and having do \
                     not apply",
                ));
            }
        }
        let columns = match (self.columns, rows) {
            (Some(_), false) => {
                return Err(SpecError::invalid(
                    format!("{p}.columns"),
                    "only a rows window chooses its output columns; the others write the key, \
                     window_start, window_end and the aggregates",
                ))
            }
            (None, false) => Vec::new(),
            (raw, true) => row_columns(&p, raw, input, &self.group_by, &aggregates)?,
        };
        if late_given && allowed_lateness_ms == 0 {
            return Err(SpecError::invalid(
                format!("{tp}.late"),
                "late firings need allowed_lateness greater than zero",
            ));
        }
        Ok(AggregationSpec {
            name: self.name,
            group_by,
            filter,
            window,
            aggregates,
            having,
            trigger,
            allowed_lateness_ms,
            accumulation: self.accumulation,
            on_time: self.on_time,
            sink: self.sink,
            columns,
            max_pending_rows: DEFAULT_MAX_PENDING_ROWS,
        })
    }
}

/// The output columns of a rows aggregation: as `raw` lists them, by default the group-by
/// fields, the event-time field and the aggregates.
fn row_columns(
    p: &str,
    raw: Option<Vec<RawColumn>>,
    input: &InputSpec,
    group_by: &[String],
    aggregates: &[AggregateSpec],
) -> Result<Vec<OutputColumn>, SpecError> {
    let raw = raw.unwrap_or_else(|| {
        group_by
            .iter()
            .cloned()
            .chain(std::iter::once(input.time_field.clone()))
            .chain(aggregates.iter().map(|a| a.name.clone()))
            .map(RawColumn::Name)
            .collect()
    });
    let mut out: Vec<OutputColumn> = Vec::with_capacity(raw.len());
    let mut carried = 0;
    for (j, c) in raw.into_iter().enumerate() {
        let cp = format!("{p}.columns[{j}]");
        let (name, field, aggregate) = match c {
            RawColumn::Name(n) => (n.clone(), n, true),
            RawColumn::Renamed { name, field } => (name, field, false),
        };
        let source = if let Some(k) = group_by.iter().position(|g| *g == field) {
            ColumnSource::Key(k)
        } else if field == input.time_field {
            ColumnSource::Time
        } else if let Some(a) = aggregates
            .iter()
            .position(|a| a.name == field)
            .filter(|_| aggregate)
        {
            ColumnSource::Aggregate(a)
        } else {
            match input.field_index(&field) {
                Some(f) if input.fields[f].1 == FieldType::Number => {
                    carried += 1;
                    ColumnSource::Field {
                        field: f,
                        value: aggregates.len() + carried - 1,
                    }
                }
                Some(_) => {
                    return Err(SpecError::invalid(
                        cp,
                        format!(
                            "field {field:?} is not a number and not in group_by: a rows window \
                             carries the group-by values, the event time and numeric fields \
                             into its rows"
                        ),
                    ))
                }
                None => {
                    return Err(SpecError::invalid(
                        cp,
                        format!(
                            "{field:?} is no group-by field, event-time field, aggregate or input \
                             field"
                        ),
                    ))
                }
            }
        };
        if name.is_empty() {
            return Err(SpecError::invalid(cp, "an output column needs a name"));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(SpecError::invalid(
                cp,
                format!("duplicate output column {name:?}"),
            ));
        }
        out.push(OutputColumn { name, source });
    }
    if out.is_empty() {
        return Err(SpecError::invalid(
            format!("{p}.columns"),
            "at least one column is required",
        ));
    }
    Ok(out)
}

impl RawTrigger {
    /// The shorthand `{ early = …, late = … }` as the expression it stands for:
    /// `watermark(early = …, late = …)`, with a late pane per late element when `late` is
    /// not given.
    fn validate(self, p: &str) -> Result<Trigger, SpecError> {
        let early = match self.early {
            None => None,
            Some(e) => match (e.after, e.every) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::invalid(
                        format!("{p}.early"),
                        "give either `after` or `every`, not both",
                    ))
                }
                (Some(a), None) => {
                    let delay = parse_ms(&format!("{p}.early.after"), &a)?;
                    if delay <= 0 {
                        return Err(SpecError::invalid(
                            format!("{p}.early.after"),
                            "must be greater than zero",
                        ));
                    }
                    Some(Trigger::ProcessingTime(if e.aligned {
                        Delay {
                            delay_ms: 0,
                            align: Some(Align {
                                period_ms: delay,
                                offset_ms: 0,
                            }),
                        }
                    } else {
                        Delay {
                            delay_ms: delay,
                            align: None,
                        }
                    }))
                }
                (None, Some(n)) => {
                    if n == 0 {
                        return Err(SpecError::invalid(
                            format!("{p}.early.every"),
                            "must be greater than zero",
                        ));
                    }
                    if e.aligned {
                        return Err(SpecError::invalid(
                            format!("{p}.early.aligned"),
                            "only applies to `after`",
                        ));
                    }
                    Some(Trigger::Count(n))
                }
                (None, None) => {
                    return Err(SpecError::invalid(
                        format!("{p}.early"),
                        "give `after` (a duration) or `every` (a count)",
                    ))
                }
            },
        };
        let late = match self.late {
            None => Trigger::Count(1),
            Some(toml::Value::String(s)) if s == "every" => Trigger::Count(1),
            Some(toml::Value::Table(t)) => {
                let after = t.get("after").and_then(|v| v.as_str()).ok_or_else(|| {
                    SpecError::invalid(
                        format!("{p}.late"),
                        "use \"every\" or { after = \"<duration>\" }",
                    )
                })?;
                if t.len() != 1 {
                    return Err(SpecError::invalid(
                        format!("{p}.late"),
                        "only `after` is allowed",
                    ));
                }
                let delay = parse_ms(&format!("{p}.late.after"), after)?;
                if delay <= 0 {
                    return Err(SpecError::invalid(
                        format!("{p}.late.after"),
                        "must be greater than zero",
                    ));
                }
                Trigger::ProcessingTime(Delay {
                    delay_ms: delay,
                    align: None,
                })
            }
            Some(_) => {
                return Err(SpecError::invalid(
                    format!("{p}.late"),
                    "use \"every\" or { after = \"<duration>\" }",
                ))
            }
        };
        Ok(Trigger::Watermark {
            early: early.map(Box::new),
            late: Some(Box::new(late)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(window: &str, limits: &str) -> Result<PipelineSpec, SpecError> {
        PipelineSpec::from_toml(&format!(
            "{limits}\n[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ value = \"number\" }}\n\
             [[aggregation]]\nname = \"a\"\nwindow = {window}\n\
             aggregates = [{{ name = \"n\", fn = \"count\" }}]\n"
        ))
    }

    /// Issue 10: a 72 h window sliding by 1 ms (259 million windows per event) is refused
    /// with the field, the reason and the setting that raises the bound.
    #[test]
    fn windows_per_event_are_bounded_by_a_named_setting() {
        let e = spec(r#"{ type = "sliding", size = "72h", slide = "1ms" }"#, "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("aggregation[0].window.slide"), "{e}");
        assert!(e.contains("259200000 windows"), "{e}");
        assert!(e.contains("max_windows_per_event"), "{e}");
        let e = spec(r#"{ type = "sliding", size = "7d", slide = "1s" }"#, "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("604800 windows"), "{e}");
        // Exactly the default is accepted, one more is not.
        assert!(spec(r#"{ type = "sliding", size = "10000s", slide = "1s" }"#, "").is_ok());
        assert!(spec(r#"{ type = "sliding", size = "10001s", slide = "1s" }"#, "").is_err());
        // The setting raises (or lowers) the bound.
        let raised = "[limits]\nmax_windows_per_event = 1000000";
        assert!(spec(r#"{ type = "sliding", size = "7d", slide = "1s" }"#, raised).is_ok());
        let lowered = "[limits]\nmax_windows_per_event = 2";
        assert!(spec(
            r#"{ type = "sliding", size = "3h", slide = "1h" }"#,
            lowered
        )
        .is_err());
        let zero = "[limits]\nmax_windows_per_event = 0";
        let e = spec(r#"{ type = "tumbling", size = "1h" }"#, zero)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_windows_per_event"), "{e}");
    }

    /// Issue 10: `[watermark] max_future_skew` defaults to an hour, takes a duration or
    /// "off", and refuses zero and nonsense with the field's name.
    #[test]
    fn max_future_skew_defaults_to_an_hour_and_can_be_off() {
        let tumbling = r#"{ type = "tumbling", size = "1h" }"#;
        let skew = |s: &str| spec(tumbling, &format!("[watermark]\nmax_future_skew = {s}"));
        assert_eq!(
            spec(tumbling, "").unwrap().future_guard.max_skew_ms(),
            Some(3_600_000)
        );
        assert_eq!(
            skew("\"90s\"").unwrap().future_guard.max_skew_ms(),
            Some(90_000)
        );
        assert_eq!(skew("\"off\"").unwrap().future_guard.max_skew_ms(), None);
        for bad in ["\"0s\"", "\"-5m\"", "\"soon\"", "3"] {
            let e = skew(bad).unwrap_err().to_string();
            assert!(e.contains("max_future_skew"), "{bad}: {e}");
        }
    }

    fn trigger_spec(window: &str, extra: &str, limits: &str) -> Result<PipelineSpec, SpecError> {
        PipelineSpec::from_toml(&format!(
            "{limits}\n[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ value = \"number\" }}\n\
             [[aggregation]]\nname = \"a\"\nwindow = {window}\n\
             aggregates = [{{ name = \"n\", fn = \"count\" }}]\n{extra}\n"
        ))
    }

    fn trigger_error(trigger: &str, extra: &str, limits: &str) -> String {
        let window = r#"{ type = "tumbling", size = "1m" }"#;
        let text = format!("trigger = {trigger}\n{extra}");
        match trigger_spec(window, &text, limits) {
            Ok(_) => panic!("{trigger} is accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// Issue 12: a trigger that can never fire, or fires more often than the bound on work,
    /// is an error with the reason and the setting that raises the bound.
    #[test]
    fn triggers_that_never_fire_or_fire_too_often_are_errors() {
        for t in ["\"never\"", "\"all(never, count(1))\"", "\"repeat(never)\""] {
            let e = trigger_error(t, "", "");
            assert!(e.contains("aggregation[0] (a).trigger"), "{e}");
            assert!(e.contains("can never fire"), "{e}");
        }
        let e = trigger_error("\"each(count(1), never, count(2))\"", "", "");
        assert!(e.contains("never gets past it"), "{e}");
        let e = trigger_error("\"repeat(after(10ms))\"", "", "");
        assert!(e.contains("min_processing_time_period"), "{e}");
        assert!(e.contains("after(10ms)"), "{e}");
        let e = trigger_error("{ early = { after = \"500ms\", aligned = true } }", "", "");
        assert!(e.contains("every(500ms)"), "{e}");
        assert!(e.contains("min_processing_time_period"), "{e}");
        let lowered = "[limits]\nmin_processing_time_period = \"5ms\"";
        let window = r#"{ type = "tumbling", size = "1m" }"#;
        assert!(trigger_spec(window, "trigger = \"repeat(after(10ms))\"", lowered).is_ok());
        let e = trigger_error(
            "\"count(1)\"",
            "",
            "[limits]\nmin_processing_time_period = \"0s\"",
        );
        assert!(e.contains("limits.min_processing_time_period"), "{e}");
        // `never` inside another trigger is fine.
        let ok =
            "trigger = \"watermark(early = count(2), late = never)\"\nallowed_lateness = \"1h\"";
        assert!(trigger_spec(window, ok, "").is_ok());
    }

    /// The expression parser is bounded and names the column; other misuses name the field.
    #[test]
    fn trigger_expressions_are_parsed_with_bounds_and_columns() {
        let e = trigger_error("\"repeat(cuont(1))\"", "", "");
        assert!(e.contains("at column 8: unknown trigger `cuont`"), "{e}");
        let deep = format!("\"{}count(1){}\"", "repeat(".repeat(40), ")".repeat(40));
        let e = trigger_error(&deep, "", "");
        assert!(e.contains("eventide_engine::trigger::MAX_NESTING"), "{e}");
        let long = format!("\"first({}count(1))\"", "count(1), ".repeat(300));
        let e = trigger_error(&long, "", "");
        assert!(
            e.contains("eventide_engine::trigger::MAX_EXPR_BYTES"),
            "{e}"
        );
        let e = trigger_error("\"watermark(late = count(1))\"", "", "");
        assert!(e.contains("trigger.late"), "{e}");
        assert!(e.contains("allowed_lateness"), "{e}");
        let e = trigger_error("3", "", "");
        assert!(e.contains("trigger expression"), "{e}");
        let e = trigger_error("{ erly = { every = 2 } }", "", "");
        assert!(e.contains("aggregation[0] (a).trigger"), "{e}");
        let count = r#"{ type = "count", size = 8 }"#;
        let e = trigger_spec(count, "trigger = \"repeat(count(1))\"", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("count windows"), "{e}");
        let e = trigger_error("\"count(1)\"", "on_time = \"sometimes\"", "");
        assert!(e.contains("on_time") || e.contains("sometimes"), "{e}");
    }

    /// Only the default trigger and `watermark()` with no allowed lateness give a single
    /// on-time pane per window (no timing and pane index columns).
    #[test]
    fn multi_pane_follows_the_trigger() {
        let window = r#"{ type = "tumbling", size = "1m" }"#;
        let multi =
            |extra: &str| trigger_spec(window, extra, "").unwrap().aggregations[0].multi_pane();
        assert!(!multi(""));
        assert!(!multi("trigger = \"watermark()\""));
        assert!(multi(
            "trigger = \"watermark()\"\nallowed_lateness = \"1m\""
        ));
        assert!(multi("trigger = \"repeat(count(1))\""));
        assert!(multi("trigger = { early = { every = 2 } }"));
    }

    /// Deep nesting in a spec, in TOML or in a filter, is an error, never a stack overflow.
    #[test]
    fn deep_nesting_in_a_spec_is_an_error() {
        let deep_toml = format!("x = {}{}", "[".repeat(5000), "]".repeat(5000));
        let e = PipelineSpec::from_toml(&deep_toml).unwrap_err().to_string();
        assert!(e.contains("recursion limit"), "{e}");
        let filter = format!("{}value > 1{}", "(".repeat(4000), ")".repeat(4000));
        let text = format!(
            "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ value = \"number\" }}\n\
             [[aggregation]]\nname = \"a\"\nfilter = '{filter}'\nwindow = {{ type = \"global\" }}\n\
             aggregates = [{{ name = \"n\", fn = \"count\" }}]\n"
        );
        let e = PipelineSpec::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("aggregation[0] (a).filter"), "{e}");
        assert!(e.contains("MAX_NESTING"), "{e}");
    }
}
