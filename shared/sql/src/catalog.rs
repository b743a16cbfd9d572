//! Glue Data Catalog tables in lookup joins: `CREATE CATALOG c WITH ('type' = 'glue', …)`
//! and `JOIN c.db.table FOR SYSTEM_TIME AS OF e.proc_time`, compiled to the spec's
//! `glue = { database, table }` enrichment.
//!
//! The catalog options are those of Flink's AWS Glue catalog (`flink-catalog-aws-glue`):
//! `'type' = 'glue'`, `'catalog-name'`, `'default-database'` and `'region'`. Flink reads a
//! catalog table's schema from the catalog; the compiler does not reach AWS, so the view
//! names the columns it takes (no `s.*`), each a STRING unless a `CAST(s.col AS type)`
//! gives its type. The consumer reads the location, format and partitions from Glue when it
//! loads the table.
//!
//! ```
//! let c = eventide_sql::compile(r#"
//!     CREATE CATALOG glue WITH ('type' = 'glue', 'region' = 'eu-west-1');
//!     CREATE TABLE events (subscriber_id STRING, v DOUBLE, event_time BIGINT,
//!         ts AS TO_TIMESTAMP_LTZ(event_time, 3), proc_time AS PROCTIME(),
//!         WATERMARK FOR ts AS ts) WITH ('connector' = 'kinesis', 'stream' = 'events');
//!     CREATE TEMPORARY VIEW enriched AS
//!     SELECT e.*, s.tier FROM events AS e
//!     JOIN glue.ref.subscribers FOR SYSTEM_TIME AS OF e.proc_time AS s ON e.subscriber_id = s.id;
//!     CREATE TABLE by_tier (tier STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
//!         WITH ('connector' = 'dynamodb', 'table-name' = 'results');
//!     INSERT INTO by_tier SELECT tier, window_start, window_end, COUNT(*)
//!     FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
//!     GROUP BY tier, window_start, window_end;
//! "#).unwrap();
//! assert!(c.toml.contains(r#"glue = { database = "ref", table = "subscribers" }"#));
//! assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
//! ```

use sqlparser::ast::{
    BinaryOperator, CreateView, DataType, Expr, SelectItem, Spanned, TableFactor,
};
use sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use crate::error::{at, SqlError};
use crate::syntax::{column, field_type, option_key, plain_select};

/// The connector of a catalog table (not a `'connector'` a user can write: it has a space).
pub(crate) const GLUE: &str = "glue catalog";

/// The options of Flink's Glue catalog.
const OPTIONS: &[&str] = &["type", "catalog-name", "default-database", "region"];

/// A `CREATE CATALOG name WITH (…)`.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub name: String,
    pub span: Span,
    /// Key, value, position of the value.
    pub options: Vec<(String, String, Span)>,
}

impl Catalog {
    fn option(&self, key: &str) -> Option<(&str, Span)> {
        self.options
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, s)| (v.as_str(), *s))
    }
}

/// Reads `CREATE CATALOG [IF NOT EXISTS] name WITH ('k' = 'v', …) [;]` from the significant
/// tokens `toks` (whitespace removed), starting after `CATALOG`. Returns the catalog and the
/// number of tokens read.
///
/// # Errors
///
/// Anything else, at its position; a catalog whose `'type'` is not `'glue'`, or with an
/// option Flink's Glue catalog does not have.
pub(crate) fn parse_create_catalog(
    toks: &[&TokenWithSpan],
    create: Span,
) -> Result<(Catalog, usize), SqlError> {
    let tok = |i: usize| toks.get(i).map(|t| &t.token).unwrap_or(&Token::EOF);
    let span = |i: usize| toks.get(i).map_or(create, |t| t.span);
    let word =
        |i: usize, w: &str| matches!(tok(i), Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let mut i = 0;
    if word(0, "IF") && word(1, "NOT") && word(2, "EXISTS") {
        i = 3;
    }
    let Token::Word(name) = tok(i) else {
        return Err(at(
            span(i),
            "expected the catalog's name after CREATE CATALOG",
        ));
    };
    let name = name.value.clone();
    i += 1;
    if !word(i, "WITH") || *tok(i + 1) != Token::LParen {
        return Err(at(
            span(i),
            "expected WITH ('type' = 'glue', …) after the catalog's name",
        ));
    }
    i += 2;
    let mut options = Vec::new();
    loop {
        let (Token::SingleQuotedString(k), Token::Eq, Token::SingleQuotedString(v)) =
            (tok(i), tok(i + 1), tok(i + 2))
        else {
            return Err(at(
                span(i),
                "expected 'key' = 'value' in the catalog's WITH ( … )",
            ));
        };
        options.push((k.clone(), v.clone(), span(i + 2)));
        i += 3;
        match tok(i) {
            Token::Comma => i += 1,
            Token::RParen => {
                i += 1;
                break;
            }
            _ => {
                return Err(at(
                    span(i),
                    "expected `,` or `)` in the catalog's WITH ( … )",
                ))
            }
        }
    }
    if *tok(i) == Token::SemiColon {
        i += 1;
    }
    let c = Catalog {
        name,
        span: create,
        options,
    };
    match c.option("type") {
        Some(("glue", _)) => {}
        Some((other, s)) => {
            return Err(at(
                s,
                format!(
                    "catalog type '{other}' is not supported; the supported catalog is AWS \
                     Glue ('type' = 'glue'), for lookup joins"
                ),
            ))
        }
        None => {
            return Err(at(
                create,
                format!("catalog `{}` needs 'type' = 'glue'", c.name),
            ))
        }
    }
    if let Some((k, _, s)) = c
        .options
        .iter()
        .find(|(k, _, _)| !OPTIONS.contains(&k.as_str()))
    {
        return Err(at(
            *s,
            format!(
                "option '{k}' of the Glue catalog `{}` is not supported; supported: {}",
                c.name,
                OPTIONS
                    .iter()
                    .map(|o| format!("'{o}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((c, i))
}

/// A Glue table a view joins.
pub(crate) struct GlueTable {
    /// `catalog.database.table`, as the view names it.
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) database: String,
    pub(crate) table: String,
    /// The columns the view names: name, type, position.
    pub(crate) columns: Vec<(String, DataType, Span)>,
    /// The catalog's `'region'` and its position.
    pub(crate) region: Option<(String, Span)>,
}

/// The Glue tables a view joins (`catalog.database.table`), as lookup tables whose columns
/// are those the view names: the type of a `CAST(s.col AS type)`, else STRING (join keys
/// take the record field's type in the spec, so theirs is not used).
///
/// # Errors
///
/// A Glue table read with `s.*` or `*` (its columns are only in the catalog), a name with
/// an unknown catalog, or a CAST to a type the engine does not have.
pub(crate) fn glue_tables(
    cv: &CreateView,
    catalogs: &[Catalog],
) -> Result<Vec<GlueTable>, SqlError> {
    let mut out: Vec<GlueTable> = Vec::new();
    if catalogs.is_empty() {
        return Ok(out);
    }
    let Ok(sel) = plain_select(&cv.query) else {
        return Ok(out);
    };
    for from in &sel.from {
        for j in &from.joins {
            let TableFactor::Table { name, alias, .. } = &j.relation else {
                continue;
            };
            let parts: Vec<String> = name.0.iter().map(|p| p.to_string()).collect();
            let [cat, db, table] = parts.as_slice() else {
                continue;
            };
            let cat = cat.trim_matches('`');
            let Some(c) = catalogs.iter().find(|c| c.name == cat) else {
                return Err(at(
                    name.span(),
                    format!("unknown catalog `{cat}`; declare it with CREATE CATALOG {cat} WITH ('type' = 'glue')"),
                ));
            };
            let full = option_key(name);
            let alias = alias
                .as_ref()
                .map(|a| a.name.value.clone())
                .unwrap_or_else(|| full.clone());
            let mut columns: Vec<(String, DataType, Span)> = Vec::new();
            for item in &sel.projection {
                match item {
                    SelectItem::Wildcard(_) => {
                        return Err(at(
                            item.span(),
                            format!(
                                "`*` with the Glue table `{full}`: its columns are in the \
                                 catalog, which the compiler does not read; name them (e.*, \
                                 {alias}.col, CAST({alias}.col AS DOUBLE) …)"
                            ),
                        ))
                    }
                    SelectItem::QualifiedWildcard(_, _)
                        if item.to_string().trim_end_matches(".*") == alias =>
                    {
                        return Err(at(
                            item.span(),
                            format!(
                                "`{alias}.*` of the Glue table `{full}`: its columns are in the \
                                 catalog, which the compiler does not read; name them \
                                 ({alias}.col, CAST({alias}.col AS DOUBLE) …)"
                            ),
                        ))
                    }
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        let (inner, ty) = match uncast(e) {
                            Some((inner, ty)) => (inner, Some(ty)),
                            None => (e, None),
                        };
                        if let Some((id, Some(q))) = column(inner) {
                            if q.value == alias && !columns.iter().any(|c| c.0 == id.value) {
                                let ty = ty.cloned().unwrap_or(DataType::String(None));
                                if field_type(&ty).is_none() {
                                    return Err(at(
                                        e.span(),
                                        format!(
                                            "CAST to {ty}: use STRING, DOUBLE, BIGINT or BOOLEAN"
                                        ),
                                    ));
                                }
                                columns.push((id.value.clone(), ty, id.span));
                            }
                        }
                    }
                    _ => {}
                }
            }
            // The join keys: columns of the table in the ON equalities.
            if let sqlparser::ast::JoinOperator::Join(sqlparser::ast::JoinConstraint::On(cond))
            | sqlparser::ast::JoinOperator::Inner(sqlparser::ast::JoinConstraint::On(cond))
            | sqlparser::ast::JoinOperator::Left(sqlparser::ast::JoinConstraint::On(cond))
            | sqlparser::ast::JoinOperator::LeftOuter(sqlparser::ast::JoinConstraint::On(
                cond,
            )) = &j.join_operator
            {
                let mut stack = vec![cond];
                while let Some(e) = stack.pop() {
                    match e {
                        Expr::Nested(x) => stack.push(x),
                        Expr::BinaryOp {
                            left,
                            op: BinaryOperator::And | BinaryOperator::Eq,
                            right,
                        } => {
                            stack.push(left);
                            stack.push(right);
                        }
                        other => {
                            if let Some((id, Some(q))) = column(other) {
                                if q.value == alias && !columns.iter().any(|c| c.0 == id.value) {
                                    columns.push((
                                        id.value.clone(),
                                        DataType::String(None),
                                        id.span,
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            if !out.iter().any(|t| t.name == full) {
                out.push(GlueTable {
                    name: full,
                    span: name.span(),
                    database: db.trim_matches('`').to_string(),
                    table: table.trim_matches('`').to_string(),
                    columns,
                    region: c.option("region").map(|(r, s)| (r.to_string(), s)),
                });
            }
        }
    }
    Ok(out)
}

/// `CAST(x AS type)`: `x` and the type.
pub(crate) fn uncast(e: &Expr) -> Option<(&Expr, &DataType)> {
    match e {
        Expr::Cast {
            expr, data_type, ..
        } => Some((expr, data_type)),
        Expr::Nested(x) => uncast(x),
        _ => None,
    }
}
