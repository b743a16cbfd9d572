//! From parsed statements to the equivalent pipeline spec (TOML text), validated by
//! [`PipelineSpec::from_toml`].

use std::collections::HashMap;
use std::fmt::Write as _;

use eventide_engine::duration::format_ms;
use eventide_engine::trigger::FlinkEmit;
use eventide_engine::PipelineSpec;
use sqlparser::ast::Spanned;
use sqlparser::ast::{
    BinaryOperator, CreateTable, CreateTableOptions, DataType, DateTimeField, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Insert, ObjectName, Select,
    SelectItem, SqlOption, Statement, TableFactor, TableObject, UnaryOperator, Value,
};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Tokenizer};

use crate::dialect::FlinkDialect;
use crate::error::{at, SqlError, MAX_NESTING, MAX_SQL_BYTES};
use crate::expr::{sql_type, translate, Scope, SqlTy};
use crate::extensions::{self, EmitOptions, RulesBase};
use crate::plan::{AwsRoute, AwsSink, AwsSinks, Compiled, SinkOptions, SourceOptions};
use crate::prepass::{prepass, Prepassed, TableExtras};
use crate::syntax::{
    check_column_count, check_qualifier, column, duration_setting, field_type, option_key,
    plain_select, q, select_item, single_from, AggregateEntry, FromErrors,
};

pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: DataType,
    pub(crate) span: Span,
}

pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) columns: Vec<Column>,
    pub(crate) extras: TableExtras,
    /// `WITH` options: key, value, position of the value.
    pub(crate) options: Vec<(String, String, Span)>,
}

impl Table {
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    fn option_span(&self, key: &str) -> Span {
        self.options
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, s)| *s)
            .unwrap_or(self.span)
    }

    /// Every option must be one of `known` (or start with one of `prefixes`).
    fn check_options(&self, role: &str, known: &[&str]) -> Result<(), SqlError> {
        for (k, _, span) in &self.options {
            if !known.contains(&k.as_str()) {
                return Err(at(
                    *span,
                    format!(
                        "option '{k}' of the {role} table `{}` is not supported; supported: {}",
                        self.name,
                        known
                            .iter()
                            .map(|k| format!("'{k}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The source table as the spec sees it.
struct Source {
    name: String,
    /// The rowtime column (the one with the WATERMARK).
    rowtime: String,
    /// Physical columns other than the event-time field, with their spec types.
    fields: Vec<(String, &'static str)>,
}

/// The `SET` options that shape triggers and lateness.
#[derive(Default)]
struct Settings {
    early_enabled: Option<(bool, Span)>,
    early_delay: Option<i64>,
    late_enabled: Option<(bool, Span)>,
    late_delay: Option<i64>,
    allow_lateness: Option<i64>,
    state_ttl: Option<i64>,
    idle_timeout: Option<i64>,
}

const SET_OPTIONS: &[&str] = &[
    "table.exec.emit.early-fire.enabled",
    "table.exec.emit.early-fire.delay",
    "table.exec.emit.late-fire.enabled",
    "table.exec.emit.late-fire.delay",
    "table.exec.emit.allow-lateness",
    "table.exec.state.ttl",
    "table.exec.source.idle-timeout",
    "table.local-time-zone ('UTC')",
    "execution.runtime-mode ('streaming')",
    "pipeline.name",
    "parallelism.default",
    "and Eventide's eventide.trigger, eventide.accumulation, eventide.on-time, \
     eventide.allowed-lateness, eventide.rules (docs/sql.md)",
];

/// The stack of the thread that parses and compiles: sqlparser recurses per nesting level
/// (up to [`MAX_NESTING`]), and its frames are large in unoptimised builds, so the bound
/// is only safe on a stack of known size.
const COMPILE_STACK_BYTES: usize = 64 << 20;

/// Compiles `text`; a `SET 'eventide.rules'` file is read relative to `rules`.
pub fn compile(text: &str, rules: RulesBase<'_>) -> Result<Compiled, SqlError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("eventide-sql".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn_scoped(scope, || compile_on_this_thread(text, rules))
            .map_err(|e| SqlError::Other(format!("cannot start the SQL compiler thread: {e}")))?
            .join()
            .map_err(|_| SqlError::Other("the SQL compiler failed".into()))?
    })
}

fn compile_on_this_thread(text: &str, rules: RulesBase<'_>) -> Result<Compiled, SqlError> {
    if text.len() > MAX_SQL_BYTES {
        return Err(SqlError::Other(format!(
            "the SQL text is {} bytes, more than {MAX_SQL_BYTES} (eventide_sql::MAX_SQL_BYTES)",
            text.len()
        )));
    }
    let dialect = FlinkDialect::default();
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::At {
            line: e.location.line,
            column: e.location.column,
            message: format!("syntax error: {}", e.message),
        })?;
    let Prepassed {
        tokens,
        tables: extras,
        table_args,
        statement_set: _,
        catalogs,
    } = prepass(tokens)?;
    let statements = Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(crate::error::parser_error)?;

    let mut extras = extras;
    let mut tables: Vec<Table> = Vec::new();
    let mut settings = Settings::default();
    let mut ext = extensions::Settings::default();
    let mut inserts: Vec<(&Insert, EmitOptions)> = Vec::new();
    let mut create_views = Vec::new();
    for st in &statements {
        match st {
            Statement::CreateTable(ct) => {
                let t = table(ct, &mut extras)?;
                if tables.iter().any(|x| x.name == t.name) {
                    return Err(at(t.span, format!("table `{}` is declared twice", t.name)));
                }
                tables.push(t);
            }
            Statement::Set(set) => {
                if !eventide_setting(set, &mut ext)? {
                    setting(set, &mut settings)?
                }
            }
            Statement::Insert(ins) => inserts.push((ins, ext.take_for_insert())),
            Statement::CreateView(cv) => create_views.push(cv),
            Statement::Query(q) => {
                return Err(at(
                    q.span(),
                    "a SELECT on its own has no sink; write INSERT INTO <sink table> SELECT …",
                ))
            }
            other => {
                return Err(at(
                    other.span(),
                    format!(
                        "`{}` is not supported; a pipeline is CREATE TABLE, SET and INSERT INTO \
                         statements (optionally in a statement set)",
                        first_words(&other.to_string())
                    ),
                ))
            }
        }
    }
    ext.check_all_used()?;
    if inserts.is_empty() && ext.job.rules.is_none() {
        return Err(SqlError::Other(
            "the SQL has no INSERT INTO statement (and no SET 'eventide.rules'): nothing to \
             compute"
                .into(),
        ));
    }

    for cv in &create_views {
        for g in crate::catalog::glue_tables(cv, &catalogs)? {
            if !tables.iter().any(|x| x.name == g.name) {
                tables.push(glue_table(g));
            }
        }
    }
    let mut views: Vec<View> = Vec::new();
    for cv in create_views {
        let v = view(cv, &tables)?;
        if tables.iter().any(|t| t.name == v.name) || views.iter().any(|x| x.name == v.name) {
            return Err(at(v.span, format!("`{}` is declared twice", v.name)));
        }
        views.push(v);
    }
    let mut c = Compiler {
        tables: &tables,
        views: &views,
        view_used: None,
        raw_read: None,
        reading_view: None,
        table_args: &table_args,
        settings: &settings,
        source: None,
        aggregations: String::new(),
        sinks: Vec::new(),
        out_dir: None,
        aws: AwsSinks::default(),
        insert_spans: Vec::new(),
        eventide_emit: EmitOptions::default(),
        rules_span: None,
        source_table: None,
        window_tvf: "",
    };
    for (ins, emit) in inserts {
        c.eventide_emit = emit;
        c.insert(ins)?;
    }
    if c.source.is_none() {
        // Rules and no INSERT: the rules read the one table with a WATERMARK.
        let streams: Vec<&Table> = tables
            .iter()
            .filter(|t| t.extras.watermark.is_some())
            .collect();
        match streams.as_slice() {
            [one] => {
                c.use_source(&one.name, one.span)?;
            }
            _ => {
                let span = ext.job.rules.as_ref().map_or_else(Span::empty, |r| r.1);
                return Err(at(
                    span,
                    format!(
                        "the rules read the source table, and without an INSERT that is the one \
                         table with a WATERMARK; {} have one",
                        if streams.is_empty() {
                            "no tables".to_string()
                        } else {
                            streams
                                .iter()
                                .map(|t| format!("`{}`", t.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                ));
            }
        }
    }
    let Some(src) = c.source.take() else {
        return Err(SqlError::Other("no INSERT reads a source table".into()));
    };
    c.source_table = Some(src.name.clone());
    let (source_toml, source_options) = c.source_toml(&src)?;
    let mut enrichments = String::new();
    if let Some(v) = c.view_used.and_then(|i| views.get(i)) {
        for l in &v.lookups {
            let t = c
                .table(&l.table)
                .ok_or_else(|| at(l.span, format!("unknown table `{}`", l.table)))?;
            enrichments.push_str(&enrichment_toml(l, t)?);
            if let (Some(r), crate::catalog::GLUE) =
                (t.option("region"), t.option("connector").unwrap_or(""))
            {
                match &c.aws.region {
                    Some(have) if have != r => {
                        return Err(at(
                            t.option_span("region"),
                            format!("the Glue catalog's 'region' = '{r}', and a sink names 'aws.region' = '{have}'; the consumer runs in one region"),
                        ))
                    }
                    _ => c.aws.region = Some(r.to_string()),
                }
            }
        }
    }
    let mut toml = format!("{source_toml}{enrichments}{}", c.aggregations);
    if let Some((name, span)) = &ext.job.rules {
        let rules_text = extensions::read_rules(name, *span, rules)?;
        let _ = write!(toml, "\n# SET 'eventide.rules' = {}\n{rules_text}", q(name));
        c.rules_span = Some(*span);
    }
    let spec = PipelineSpec::from_toml(&toml).map_err(|e| c.spec_error(e))?;
    Ok(Compiled {
        spec,
        toml,
        source: source_options,
        out_dir: c.out_dir,
        sinks: c.sinks,
        aws: c.aws,
    })
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn string_value(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.clone()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn table(ct: &CreateTable, extras: &mut HashMap<String, TableExtras>) -> Result<Table, SqlError> {
    let span = ct.name.span();
    let name = match ct.name.0.as_slice() {
        [one] => one
            .as_ident()
            .map(|i| i.value.clone())
            .unwrap_or_else(|| one.to_string()),
        _ => {
            return Err(at(
                span,
                format!(
                    "table `{}`: catalog and database names are not supported; use a plain name",
                    ct.name
                ),
            ))
        }
    };
    if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() {
        return Err(at(
            span,
            "CREATE TABLE … AS / LIKE / CLONE is not supported; declare the columns",
        ));
    }
    let mut options = Vec::new();
    match &ct.table_options {
        CreateTableOptions::None => {}
        CreateTableOptions::With(opts) => {
            for o in opts {
                match o {
                    SqlOption::KeyValue { key, value } => {
                        let v = string_value(value).ok_or_else(|| {
                            at(value.span(), "an option value is a string such as 'json'")
                        })?;
                        options.push((option_key(key), v, value.span()));
                    }
                    other => {
                        return Err(at(
                            span,
                            format!("table option `{other}` is not supported; use 'key' = 'value'"),
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(at(
                span,
                "table options are written WITH ('key' = 'value', …)",
            ))
        }
    }
    let columns = ct
        .columns
        .iter()
        .map(|c| {
            if let Some(o) = c.options.first() {
                if !matches!(
                    o.option,
                    sqlparser::ast::ColumnOption::Null | sqlparser::ast::ColumnOption::NotNull
                ) {
                    return Err(at(
                        c.name.span,
                        format!(
                            "column `{}`: option `{}` is not supported",
                            c.name.value, o.option
                        ),
                    ));
                }
            }
            Ok(Column {
                name: c.name.value.clone(),
                ty: c.data_type.clone(),
                span: c.name.span,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table {
        extras: extras.remove(&name).unwrap_or_default(),
        name,
        span,
        columns,
        options,
    })
}

fn bool_setting(key: &str, v: &str, span: Span) -> Result<bool, SqlError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(at(
            span,
            format!("'{key}' = '{v}': expected 'true' or 'false'"),
        )),
    }
}

/// A `SET 'eventide.…'` (true), or another key (false: Flink's, for [`setting`]).
fn eventide_setting(
    set: &sqlparser::ast::Set,
    ext: &mut extensions::Settings,
) -> Result<bool, SqlError> {
    use sqlparser::ast::Set;
    let Set::SingleAssignment {
        variable, values, ..
    } = set
    else {
        return Ok(false);
    };
    let key = option_key(variable);
    if !key.starts_with("eventide.") {
        return Ok(false);
    }
    match values.as_slice() {
        [v] => {
            let value = string_value(v)
                .ok_or_else(|| at(v.span(), format!("the value of '{key}' is a quoted string")))?;
            ext.set(&key, &value, variable.span(), v.span())
        }
        _ => Err(at(variable.span(), "SET takes one value")),
    }
}

fn setting(set: &sqlparser::ast::Set, s: &mut Settings) -> Result<(), SqlError> {
    use sqlparser::ast::Set;
    let Set::SingleAssignment {
        variable, values, ..
    } = set
    else {
        return Err(at(
            Span::empty(),
            format!("`{set}` is not supported; use SET 'key' = 'value'"),
        ));
    };
    let key = option_key(variable);
    let span = variable.span();
    let value = match values.as_slice() {
        [v] => {
            string_value(v).ok_or_else(|| at(v.span(), "the value is a string such as '5 s'"))?
        }
        _ => return Err(at(span, "SET takes one value")),
    };
    match key.as_str() {
        "table.exec.emit.early-fire.enabled" => {
            s.early_enabled = Some((bool_setting(&key, &value, span)?, span))
        }
        "table.exec.emit.early-fire.delay" => {
            s.early_delay = Some(duration_setting(&key, &value, span)?)
        }
        "table.exec.emit.late-fire.enabled" => {
            s.late_enabled = Some((bool_setting(&key, &value, span)?, span))
        }
        "table.exec.emit.late-fire.delay" => {
            s.late_delay = Some(duration_setting(&key, &value, span)?)
        }
        "table.exec.emit.allow-lateness" => {
            s.allow_lateness = Some(duration_setting(&key, &value, span)?)
        }
        "table.exec.state.ttl" => s.state_ttl = Some(duration_setting(&key, &value, span)?),
        "table.exec.source.idle-timeout" => {
            s.idle_timeout = Some(duration_setting(&key, &value, span)?)
        }
        "table.local-time-zone" if value.eq_ignore_ascii_case("UTC") => {}
        "execution.runtime-mode" if value.eq_ignore_ascii_case("streaming") => {}
        "pipeline.name" | "parallelism.default" => {}
        _ => {
            return Err(at(
                span,
                format!(
                    "SET '{key}' = '{value}' is not supported; supported settings: {}",
                    SET_OPTIONS.join(", ")
                ),
            ))
        }
    }
    Ok(())
}

fn is_timestamp(ty: &DataType) -> bool {
    matches!(ty, DataType::Timestamp(..))
        || matches!(ty, DataType::Custom(n, _) if n.to_string().eq_ignore_ascii_case("TIMESTAMP_LTZ"))
}

/// An `INTERVAL 'n' UNIT` in milliseconds.
fn interval_ms(e: &Expr) -> Result<i64, SqlError> {
    let bad = || {
        at(
            e.span(),
            format!(
                "`{e}`: expected an interval such as INTERVAL '15' MINUTE (units: SECOND, \
                 MINUTE, HOUR, DAY, with a whole number)"
            ),
        )
    };
    let Expr::Interval(iv) = e else {
        return Err(bad());
    };
    if iv.last_field.is_some() || iv.fractional_seconds_precision.is_some() {
        return Err(bad());
    }
    let n: i64 = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => {
                s.trim().parse().map_err(|_| bad())?
            }
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    use DateTimeField as F;
    let unit: i64 = match iv.leading_field.as_ref().ok_or_else(bad)? {
        F::Millisecond | F::Milliseconds => 1,
        F::Second | F::Seconds => 1_000,
        F::Minute | F::Minutes => 60_000,
        F::Hour | F::Hours => 3_600_000,
        F::Day | F::Days => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

/// `e` without its parentheses.
fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

/// True for a SELECT-list item computed from aggregates (`SUM(a) / COUNT(*)`), rather than
/// one aggregate (possibly printed with `CAST(… AS DECIMAL(p, s))` or `ROUND`).
fn computed_shape(e: &Expr) -> bool {
    match strip_nested(e) {
        Expr::BinaryOp { .. } | Expr::UnaryOp { .. } | Expr::Case { .. } => true,
        Expr::Cast {
            expr, data_type, ..
        } => {
            let decimal = matches!(
                data_type,
                DataType::Decimal(_) | DataType::Numeric(_) | DataType::Dec(_)
            );
            !(decimal && matches!(strip_nested(expr), Expr::Function(_)))
        }
        _ => false,
    }
}

/// The operands of an output column computed from aggregates: the earlier aggregates of
/// the SELECT list, by their output columns.
struct OutputScope<'c, 'a> {
    compiler: &'c Compiler<'a>,
    alias: Option<&'c str>,
    outputs: &'c [(AggKey, String)],
    types: &'c [SqlTy],
}

impl Scope for OutputScope<'_, '_> {
    fn column(&self, e: &Expr) -> Result<Option<(String, SqlTy)>, SqlError> {
        match e {
            Expr::Function(f) => {
                let key = self.compiler.aggregate_call(f, self.alias)?.key();
                let i = self
                    .outputs
                    .iter()
                    .position(|(k, _)| *k == key)
                    .ok_or_else(|| {
                        at(
                            f.name.span(),
                            format!(
                                "`{f}` is not an earlier column of the SELECT list; an output \
                                 column computed from aggregates reads the aggregates before it \
                                 (add `{f}` as a column before this one)"
                            ),
                        )
                    })?;
                let ty = self.types.get(i).copied().unwrap_or(SqlTy::Double);
                Ok(Some((self.outputs[i].1.clone(), ty)))
            }
            e if column(e).is_some() => Err(at(
                e.span(),
                format!(
                    "`{e}`: an output column computed from aggregates reads aggregates, not \
                     columns"
                ),
            )),
            _ => Ok(None),
        }
    }

    fn condition(&self, e: &Expr) -> Result<String, SqlError> {
        self.compiler.cond(
            e,
            false,
            &Operands::Aggregates {
                alias: self.alias,
                outputs: self.outputs,
                types: self.types,
            },
        )
    }
}

/// The columns and conditions of an aggregate's argument ([`crate::expr`]).
struct ColumnScope<'c, 'a> {
    compiler: &'c Compiler<'a>,
    alias: Option<&'c str>,
}

impl Scope for ColumnScope<'_, '_> {
    fn column(&self, e: &Expr) -> Result<Option<(String, SqlTy)>, SqlError> {
        let Some((id, qual)) = column(e) else {
            return Ok(None);
        };
        check_qualifier(qual, self.alias)?;
        let spec_ty = self.compiler.field(&id.value, id.span)?;
        if spec_ty != "number" {
            return Err(at(
                id.span,
                format!(
                    "`{}` is a {spec_ty} column; expressions (arithmetic, CASE, CAST) are numeric",
                    id.value
                ),
            ));
        }
        let ty = self.compiler.sql_column(&id.value).unwrap_or(SqlTy::Double);
        Ok(Some((id.value.clone(), ty)))
    }

    fn condition(&self, e: &Expr) -> Result<String, SqlError> {
        self.compiler.cond(e, false, &Operands::Columns(self.alias))
    }
}

struct Compiler<'a> {
    tables: &'a [Table],
    views: &'a [View],
    /// The view of lookup joins the pipeline reads (its enrichments apply to every record).
    view_used: Option<usize>,
    /// An INSERT that reads the source table itself.
    raw_read: Option<Span>,
    /// The view the current INSERT reads, if it reads one.
    reading_view: Option<usize>,
    table_args: &'a HashMap<(u64, u64), crate::prepass::TableArg>,
    settings: &'a Settings,
    source: Option<Source>,
    aggregations: String,
    sinks: Vec<SinkOptions>,
    out_dir: Option<String>,
    /// The consumer's AWS sinks the sink tables name.
    aws: AwsSinks,
    /// Each aggregation's INSERT, for errors from the spec's validation.
    insert_spans: Vec<(String, Span)>,
    /// The `SET 'eventide.…'` trigger options of the current INSERT.
    eventide_emit: EmitOptions,
    /// The `SET 'eventide.rules'`, for errors from the spec's validation.
    rules_span: Option<Span>,
    /// The source table's name, for errors from the spec's validation.
    source_table: Option<String>,
    /// The window TVF of the INSERT being compiled (`TUMBLE`, `HOP`, …).
    window_tvf: &'static str,
}

/// What a window TVF call asks for.
enum Window {
    Tumbling(i64),
    Hop {
        size: i64,
        slide: i64,
    },
    Cumulate {
        size: i64,
        step: i64,
    },
    Session {
        gap: i64,
        partition_by: Vec<(String, Span)>,
    },
}

impl<'a> Compiler<'a> {
    fn table(&self, name: &str) -> Option<&'a Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Names the INSERT of a spec validation error.
    fn spec_error(&self, e: eventide_engine::SpecError) -> SqlError {
        let text = e.to_string();
        if let Some(v) = self.view_used.and_then(|i| self.views.get(i)) {
            if text.contains("enrichment[") {
                return at(v.span, format!("view `{}`: {text}", v.name));
            }
        }
        if let Some(span) = self.rules_span.filter(|_| text.contains("rule[")) {
            return at(span, format!("SET 'eventide.rules': {text}"));
        }
        if let (Some(key), Some(t)) = (
            extensions::file_option_of(&text),
            self.source_table.as_deref().and_then(|s| self.table(s)),
        ) {
            return at(t.option_span(key), format!("'{key}': {text}"));
        }
        for (i, (name, span)) in self.insert_spans.iter().enumerate() {
            if text.contains(&format!("aggregation[{i}]")) {
                return at(*span, format!("INSERT INTO {name}: {text}"));
            }
        }
        SqlError::Other(format!("the compiled pipeline is not valid: {text}"))
    }

    /// The source table for a query reading `name` (at `span`): the one source of the
    /// pipeline.
    fn use_source(&mut self, name: &str, span: Span) -> Result<&Source, SqlError> {
        // A view of lookup joins reads its source; its enrichments apply to every record, so
        // the pipeline has at most one, and an inner join's dropped rows must not be missed
        // by an INSERT that reads the source itself.
        let view = self.views.iter().position(|v| v.name == name);
        let name = match view {
            Some(i) => {
                if self.view_used.is_some_and(|u| u != i) {
                    return Err(at(
                        span,
                        "a pipeline reads at most one view of lookup joins (its enrichments \
                         apply to every record); put all lookup joins in one view",
                    ));
                }
                self.view_used = Some(i);
                self.views[i].source.as_str()
            }
            None => {
                self.raw_read.get_or_insert(span);
                name
            }
        };
        self.reading_view = view;
        if let (Some(v), Some(raw)) = (
            self.view_used.and_then(|i| self.views.get(i)),
            self.raw_read,
        ) {
            if v.lookups.iter().any(|l| l.inner) {
                return Err(at(
                    if view.is_some() { span } else { raw },
                    format!(
                        "INSERTs read both `{}` and the view `{}`, whose inner lookup join drops \
                         rows without a match before every aggregation; read the view in every \
                         INSERT, or make the joins LEFT JOINs",
                        v.source, v.name
                    ),
                ));
            }
        }
        if let Some(s) = &self.source {
            if s.name != name {
                return Err(at(
                    span,
                    format!(
                        "the pipeline reads `{}` already; one source table per pipeline (joins \
                         of two streams and several sources are not supported)",
                        s.name
                    ),
                ));
            }
        } else {
            let t = self.table(name).ok_or_else(|| {
                at(
                    span,
                    format!("unknown table `{name}`; declare it with CREATE TABLE"),
                )
            })?;
            self.source = Some(source_of(t, span)?);
        }
        self.source
            .as_ref()
            .ok_or_else(|| SqlError::Other("no source table".into()))
    }

    fn insert(&mut self, ins: &Insert) -> Result<(), SqlError> {
        let span = ins.insert_token.0.span;
        let TableObject::TableName(target) = &ins.table else {
            return Err(at(span, "INSERT INTO a table function is not supported"));
        };
        let sink_name = option_key(target);
        let sink = self.table(&sink_name).ok_or_else(|| {
            at(
                target.span(),
                format!("unknown sink table `{sink_name}`; declare it with CREATE TABLE … WITH ('connector' = …)"),
            )
        })?;
        if !ins.columns.is_empty() {
            return Err(at(
                ins.columns[0].span(),
                "INSERT INTO t (columns) is not supported; the SELECT list fills the sink's columns in order",
            ));
        }
        if ins.overwrite {
            return Err(at(span, "INSERT OVERWRITE is not supported"));
        }
        let Some(query) = &ins.source else {
            return Err(at(span, "INSERT needs a SELECT"));
        };
        let select = plain_select(query)?;
        self.insert_spans.push((sink_name.clone(), span));
        let agg = self.select(select, sink)?;
        self.aggregations.push_str(&agg);
        self.sink_options(sink)?;
        Ok(())
    }

    fn sink_options(&mut self, sink: &Table) -> Result<(), SqlError> {
        let connector = sink.option("connector").unwrap_or("").to_string();
        let s3 = sink.option("path").filter(|p| p.starts_with("s3://"));
        let aws = match connector.as_str() {
            "filesystem" => s3.map(|p| AwsSink::S3 {
                path: p.to_string(),
            }),
            // `sink_toml` has refused a dynamodb sink without 'table-name'.
            "dynamodb" => sink.option("table-name").map(|t| AwsSink::DynamoDb {
                table: t.to_string(),
            }),
            "kinesis" => {
                let stream = sink.option("stream").map(str::to_string).or_else(|| {
                    sink.option("stream.arn")
                        .and_then(|a| a.rsplit_once(":stream/").map(|(_, s)| s.to_string()))
                });
                let Some(stream) = stream else {
                    return Err(at(
                        sink.span,
                        format!(
                            "kinesis sink `{}` needs 'stream' or 'stream.arn'",
                            sink.name
                        ),
                    ));
                };
                Some(AwsSink::Kinesis { stream })
            }
            _ => None,
        };
        if let Some(aws) = aws {
            self.aws.routes.push(AwsRoute {
                aggregation: sink.name.clone(),
                sink: aws,
            });
        }
        if let Some(r) = sink.option("aws.region") {
            match &self.aws.region {
                Some(have) if have != r => {
                    return Err(at(
                        sink.option_span("aws.region"),
                        format!("'aws.region' = '{r}', and another sink names '{have}'; the consumer writes in one region"),
                    ))
                }
                _ => self.aws.region = Some(r.to_string()),
            }
        }
        if connector == "filesystem" && s3.is_none() {
            if let Some(p) = sink.option("path") {
                match &self.out_dir {
                    Some(d) if d != p => {
                        return Err(at(
                            sink.option_span("path"),
                            format!(
                                "every filesystem sink writes into one output directory, and \
                                 another sink names '{d}'; give them the same 'path' (each \
                                 table is a file <path>/<table>.csv)"
                            ),
                        ))
                    }
                    _ => self.out_dir = Some(p.to_string()),
                }
            }
        }
        self.sinks.push(SinkOptions {
            table: sink.name.clone(),
            connector,
            options: sink
                .options
                .iter()
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect(),
        });
        Ok(())
    }

    /// One INSERT's SELECT as an `[[aggregation]]`.
    fn select(&mut self, sel: &Select, sink: &Table) -> Result<String, SqlError> {
        if let Some(d) = &sel.distinct {
            return Err(at(
                sel.select_token.0.span,
                format!("SELECT {d} is not supported"),
            ));
        }
        if let Some(q) = &sel.qualify {
            return Err(at(q.span(), "QUALIFY is not supported"));
        }
        if crate::over::uses_over(sel) {
            let cols: Vec<(String, Span)> = sink
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.span))
                .collect();
            let agg = crate::over::select(self, sel, &cols, &sink.name)?;
            return Ok(agg + &sink_toml(sink)?);
        }
        let relation = single_from(
            sel,
            &FromErrors {
                missing: "SELECT needs FROM a window TVF",
                comma_join: "a comma join (of two streams) is not supported; the supported \
                             join is a lookup join: JOIN t FOR SYSTEM_TIME AS OF e.proc_time ON …",
                join: "joins are not supported here (a join of two streams, or a lookup join \
                       after a window TVF); a lookup join goes in a view that the window TVF \
                       reads: CREATE TEMPORARY VIEW v AS SELECT e.*, s.col FROM src AS e JOIN t \
                       FOR SYSTEM_TIME AS OF e.proc_time AS s ON e.k = s.k, then TUMBLE(TABLE \
                       v, …)",
            },
        )?;
        let (window, table_name, table_span, alias) = self.window_tvf(relation)?;
        self.window_tvf = match window {
            Window::Tumbling(_) => "TUMBLE",
            Window::Hop { .. } => "HOP",
            Window::Cumulate { .. } => "CUMULATE",
            Window::Session { .. } => "SESSION",
        };
        self.use_source(&table_name, table_span)?;
        let filter = sel
            .selection
            .as_ref()
            .map(|w| self.cond(w, false, &Operands::Columns(alias.as_deref())))
            .transpose()?;

        // GROUP BY: window_start, window_end and the keys.
        let group_exprs = match &sel.group_by {
            GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs,
            GroupByExpr::Expressions(exprs, _) if exprs.is_empty() => exprs,
            other => {
                return Err(at(
                    sel.select_token.0.span,
                    format!("`GROUP BY {other}` is not supported; group by window_start, window_end and columns"),
                ))
            }
        };
        if group_exprs.is_empty() {
            return Err(at(
                sel.select_token.0.span,
                "a window TVF query must GROUP BY window_start, window_end (and the key columns)",
            ));
        }
        let mut keys: Vec<(String, Span)> = Vec::new();
        let (mut has_start, mut has_end) = (false, false);
        for g in group_exprs {
            let Some((id, qual)) = column(g) else {
                return Err(at(
                    g.span(),
                    format!("GROUP BY `{g}`: only columns, window_start and window_end can be grouped by"),
                ));
            };
            check_qualifier(qual, alias.as_deref())?;
            match id.value.as_str() {
                "window_start" => has_start = true,
                "window_end" => has_end = true,
                "window_time" => {
                    return Err(at(id.span, "grouping by window_time is not supported"))
                }
                name => {
                    self.field(name, id.span)?;
                    keys.push((name.to_string(), id.span));
                }
            }
        }
        if !(has_start && has_end) {
            return Err(at(
                group_exprs[0].span(),
                "a window aggregation groups by both window_start and window_end",
            ));
        }
        if let Window::Session { partition_by, .. } = &window {
            let mut a: Vec<&str> = partition_by.iter().map(|(n, _)| n.as_str()).collect();
            let mut b: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
            a.sort_unstable();
            b.sort_unstable();
            if a != b {
                let span = partition_by.first().map(|(_, s)| *s).unwrap_or(table_span);
                return Err(at(
                    span,
                    format!(
                        "SESSION(TABLE t PARTITION BY …) must partition by exactly the GROUP BY \
                         columns ({}): sessions are kept per group key",
                        b.join(", ")
                    ),
                ));
            }
        }

        // The SELECT list: keys, window_start, window_end, aggregates, in this order.
        let sink_cols: Vec<&Column> = sink.columns.iter().collect();
        check_column_count(sel, &sink.name, sink_cols.len())?;
        let mut group_by: Vec<String> = Vec::new();
        let mut aggregates: Vec<String> = Vec::new();
        let mut outputs: Vec<(AggKey, String)> = Vec::new();
        let mut out_types: Vec<SqlTy> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut stage = 0; // 0 keys, 1 after window_start, 2 after window_end
        for (pos, item) in sel.projection.iter().enumerate() {
            let (expr, alias_name) = select_item(item)?;
            let sink_col = sink_cols.get(pos).copied();
            let out_name = |default: &str| -> String {
                sink_col
                    .map(|c| c.name.clone())
                    .or_else(|| alias_name.map(|a| a.value.clone()))
                    .unwrap_or_else(|| default.to_string())
            };
            if let Some((id, qual)) = column(expr) {
                check_qualifier(qual, alias.as_deref())?;
                let name = id.value.as_str();
                let expected_stage = match name {
                    "window_start" => 0,
                    "window_end" => 1,
                    _ => 0,
                };
                if stage != expected_stage {
                    return Err(at(
                        id.span,
                        "the SELECT list is the key columns, window_start, window_end, then the \
                         aggregates, in this order (the engine's output row)",
                    ));
                }
                let wanted = out_name(name);
                if wanted != name {
                    return Err(at(
                        sink_col.map(|c| c.span).unwrap_or(id.span),
                        format!(
                            "output column {} is `{name}`, named `{wanted}` by the sink or alias; \
                             key and window columns keep their names",
                            pos + 1
                        ),
                    ));
                }
                match name {
                    "window_start" => stage = 1,
                    "window_end" => stage = 2,
                    "window_time" => {
                        return Err(at(id.span, "window_time is not supported in the output"))
                    }
                    _ => {
                        if !keys.iter().any(|(k, _)| k == name) {
                            return Err(at(
                                id.span,
                                format!("`{name}` is neither grouped by nor aggregated"),
                            ));
                        }
                        group_by.push(name.to_string());
                    }
                }
                names.push(name.to_string());
                continue;
            }
            if stage != 2 {
                return Err(at(
                    expr.span(),
                    "the SELECT list is the key columns, window_start, window_end, then the \
                     aggregates, in this order (the engine's output row)",
                ));
            }
            let agg = if computed_shape(expr) {
                let scope = OutputScope {
                    compiler: self,
                    alias: alias.as_deref(),
                    outputs: &outputs,
                    types: &out_types,
                };
                let t = translate(expr, &scope)?;
                Agg {
                    func: "compute",
                    field: None,
                    expr: Some(t.text),
                    ty: t.ty.int_name(),
                    filter: None,
                    decimals: match t.ty {
                        SqlTy::Decimal(_, s) => Some(s),
                        _ => None,
                    },
                    sql_ty: t.ty,
                }
            } else {
                self.aggregate(expr, alias.as_deref())?
            };
            let func = agg.func;
            let default = match &agg.field {
                None if agg.expr.is_some() => format!("{func}_expr"),
                None => func.to_string(),
                Some(f) => {
                    let plain = func.to_string();
                    if names.contains(&plain) {
                        format!("{func}_{f}")
                    } else {
                        plain
                    }
                }
            };
            let name = out_name(&default);
            if names.contains(&name) {
                return Err(at(
                    expr.span(),
                    format!("output column `{name}` appears twice; name it with AS"),
                ));
            }
            let entry = AggregateEntry {
                func,
                field: agg.field.as_deref(),
                expr: agg.expr.as_deref(),
                ty: agg.ty,
                decimals: agg.decimals,
                filter: agg.filter.as_deref(),
            };
            aggregates.push(entry.toml(&name));
            outputs.push((agg.key(), name.clone()));
            out_types.push(agg.sql_ty);
            names.push(name);
        }
        if stage != 2 {
            return Err(at(
                sel.select_token.0.span,
                "the SELECT list must have window_start and window_end after the key columns",
            ));
        }
        if group_by.len() != keys.len() {
            let missing = keys
                .iter()
                .find(|(k, _)| !group_by.contains(k))
                .map(|(k, s)| (k.clone(), *s));
            if let Some((k, s)) = missing {
                return Err(at(
                    s,
                    format!("GROUP BY `{k}` is not in the SELECT list; the engine outputs every key column"),
                ));
            }
        }
        if aggregates.is_empty() {
            return Err(at(
                sel.select_token.0.span,
                "the SELECT list has no aggregate",
            ));
        }

        let having = match &sel.having {
            None => None,
            Some(h) => {
                let s = self.settings;
                if s.early_enabled.is_some_and(|(b, _)| b) || s.late_enabled.is_some_and(|(b, _)| b)
                {
                    return Err(at(
                        h.span(),
                        "HAVING with early or late firing is not supported: the engine filters \
                         each emitted row, and a later pane could not retract a row that an \
                         earlier pane emitted",
                    ));
                }
                Some(self.cond(
                    h,
                    false,
                    &Operands::Aggregates {
                        alias: alias.as_deref(),
                        outputs: &outputs,
                        types: &out_types,
                    },
                )?)
            }
        };

        let mut out = String::new();
        let _ = writeln!(out, "\n[[aggregation]]\nname = {}", q(&sink.name));
        let _ = writeln!(
            out,
            "group_by = [{}]",
            group_by.iter().map(|g| q(g)).collect::<Vec<_>>().join(", ")
        );
        if let Some(f) = filter {
            let _ = writeln!(out, "filter = {}", q(&f));
        }
        let _ = match &window {
            Window::Tumbling(size) => writeln!(
                out,
                "window = {{ type = \"tumbling\", size = {} }}",
                q(&format_ms(*size))
            ),
            Window::Hop { size, slide } => writeln!(
                out,
                "window = {{ type = \"sliding\", size = {}, slide = {} }}",
                q(&format_ms(*size)),
                q(&format_ms(*slide))
            ),
            Window::Cumulate { size, step } => writeln!(
                out,
                "window = {{ type = \"cumulate\", size = {}, step = {} }}",
                q(&format_ms(*size)),
                q(&format_ms(*step))
            ),
            Window::Session { gap, .. } => writeln!(
                out,
                "window = {{ type = \"session\", gap = {} }}",
                q(&format_ms(*gap))
            ),
        };
        let _ = writeln!(out, "aggregates = [\n  {},\n]", aggregates.join(",\n  "));
        if let Some(h) = having {
            let _ = writeln!(out, "having = {}", q(&h));
        }
        match self.eventide_emit.toml(self.flink_emit_key())? {
            Some(lines) => out.push_str(&lines),
            None => out.push_str(&self.emit()?),
        }
        out.push_str(&sink_toml(sink)?);
        Ok(out)
    }

    /// A Flink emit option in effect, by its key (these may not be combined with Eventide's
    /// trigger options).
    fn flink_emit_key(&self) -> Option<&'static str> {
        let s = self.settings;
        if s.early_enabled.is_some_and(|(b, _)| b) {
            Some("table.exec.emit.early-fire.enabled")
        } else if s.late_enabled.is_some_and(|(b, _)| b) {
            Some("table.exec.emit.late-fire.enabled")
        } else if s.allow_lateness.is_some() {
            Some("table.exec.emit.allow-lateness")
        } else {
            None
        }
    }

    /// The trigger, lateness, accumulation and on-time lines of the `SET` emit options.
    fn emit(&self) -> Result<String, SqlError> {
        let s = self.settings;
        let early_on = s.early_enabled.is_some_and(|(b, _)| b);
        let late_on = s.late_enabled.is_some_and(|(b, _)| b);
        if !early_on && !late_on {
            if let Some(l) = s.allow_lateness.filter(|l| *l > 0) {
                // Flink keeps the window's state for the lateness but fires no late pane;
                // late records update nothing visible. Without late firing, refuse rather
                // than guess.
                return Err(SqlError::Other(format!(
                    "table.exec.emit.allow-lateness = {} without table.exec.emit.late-fire.enabled \
                     = 'true' fires nothing late; enable late firing or remove allow-lateness",
                    format_ms(l)
                )));
            }
            return Ok(String::new());
        }
        let need_delay = |on: bool, d: Option<i64>, name: &str, span: Option<Span>| {
            if on && d.is_none() {
                Err(match span {
                    Some(sp) => at(
                        sp,
                        format!(
                            "table.exec.emit.{name}.enabled needs table.exec.emit.{name}.delay"
                        ),
                    ),
                    None => SqlError::Other(format!("table.exec.emit.{name}.delay is missing")),
                })
            } else {
                Ok(())
            }
        };
        need_delay(
            early_on,
            s.early_delay,
            "early-fire",
            s.early_enabled.map(|x| x.1),
        )?;
        need_delay(
            late_on,
            s.late_delay,
            "late-fire",
            s.late_enabled.map(|x| x.1),
        )?;
        let emit = FlinkEmit {
            early_fire_delay_ms: if early_on { s.early_delay } else { None },
            late_fire_delay_ms: if late_on { s.late_delay } else { None },
            allow_lateness_ms: s.allow_lateness,
            state_ttl_ms: s.state_ttl,
        };
        let (trigger, lateness) = emit.to_trigger().map_err(SqlError::Other)?;
        let mut out = String::new();
        let _ = writeln!(out, "trigger = {}", q(&trigger.to_string()));
        let _ = writeln!(out, "allowed_lateness = {}", q(&format_ms(lateness)));
        // Flink's early and late firings update the window's row: each pane holds the whole
        // window so far and replaces the previous one (an update, -U then +U).
        out.push_str("accumulation = \"retracting\"\non_time = \"if_non_empty\"\n");
        Ok(out)
    }

    /// A source field by name.
    fn field(&self, name: &str, span: Span) -> Result<&'static str, SqlError> {
        let src = self
            .source
            .as_ref()
            .ok_or_else(|| at(span, "no source table"))?;
        let view = self.reading_view.and_then(|i| self.views.get(i));
        let visible = |n: &str| {
            view.and_then(|v| v.source_columns.as_ref())
                .is_none_or(|cols| cols.iter().any(|c| c == n))
        };
        src.fields
            .iter()
            .find(|(n, _)| n == name && visible(n))
            .map(|(_, t)| *t)
            .or_else(|| view.and_then(|v| v.lookup_field(name)))
            .ok_or_else(|| {
                at(
                    span,
                    format!(
                        "unknown column `{name}` of `{}`{}",
                        src.name,
                        if name == src.rowtime {
                            " (the rowtime column is the window's time, not a value)"
                        } else {
                            ""
                        }
                    ),
                )
            })
    }

    /// `FROM TABLE(TUMBLE|HOP|SESSION(TABLE t, DESCRIPTOR(ts), …)) [AS alias]`.
    fn window_tvf(
        &self,
        rel: &TableFactor,
    ) -> Result<(Window, String, Span, Option<String>), SqlError> {
        let (f, alias) = match rel {
            TableFactor::TableFunction {
                expr: Expr::Function(f),
                alias,
            } => (f, alias),
            TableFactor::Table {
                name,
                args: None,
                version: None,
                ..
            } => {
                return Err(at(
                    name.span(),
                    format!(
                        "a query on `{name}` without a window is an updating (non-windowed) \
                         aggregation, which is not supported; aggregate over a window TVF: FROM \
                         TABLE(TUMBLE(TABLE {name}, DESCRIPTOR(ts), INTERVAL '1' MINUTE))"
                    ),
                ))
            }
            TableFactor::MatchRecognize { .. } => {
                return Err(at(
                    rel.span(),
                    "MATCH_RECOGNIZE is not supported (see docs/sql.md: Flink's patterns are \
                     strictly contiguous by default, the rules engine's are relaxed); use a \
                     [[rule]] pattern in a TOML spec",
                ))
            }
            other => {
                return Err(at(
                    other.span(),
                    format!("`{other}` is not supported in FROM; use a window TVF"),
                ))
            }
        };
        let alias = alias.as_ref().map(|a| a.name.value.clone());
        let fname = f.name.to_string().to_ascii_uppercase();
        let args = tvf_args(f)?;
        let get = |pos: usize, name: &str| -> Option<&Expr> {
            args.iter()
                .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .or_else(|| args.get(pos).filter(|(n, _)| n.is_none()))
                .map(|(_, e)| e)
        };
        let need = |pos: usize, name: &str| {
            get(pos, name).ok_or_else(|| {
                at(
                    f.name.span(),
                    format!("{fname}(…) is missing its {name} argument"),
                )
            })
        };
        let allowed: &[&str] = match fname.as_str() {
            "TUMBLE" => &["DATA", "TIMECOL", "SIZE"],
            "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE"],
            "SESSION" => &["DATA", "TIMECOL", "GAP"],
            "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE"],
            _ => {
                return Err(at(
                    f.name.span(),
                    format!(
                        "table function {fname} is not supported; use TUMBLE, HOP, CUMULATE or \
                         SESSION"
                    ),
                ))
            }
        };
        if args.len() > allowed.len() {
            let extra = &args[allowed.len()].1;
            return Err(at(
                extra.span(),
                format!(
                    "{fname} takes ({}); an offset or other extra argument is not supported",
                    allowed.join(", ")
                ),
            ));
        }
        for (n, e) in &args {
            if let Some(n) = n {
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(n)) {
                    return Err(at(
                        e.span(),
                        format!(
                            "{fname} has no argument {n}; it takes {}",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        let data = need(0, "DATA")?;
        let Some((tid, None)) = column(data) else {
            return Err(at(
                data.span(),
                format!("{fname}'s first argument is TABLE <source table>"),
            ));
        };
        let targ = self
            .table_args
            .get(&(tid.span.start.line, tid.span.start.column));
        let table_name = self
            .views
            .iter()
            .find(|v| v.name == tid.value)
            .map_or(tid.value.as_str(), |v| v.source.as_str());
        let table = self.table(table_name).ok_or_else(|| {
            at(
                tid.span,
                format!(
                    "unknown table `{}`; declare it with CREATE TABLE",
                    tid.value
                ),
            )
        })?;
        let timecol = need(1, "TIMECOL")?;
        let desc_col = match timecol {
            Expr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                match tvf_args(d)?.as_slice() {
                    [(None, e)] => column(e).map(|(i, _)| i.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        let desc_col = desc_col.ok_or_else(|| {
            at(
                timecol.span(),
                format!("{fname}'s time argument is DESCRIPTOR(<rowtime column>)"),
            )
        })?;
        match &table.extras.watermark {
            Some(w) if w.name == desc_col.value => {}
            Some(w) => {
                return Err(at(
                    desc_col.span,
                    format!(
                        "DESCRIPTOR({}): windows are on the rowtime column `{}` (the table's \
                         WATERMARK FOR); processing-time windows are not supported",
                        desc_col.value, w.name
                    ),
                ))
            }
            None => {
                return Err(at(
                    desc_col.span,
                    format!(
                        "table `{}` declares no WATERMARK FOR {}; event-time windows need one",
                        table.name, desc_col.value
                    ),
                ))
            }
        }
        let positive = |e: &Expr| -> Result<i64, SqlError> {
            let ms = interval_ms(e)?;
            if ms <= 0 {
                return Err(at(e.span(), "the interval must be greater than zero"));
            }
            Ok(ms)
        };
        let partition_by = targ.map(|t| t.partition_by.clone()).unwrap_or_default();
        if fname != "SESSION" {
            if let Some((_, s)) = partition_by.first() {
                return Err(at(
                    *s,
                    format!("{fname} takes no PARTITION BY; only SESSION does"),
                ));
            }
        }
        let window = match fname.as_str() {
            "TUMBLE" => Window::Tumbling(positive(need(2, "SIZE")?)?),
            "HOP" => Window::Hop {
                slide: positive(need(2, "SLIDE")?)?,
                size: positive(need(3, "SIZE")?)?,
            },
            "CUMULATE" => {
                let step = positive(need(2, "STEP")?)?;
                let size_expr = need(3, "SIZE")?;
                let size = positive(size_expr)?;
                if size % step != 0 {
                    return Err(at(
                        size_expr.span(),
                        format!(
                            "CUMULATE's size ({}) must be a multiple of its step ({})",
                            format_ms(size),
                            format_ms(step)
                        ),
                    ));
                }
                Window::Cumulate { size, step }
            }
            _ => {
                if partition_by.is_empty() {
                    return Err(at(
                        tid.span,
                        "SESSION needs TABLE t PARTITION BY <the GROUP BY columns>: sessions are \
                         kept per key",
                    ));
                }
                Window::Session {
                    gap: positive(need(2, "GAP")?)?,
                    partition_by,
                }
            }
        };
        Ok((window, tid.value.clone(), tid.span, alias))
    }

    /// A condition in the filter grammar: WHERE and FILTER (WHERE …) over the source's
    /// columns, HAVING over the SELECT list's aggregates.
    ///
    /// The text is in negation normal form (`NOT` pushed down to the comparisons, which it
    /// inverts), so a comparison with a null is false wherever it appears, as SQL's unknown
    /// is in a condition without NOT; the filter grammar's `not` would turn it into true.
    fn cond(&self, e: &Expr, neg: bool, ops: &Operands<'_>) -> Result<String, SqlError> {
        let clause = ops.clause();
        let unsupported = |what: &str| {
            at(
                e.span(),
                format!(
                    "{what} `{e}` is not supported in {clause}; supported: comparisons (=, <>, \
                     <, <=, >, >=) of {}, literals and their arithmetic (+ - * / %, CASE, \
                     CAST), IN (…), BETWEEN, AND, OR, NOT, ( )",
                    ops.operands()
                ),
            )
        };
        match e {
            Expr::Nested(inner) => Ok(format!("({})", self.cond(inner, neg, ops)?)),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => self.cond(expr, !neg, ops),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    let and = matches!(op, BinaryOperator::And) != neg;
                    Ok(format!(
                        "({}) {} ({})",
                        self.cond(left, neg, ops)?,
                        if and { "and" } else { "or" },
                        self.cond(right, neg, ops)?
                    ))
                }
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => {
                    if literal(left) && ops.plain(strip_nested(right)) {
                        if let Some(c) = self.operand(strip_nested(right), ops)? {
                            return comparison(&c, op, left, true, neg);
                        }
                    }
                    self.compare(left, op, right, neg, ops)
                }
                _ => Err(unsupported("the operator")),
            },
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::List(list),
                negated,
                ..
            } => {
                let neg = neg != *negated;
                let parts = list
                    .iter()
                    .map(|l| self.compare(expr, &BinaryOperator::Eq, l, neg, ops))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!(
                    "({})",
                    parts.join(if neg { " and " } else { " or " })
                ))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let neg = neg != *negated;
                Ok(format!(
                    "({} {} {})",
                    self.compare(expr, &BinaryOperator::GtEq, low, neg, ops)?,
                    if neg { "or" } else { "and" },
                    self.compare(expr, &BinaryOperator::LtEq, high, neg, ops)?
                ))
            }
            Expr::Case { .. } => Err(unsupported("CASE")),
            Expr::Cast { .. } => Err(unsupported("CAST")),
            Expr::Function(f) => Err(at(
                f.name.span(),
                format!(
                    "function {} is not supported in {clause} (user-defined and other functions \
                     are not supported)",
                    f.name
                ),
            )),
            _ => Err(unsupported("the expression")),
        }
    }

    /// The filter-grammar name and type of a condition's operand, `None` for a literal.
    fn operand(&self, e: &Expr, ops: &Operands<'_>) -> Result<Option<Operand>, SqlError> {
        match ops {
            Operands::Columns(alias) => {
                let Some((id, qual)) = column(e) else {
                    return Ok(None);
                };
                check_qualifier(qual, *alias)?;
                let ty = self.field(&id.value, id.span)?;
                Ok(Some(Operand {
                    name: id.value.clone(),
                    ty,
                    written: id.value.clone(),
                }))
            }
            Operands::Aggregates { alias, outputs, .. } => {
                let e = match e {
                    Expr::Nested(inner) => inner.as_ref(),
                    other => other,
                };
                match e {
                    Expr::Function(f) => {
                        let agg = self.aggregate_call(f, *alias)?;
                        let key = agg.key();
                        let name = outputs
                            .iter()
                            .find(|(k, _)| *k == key)
                            .map(|(_, n)| n.clone())
                            .ok_or_else(|| {
                                at(
                                    f.name.span(),
                                    format!(
                                        "HAVING uses `{f}`, which is not in the SELECT list; the \
                                         engine filters the emitted row, so add it as an output \
                                         column"
                                    ),
                                )
                            })?;
                        Ok(Some(Operand {
                            name,
                            ty: "number",
                            written: f.to_string(),
                        }))
                    }
                    e if column(e).is_some() => Err(at(
                        e.span(),
                        format!(
                            "HAVING on the column `{e}` is not supported: a condition on a \
                             grouping column belongs in WHERE"
                        ),
                    )),
                    Expr::Value(_) | Expr::UnaryOp { .. } => Ok(None),
                    other => Err(at(
                        other.span(),
                        format!(
                            "`{other}` is not supported in HAVING; compare aggregates of the \
                             SELECT list with literals"
                        ),
                    )),
                }
            }
        }
    }

    /// The scope of a condition's expressions: the source's columns, or the SELECT list's
    /// aggregates in HAVING.
    fn with_scope<T>(
        &self,
        ops: &Operands<'_>,
        f: impl FnOnce(&dyn Scope) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        match ops {
            Operands::Columns(alias) => f(&ColumnScope {
                compiler: self,
                alias: *alias,
            }),
            Operands::Aggregates {
                alias,
                outputs,
                types,
            } => f(&OutputScope {
                compiler: self,
                alias: *alias,
                outputs,
                types,
            }),
        }
    }

    /// `left op right` with expressions on either side (`v * 2 > 10`, `a + b < c`,
    /// `SUM(x) / COUNT(*) > 3`), in the filter grammar with Flink's types ([`translate`]).
    fn expr_comparison(
        &self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        neg: bool,
        ops: &Operands<'_>,
    ) -> Result<String, SqlError> {
        let (l, r) = self.with_scope(ops, |scope| {
            if matches!(ops, Operands::Aggregates { .. }) {
                for side in [left, right] {
                    refuse_int_division(side, scope)?;
                }
            }
            Ok((translate(left, scope)?, translate(right, scope)?))
        })?;
        Ok(format!(
            "{} {} {}",
            l.text,
            cmp_symbol(op, false, neg),
            r.text
        ))
    }

    /// `left op right`: a column (an aggregate in HAVING) and a literal compare as they
    /// are, strings and booleans included; anything else compares expressions.
    fn compare(
        &self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        neg: bool,
        ops: &Operands<'_>,
    ) -> Result<String, SqlError> {
        if ops.plain(strip_nested(left)) && literal(right) {
            if let Some(c) = self.operand(strip_nested(left), ops)? {
                return comparison(&c, op, right, false, neg);
            }
        }
        self.expr_comparison(left, op, right, neg, ops)
    }

    /// An aggregate output column: an aggregate call, optionally printed with fixed
    /// decimals (`CAST(… AS DECIMAL(p, s))`, `ROUND(…, s)`).
    fn aggregate(&self, e: &Expr, alias: Option<&str>) -> Result<Agg, SqlError> {
        match e {
            Expr::Nested(inner) => self.aggregate(inner, alias),
            // CAST(agg AS DECIMAL(p, s)): printed with s decimals.
            Expr::Cast {
                expr, data_type, ..
            } => {
                let scale = match data_type {
                    DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) => {
                        match info {
                            sqlparser::ast::ExactNumberInfo::PrecisionAndScale(_, s) => {
                                u8::try_from(*s).ok()
                            }
                            _ => Some(0),
                        }
                    }
                    _ => None,
                };
                let scale = scale.ok_or_else(|| {
                    at(
                        e.span(),
                        format!(
                            "CAST(… AS {data_type}) of an aggregate is not supported; CAST(… AS \
                             DECIMAL(p, s)) prints s decimals"
                        ),
                    )
                })?;
                let agg = self.aggregate(expr, alias)?;
                Ok(Agg {
                    decimals: Some(scale),
                    sql_ty: sql_type(data_type).unwrap_or(agg.sql_ty),
                    ..agg
                })
            }
            Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("ROUND") => {
                let span = f.name.span();
                let args = match &f.args {
                    FunctionArguments::List(l) => l.args.as_slice(),
                    _ => &[],
                };
                match args {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(inner)), FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] =>
                    {
                        let Value::Number(n, _) = &v.value else {
                            return Err(at(v.span, "ROUND(…, s) takes a whole number of decimals"));
                        };
                        let s: u8 = n.parse().map_err(|_| {
                            at(v.span, "ROUND(…, s) takes a whole number of decimals")
                        })?;
                        let agg = self.aggregate(inner, alias)?;
                        Ok(Agg {
                            decimals: Some(s),
                            ..agg
                        })
                    }
                    _ => Err(at(span, "ROUND takes (aggregate, decimals)")),
                }
            }
            Expr::Function(f) => self.aggregate_call(f, alias),
            Expr::Case { .. } | Expr::BinaryOp { .. } | Expr::UnaryOp { .. } => Err(at(
                e.span(),
                format!(
                    "`{e}`: ROUND(…, s) takes one aggregate; compute over aggregates outside it \
                     (CAST(SUM(a) / COUNT(*) AS DECIMAL(p, s)) prints s decimals)"
                ),
            )),
            _ => Err(at(
                e.span(),
                format!("`{e}` is not an aggregate; after window_end come aggregates"),
            )),
        }
    }

    /// An aggregate function call: `COUNT(*)`, `COUNT(col)`, `SUM|MIN|MAX|AVG(col)`, the
    /// argument optionally `CASE WHEN cond THEN col END`, the call optionally followed by
    /// `FILTER (WHERE cond)`.
    fn aggregate_call(&self, f: &Function, alias: Option<&str>) -> Result<Agg, SqlError> {
        let name = f.name.to_string().to_ascii_uppercase();
        let span = f.name.span();
        if let Some(over) = &f.over {
            return Err(at(
                span,
                format!("{name}(…) OVER {over} is not supported in a window TVF aggregation"),
            ));
        }
        if !f.within_group.is_empty() {
            return Err(at(span, format!("{name}(…) WITHIN GROUP is not supported")));
        }
        let func = match name.as_str() {
            "COUNT" => "count",
            "SUM" => "sum",
            "MIN" => "min",
            "MAX" => "max",
            "AVG" => "avg",
            "FIRST_VALUE" | "LAST_VALUE" => {
                if self.window_tvf != "TUMBLE" {
                    return Err(at(
                        span,
                        format!(
                            "{name} is not supported in a {} window aggregation: Flink's {name} \
                             has no merge method, which {} windows need (Flink's planner \
                             refuses it: \"Could not find an implementation method 'merge'\"); \
                             it works with TUMBLE",
                            self.window_tvf,
                            if self.window_tvf == "SESSION" {
                                "merging session"
                            } else {
                                "slice-sharing"
                            }
                        ),
                    ));
                }
                if name == "FIRST_VALUE" {
                    "first_value"
                } else {
                    "last_value"
                }
            }
            _ => {
                return Err(at(
                    span,
                    format!(
                        "unknown function {name} (user-defined functions are not supported); \
                         the aggregates are COUNT(*), COUNT(col), SUM, MIN, MAX, AVG, \
                         FIRST_VALUE and LAST_VALUE"
                    ),
                ))
            }
        };
        let args = match &f.args {
            FunctionArguments::List(l) => {
                if l.duplicate_treatment.is_some() {
                    return Err(at(span, format!("{name}(DISTINCT …) is not supported")));
                }
                if let Some(c) = l.clauses.first() {
                    return Err(at(span, format!("{name}(… {c}) is not supported")));
                }
                l.args.as_slice()
            }
            FunctionArguments::None => &[],
            FunctionArguments::Subquery(_) => {
                return Err(at(span, "a subquery argument is not supported"))
            }
        };
        let filter = f
            .filter
            .as_ref()
            .map(|c| self.cond(c, false, &Operands::Columns(alias)))
            .transpose()?;
        let mut computed: Option<crate::expr::Typed> = None;
        let (field, case_filter) = match args {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if func == "count" => (None, None),
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))]
                if func == "count" && !matches!(v.value, Value::Null) =>
            {
                (None, None)
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => {
                let arg = strip_nested(arg);
                match arg {
                    _ if column(arg).is_some() => {
                        (Some(self.numeric_column(&name, arg, alias)?), None)
                    }
                    Expr::Case { .. } if self.case_argument(&name, func, arg, alias).is_ok() => {
                        self.case_argument(&name, func, arg, alias)?
                    }
                    _ => {
                        let scope = ColumnScope {
                            compiler: self,
                            alias,
                        };
                        computed = Some(translate(arg, &scope)?);
                        (None, None)
                    }
                }
            }
            _ => {
                return Err(at(
                    span,
                    format!(
                        "{name} takes one column{}",
                        if func == "count" { " or *" } else { "" }
                    ),
                ))
            }
        };
        let filter = match (filter, case_filter) {
            (Some(a), Some(b)) => Some(format!("({a}) and ({b})")),
            (a, b) => a.or(b),
        };
        // SUM(CASE WHEN c THEN 1 ELSE 0 END) counts the rows that pass c (a window always
        // has a row, so the sum is never NULL).
        let func = if func == "sum" && field.is_none() && computed.is_none() {
            "count"
        } else {
            func
        };
        // The argument's SQL type decides the output's: Flink's SUM and AVG of an integer
        // type are that type (AVG truncated), of a DECIMAL(p, s) a DECIMAL of scale s.
        let arg_ty = match (&computed, &field) {
            (Some(t), _) => Some(t.ty),
            (None, Some(f)) => self.sql_column(f),
            (None, None) => None,
        };
        let mut decimals = None;
        let mut ty = None;
        match arg_ty {
            Some(t @ SqlTy::Int(_)) if matches!(func, "sum" | "avg") => ty = t.int_name(),
            Some(SqlTy::Decimal(_, s)) if func == "avg" => {
                let at_arg = args.first().map_or(span, |a| a.span());
                return Err(at(
                    at_arg,
                    format!(
                        "AVG of a DECIMAL(…, {s}) is not supported: Flink's is a DECIMAL of \
                         scale {} rounded half up from the exact quotient, which the engine's \
                         floating-point average cannot reproduce exactly; CAST the argument AS \
                         DOUBLE",
                        s.max(6)
                    ),
                ));
            }
            Some(SqlTy::Decimal(_, s)) if func != "count" => decimals = Some(s),
            _ => {}
        }
        if matches!(func, "first_value" | "last_value") && field.is_none() && computed.is_none() {
            return Err(at(
                span,
                format!("{name} takes one numeric column or expression"),
            ));
        }
        let sql_ty = match (func, arg_ty) {
            ("count", _) => SqlTy::Int(64),
            ("sum", Some(SqlTy::Decimal(_, s))) => SqlTy::Decimal(38, s),
            (_, Some(t)) => t,
            (_, None) => SqlTy::Double,
        };
        Ok(Agg {
            func,
            field,
            expr: computed.map(|t| t.text),
            ty,
            filter,
            decimals,
            sql_ty,
        })
    }

    /// The SQL type of a numeric source (or lookup) column.
    fn sql_column(&self, name: &str) -> Option<SqlTy> {
        let src = self.source.as_ref()?;
        if let Some(t) = self
            .table(&src.name)
            .and_then(|t| t.columns.iter().find(|c| c.name == name))
        {
            return sql_type(&t.ty);
        }
        let view = self.reading_view.and_then(|i| self.views.get(i))?;
        view.lookups.iter().find_map(|l| {
            let (col, _, _) = l.columns.iter().find(|(_, n, _)| n == name)?;
            let t = self.table(&l.table)?;
            sql_type(&t.columns.iter().find(|c| &c.name == col)?.ty)
        })
    }

    /// The column an aggregate reads: a numeric column of the source.
    fn numeric_column(
        &self,
        name: &str,
        arg: &Expr,
        alias: Option<&str>,
    ) -> Result<String, SqlError> {
        let Some((id, qual)) = column(arg) else {
            return Err(at(
                arg.span(),
                format!("{name}({arg}): aggregates take a column or an expression"),
            ));
        };
        check_qualifier(qual, alias)?;
        let ty = self.field(&id.value, id.span)?;
        if ty != "number" {
            return Err(at(
                id.span,
                format!(
                    "{name}({}): the column is not a number (the engine's aggregates compute \
                     over numbers, so FIRST_VALUE and LAST_VALUE of strings are not supported)",
                    id.value
                ),
            ));
        }
        Ok(id.value.clone())
    }

    /// A `CASE` argument of an aggregate, when it is the same as a filter: `AGG(CASE WHEN c
    /// THEN col [ELSE NULL] END)` is `AGG(col) FILTER (WHERE c)`, `COUNT(CASE WHEN c THEN
    /// <literal> [ELSE NULL] END)` and `SUM(CASE WHEN c THEN 1 ELSE 0 END)` are
    /// `COUNT(*) FILTER (WHERE c)`. Returns the field and the filter.
    fn case_argument(
        &self,
        name: &str,
        func: &'static str,
        arg: &Expr,
        alias: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), SqlError> {
        let refuse = || {
            at(
                arg.span(),
                format!(
                    "{name}({arg}) is not supported; a CASE inside an aggregate is one WHEN \
                     branch that selects rows: {name}(CASE WHEN <condition> THEN <column> END) \
                     (the same as {name}(<column>) FILTER (WHERE <condition>)), COUNT(CASE WHEN \
                     <condition> THEN 1 END) or SUM(CASE WHEN <condition> THEN 1 ELSE 0 END)"
                ),
            )
        };
        let Expr::Case {
            operand: None,
            conditions,
            else_result,
            ..
        } = arg
        else {
            return Err(refuse());
        };
        let [when] = conditions.as_slice() else {
            return Err(refuse());
        };
        let number = |e: &Expr, want: &str| matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == want));
        let is_null = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Null));
        let else_null = else_result.as_deref().is_none_or(is_null);
        let cond = self.cond(&when.condition, false, &Operands::Columns(alias))?;
        let result = &when.result;
        if column(result).is_some() && else_null {
            return Ok((Some(self.numeric_column(name, result, alias)?), Some(cond)));
        }
        let counts = match func {
            "count" => {
                matches!(result, Expr::Value(v) if !matches!(v.value, Value::Null)) && else_null
            }
            "sum" => number(result, "1") && else_result.as_deref().is_some_and(|e| number(e, "0")),
            _ => false,
        };
        if counts {
            return Ok((None, Some(cond)));
        }
        Err(refuse())
    }

    /// The `[input]` and `[watermark]` sections, and the source's connector options.
    fn source_toml(&self, src: &Source) -> Result<(String, SourceOptions), SqlError> {
        let t = self
            .table(&src.name)
            .ok_or_else(|| SqlError::Other(format!("unknown table {}", src.name)))?;
        let w = t
            .extras
            .watermark
            .as_ref()
            .ok_or_else(|| at(t.span, "the source table needs a WATERMARK"))?;
        // The event-time field: the rowtime column itself (TIMESTAMP(3), RFC 3339 text), or
        // the column it is computed from with TO_TIMESTAMP_LTZ(col, 3) (epoch ms).
        let (time_field, time_format) = match t.extras.computed.iter().find(|c| c.name == w.name) {
            Some(c) => {
                match &c.expr {
                    Expr::Function(f)
                        if f.name.to_string().eq_ignore_ascii_case("TO_TIMESTAMP_LTZ") =>
                    {
                        let args = tvf_args(f)?;
                        match args.as_slice() {
                            [(None, col), (None, Expr::Value(v))] if matches!(&v.value, Value::Number(n, _) if n == "3") =>
                            {
                                let (id, _) = column(col).ok_or_else(|| {
                                    at(col.span(), "TO_TIMESTAMP_LTZ takes a column")
                                })?;
                                let phys =
                                    t.columns.iter().find(|x| x.name == id.value).ok_or_else(
                                        || at(id.span, format!("unknown column `{}`", id.value)),
                                    )?;
                                if field_type(&phys.ty) != Some("number") {
                                    return Err(at(
                                        phys.span,
                                        "the epoch-milliseconds column must be a BIGINT",
                                    ));
                                }
                                (id.value.clone(), "epoch_ms")
                            }
                            _ => {
                                return Err(at(
                                    c.expr.span(),
                                    "the rowtime is TO_TIMESTAMP_LTZ(<BIGINT column>, 3) (epoch \
                                 milliseconds); other precisions are not supported",
                                ))
                            }
                        }
                    }
                    other => {
                        return Err(at(
                            other.span(),
                            format!(
                            "computed rowtime `{other}` is not supported; use \
                             TO_TIMESTAMP_LTZ(<BIGINT epoch-ms column>, 3) or a TIMESTAMP(3) column"
                        ),
                        ))
                    }
                }
            }
            None => {
                let phys = t.columns.iter().find(|x| x.name == w.name).ok_or_else(|| {
                    at(
                        w.name_span,
                        format!("WATERMARK FOR an unknown column `{}`", w.name),
                    )
                })?;
                if !is_timestamp(&phys.ty) {
                    return Err(at(
                        phys.span,
                        "the rowtime column is TIMESTAMP(3) / TIMESTAMP_LTZ(3) (RFC 3339 text), \
                         or computed with TO_TIMESTAMP_LTZ(<epoch-ms column>, 3)",
                    ));
                }
                (w.name.clone(), "rfc3339")
            }
        };
        // The watermark: `ts - INTERVAL …`, `ts`, or SOURCE_WATERMARK().
        let mut wm = String::from("\n[watermark]\n");
        match &w.expr {
            Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("SOURCE_WATERMARK") => {
                wm.push_str("strategy = \"explicit\"\n");
            }
            e => {
                let bound = match e {
                    Expr::Identifier(i) if i.value == w.name => 0,
                    Expr::BinaryOp {
                        left,
                        op: BinaryOperator::Minus,
                        right,
                    } if matches!(left.as_ref(), Expr::Identifier(i) if i.value == w.name) => {
                        interval_ms(right)?
                    }
                    other => {
                        return Err(at(
                            other.span(),
                            format!(
                                "WATERMARK FOR {0} AS `{other}` is not supported; use {0} - \
                                 INTERVAL 'n' UNIT, {0}, or SOURCE_WATERMARK()",
                                w.name
                            ),
                        ))
                    }
                };
                let _ = writeln!(
                    wm,
                    "strategy = \"bounded\"\nmax_out_of_orderness = {}",
                    q(&format_ms(bound))
                );
            }
        }
        let idle = self
            .settings
            .idle_timeout
            .or(match t.option("scan.watermark.idle-timeout") {
                Some(v) => Some(duration_setting(
                    "scan.watermark.idle-timeout",
                    v,
                    t.option_span("scan.watermark.idle-timeout"),
                )?),
                None => None,
            });
        if let Some(i) = idle.filter(|i| *i > 0) {
            let _ = writeln!(wm, "idle_timeout = {}", q(&format_ms(i)));
        }
        let proc = proctime_columns(t);
        for c in &t.extras.computed {
            if c.name != w.name && !proc.contains(&c.name.as_str()) {
                return Err(at(
                    c.span,
                    format!(
                        "computed column `{}` is not supported (only the rowtime computed with \
                         TO_TIMESTAMP_LTZ, and PROCTIME() for lookup joins)",
                        c.name
                    ),
                ));
            }
        }

        let connector = t.option("connector").unwrap_or("");
        let mut options = SourceOptions {
            connector: connector.to_string(),
            ..SourceOptions::default()
        };
        match connector {
            "filesystem" => {
                t.check_options(
                    "source",
                    &[
                        "connector",
                        "path",
                        "format",
                        "csv.field-delimiter",
                        "csv.quote-character",
                        "scan.watermark.idle-timeout",
                        "eventide.compression",
                        "eventide.header-lines",
                        "eventide.footer-pattern",
                        "eventide.max-entry-bytes",
                        "eventide.max-line-bytes",
                    ],
                )?;
                options.path = t.option("path").map(str::to_string);
            }
            "kinesis" => {
                t.check_options(
                    "source",
                    &[
                        "connector",
                        "stream",
                        "stream.arn",
                        "aws.region",
                        "format",
                        "source.init.position",
                        "scan.stream.initpos",
                        "source.init.timestamp",
                        "scan.stream.initpos-timestamp",
                        "source.init.timestamp.format",
                        "scan.stream.initpos-timestamp-format",
                        "csv.field-delimiter",
                        "csv.quote-character",
                        "scan.watermark.idle-timeout",
                    ],
                )?;
                let stream = t
                    .option("stream")
                    .map(str::to_string)
                    .or_else(|| {
                        t.option("stream.arn")
                            .and_then(|a| a.rsplit_once(":stream/").map(|(_, s)| s.to_string()))
                    })
                    .ok_or_else(|| at(t.span, "a kinesis source needs 'stream' or 'stream.arn'"))?;
                options.stream = Some(stream);
                options.region = t.option("aws.region").map(str::to_string);
                let (position, timestamp) = init_position(t)?;
                options.init_position = position;
                options.init_timestamp_ms = timestamp;
            }
            "" => {
                return Err(at(
                    t.span,
                    format!("source table `{}` has no 'connector' option", t.name),
                ))
            }
            other => {
                return Err(at(
                    t.option_span("connector"),
                    format!(
                    "source connector '{other}' is not supported; use 'filesystem' or 'kinesis'"
                ),
                ))
            }
        }
        let mut input = String::from("[input]\n");
        match t.option("format").unwrap_or("json") {
            "json" => input.push_str("format = \"json\"\n"),
            "custom" => {
                // Eventide's: the records are decoded by a `Decoder` of your own, attached
                // to the compiled spec with `PipelineSpec::with_decoder`.
                input.push_str(
                    "# 'format' = 'custom': records are decoded by the Decoder attached with \
                     PipelineSpec::with_decoder\n",
                );
                options.custom_format = true;
            }
            "csv" => {
                let cols: Vec<String> = t.columns.iter().map(|c| q(&c.name)).collect();
                let _ = write!(
                    input,
                    "format = \"csv\"\ncsv = {{ columns = [{}]",
                    cols.join(", ")
                );
                if let Some(d) = t.option("csv.field-delimiter") {
                    let _ = write!(input, ", delimiter = {}", q(d));
                }
                if let Some(c) = t.option("csv.quote-character") {
                    let _ = write!(input, ", quote = {}", q(c));
                }
                input.push_str(" }\n");
            }
            other => {
                return Err(at(
                    t.option_span("format"),
                    format!(
                        "format '{other}' is not supported; use 'json', 'csv' or 'custom' (a \
                         Decoder of your own, Eventide's)"
                    ),
                ))
            }
        }
        input.push_str(&extensions::file_options_toml(|k| {
            t.option(k).map(|v| (v.to_string(), t.option_span(k)))
        })?);
        let _ = writeln!(
            input,
            "event_time = {{ field = {}, format = {} }}",
            q(&time_field),
            q(time_format)
        );
        let fields: Vec<String> = src
            .fields
            .iter()
            .filter(|(n, _)| *n != time_field)
            .map(|(n, ty)| format!("{} = {}", q(n), q(ty)))
            .collect();
        let _ = writeln!(input, "fields = {{ {} }}", fields.join(", "));
        input.push_str(&wm);
        Ok((input, options))
    }
}

/// The source as the spec sees it: fields from the physical columns.
fn source_of(t: &Table, span: Span) -> Result<Source, SqlError> {
    let Some(w) = &t.extras.watermark else {
        return Err(at(
            span,
            format!(
                "table `{}` declares no WATERMARK FOR; a source of event-time windows needs one",
                t.name
            ),
        ));
    };
    let mut fields = Vec::new();
    for c in &t.columns {
        match field_type(&c.ty) {
            Some(ty) => fields.push((c.name.clone(), ty)),
            None if c.name == w.name && is_timestamp(&c.ty) => {}
            None => {
                return Err(at(
                    c.span,
                    format!(
                        "column `{}` has type {}, which is not supported; use STRING, a numeric \
                         type or BOOLEAN",
                        c.name, c.ty
                    ),
                ))
            }
        }
    }
    Ok(Source {
        name: t.name.clone(),
        rowtime: w.name.clone(),
        fields,
    })
}

/// A kinesis source's start position, with Flink's option names: `'source.init.position'`
/// (Flink's `KinesisStreamsSource`) or `'scan.stream.initpos'` (its older consumer) =
/// `'TRIM_HORIZON'`, `'LATEST'` or `'AT_TIMESTAMP'`, the last with `'source.init.timestamp'`
/// / `'scan.stream.initpos-timestamp'` in Flink's default format
/// (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX`, any RFC 3339 time) or as epoch seconds with decimals.
fn init_position(t: &Table) -> Result<(Option<String>, Option<i64>), SqlError> {
    let pick = |new: &'static str, old: &'static str| {
        t.option(new)
            .map(|v| (new, v))
            .or_else(|| t.option(old).map(|v| (old, v)))
    };
    for key in [
        "source.init.timestamp.format",
        "scan.stream.initpos-timestamp-format",
    ] {
        if let Some(f) = t.option(key) {
            if f != "yyyy-MM-dd'T'HH:mm:ss.SSSXXX" {
                return Err(at(
                    t.option_span(key),
                    format!(
                        "'{key}' = '{f}' is not supported: give the timestamp in Flink's \
                         default format yyyy-MM-dd'T'HH:mm:ss.SSSXXX (any RFC 3339 time) or as \
                         epoch seconds"
                    ),
                ));
            }
        }
    }
    let position = pick("source.init.position", "scan.stream.initpos");
    let timestamp = pick("source.init.timestamp", "scan.stream.initpos-timestamp");
    match (position, timestamp) {
        (Some((_, "TRIM_HORIZON" | "LATEST")), None) | (None, None) => {
            Ok((position.map(|(_, p)| p.to_string()), None))
        }
        (Some((_, "AT_TIMESTAMP")), Some((key, ts))) => {
            let ms = eventide_engine::record::parse_rfc3339(ts)
                .or_else(|| {
                    ts.parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e13)
                        .map(|s| (s * 1000.0).round() as i64)
                })
                .ok_or_else(|| {
                    at(
                        t.option_span(key),
                        format!(
                            "'{key}' = '{ts}' is not a time: give yyyy-MM-dd'T'HH:mm:ss.SSSXXX \
                             (e.g. 2026-12-01T00:00:00.000Z) or epoch seconds"
                        ),
                    )
                })?;
            Ok((Some("AT_TIMESTAMP".to_string()), Some(ms)))
        }
        (Some((key, "AT_TIMESTAMP")), None) => Err(at(
            t.option_span(key),
            format!(
                "'{key}' = 'AT_TIMESTAMP' needs the time: 'source.init.timestamp' (or \
                 'scan.stream.initpos-timestamp')"
            ),
        )),
        (_, Some((key, _))) => Err(at(
            t.option_span(key),
            format!("'{key}' is only for the start position 'AT_TIMESTAMP'"),
        )),
        (Some((key, other)), None) => Err(at(
            t.option_span(key),
            format!(
                "start position '{other}' is not supported; use 'TRIM_HORIZON', 'LATEST' or \
                 'AT_TIMESTAMP'"
            ),
        )),
    }
}

/// The `[aggregation.sink]` of a sink table.
fn sink_toml(sink: &Table) -> Result<String, SqlError> {
    let connector = sink.option("connector").unwrap_or("");
    match connector {
        "filesystem" => {
            sink.check_options("sink", &["connector", "path", "format", "sink.order"])?;
        }
        "dynamodb" => {
            sink.check_options(
                "sink",
                &[
                    "connector",
                    "table-name",
                    "aws.region",
                    "format",
                    "sink.order",
                ],
            )?;
            if sink.option("table-name").is_none() {
                return Err(at(
                    sink.span,
                    format!("dynamodb sink `{}` needs 'table-name'", sink.name),
                ));
            }
        }
        "kinesis" => {
            sink.check_options(
                "sink",
                &[
                    "connector",
                    "stream",
                    "stream.arn",
                    "aws.region",
                    "format",
                    "sink.order",
                ],
            )?;
            if sink.option("format").is_some_and(|f| f != "json") {
                return Err(at(
                    sink.option_span("format"),
                    "the consumer writes JSON records to its output stream: 'format' = 'json'",
                ));
            }
        }
        "" => {
            return Err(at(
                sink.span,
                format!("sink table `{}` has no 'connector' option", sink.name),
            ))
        }
        other => {
            return Err(at(
                sink.option_span("connector"),
                format!(
                    "sink connector '{other}' is not supported; use 'filesystem' (a local \
                     directory, or an s3:// path for the consumer's S3 panes), 'dynamodb' or \
                     'kinesis'"
                ),
            ))
        }
    }
    let format = match sink.option("format").unwrap_or("csv") {
        "csv" => "csv",
        "json" => "jsonl",
        other => {
            return Err(at(
                sink.option_span("format"),
                format!("sink format '{other}' is not supported; use 'csv' or 'json'"),
            ))
        }
    };
    let order = match sink.option("sink.order").unwrap_or("key") {
        "key" => "key",
        "fired" => "fired",
        other => {
            return Err(at(
                sink.option_span("sink.order"),
                format!("'sink.order' = '{other}': use 'key' (sorted, the default) or 'fired'"),
            ))
        }
    };
    Ok(format!(
        "sink = {{ format = \"{format}\", order = \"{order}\" }}\n"
    ))
}

/// A function's arguments: name (for `NAME => value`) and expression.
fn tvf_args(f: &Function) -> Result<Vec<(Option<String>, Expr)>, SqlError> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(Vec::new());
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok((None, e.clone())),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Ok((Some(name.value.clone()), e.clone())),
            _ => Err(at(
                f.name.span(),
                format!("unsupported argument `{a}` of {}", f.name),
            )),
        })
        .collect()
}

/// An aggregate output column as the spec computes it.
struct Agg {
    func: &'static str,
    field: Option<String>,
    /// A computed argument, in the spec's expression grammar.
    expr: Option<String>,
    /// The integer output type (Flink's SUM and AVG of integers are integers).
    ty: Option<&'static str>,
    /// The SQL type of the output column (for expressions over it).
    sql_ty: SqlTy,
    /// The aggregate's own filter (`FILTER (WHERE …)`, or a `CASE` that selects rows).
    filter: Option<String>,
    decimals: Option<u8>,
}

/// What an aggregate computes, whatever its printed decimals: how HAVING finds it.
type AggKey = (&'static str, Option<String>, Option<String>, Option<String>);

impl Agg {
    fn key(&self) -> AggKey {
        (
            self.func,
            self.field.clone(),
            self.expr.clone(),
            self.filter.clone(),
        )
    }
}

/// A condition's operand: its name in the filter grammar, its spec type, and its SQL text.
struct Operand {
    name: String,
    ty: &'static str,
    written: String,
}

/// What the operands of a condition are.
enum Operands<'x> {
    /// Columns of the source (WHERE, FILTER (WHERE …)), qualified by the alias if any.
    Columns(Option<&'x str>),
    /// Aggregates of the SELECT list (HAVING), each with its output column and SQL type.
    Aggregates {
        alias: Option<&'x str>,
        outputs: &'x [(AggKey, String)],
        types: &'x [SqlTy],
    },
}

impl Operands<'_> {
    /// True when `e` is a plain operand: a column, or in HAVING an aggregate call (or a
    /// column, which [`Compiler::operand`] refuses with the reason).
    fn plain(&self, e: &Expr) -> bool {
        column(e).is_some()
            || (matches!(self, Operands::Aggregates { .. }) && matches!(e, Expr::Function(_)))
    }

    fn clause(&self) -> &'static str {
        match self {
            Operands::Columns(_) => "WHERE",
            Operands::Aggregates { .. } => "HAVING",
        }
    }

    fn operands(&self) -> &'static str {
        match self {
            Operands::Columns(_) => "a column",
            Operands::Aggregates { .. } => "an aggregate of the SELECT list",
        }
    }
}

/// The filter grammar's symbol of a comparison (`flipped`: its sides are swapped; `neg`: it
/// is negated, so the operator is inverted, which keeps a comparison with NULL false).
fn cmp_symbol(op: &BinaryOperator, flipped: bool, neg: bool) -> &'static str {
    use BinaryOperator as B;
    let op = match (op, flipped) {
        (B::Lt, true) => B::Gt,
        (B::LtEq, true) => B::GtEq,
        (B::Gt, true) => B::Lt,
        (B::GtEq, true) => B::LtEq,
        (other, _) => other.clone(),
    };
    match (op, neg) {
        (B::Eq, false) | (B::NotEq, true) => "==",
        (B::NotEq, false) | (B::Eq, true) => "!=",
        (B::Lt, false) | (B::GtEq, true) => "<",
        (B::LtEq, false) | (B::Gt, true) => "<=",
        (B::Gt, false) | (B::LtEq, true) => ">",
        _ => ">=",
    }
}

/// A literal side of a comparison: a value, or a negated one.
fn literal(e: &Expr) -> bool {
    match strip_nested(e) {
        Expr::Value(_) => true,
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => matches!(strip_nested(expr), Expr::Value(_)),
        _ => false,
    }
}

/// Refuses an integer `/` or `%` in HAVING: it could divide by zero, which fails a Flink
/// job, and an emitted row, unlike a record, cannot go to the dead letters.
fn refuse_int_division(e: &Expr, scope: &dyn Scope) -> Result<(), SqlError> {
    match e {
        Expr::Nested(inner) => refuse_int_division(inner, scope),
        Expr::UnaryOp { expr, .. } => refuse_int_division(expr, scope),
        Expr::Cast { expr, .. } => refuse_int_division(expr, scope),
        Expr::BinaryOp { left, op, right } => {
            refuse_int_division(left, scope)?;
            refuse_int_division(right, scope)?;
            if matches!(op, BinaryOperator::Divide | BinaryOperator::Modulo) {
                let (l, r) = (translate(left, scope)?, translate(right, scope)?);
                if matches!((l.ty, r.ty), (SqlTy::Int(_), SqlTy::Int(_))) {
                    return Err(at(
                        e.span(),
                        format!(
                            "`{e}` divides integers in HAVING: a zero divisor would fail a \
                             Flink job, and an emitted row cannot go to the dead letters; CAST \
                             an operand AS DOUBLE"
                        ),
                    ));
                }
            }
            Ok(())
        }
        Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            for w in conditions {
                refuse_int_division(&w.result, scope)?;
            }
            else_result
                .as_deref()
                .map_or(Ok(()), |x| refuse_int_division(x, scope))
        }
        _ => Ok(()),
    }
}

/// `operand op literal` in the filter grammar (`flipped`: the literal was on the left;
/// `neg`: the comparison is negated, so its operator is inverted).
fn comparison(
    operand: &Operand,
    op: &BinaryOperator,
    lit: &Expr,
    flipped: bool,
    neg: bool,
) -> Result<String, SqlError> {
    let op = cmp_symbol(op, flipped, neg);
    let ty = operand.ty;
    let (lit_expr, negative) = match lit {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (expr.as_ref(), true),
        other => (other, false),
    };
    let text = match lit_expr {
        Expr::Value(v) => match (&v.value, ty) {
            (Value::SingleQuotedString(s), "string") if !negative => {
                if !s.contains('"') {
                    format!("\"{s}\"")
                } else if !s.contains('\'') {
                    format!("'{s}'")
                } else {
                    return Err(at(
                        lit.span(),
                        "a string with both ' and \" is not supported in a filter",
                    ));
                }
            }
            (Value::Number(n, _), "number") => {
                n.parse::<f64>()
                    .map_err(|_| at(lit.span(), format!("`{n}` is not a number")))?;
                if negative {
                    format!("-{n}")
                } else {
                    n.clone()
                }
            }
            (Value::Boolean(b), "bool") if !negative => b.to_string(),
            _ => {
                return Err(at(
                    lit.span(),
                    format!(
                        "`{lit}` is not a {ty} literal, the type of `{}`",
                        operand.written
                    ),
                ))
            }
        },
        _ => {
            return Err(at(
                lit.span(),
                format!("`{lit}`: {} is compared with a literal", operand.written),
            ))
        }
    };
    Ok(format!("{} {op} {text}", operand.name))
}

/// A lookup join of a view, compiled as an `[[enrichment]]`:
/// `JOIN t FOR SYSTEM_TIME AS OF e.proc_time AS s ON e.f = s.c [AND …]`.
struct Lookup {
    /// The lookup table (its `WITH` options say where the rows are).
    table: String,
    span: Span,
    alias: String,
    /// Record field = table column.
    join: Vec<(String, String)>,
    /// Table column, its name on the record, spec type.
    columns: Vec<(String, String, &'static str)>,
    /// `JOIN` (a row without a match is dropped), not `LEFT JOIN` (its columns are NULL).
    inner: bool,
}

/// `CREATE [TEMPORARY] VIEW v AS SELECT … FROM src AS e JOIN t FOR SYSTEM_TIME AS OF
/// e.proc_time AS s ON …`: the source with lookup joins, which the window TVFs read.
struct View {
    name: String,
    span: Span,
    source: String,
    /// The source columns the view keeps (`None`: all of them, `e.*`).
    source_columns: Option<Vec<String>>,
    lookups: Vec<Lookup>,
}

impl View {
    /// A view's column as the record names it, with its spec type.
    fn lookup_field(&self, name: &str) -> Option<&'static str> {
        self.lookups
            .iter()
            .flat_map(|l| l.columns.iter())
            .find(|(_, n, _)| n == name)
            .map(|(_, _, t)| *t)
    }
}

/// The `PROCTIME()` computed columns of a table.
fn proctime_columns(t: &Table) -> Vec<&str> {
    t.extras
        .computed
        .iter()
        .filter(|c| {
            matches!(&c.expr, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("PROCTIME"))
        })
        .map(|c| c.name.as_str())
        .collect()
}

/// Builds a view of lookup joins.
fn view(cv: &sqlparser::ast::CreateView, tables: &[Table]) -> Result<View, SqlError> {
    use sqlparser::ast::{JoinConstraint, JoinOperator, TableVersion};
    let span = cv.name.span();
    let name = option_key(&cv.name);
    let shape = |s: Span| {
        at(
            s,
            format!(
                "view `{name}`: a view is the source table with lookup joins: SELECT e.*, s.col … \
                 FROM src AS e JOIN t FOR SYSTEM_TIME AS OF e.proc_time AS s ON e.k = s.k \
                 (filter and aggregate in the INSERT that reads it)"
            ),
        )
    };
    if cv.materialized || !cv.columns.is_empty() {
        return Err(shape(span));
    }
    let sel = plain_select(&cv.query)?;
    if let Some(w) = &sel.selection {
        return Err(shape(w.span()));
    }
    if sel.having.is_some()
        || sel.distinct.is_some()
        || !matches!(&sel.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return Err(shape(sel.select_token.0.span));
    }
    let [from] = sel.from.as_slice() else {
        return Err(shape(sel.select_token.0.span));
    };
    let TableFactor::Table {
        name: src_name,
        alias: src_alias,
        version: None,
        args: None,
        ..
    } = &from.relation
    else {
        return Err(shape(from.relation.span()));
    };
    let (src, source) = declared(tables, src_name)?;
    let src_alias = src_alias
        .as_ref()
        .map(|a| a.name.value.clone())
        .unwrap_or_else(|| source.clone());
    let src_fields: Vec<(String, &'static str)> = src
        .columns
        .iter()
        .filter_map(|c| field_type(&c.ty).map(|t| (c.name.clone(), t)))
        .collect();
    let proc = proctime_columns(src);
    let mut lookups: Vec<Lookup> = Vec::new();
    for j in &from.joins {
        let TableFactor::Table {
            name: t_name,
            alias: t_alias,
            version,
            args: None,
            ..
        } = &j.relation
        else {
            return Err(shape(j.relation.span()));
        };
        let (t, table_name) = declared(tables, t_name)?;
        if t.name == src.name || t.extras.watermark.is_some() {
            return Err(at(
                t_name.span(),
                format!(
                    "`{table_name}` is a stream (it has a WATERMARK); joins of two streams are not \
                     supported, only lookup joins of a table FOR SYSTEM_TIME AS OF the processing \
                     time"
                ),
            ));
        }
        if let Some(c) = t.extras.computed.first() {
            return Err(at(c.span, "a lookup table has no computed columns"));
        }
        let alias = t_alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| table_name.clone());
        // FOR SYSTEM_TIME AS OF the source's processing time.
        match version {
            Some(TableVersion::ForSystemTimeAsOf(e)) => {
                let ok = column(e).is_some_and(|(id, q)| {
                    q.is_none_or(|q| q.value == src_alias) && proc.contains(&id.value.as_str())
                });
                if !ok {
                    return Err(at(
                        e.span(),
                        format!(
                            "FOR SYSTEM_TIME AS OF `{e}`: a lookup join is AS OF the source's \
                             processing time, a column `proc_time AS PROCTIME()` of `{}`; \
                             event-time (versioned table) joins are not supported",
                            src.name
                        ),
                    ));
                }
            }
            _ => {
                return Err(at(
                    t_name.span(),
                    format!(
                        "JOIN `{table_name}` without FOR SYSTEM_TIME AS OF: joins of two streams \
                         are not supported; a lookup join reads the table FOR SYSTEM_TIME AS OF \
                         {src_alias}.proc_time"
                    ),
                ))
            }
        }
        let (inner, cond) = match &j.join_operator {
            JoinOperator::Join(JoinConstraint::On(c))
            | JoinOperator::Inner(JoinConstraint::On(c)) => (true, c),
            JoinOperator::Left(JoinConstraint::On(c))
            | JoinOperator::LeftOuter(JoinConstraint::On(c)) => (false, c),
            _ => {
                return Err(at(
                    t_name.span(),
                    "a lookup join is JOIN or LEFT JOIN … ON <equalities>",
                ))
            }
        };
        let t_type = |c: &str| {
            t.columns
                .iter()
                .find(|x| x.name == c)
                .and_then(|x| field_type(&x.ty))
        };
        // ON e.f = s.c [AND …]: each equality names a record field (of the source or of an
        // earlier lookup) and a column of this table.
        let mut eqs = Vec::new();
        let mut stack = vec![cond];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Nested(inner) => stack.push(inner),
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::And,
                    right,
                } => {
                    stack.push(right);
                    stack.push(left);
                }
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => eqs.push((left.as_ref(), right.as_ref())),
                other => {
                    return Err(at(
                        other.span(),
                        format!(
                            "`{other}` in the ON of a lookup join: the condition is equalities of \
                             a record column and a column of `{table_name}`, joined with AND"
                        ),
                    ))
                }
            }
        }
        let mut join = Vec::new();
        for (l, r) in eqs {
            let side = |e: &Expr| -> Option<(bool, String)> {
                let (id, q) = column(e)?;
                let mine = match q {
                    Some(q) => q.value == alias,
                    None => t_type(&id.value).is_some(),
                };
                Some((mine, id.value.clone()))
            };
            let (field, col) = match (side(l), side(r)) {
                (Some((false, f)), Some((true, c))) | (Some((true, c)), Some((false, f))) => (f, c),
                _ => {
                    return Err(at(
                        l.span(),
                        format!(
                            "`{l} = {r}`: a lookup join's equality is <record column> = \
                             {alias}.<column of {table_name}>"
                        ),
                    ))
                }
            };
            if t_type(&col).is_none() {
                return Err(at(
                    r.span(),
                    format!("`{table_name}` has no column `{col}` of a supported type"),
                ));
            }
            let known = src_fields.iter().any(|(n, _)| *n == field)
                || lookups
                    .iter()
                    .flat_map(|x| x.columns.iter())
                    .any(|(_, n, _)| *n == field);
            if !known {
                return Err(at(
                    l.span(),
                    format!("unknown column `{field}` of the view's source"),
                ));
            }
            join.push((field, col));
        }
        lookups.push(Lookup {
            table: table_name,
            span: t_name.span(),
            alias,
            join,
            columns: Vec::new(),
            inner,
        });
    }
    if lookups.is_empty() {
        return Err(shape(span));
    }
    // The SELECT list: the source's columns (e.*, e.col) and the lookup columns (s.*,
    // s.col [AS name]).
    let mut source_columns: Option<Vec<String>> = Some(Vec::new());
    let mut added: Vec<(usize, String, String, &'static str, Span)> = Vec::new();
    let lookup_of = |q: &str| lookups.iter().position(|l| l.alias == q);
    let table_of = |i: usize| tables.iter().find(|t| t.name == lookups[i].table);
    let all_columns = |i: usize, out: &mut Vec<(usize, String, String, &'static str, Span)>| {
        if let Some(t) = table_of(i) {
            for c in &t.columns {
                let key = lookups[i].join.iter().any(|(_, jc)| *jc == c.name);
                if let (false, Some(ty)) = (key, field_type(&c.ty)) {
                    out.push((i, c.name.clone(), c.name.clone(), ty, c.span));
                }
            }
        }
    };
    for item in &sel.projection {
        match item {
            SelectItem::Wildcard(_) => {
                source_columns = None;
                for i in 0..lookups.len() {
                    all_columns(i, &mut added);
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let q = match kind {
                    sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n) => option_key(n),
                    _ => return Err(shape(item.span())),
                };
                if q == src_alias {
                    source_columns = None;
                } else if let Some(i) = lookup_of(&q) {
                    all_columns(i, &mut added);
                } else {
                    return Err(at(item.span(), format!("unknown alias `{q}`")));
                }
            }
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let out = match item {
                    SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                    _ => None,
                };
                // CAST gives a Glue table's column its type (the compiler does not read
                // the catalog); anywhere else it would be a conversion the view cannot do.
                let cast = crate::catalog::uncast(e).map(|(inner, _)| inner);
                let Some((id, q)) = column(cast.unwrap_or(e)) else {
                    return Err(shape(e.span()));
                };
                let q = q.map(|q| q.value.as_str());
                let glue = |i: usize| {
                    table_of(i).and_then(|t| t.option("connector")) == Some(crate::catalog::GLUE)
                };
                if cast.is_some() && !q.and_then(lookup_of).is_some_and(glue) {
                    return Err(at(
                        e.span(),
                        "CAST in a view gives the type of a Glue catalog table's column (whose \
                         type the compiler cannot read); other columns have their declared types",
                    ));
                }
                match q.and_then(lookup_of) {
                    Some(i) => {
                        let ty = table_of(i)
                            .and_then(|t| t.columns.iter().find(|c| c.name == id.value))
                            .and_then(|c| field_type(&c.ty))
                            .ok_or_else(|| {
                                at(
                                    id.span,
                                    format!(
                                        "`{}` has no column `{}` of a supported type",
                                        lookups[i].table, id.value
                                    ),
                                )
                            })?;
                        let name = out.unwrap_or_else(|| id.value.clone());
                        added.push((i, id.value.clone(), name, ty, id.span));
                    }
                    None if q.is_none_or(|q| q == src_alias) => {
                        if out.as_ref().is_some_and(|o| *o != id.value) {
                            return Err(at(
                                e.span(),
                                "renaming a source column in a view is not supported",
                            ));
                        }
                        if let Some(cols) = &mut source_columns {
                            cols.push(id.value.clone());
                        }
                    }
                    None => {
                        return Err(at(
                            e.span(),
                            format!("unknown alias `{}`", q.unwrap_or_default()),
                        ))
                    }
                }
            }
            other => return Err(shape(other.span())),
        }
    }
    for (i, column, name, ty, s) in added {
        let taken = src_fields.iter().any(|(n, _)| *n == name)
            || lookups
                .iter()
                .flat_map(|l| l.columns.iter())
                .any(|(_, n, _)| *n == name);
        if taken {
            return Err(at(
                s,
                format!(
                    "view `{}`: column `{name}` appears twice; rename it with AS",
                    name
                ),
            ));
        }
        lookups[i].columns.push((column, name, ty));
    }
    Ok(View {
        name,
        span,
        source,
        source_columns,
        lookups,
    })
}

/// A Glue catalog table as a lookup table: its columns are those the view names, its
/// options say where it is (connector [`crate::catalog::GLUE`], database, table, region).
fn glue_table(g: crate::catalog::GlueTable) -> Table {
    let mut options = vec![
        (
            "connector".to_string(),
            crate::catalog::GLUE.to_string(),
            g.span,
        ),
        ("database".to_string(), g.database, g.span),
        ("table".to_string(), g.table, g.span),
    ];
    if let Some((r, s)) = g.region {
        options.push(("region".to_string(), r, s));
    }
    Table {
        name: g.name,
        span: g.span,
        columns: g
            .columns
            .into_iter()
            .map(|(name, ty, span)| Column { name, ty, span })
            .collect(),
        extras: TableExtras::default(),
        options,
    }
}

/// The `[[enrichment]]` section of a lookup join.
fn enrichment_toml(l: &Lookup, t: &Table) -> Result<String, SqlError> {
    // A Glue table (`catalog.database.table`) is named after its table.
    let name = match t.option("connector") {
        Some(crate::catalog::GLUE) => t.option("table").unwrap_or(&l.table),
        _ => &l.table,
    };
    let mut out = format!("\n[[enrichment]]\nname = {}\n", q(name));
    match t.option("connector").unwrap_or("") {
        "filesystem" => {
            t.check_options(
                "lookup",
                &[
                    "connector",
                    "path",
                    "format",
                    "csv.field-delimiter",
                    "lookup.join.cache.ttl",
                    "lookup.on-miss",
                ],
            )?;
            let path = t
                .option("path")
                .ok_or_else(|| at(t.span, format!("lookup table `{}` needs 'path'", t.name)))?;
            let format = match t.option("format") {
                Some("csv") => "csv",
                Some("json") => "jsonl",
                Some("parquet") => "parquet",
                other => {
                    return Err(at(
                        t.option_span("format"),
                        format!(
                            "lookup table format {}: use 'csv' (with a header row), 'json' \
                             (JSON lines) or 'parquet'",
                            other.map_or("missing".to_string(), |f| format!("'{f}'"))
                        ),
                    ))
                }
            };
            let mut src = if path.starts_with("s3://") {
                format!("s3 = {{ location = {}, format = {}", q(path), q(format))
            } else {
                format!("file = {{ path = {}, format = {}", q(path), q(format))
            };
            if let Some(d) = t.option("csv.field-delimiter") {
                let _ = write!(src, ", delimiter = {}", q(d));
            }
            src.push_str(" }\n");
            out.push_str(&src);
            if let Some(ttl) = t.option("lookup.join.cache.ttl") {
                let ms = duration_setting(
                    "lookup.join.cache.ttl",
                    ttl,
                    t.option_span("lookup.join.cache.ttl"),
                )?;
                let _ = writeln!(out, "refresh = {}", q(&format_ms(ms)));
            }
        }
        "dynamodb" => {
            t.check_options(
                "lookup",
                &[
                    "connector",
                    "table-name",
                    "lookup.partial-cache.expire-after-write",
                    "lookup.max-concurrency",
                    "lookup.on-miss",
                ],
            )?;
            let table = t.option("table-name").ok_or_else(|| {
                at(
                    t.span,
                    format!("lookup table `{}` needs 'table-name'", t.name),
                )
            })?;
            let mut src = format!("dynamodb = {{ table = {}", q(table));
            if let Some(ttl) = t.option("lookup.partial-cache.expire-after-write") {
                let key = "lookup.partial-cache.expire-after-write";
                let ms = duration_setting(key, ttl, t.option_span(key))?;
                let _ = write!(src, ", cache_ttl = {}", q(&format_ms(ms)));
            }
            if let Some(n) = t.option("lookup.max-concurrency") {
                let n: u32 = n.parse().map_err(|_| {
                    at(
                        t.option_span("lookup.max-concurrency"),
                        "'lookup.max-concurrency' is a whole number",
                    )
                })?;
                let _ = write!(src, ", max_concurrency = {n}");
            }
            src.push_str(" }\n");
            out.push_str(&src);
        }
        crate::catalog::GLUE => {
            let _ = writeln!(
                out,
                "glue = {{ database = {}, table = {} }}",
                q(t.option("database").unwrap_or_default()),
                q(t.option("table").unwrap_or_default())
            );
        }
        "" => {
            return Err(at(
                t.span,
                format!("lookup table `{}` has no 'connector' option", t.name),
            ))
        }
        other => {
            return Err(at(
                t.option_span("connector"),
                format!(
                    "lookup connector '{other}' is not supported; use 'filesystem' (a local \
                     path or s3://…) or 'dynamodb'"
                ),
            ))
        }
    }
    let join: Vec<String> = l
        .join
        .iter()
        .map(|(f, c)| format!("{{ field = {}, column = {} }}", q(f), q(c)))
        .collect();
    let _ = writeln!(out, "join = [{}]", join.join(", "));
    let columns: Vec<String> = l
        .columns
        .iter()
        .map(|(c, n, ty)| {
            if c == n {
                format!("{{ column = {}, type = {} }}", q(c), q(ty))
            } else {
                format!("{{ column = {}, as = {}, type = {} }}", q(c), q(n), q(ty))
            }
        })
        .collect();
    let _ = writeln!(out, "columns = [{}]", columns.join(", "));
    // Flink's inner join drops a row without a match, its left join keeps it with NULLs;
    // Eventide's 'lookup.on-miss' = 'dead-letter' sends the inner join's misses to the
    // dead letters instead (same rows out, the misses kept with their reason).
    let on_miss = match (t.option("lookup.on-miss"), l.inner) {
        (None | Some("drop"), true) => "drop",
        (Some("dead-letter"), true) => "dead_letter",
        (None, false) => "null",
        (Some(other), inner) => {
            return Err(at(
                t.option_span("lookup.on-miss"),
                format!(
                    "'lookup.on-miss' = '{other}' {}; it is 'drop' (the default of JOIN) or \
                     'dead-letter', for a JOIN (a LEFT JOIN keeps the row with NULLs)",
                    if inner {
                        "is unknown"
                    } else {
                        "does not apply to a LEFT JOIN"
                    }
                ),
            ))
        }
    };
    let _ = writeln!(out, "on_miss = {}", q(on_miss));
    Ok(out)
}

/// What an `OVER` query needs of the compiler (see [`crate::over`]).
impl crate::over::Host for Compiler<'_> {
    fn read(&mut self, name: &str, span: Span) -> Result<crate::over::OverSource, SqlError> {
        let rowtime = self.use_source(name, span)?.rowtime.clone();
        let src_name = self
            .source
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        // The event-time field: the column TO_TIMESTAMP_LTZ(col, 3) computes the rowtime
        // from, else the rowtime column itself (`source_toml` checks the shape).
        let computed = self
            .table(&src_name)
            .and_then(|t| t.extras.computed.iter().find(|c| c.name == rowtime));
        let time_field = match computed.map(|c| &c.expr) {
            Some(Expr::Function(f)) => tvf_args(f)?
                .first()
                .and_then(|(_, e)| column(e))
                .map(|(id, _)| id.value.clone())
                .unwrap_or_else(|| rowtime.clone()),
            _ => rowtime.clone(),
        };
        Ok(crate::over::OverSource {
            rowtime,
            time_field,
        })
    }

    fn column_type(&self, name: &str, span: Span) -> Result<&'static str, SqlError> {
        self.field(name, span)
    }

    fn condition(&self, e: &Expr, alias: Option<&str>) -> Result<String, SqlError> {
        self.cond(e, false, &Operands::Columns(alias))
    }

    fn aggregate(&self, e: &Expr, alias: Option<&str>) -> Result<crate::over::OverAgg, SqlError> {
        let a = Compiler::aggregate(self, e, alias)?;
        Ok(crate::over::OverAgg {
            func: a.func,
            field: a.field,
            expr: a.expr,
            ty: a.ty,
            filter: a.filter,
            decimals: a.decimals,
        })
    }
}

/// The table a view names, with its name as the options spell it.
fn declared<'t>(tables: &'t [Table], name: &ObjectName) -> Result<(&'t Table, String), SqlError> {
    let key = option_key(name);
    match tables.iter().find(|t| t.name == key) {
        Some(t) => Ok((t, key)),
        None => Err(at(name.span(), format!("unknown table `{key}`"))),
    }
}
