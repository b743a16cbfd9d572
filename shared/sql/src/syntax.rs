//! Small pieces shared by the compiler's modules: TOML quoting, option keys and Flink
//! durations, SQL column types and column references, the one-SELECT shape of a query and
//! the one table its FROM clause reads.

use std::fmt::Write as _;

use sqlparser::ast::{
    DataType, Expr, Ident, ObjectName, Query, Select, SelectItem, SetExpr, Spanned, TableFactor,
};
use sqlparser::tokenizer::Span;

use crate::error::{at, SqlError};

/// A TOML basic string (JSON's string escapes are valid TOML).
pub(crate) fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// One entry of an aggregation's `aggregates`, with the settings it has.
pub(crate) struct AggregateEntry<'a> {
    pub func: &'a str,
    pub field: Option<&'a str>,
    /// A computed argument, in the spec's expression grammar.
    pub expr: Option<&'a str>,
    /// An integer output type.
    pub ty: Option<&'a str>,
    pub decimals: Option<u8>,
    pub filter: Option<&'a str>,
}

impl AggregateEntry<'_> {
    /// The entry as TOML for the output column `name`: `{ name = …, fn = …, field = …,
    /// expr = …, type = …, decimals = …, filter = … }`, without the settings it does not
    /// have.
    pub(crate) fn toml(&self, name: &str) -> String {
        let mut a = format!("{{ name = {}, fn = {}", q(name), q(self.func));
        for (key, value) in [
            ("field", self.field),
            ("expr", self.expr),
            ("type", self.ty),
        ] {
            if let Some(v) = value {
                let _ = write!(a, ", {key} = {}", q(v));
            }
        }
        if let Some(d) = self.decimals {
            let _ = write!(a, ", decimals = {d}");
        }
        if let Some(f) = self.filter {
            let _ = write!(a, ", filter = {}", q(f));
        }
        a.push_str(" }");
        a
    }
}

/// An option or table name as written, its parts joined with dots.
pub(crate) fn option_key(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| p.to_string().trim_matches('\'').to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// A Flink duration (`'5 s'`, `'1 min'`, `'500 ms'`, `'1 h'`, `'1 d'`, or milliseconds) in
/// milliseconds; `key` and `span` name the setting in an error.
pub(crate) fn duration_setting(key: &str, v: &str, span: Span) -> Result<i64, SqlError> {
    // Flink durations: "10 s", "1 min", "5000 ms", "1 h", "1 d", or a number of ms.
    let s = v.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| {
        at(
            span,
            format!("'{key}' = '{v}': expected a duration such as '5 s', '1 min' or '500 ms'"),
        )
    })?;
    let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => {
            return Err(at(
                span,
                format!("'{key}' = '{v}': unknown unit {other:?}; use ms, s, min, h or d"),
            ))
        }
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| at(span, format!("'{key}' = '{v}' is too large")))
}

/// The spec type of a SQL column type.
pub(crate) fn field_type(ty: &DataType) -> Option<&'static str> {
    use DataType as D;
    match ty {
        D::String(_)
        | D::Varchar(_)
        | D::CharVarying(_)
        | D::CharacterVarying(_)
        | D::Char(_)
        | D::Character(_)
        | D::Text => Some("string"),
        D::TinyInt(_)
        | D::SmallInt(_)
        | D::Int(_)
        | D::Integer(_)
        | D::BigInt(_)
        | D::Float(_)
        | D::Real
        | D::Double(_)
        | D::DoublePrecision
        | D::Decimal(_)
        | D::Dec(_)
        | D::Numeric(_) => Some("number"),
        D::Boolean | D::Bool => Some("bool"),
        _ => None,
    }
}

/// A column reference: its name (a qualifier, if any, must be `alias`).
pub(crate) fn column(e: &Expr) -> Option<(&Ident, Option<&Ident>)> {
    match e {
        Expr::Identifier(i) => Some((i, None)),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => Some((&parts[1], Some(&parts[0]))),
        Expr::Nested(inner) => column(inner),
        _ => None,
    }
}

/// Checks a column's qualifier against the alias of what the query reads: none, or that
/// alias.
pub(crate) fn check_qualifier(qual: Option<&Ident>, alias: Option<&str>) -> Result<(), SqlError> {
    match (qual, alias) {
        (None, _) => Ok(()),
        (Some(q), Some(a)) if q.value == a => Ok(()),
        (Some(q), _) => Err(at(q.span, format!("unknown table or alias `{}`", q.value))),
    }
}

/// Checks that the SELECT list fills the sink table `sink`'s `columns` columns, one by
/// one (a sink that declares no columns takes any list).
pub(crate) fn check_column_count(sel: &Select, sink: &str, columns: usize) -> Result<(), SqlError> {
    if columns == 0 || columns == sel.projection.len() {
        return Ok(());
    }
    Err(at(
        sel.select_token.0.span,
        format!(
            "the SELECT list has {} columns and the sink `{sink}` {columns}",
            sel.projection.len()
        ),
    ))
}

/// An item of a SELECT list: its expression and its alias (`AS name`), if any.
pub(crate) fn select_item(item: &SelectItem) -> Result<(&Expr, Option<&Ident>), SqlError> {
    match item {
        SelectItem::UnnamedExpr(e) => Ok((e, None)),
        SelectItem::ExprWithAlias { expr, alias } => Ok((expr, Some(alias))),
        other => Err(at(
            other.span(),
            format!("`{other}` is not supported in the SELECT list; name the columns"),
        )),
    }
}

/// What a kind of SELECT says of a FROM clause that is not one relation without joins.
pub(crate) struct FromErrors {
    /// No FROM clause (at the SELECT).
    pub missing: &'static str,
    /// A comma join (at its second relation).
    pub comma_join: &'static str,
    /// A JOIN (at its relation).
    pub join: &'static str,
}

/// The one relation `sel` reads: its FROM clause is one relation without joins, else the
/// error of `errors` at the place that differs.
pub(crate) fn single_from<'s>(
    sel: &'s Select,
    errors: &FromErrors,
) -> Result<&'s TableFactor, SqlError> {
    let from = match sel.from.as_slice() {
        [one] => one,
        [] => return Err(at(sel.select_token.0.span, errors.missing)),
        [_, second, ..] => return Err(at(second.relation.span(), errors.comma_join)),
    };
    match from.joins.first() {
        Some(j) => Err(at(j.relation.span(), errors.join)),
        None => Ok(&from.relation),
    }
}

/// The query of an INSERT as one SELECT (no set operations, ORDER BY, LIMIT, WITH).
pub(crate) fn plain_select(q: &Query) -> Result<&Select, SqlError> {
    if let Some(w) = &q.with {
        return Err(at(
            w.span(),
            "WITH (common table expressions) is not supported",
        ));
    }
    if let Some(o) = &q.order_by {
        return Err(at(
            o.span(),
            "ORDER BY on a stream is not supported (a stream has no end to sort at); file sinks \
             write rows sorted by key with 'sink.order' = 'key', the default",
        ));
    }
    if let Some(l) = &q.limit_clause {
        return Err(at(l.span(), "LIMIT on a stream is not supported"));
    }
    if let Some(f) = &q.fetch {
        return Err(at(
            f.quantity.as_ref().map(|x| x.span()).unwrap_or(q.span()),
            "FETCH on a stream is not supported",
        ));
    }
    match q.body.as_ref() {
        SetExpr::Select(s) => Ok(s),
        SetExpr::Query(inner) => Err(at(
            inner.span(),
            "a nested query is not supported; INSERT INTO sink SELECT … FROM TABLE(<window TVF>)",
        )),
        other => Err(at(
            other.span(),
            "UNION, INTERSECT, EXCEPT and VALUES are not supported",
        )),
    }
}
