//! `OVER` aggregations: `AGG(col) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN n PRECEDING
//! AND CURRENT ROW)`, compiled into a rows window (`window = { type = "rows", preceding =
//! n }`), whose operator follows Flink's `RowTimeRowsBoundedPrecedingFunction`: each key's
//! rows in rowtime order once the watermark passes them, one output row per input row.
//!
//! The SELECT list is the output row, in its order: partition columns, the rowtime column
//! (written as epoch milliseconds), other numeric columns of the input row, and the `OVER`
//! aggregates, all sharing one window (inline, or named in `WINDOW w AS (…)`). It becomes
//! the aggregation's `columns`. The rest of the compiler is reached through [`Host`], so
//! that this module depends on it only through that trait.

use std::fmt::Write as _;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, NamedWindowExpr,
    OrderBySort, Select, SelectItem, Spanned, TableFactor, Value, WindowFrameBound,
    WindowFrameUnits, WindowSpec, WindowType,
};
use sqlparser::tokenizer::Span;

use crate::error::{at, SqlError};
use crate::syntax::{
    check_column_count, check_qualifier, column, q, select_item, single_from, AggregateEntry,
    FromErrors,
};

/// The table an `OVER` query reads, as the spec sees it.
pub(crate) struct OverSource {
    /// The rowtime column (the one with the WATERMARK).
    pub rowtime: String,
    /// The spec's event-time field (the rowtime, or the column it is computed from).
    pub time_field: String,
}

/// An aggregate call of the SELECT list, as the spec computes it.
pub(crate) struct OverAgg {
    pub func: &'static str,
    pub field: Option<String>,
    /// A computed argument, in the spec's expression grammar.
    pub expr: Option<String>,
    /// The integer output type (Flink's SUM and AVG of integers are integers).
    pub ty: Option<&'static str>,
    pub filter: Option<String>,
    pub decimals: Option<u8>,
}

/// What compiling an `OVER` query needs from the rest of the compiler.
pub(crate) trait Host {
    /// The source table or view `name` (at `span`), now read by this INSERT.
    fn read(&mut self, name: &str, span: Span) -> Result<OverSource, SqlError>;
    /// The spec type (`string`, `number`, `bool`) of a column of what the INSERT reads.
    fn column_type(&self, name: &str, span: Span) -> Result<&'static str, SqlError>;
    /// A WHERE condition in the filter grammar; `alias` qualifies the columns.
    fn condition(&self, e: &Expr, alias: Option<&str>) -> Result<String, SqlError>;
    /// An aggregate output column (its call without `OVER`), as for window TVFs.
    fn aggregate(&self, e: &Expr, alias: Option<&str>) -> Result<OverAgg, SqlError>;
}

/// True when an item of the SELECT list holds an `OVER` aggregate: the query is an `OVER`
/// aggregation (see [`select`]).
pub(crate) fn uses_over(sel: &Select) -> bool {
    sel.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            over_of(e).is_some()
        }
        _ => false,
    })
}

/// The `OVER` of the window function in an output column: the call itself, or inside
/// `CAST(…)`, `ROUND(…, s)` or parentheses (what [`Host::aggregate`] accepts around it).
fn over_of(e: &Expr) -> Option<&WindowType> {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => over_of(inner),
        Expr::Function(f) => f.over.as_ref().or_else(|| match &f.args {
            FunctionArguments::List(l) => l.args.iter().find_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => over_of(x),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    }
}

/// The output column with its window function's `OVER` removed.
fn without_over(e: &Expr) -> Expr {
    let mut e = e.clone();
    strip(&mut e);
    e
}

fn strip(e: &mut Expr) {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => strip(inner),
        Expr::Function(f) => {
            if f.over.take().is_some() {
                return;
            }
            if let FunctionArguments::List(l) = &mut f.args {
                for a in &mut l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        strip(x);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The frame every `OVER` supports, for the errors.
const SUPPORTED: &str = "the supported window is OVER (PARTITION BY k ORDER BY <rowtime> ROWS \
                         BETWEEN n PRECEDING AND CURRENT ROW)";

/// The window of an `OVER` aggregation: its partition columns and `n`.
#[derive(PartialEq)]
struct Over {
    partition_by: Vec<String>,
    preceding: u64,
}

/// Resolves `OVER w` or `OVER (…)` against the SELECT's `WINDOW` clause.
fn window_spec<'s>(w: &'s WindowType, sel: &'s Select) -> Result<&'s WindowSpec, SqlError> {
    match w {
        WindowType::WindowSpec(spec) => Ok(spec),
        WindowType::NamedWindow(name) => {
            let def = sel
                .named_window
                .iter()
                .find(|d| d.0.value == name.value)
                .ok_or_else(|| {
                    at(
                        name.span,
                        format!(
                            "unknown window `{}`; define it with WINDOW {} AS (…)",
                            name.value, name.value
                        ),
                    )
                })?;
            match &def.1 {
                NamedWindowExpr::WindowSpec(spec) => Ok(spec),
                NamedWindowExpr::NamedWindow(other) => Err(at(
                    other.span,
                    format!(
                        "a window defined as another window (`{}`) is not supported; {SUPPORTED}",
                        other.value
                    ),
                )),
            }
        }
    }
    .and_then(|spec| match &spec.window_name {
        Some(base) => Err(at(
            base.span,
            format!(
                "a window extending another (`{}`) is not supported; {SUPPORTED}",
                base.value
            ),
        )),
        None => Ok(spec),
    })
}

/// Checks a window specification against what the engine computes.
fn check_window(
    host: &dyn Host,
    spec: &WindowSpec,
    src: &OverSource,
    alias: Option<&str>,
    span: Span,
) -> Result<Over, SqlError> {
    let mut partition_by = Vec::with_capacity(spec.partition_by.len());
    for p in &spec.partition_by {
        let Some((id, qual)) = column(p) else {
            return Err(at(
                p.span(),
                format!("PARTITION BY `{p}`: partition by columns only"),
            ));
        };
        check_qualifier(qual, alias)?;
        if id.value == src.rowtime {
            return Err(at(
                id.span,
                "partitioning by the rowtime column is not supported",
            ));
        }
        host.column_type(&id.value, id.span)?;
        partition_by.push(id.value.clone());
    }
    let order_ok = match spec.order_by.as_slice() {
        [o] => {
            let asc = !matches!(
                o.options.sort,
                Some(OrderBySort::Desc) | Some(OrderBySort::Using(_))
            );
            let rowtime = column(&o.expr).is_some_and(|(id, qual)| {
                id.value == src.rowtime && check_qualifier(qual, alias).is_ok()
            });
            asc && rowtime && o.options.nulls_first.is_none() && o.with_fill.is_none()
        }
        _ => false,
    };
    if !order_ok {
        let where_ = spec.order_by.first().map_or(span, |o| o.expr.span());
        return Err(at(
            where_,
            format!(
                "an OVER window is ordered by the rowtime column `{}` ascending, and by nothing \
                 else (Flink's event-time OVER); {SUPPORTED}",
                src.rowtime
            ),
        ));
    }
    let Some(frame) = &spec.window_frame else {
        return Err(at(
            span,
            format!(
                "an OVER window without a frame is RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT \
                 ROW, which is not supported; {SUPPORTED}"
            ),
        ));
    };
    if frame.units != WindowFrameUnits::Rows {
        return Err(at(
            span,
            format!(
                "{} frames are not supported (Flink's RANGE frames are by time interval, with \
                 every row of a time in the frame); {SUPPORTED}",
                frame.units
            ),
        ));
    }
    match &frame.end_bound {
        None | Some(WindowFrameBound::CurrentRow) => {}
        Some(b) => {
            return Err(at(
                bound_span(b).unwrap_or(span),
                format!("a frame ending at {b} is not supported (Flink's OVER ends at CURRENT ROW); {SUPPORTED}"),
            ))
        }
    }
    let preceding = match &frame.start_bound {
        WindowFrameBound::CurrentRow => 0,
        WindowFrameBound::Preceding(Some(n)) => match n.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(s, _) => s.parse::<u64>().map_err(|_| {
                    at(
                        v.span,
                        format!("`{s} PRECEDING`: n is a whole number of rows"),
                    )
                })?,
                _ => return Err(at(v.span, "n PRECEDING takes a whole number of rows")),
            },
            other => return Err(at(other.span(), "n PRECEDING takes a whole number of rows")),
        },
        WindowFrameBound::Preceding(None) => {
            return Err(at(
                span,
                format!(
                    "ROWS BETWEEN UNBOUNDED PRECEDING is not supported (Flink runs it with \
                     another operator, which judges lateness by the watermark); {SUPPORTED}"
                ),
            ))
        }
        WindowFrameBound::Following(_) => {
            return Err(at(
                bound_span(&frame.start_bound).unwrap_or(span),
                format!("a frame starting at a FOLLOWING row is not supported; {SUPPORTED}"),
            ))
        }
    };
    Ok(Over {
        partition_by,
        preceding,
    })
}

fn bound_span(b: &WindowFrameBound) -> Option<Span> {
    match b {
        WindowFrameBound::Preceding(Some(e)) | WindowFrameBound::Following(Some(e)) => {
            Some(e.span())
        }
        _ => None,
    }
}

/// What an `OVER` query says of a FROM clause that is not one table.
const FROM_ERRORS: FromErrors = FromErrors {
    missing: "an OVER query needs FROM a table",
    comma_join: "a comma join (of two streams) is not supported",
    join: "joins are not supported in an OVER query; a lookup join goes in a view that the \
           query reads: CREATE TEMPORARY VIEW v AS SELECT … JOIN t FOR SYSTEM_TIME AS OF …",
};

/// One INSERT's `OVER` query as an `[[aggregation]]` with a rows window, without its sink
/// section. `sink_columns` are the sink table's columns (empty when it declares none).
pub(crate) fn select(
    host: &mut dyn Host,
    sel: &Select,
    sink_columns: &[(String, Span)],
    sink: &str,
) -> Result<String, SqlError> {
    let relation = single_from(sel, &FROM_ERRORS)?;
    let (name, alias) = match relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            version: None,
            ..
        } => (name, alias.as_ref().map(|a| a.name.value.clone())),
        other => {
            return Err(at(
                other.span(),
                "an OVER query reads a table or view (FROM events), not a window TVF or a \
                 subquery",
            ))
        }
    };
    let table = name.to_string();
    let src = host.read(&table, name.span())?;
    let alias = alias.as_deref();
    match &sel.group_by {
        GroupByExpr::Expressions(exprs, _) if exprs.is_empty() => {}
        GroupByExpr::Expressions(exprs, _) => {
            return Err(at(
                exprs[0].span(),
                "OVER together with GROUP BY is not supported; an OVER query emits one row per \
                 input row",
            ))
        }
        GroupByExpr::All(_) => {
            return Err(at(
                sel.select_token.0.span,
                "OVER together with GROUP BY is not supported",
            ))
        }
    }
    if let Some(h) = &sel.having {
        return Err(at(h.span(), "HAVING is not supported in an OVER query"));
    }
    let filter = sel
        .selection
        .as_ref()
        .map(|w| host.condition(w, alias))
        .transpose()?;
    check_column_count(sel, sink, sink_columns.len())?;

    // The one window of the query, from its first OVER aggregate.
    let mut window: Option<Over> = None;
    let mut columns: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut aggregates: Vec<String> = Vec::new();
    let mut plain: Vec<(String, Span)> = Vec::new();
    let mut aggregate_names: Vec<(String, Span)> = Vec::new();
    for (pos, item) in sel.projection.iter().enumerate() {
        let (expr, alias_name) = select_item(item)?;
        let out_name = |default: &str| -> String {
            sink_columns
                .get(pos)
                .map(|(n, _)| n.clone())
                .or_else(|| alias_name.map(|a| a.value.clone()))
                .unwrap_or_else(|| default.to_string())
        };
        if let Some((id, qual)) = column(expr) {
            check_qualifier(qual, alias)?;
            let c = id.value.as_str();
            let out = out_name(c);
            let field = if c == src.rowtime {
                src.time_field.clone()
            } else {
                let ty = host.column_type(c, id.span)?;
                if ty != "number" {
                    plain.push((c.to_string(), id.span));
                }
                c.to_string()
            };
            if names.contains(&out) {
                return Err(at(
                    id.span,
                    format!("output column `{out}` appears twice; name it with AS"),
                ));
            }
            columns.push(format!("{{ name = {}, field = {} }}", q(&out), q(&field)));
            names.push(out);
            continue;
        }
        let Some(w) = over_of(expr) else {
            return Err(at(
                expr.span(),
                format!(
                    "`{expr}`: an OVER query's SELECT list is columns of the input row and \
                     aggregates OVER its window; {SUPPORTED}"
                ),
            ));
        };
        let span = expr.span();
        let spec = window_spec(w, sel)?;
        let over = check_window(&*host, spec, &src, alias, span)?;
        match &window {
            None => window = Some(over),
            Some(first) if *first == over => {}
            Some(_) => {
                return Err(at(
                    span,
                    "the aggregates of one SELECT are over different windows; Flink computes \
                     all aggregates of an OVER query on the same window (give them one, e.g. \
                     WINDOW w AS (…) and OVER w)",
                ))
            }
        }
        let agg = host.aggregate(&without_over(expr), alias)?;
        let default = match &agg.field {
            None => agg.func.to_string(),
            Some(f) if names.contains(&agg.func.to_string()) => format!("{}_{f}", agg.func),
            Some(_) => agg.func.to_string(),
        };
        let out = out_name(&default);
        if names.contains(&out) || out == src.time_field {
            return Err(at(
                span,
                format!("output column `{out}` appears twice; name it with AS"),
            ));
        }
        let entry = AggregateEntry {
            func: agg.func,
            field: agg.field.as_deref(),
            expr: agg.expr.as_deref(),
            ty: agg.ty,
            decimals: agg.decimals,
            filter: agg.filter.as_deref(),
        };
        aggregates.push(entry.toml(&out));
        columns.push(q(&out));
        aggregate_names.push((out.clone(), span));
        names.push(out);
    }
    let Some(window) = window else {
        return Err(at(
            sel.select_token.0.span,
            "the SELECT list has no OVER aggregate",
        ));
    };
    // A column that is not a number rides in the row only as a partition column.
    if let Some((c, span)) = plain.iter().find(|(c, _)| !window.partition_by.contains(c)) {
        return Err(at(
            *span,
            format!(
                "column `{c}` is not a number and not in PARTITION BY: the engine carries the \
                 partition columns, the rowtime and numeric columns into an OVER row"
            ),
        ));
    }
    // A bare name in `columns` that is a partition column means that column.
    if let Some((name, span)) = aggregate_names
        .iter()
        .find(|(n, _)| window.partition_by.contains(n))
    {
        return Err(at(
            *span,
            format!(
                "output column `{name}` names an aggregate and a partition column; name the \
                 aggregate with AS"
            ),
        ));
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n[[aggregation]]\nname = {}", q(sink));
    let _ = writeln!(
        out,
        "group_by = [{}]",
        window
            .partition_by
            .iter()
            .map(|g| q(g))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(f) = filter {
        let _ = writeln!(out, "filter = {}", q(&f));
    }
    let _ = writeln!(
        out,
        "window = {{ type = \"rows\", preceding = {} }}",
        window.preceding
    );
    let _ = writeln!(out, "aggregates = [\n  {},\n]", aggregates.join(",\n  "));
    let _ = writeln!(out, "columns = [{}]", columns.join(", "));
    Ok(out)
}
