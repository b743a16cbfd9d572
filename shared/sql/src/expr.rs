//! SQL expressions inside aggregates (`SUM(price * qty)`, `AVG(CAST(v AS BIGINT))`,
//! `SUM(CASE WHEN c = 'x' THEN v ELSE 0 END)`) translated into the spec's expression
//! grammar (`eventide_engine::expr`), with Flink's types.
//!
//! The compiler knows each column's declared SQL type; the engine computes in `f64` and
//! 64-bit integers. So the translation writes every integer column as a `cast(… as int)`
//! (the engine then does integer arithmetic at Flink's widths: wrapping, truncating `/`,
//! Java's `%`), and refuses, with the position, what the engine cannot reproduce exactly:
//! DECIMAL arithmetic (Flink's result precision and scale rules), FLOAT (32-bit) values,
//! `%` of approximate numbers (Flink's MOD takes exact numerics only) and untyped NULLs in
//! arithmetic (Flink refuses them too).

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, ExactNumberInfo, Expr, Spanned, UnaryOperator, Value,
};

use sqlparser::tokenizer::Span;

use crate::error::{at, SqlError};

/// The SQL type of an expression, as far as the translation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlTy {
    /// TINYINT, SMALLINT, INT, BIGINT: the width in bits.
    Int(u8),
    Double,
    /// FLOAT / REAL: 32-bit, which the engine does not compute in.
    Float,
    /// DECIMAL(p, s).
    Decimal(u8, u8),
    /// An untyped NULL.
    Null,
}

impl SqlTy {
    /// The engine's name of an integer output type (`type = "…"` of an aggregate).
    pub(crate) fn int_name(self) -> Option<&'static str> {
        match self {
            SqlTy::Int(8) => Some("tinyint"),
            SqlTy::Int(16) => Some("smallint"),
            SqlTy::Int(32) => Some("int"),
            SqlTy::Int(_) => Some("bigint"),
            _ => None,
        }
    }

    fn name(self) -> String {
        match self {
            SqlTy::Int(8) => "TINYINT".into(),
            SqlTy::Int(16) => "SMALLINT".into(),
            SqlTy::Int(32) => "INT".into(),
            SqlTy::Int(_) => "BIGINT".into(),
            SqlTy::Double => "DOUBLE".into(),
            SqlTy::Float => "FLOAT".into(),
            SqlTy::Decimal(p, s) => format!("DECIMAL({p}, {s})"),
            SqlTy::Null => "NULL".into(),
        }
    }
}

/// The numeric SQL type of a declared column type; `None` for other types.
pub(crate) fn sql_type(ty: &DataType) -> Option<SqlTy> {
    use DataType as D;
    Some(match ty {
        D::TinyInt(_) => SqlTy::Int(8),
        D::SmallInt(_) => SqlTy::Int(16),
        D::Int(_) | D::Integer(_) => SqlTy::Int(32),
        D::BigInt(_) => SqlTy::Int(64),
        D::Double(_) | D::DoublePrecision => SqlTy::Double,
        D::Float(_) | D::Real => SqlTy::Float,
        D::Decimal(i) | D::Dec(i) | D::Numeric(i) => {
            let (p, s) = decimal_info(i)?;
            SqlTy::Decimal(p, s)
        }
        _ => return None,
    })
}

/// Precision and scale; Flink's DECIMAL is DECIMAL(10, 0).
fn decimal_info(i: &ExactNumberInfo) -> Option<(u8, u8)> {
    match i {
        ExactNumberInfo::None => Some((10, 0)),
        ExactNumberInfo::Precision(p) => Some((u8::try_from(*p).ok()?, 0)),
        ExactNumberInfo::PrecisionAndScale(p, s) => {
            Some((u8::try_from(*p).ok()?, u8::try_from(*s).ok()?))
        }
    }
}

/// What a translation needs from the compiler: columns and conditions.
pub(crate) trait Scope {
    /// The spec field name and SQL type of `e` when it is a column (`None` when it is not).
    fn column(&self, e: &Expr) -> Result<Option<(String, SqlTy)>, SqlError>;
    /// A `WHEN` condition in the filter grammar.
    fn condition(&self, e: &Expr) -> Result<String, SqlError>;
}

/// An expression in the engine's grammar, with its SQL type.
#[derive(Debug, Clone)]
pub(crate) struct Typed {
    pub text: String,
    pub ty: SqlTy,
    /// 0 for an operand, 1 for `*`, `/`, `%`, 2 for `+`, `-`: where parentheses are needed.
    prec: u8,
}

impl Typed {
    fn atom(text: String, ty: SqlTy) -> Typed {
        Typed { text, ty, prec: 0 }
    }

    /// The text as an operand of an operator of precedence `prec` (parenthesized when
    /// `right` and of the same precedence, operators being left-associative).
    fn operand(&self, prec: u8, right: bool) -> String {
        if self.prec > prec || (right && self.prec == prec && prec > 0) {
            format!("({})", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// Words of the engine's expression grammar, which a field cannot be named.
const KEYWORDS: [&str; 15] = [
    "case", "when", "then", "else", "end", "cast", "as", "null", "and", "or", "not", "true",
    "false", "double", "decimal",
];

/// Translates an aggregate's argument.
///
/// # Errors
///
/// What the engine cannot compute as Flink does, naming its position and why.
pub(crate) fn translate(e: &Expr, scope: &dyn Scope) -> Result<Typed, SqlError> {
    if let Some((name, ty)) = scope.column(e)? {
        let plain =
            name.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            }) && !name.is_empty()
                && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&name))
                && !matches!(
                    name.to_ascii_lowercase().as_str(),
                    "tinyint" | "smallint" | "int" | "integer" | "bigint"
                );
        if !plain {
            return Err(at(
                e.span(),
                format!(
                    "the column `{name}` cannot be used in an expression: \
                     the spec's expressions name fields with letters, digits and _ other than \
                     their keywords"
                ),
            ));
        }
        return match ty {
            SqlTy::Float => Err(at(e.span(), float_refusal(&name))),
            SqlTy::Int(_) => Ok(Typed::atom(
                format!("cast({name} as {})", ty.int_name().unwrap_or("bigint")),
                ty,
            )),
            _ => Ok(Typed::atom(name, ty)),
        };
    }
    match e {
        Expr::Nested(inner) => translate(inner, scope),
        Expr::Value(v) => literal(&v.value, e),
        Expr::UnaryOp { op, expr } => {
            let inner = translate(expr, scope)?;
            match op {
                UnaryOperator::Plus => Ok(inner),
                UnaryOperator::Minus => {
                    check_arithmetic(&inner, e, "-")?;
                    Ok(Typed {
                        text: format!("-{}", inner.operand(0, false)),
                        prec: 0,
                        ..inner
                    })
                }
                other => Err(at(
                    e.span(),
                    format!("the operator {other} is not supported in an expression"),
                )),
            }
        }
        Expr::BinaryOp { left, op, right } => {
            let (sym, prec) = match op {
                BinaryOperator::Plus => ("+", 2),
                BinaryOperator::Minus => ("-", 2),
                BinaryOperator::Multiply => ("*", 1),
                BinaryOperator::Divide => ("/", 1),
                BinaryOperator::Modulo => ("%", 1),
                other => {
                    return Err(at(
                        e.span(),
                        format!(
                            "`{e}`: the operator {other} is not supported in an expression; \
                             the arithmetic is + - * / % (conditions go in CASE WHEN or FILTER)"
                        ),
                    ))
                }
            };
            let l = translate(left, scope)?;
            let r = translate(right, scope)?;
            check_arithmetic(&l, e, sym)?;
            check_arithmetic(&r, e, sym)?;
            let ty = match (l.ty, r.ty) {
                (SqlTy::Int(a), SqlTy::Int(b)) => SqlTy::Int(a.max(b)),
                (SqlTy::Double, _) | (_, SqlTy::Double) => SqlTy::Double,
                _ => {
                    // Both exact, at least one a DECIMAL.
                    return Err(at(
                        e.span(),
                        format!(
                            "`{e}`: arithmetic on {} and {} is DECIMAL arithmetic, whose \
                             result precision and scale (Flink's rules) the engine's numbers do \
                             not carry; CAST an operand AS DOUBLE, or write the DECIMAL \
                             literal as a DOUBLE (e.g. 1.5e0)",
                            l.ty.name(),
                            r.ty.name()
                        ),
                    ));
                }
            };
            if sym == "%" && ty == SqlTy::Double {
                return Err(at(
                    e.span(),
                    format!(
                        "`{e}`: Flink's % (MOD) takes exact numeric operands (integers), and \
                         this one is {} % {}",
                        l.ty.name(),
                        r.ty.name()
                    ),
                ));
            }
            Ok(Typed {
                text: format!("{} {sym} {}", l.operand(prec, false), r.operand(prec, true)),
                ty,
                prec,
            })
        }
        Expr::Cast {
            kind,
            expr,
            data_type,
            format,
        } => {
            if !matches!(kind, CastKind::Cast) || format.is_some() {
                return Err(at(
                    e.span(),
                    format!("`{e}` is not supported; CAST(x AS type) is"),
                ));
            }
            let inner = translate(expr, scope)?;
            if inner.ty == SqlTy::Null {
                return Ok(Typed::atom("null".into(), cast_target(data_type, e)?));
            }
            let to = cast_target(data_type, e)?;
            let target = match to {
                SqlTy::Int(_) => to.int_name().unwrap_or("bigint").to_string(),
                SqlTy::Double => "double".into(),
                SqlTy::Decimal(p, s) => format!("decimal({p}, {s})"),
                SqlTy::Float | SqlTy::Null => {
                    return Err(at(
                        e.span(),
                        float_refusal(&format!("CAST(… AS {data_type})")),
                    ))
                }
            };
            Ok(Typed::atom(format!("cast({} as {target})", inner.text), to))
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(op) = operand {
                return Err(at(
                    op.span(),
                    "a simple CASE (CASE x WHEN v THEN …) is not supported in an expression; \
                     write the searched form, CASE WHEN x = v THEN …",
                ));
            }
            let mut parts = Vec::with_capacity(conditions.len());
            let mut results = Vec::with_capacity(conditions.len() + 1);
            for w in conditions {
                let cond = scope.condition(&w.condition)?;
                let r = translate(&w.result, scope)?;
                parts.push((cond, r.clone()));
                results.push((r, w.result.span()));
            }
            let otherwise = else_result
                .as_deref()
                .map(|x| Ok::<_, SqlError>((translate(x, scope)?, x.span())))
                .transpose()?;
            results.extend(otherwise.iter().cloned());
            let ty = case_type(&results, e)?;
            let mut text = String::from("case");
            for (cond, r) in &parts {
                text.push_str(&format!(" when {cond} then {}", r.text));
            }
            if let Some((r, _)) = &otherwise {
                text.push_str(&format!(" else {}", r.text));
            }
            text.push_str(" end");
            Ok(Typed::atom(text, ty))
        }
        Expr::Function(f) => Err(at(
            f.name.span(),
            format!(
                "function {} is not supported in an expression (user-defined and other \
                 functions are not supported); the expressions are + - * / %, CASE and CAST",
                f.name
            ),
        )),
        other => Err(at(
            other.span(),
            format!(
                "`{other}` is not supported in an expression; the expressions are columns, \
                 numbers, + - * / %, CASE WHEN … THEN … ELSE … END and CAST(… AS type)"
            ),
        )),
    }
}

fn float_refusal(what: &str) -> String {
    format!(
        "`{what}` is a FLOAT: Flink computes FLOAT (REAL) values in 32 bits, the engine in 64, \
         so the results could differ; declare the column DOUBLE"
    )
}

/// Refuses operands of arithmetic the engine would compute differently from Flink.
fn check_arithmetic(t: &Typed, e: &Expr, op: &str) -> Result<(), SqlError> {
    match t.ty {
        SqlTy::Null => Err(at(
            e.span(),
            format!(
                "`{e}`: an untyped NULL operand of {op} (Flink refuses it too); CAST(NULL AS \
                 type)"
            ),
        )),
        SqlTy::Float => Err(at(e.span(), float_refusal(&t.text))),
        _ => Ok(()),
    }
}

/// A numeric literal: a whole number is INT (BIGINT beyond 32 bits), a number with a point
/// is an exact DECIMAL, one with an exponent a DOUBLE.
fn literal(v: &Value, e: &Expr) -> Result<Typed, SqlError> {
    match v {
        Value::Null => Ok(Typed::atom("null".into(), SqlTy::Null)),
        Value::Number(n, _) => {
            if n.bytes().all(|b| b.is_ascii_digit()) {
                let ty = match n.parse::<i64>() {
                    Ok(i) if i32::try_from(i).is_ok() => SqlTy::Int(32),
                    Ok(_) => SqlTy::Int(64),
                    Err(_) => {
                        return Err(at(
                            e.span(),
                            format!("`{n}` is beyond BIGINT (a DECIMAL in Flink), not supported"),
                        ))
                    }
                };
                return Ok(Typed::atom(n.clone(), ty));
            }
            n.parse::<f64>()
                .map_err(|_| at(e.span(), format!("`{n}` is not a number")))?;
            if n.contains(['e', 'E']) {
                return Ok(Typed::atom(n.clone(), SqlTy::Double));
            }
            let scale = n.split_once('.').map_or(0, |(_, f)| f.len());
            let digits = n.bytes().filter(u8::is_ascii_digit).count();
            Ok(Typed::atom(
                n.clone(),
                SqlTy::Decimal(
                    u8::try_from(digits.max(1)).unwrap_or(u8::MAX),
                    u8::try_from(scale).unwrap_or(u8::MAX),
                ),
            ))
        }
        other => Err(at(
            e.span(),
            format!("`{other}` is not a number; expressions are numeric"),
        )),
    }
}

fn cast_target(ty: &DataType, e: &Expr) -> Result<SqlTy, SqlError> {
    match sql_type(ty) {
        Some(SqlTy::Decimal(p, s)) if s > 9 || p == 0 || p > 38 || s > p => Err(at(
            e.span(),
            format!(
                "`{e}`: DECIMAL({p}, {s}) is not supported; the engine keeps decimals exact to \
                 9 digits after the point (precision 1 to 38)"
            ),
        )),
        Some(t) => Ok(t),
        None => Err(at(
            e.span(),
            format!(
                "CAST(… AS {ty}) is not supported in an expression; the types are TINYINT, \
                 SMALLINT, INT, BIGINT, DOUBLE and DECIMAL(p, s)"
            ),
        )),
    }
}

/// The type of a CASE: Flink's least restrictive type of its results. Any DOUBLE makes it
/// DOUBLE; integers alone the widest integer; integers and DECIMALs a DECIMAL of the largest
/// scale (exact values the engine sums exactly, printed with that scale).
fn case_type(results: &[(Typed, Span)], e: &Expr) -> Result<SqlTy, SqlError> {
    let mut ty = SqlTy::Null;
    for (r, span) in results {
        ty = match (ty, r.ty) {
            (_, SqlTy::Float) => return Err(at(*span, float_refusal(&r.text))),
            (t, SqlTy::Null) | (SqlTy::Null, t) => t,
            (SqlTy::Double, _) | (_, SqlTy::Double) => SqlTy::Double,
            (SqlTy::Int(a), SqlTy::Int(b)) => SqlTy::Int(a.max(b)),
            (SqlTy::Decimal(_, a), SqlTy::Decimal(_, b)) => SqlTy::Decimal(38, a.max(b)),
            (SqlTy::Decimal(_, s), _) | (_, SqlTy::Decimal(_, s)) => SqlTy::Decimal(38, s),
            (t, _) => t,
        };
    }
    if ty == SqlTy::Float {
        return Err(at(e.span(), float_refusal(&e.to_string())));
    }
    Ok(ty)
}
