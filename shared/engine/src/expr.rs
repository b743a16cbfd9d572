//! Expressions and conditions: arithmetic, `CASE` and `CAST` over a record's numeric
//! fields, and the comparisons that filters, `case` branches and rules are made of, with
//! SQL's typing and NULL rules.
//!
//! An aggregate may read an expression instead of one field
//! (`{ name = "revenue", fn = "sum", expr = "price * qty" }`), and a filter compares
//! expressions (`filter = 'value * 2 > 10 and counter == "x"'`, see [`crate::filter`]). The
//! text is parsed and type-checked once against the input schema into a small tree;
//! evaluating it on a record walks that tree with no allocation and no string work.
//!
//! ```text
//! expr    := term (("+" | "-") term)*
//! term    := unary (("*" | "/" | "%") unary)*
//! unary   := "-" unary | primary
//! primary := number | "null" | field | "(" expr ")"
//!          | "cast" "(" expr "as" type ")"
//!          | "case" ("when" cond "then" expr)+ ["else" expr] "end"
//! type    := "double" | "tinyint" | "smallint" | "int" | "bigint" | "decimal" "(" p "," s ")"
//! cond    := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | "(" cond ")" | operand cmp operand
//! cmp     := "==" | "!=" | "<" | "<=" | ">" | ">="
//! operand := expr | string field | bool field | "string" | "true" | "false"
//! ```
//!
//! Conditions and expressions are one grammar in one module because each contains the
//! other (a `case` has conditions, a comparison has expressions). A `(` in a condition
//! opens an operand when its `)` is followed by an operator (`(a + b) * 2 > c`), a
//! condition otherwise (`(a > 1 or b > 1) and …`).
//! Keywords are case-insensitive; a field named like a keyword cannot be referenced.
//!
//! **Comparisons**: two numbers (as 64-bit integers when both sides are integers, as doubles
//! otherwise, Flink's comparison of mixed numeric types), two strings or two booleans. A
//! comparison with a NULL side is false, and `and`/`or` evaluate their right side only
//! when the left does not decide; `not` inverts (a SQL compiler pushes `NOT` down to the
//! comparisons, so that a NULL comparison stays false, see docs/sql.md).
//!
//! **Types** follow Flink SQL. Numeric fields are `double`; a literal with a `.` or an
//! exponent is `double`, a whole literal is `int` (`bigint` beyond 32 bits). An operation on
//! two integers is integer arithmetic at the wider width: it wraps on overflow, `/`
//! truncates toward zero and `%` keeps the sign of the dividend (Java's). Anything with a
//! `double` is IEEE arithmetic (`x / 0.0` is ±infinity or NaN). `cast(x as int)` of a double
//! truncates toward zero, saturating at the 32-bit bounds (then wraps to `tinyint` or
//! `smallint` width); `cast` between integers wraps. `cast(x as decimal(p, s))` rounds the
//! value's shortest decimal form half away from zero to `s` digits (at most 9), and is NULL
//! when it needs more than `p` digits, as Flink's cast is; arithmetic on the result is
//! `double`.
//!
//! **NULL**: a null field or `null` makes any operation null, a `case` without a matching
//! branch and no `else` is null, and an aggregate skips null values.
//!
//! **Errors**: integer division or modulo by zero fails a Flink job. Here the record goes
//! to the dead letters with the reason naming the expression or condition ([`Expr::eval`]
//! and [`Filter::eval`] return [`EvalError`]; [`crate::codec::Codec`] checks every fallible
//! aggregation filter, aggregate filter and expression when decoding). Where a failure
//! could not be dead-lettered (`having` on emitted rows, computed output columns, rules),
//! integer `/` and `%` are refused when the spec is loaded.
//!
//! ```
//! use eventide_engine::expr::{Expr, ExprLimits};
//! use eventide_engine::record::{Record, Value};
//! use eventide_engine::spec::schema::{FieldType, InputSpec, TimeFormat};
//! let input = InputSpec {
//!     fields: vec![("price".into(), FieldType::Number), ("qty".into(), FieldType::Number)],
//!     time_field: "t".into(),
//!     time_format: TimeFormat::EpochMs,
//!     partition: None,
//! };
//! let limits = ExprLimits::default();
//! let e = Expr::parse("price * qty", &input, &limits).unwrap();
//! let r = Record { time: 0, values: smallvec::smallvec![Value::Num(2.5), Value::Num(4.0)] };
//! assert_eq!(e.eval(&r), Ok(Some(10.0)));
//! let d = Expr::parse("cast(price as int) / cast(qty as int)", &input, &limits).unwrap();
//! assert_eq!(d.eval(&r), Ok(Some(0.0))); // 2 / 4 in integers
//! let c = Expr::parse("case when qty > 3 then 1 else 0 end", &input, &limits).unwrap();
//! assert_eq!(c.eval(&r), Ok(Some(1.0)));
//! ```

use std::cmp::Ordering;
use std::fmt;

use crate::decimal::POW10_I;
use crate::record::{Record, Value};
use crate::spec::schema::{FieldType, InputSpec};

/// The default of `[limits] max_expression_nodes`.
pub const DEFAULT_MAX_NODES: usize = 256;
/// The default of `[limits] max_expression_depth`.
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// The most `[limits] max_expression_nodes` may be raised to: evaluation and dropping walk
/// the tree recursively, so it stays far from the stack's size whatever the spec says.
pub const HARD_MAX_NODES: usize = 1024;
/// The most `[limits] max_expression_depth` may be raised to (parsing is recursive).
pub const HARD_MAX_DEPTH: usize = 128;

/// Bounds on one expression, from `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprLimits {
    /// Most operators, operands and branches (`[limits] max_expression_nodes`).
    pub max_nodes: usize,
    /// Deepest nesting of parentheses, unary minus, `case` and `cast`
    /// (`[limits] max_expression_depth`).
    pub max_depth: usize,
}

impl Default for ExprLimits {
    fn default() -> Self {
        ExprLimits {
            max_nodes: DEFAULT_MAX_NODES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// The SQL type of an expression's value (all carried as `f64` outside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumType {
    Double,
    /// A two's-complement integer of 8, 16, 32 or 64 bits.
    Int(u8),
    /// A decimal of precision `p` and scale `s` (`s <= 9`).
    Decimal(u8, u8),
}

impl fmt::Display for NumType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumType::Double => f.write_str("double"),
            NumType::Int(8) => f.write_str("tinyint"),
            NumType::Int(16) => f.write_str("smallint"),
            NumType::Int(32) => f.write_str("int"),
            NumType::Int(_) => f.write_str("bigint"),
            NumType::Decimal(p, s) => write!(f, "decimal({p}, {s})"),
        }
    }
}

impl NumType {
    /// Parses an integer type name (`tinyint`, `smallint`, `int`, `bigint`).
    pub fn parse_int(s: &str) -> Option<NumType> {
        Some(NumType::Int(match s.to_ascii_lowercase().as_str() {
            "tinyint" => 8,
            "smallint" => 16,
            "int" | "integer" => 32,
            "bigint" => 64,
            _ => return None,
        }))
    }

    /// Converts a value to this type as Flink's integer aggregates return it: an integer
    /// type truncates toward zero and wraps to its width; other types leave it alone.
    #[inline]
    pub fn coerce(self, v: f64) -> f64 {
        match self {
            NumType::Int(bits) => wrap(v as i64, bits) as f64,
            _ => v,
        }
    }
}

/// Why an expression has no value for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalError {
    /// Integer division or modulo by zero.
    DivideByZero,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::DivideByZero => f.write_str("integer division by zero"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A runtime value: integers stay integers (so `bigint` arithmetic is exact and wraps).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    #[inline]
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Field(usize),
    Const(Num),
    Null,
    /// Integer operation at a width, or IEEE (`None`).
    Bin(Arith, Option<u8>, Box<Node>, Box<Node>),
    Neg(Option<u8>, Box<Node>),
    /// An integer operand of a double operation.
    ToDouble(Box<Node>),
    /// `cast(… as <int>)`: from a double (Java's saturating `(int)`/`(long)`), or from an
    /// integer or decimal (wrapping).
    ToInt {
        bits: u8,
        from_double: bool,
        e: Box<Node>,
    },
    ToDecimal {
        precision: u8,
        scale: u8,
        e: Box<Node>,
    },
    Case(Vec<(Cond, Node)>, Box<Node>),
}

/// A compiled expression over a record's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
    ty: NumType,
    /// True when evaluation can fail (integer `/` or `%`).
    fallible: bool,
    /// The source text, for error messages.
    text: String,
}

/// Java's narrowing of a 64-bit integer to `bits`.
#[inline]
fn wrap(v: i64, bits: u8) -> i64 {
    match bits {
        8 => v as i8 as i64,
        16 => v as i16 as i64,
        32 => v as i32 as i64,
        _ => v,
    }
}

impl Node {
    fn eval(&self, r: &Record<'_>) -> Result<Option<Num>, EvalError> {
        Ok(match self {
            Node::Field(i) => r.values.get(*i).and_then(|v| v.as_num()).map(Num::F),
            Node::Const(n) => Some(*n),
            Node::Null => None,
            Node::Bin(op, int, a, b) => {
                let (Some(x), Some(y)) = (a.eval(r)?, b.eval(r)?) else {
                    return Ok(None);
                };
                Some(match (int, x, y) {
                    (Some(bits), Num::I(x), Num::I(y)) => {
                        let v = match op {
                            Arith::Add => x.wrapping_add(y),
                            Arith::Sub => x.wrapping_sub(y),
                            Arith::Mul => x.wrapping_mul(y),
                            Arith::Div if y == 0 => return Err(EvalError::DivideByZero),
                            Arith::Div => x.wrapping_div(y),
                            Arith::Rem if y == 0 => return Err(EvalError::DivideByZero),
                            Arith::Rem => x.wrapping_rem(y),
                        };
                        Num::I(wrap(v, *bits))
                    }
                    (_, x, y) => {
                        let (x, y) = (x.f(), y.f());
                        Num::F(match op {
                            Arith::Add => x + y,
                            Arith::Sub => x - y,
                            Arith::Mul => x * y,
                            Arith::Div => x / y,
                            Arith::Rem => x % y,
                        })
                    }
                })
            }
            Node::Neg(int, a) => a.eval(r)?.map(|x| match (int, x) {
                (Some(bits), Num::I(i)) => Num::I(wrap(i.wrapping_neg(), *bits)),
                (_, x) => Num::F(-x.f()),
            }),
            Node::ToDouble(a) => a.eval(r)?.map(|x| Num::F(x.f())),
            Node::ToInt {
                bits,
                from_double,
                e,
            } => e.eval(r)?.map(|x| {
                Num::I(match x {
                    Num::I(i) => wrap(i, *bits),
                    Num::F(f) if *from_double && *bits <= 32 => wrap(f as i32 as i64, *bits),
                    Num::F(f) => wrap(f as i64, *bits),
                })
            }),
            Node::ToDecimal {
                precision,
                scale,
                e,
            } => match e.eval(r)? {
                None => None,
                Some(x) => to_decimal(x.f(), *precision, *scale).map(Num::F),
            },
            Node::Case(branches, otherwise) => {
                for (cond, then) in branches {
                    if cond.eval(r)? {
                        return then.eval(r);
                    }
                }
                return otherwise.eval(r);
            }
        })
    }

    fn fields(&self, out: &mut Vec<usize>) {
        match self {
            Node::Field(i) => {
                if !out.contains(i) {
                    out.push(*i);
                }
            }
            Node::Const(_) | Node::Null => {}
            Node::Bin(_, _, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Node::Neg(_, a) | Node::ToDouble(a) => a.fields(out),
            Node::ToInt { e, .. } | Node::ToDecimal { e, .. } => e.fields(out),
            Node::Case(b, o) => {
                for (c, n) in b {
                    c.fields(out);
                    n.fields(out);
                }
                o.fields(out);
            }
        }
    }

    fn fallible(&self) -> bool {
        match self {
            Node::Field(_) | Node::Const(_) | Node::Null => false,
            Node::Bin(op, int, a, b) => {
                (int.is_some() && matches!(op, Arith::Div | Arith::Rem))
                    || a.fallible()
                    || b.fallible()
            }
            Node::Neg(_, a) | Node::ToDouble(a) => a.fallible(),
            Node::ToInt { e, .. } | Node::ToDecimal { e, .. } => e.fallible(),
            Node::Case(b, o) => b.iter().any(|(c, n)| c.fallible() || n.fallible()) || o.fallible(),
        }
    }
}

/// Flink's `CAST(v AS DECIMAL(p, s))` of a double: its shortest decimal form
/// (`BigDecimal.valueOf`) rounded half away from zero to `s` digits, NULL when it needs more
/// than `p` digits. Values with more than 9 decimals or beyond 2^53 units round the scaled
/// double instead (their shortest form is not computed without allocating).
fn to_decimal(v: f64, precision: u8, scale: u8) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    let s = scale as usize;
    let units: f64 = match crate::decimal::shortest_decimal(v) {
        Some((m, k)) if (k as usize) <= s => (m as f64) * POW10_I[s - k as usize] as f64,
        Some((m, k)) => {
            let d = POW10_I[k as usize - s];
            let (q, rem) = (m / d, m % d);
            let half = d / 2;
            let q = if rem.abs() >= half && half > 0 {
                q + rem.signum()
            } else {
                q
            };
            q as f64
        }
        None => (v * POW10_I[s] as f64).round(),
    };
    let int_digits = precision.saturating_sub(scale) as i32;
    if (units / POW10_I[s] as f64).abs() >= 10f64.powi(int_digits) {
        return None;
    }
    Some(units / POW10_I[s] as f64)
}

impl Expr {
    /// Parses and type-checks an expression against the input schema.
    ///
    /// # Errors
    ///
    /// A message naming the column of the problem: an unknown or non-numeric field, a
    /// syntax error, a condition the filter grammar refuses, or an expression beyond
    /// `limits` (naming the `[limits]` setting that raises the bound).
    pub fn parse(src: &str, input: &InputSpec, limits: &ExprLimits) -> Result<Expr, String> {
        if src.len() > MAX_EXPR_BYTES {
            return Err(format!(
                "the expression is {} bytes, longer than {MAX_EXPR_BYTES} \
                 (the limit is eventide_engine::expr::MAX_EXPR_BYTES)",
                src.len()
            ));
        }
        let mut p = Parser::new(src, input, limits)?;
        let (root, ty) = p.expr()?;
        p.finish()?;
        let fallible = root.fallible();
        Ok(Expr {
            root,
            ty: match ty {
                Ty::Null => NumType::Double,
                Ty::Num(t) => t,
            },
            fallible,
            text: src.to_string(),
        })
    }

    /// The value for a record; `Ok(None)` is NULL.
    ///
    /// # Errors
    ///
    /// [`EvalError::DivideByZero`] for an integer division or modulo by zero.
    #[inline]
    pub fn eval(&self, r: &Record<'_>) -> Result<Option<f64>, EvalError> {
        Ok(self.root.eval(r)?.map(Num::f))
    }

    /// The type of the value.
    pub fn ty(&self) -> NumType {
        self.ty
    }

    /// True when [`Expr::eval`] can fail (the expression divides integers).
    pub fn fallible(&self) -> bool {
        self.fallible
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The deepest nesting of `(` and `not` a condition (a filter, a `case` condition or a
/// rule condition, see [`crate::rules::expr`]) may have. Parsing is recursive, so without a
/// bound a hostile spec or rules file (5,000 nested parentheses) would overflow the stack
/// and abort the process instead of being rejected. Real filters nest a handful of levels.
pub const MAX_NESTING: usize = 64;

/// The longest expression, filter or rule condition accepted, in bytes. Chains of
/// `and`/`or` build a tree as deep as the chain is long, and that tree is evaluated and
/// dropped recursively; this bound keeps that depth in the low thousands whatever the input.
pub const MAX_EXPR_BYTES: usize = 8 * 1024;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// True when two values in this order satisfy the comparison.
    #[inline]
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }
}

/// A string or boolean side of a comparison.
#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Field(usize),
    Str(String),
    Bool(bool),
}

/// A string or boolean value, borrowed from a record or a literal.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum AtomValue<'a> {
    Str(&'a str),
    Bool(bool),
}

impl Atom {
    #[inline]
    fn get<'a>(&'a self, r: &'a Record<'_>) -> Option<AtomValue<'a>> {
        match self {
            Atom::Field(i) => match r.values.get(*i) {
                Some(Value::Str(s)) => Some(AtomValue::Str(s.as_ref())),
                Some(Value::Bool(b)) => Some(AtomValue::Bool(*b)),
                _ => None,
            },
            Atom::Str(s) => Some(AtomValue::Str(s)),
            Atom::Bool(b) => Some(AtomValue::Bool(*b)),
        }
    }
}

/// A parsed side of a comparison, before the two sides' types are checked.
enum Operand {
    Num(Node),
    Str(Atom),
    Bool(Atom),
}

impl Operand {
    fn kind(&self) -> &'static str {
        match self {
            Operand::Num(_) => "a number",
            Operand::Str(_) => "a string",
            Operand::Bool(_) => "a boolean",
        }
    }
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    /// Two numeric expressions: as 64-bit integers when both are integers, as doubles
    /// otherwise.
    Num(CmpOp, Node, Node),
    /// Two strings or two booleans (the parser checks that the sides agree).
    Atoms(CmpOp, Atom, Atom),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    fn eval(&self, r: &Record<'_>) -> Result<bool, EvalError> {
        Ok(match self {
            Cond::Num(op, a, b) => {
                let (Some(x), Some(y)) = (a.eval(r)?, b.eval(r)?) else {
                    return Ok(false);
                };
                let ord = match (x, y) {
                    (Num::I(x), Num::I(y)) => x.cmp(&y),
                    (x, y) => match x.f().partial_cmp(&y.f()) {
                        Some(o) => o,
                        None => return Ok(false),
                    },
                };
                op.holds(ord)
            }
            Cond::Atoms(op, a, b) => match (a.get(r), b.get(r)) {
                (Some(x), Some(y)) if std::mem::discriminant(&x) == std::mem::discriminant(&y) => {
                    op.holds(x.cmp(&y))
                }
                _ => false,
            },
            Cond::And(a, b) => a.eval(r)? && b.eval(r)?,
            Cond::Or(a, b) => a.eval(r)? || b.eval(r)?,
            Cond::Not(a) => !a.eval(r)?,
        })
    }

    fn fallible(&self) -> bool {
        match self {
            Cond::Num(_, a, b) => a.fallible() || b.fallible(),
            Cond::Atoms(..) => false,
            Cond::And(a, b) | Cond::Or(a, b) => a.fallible() || b.fallible(),
            Cond::Not(a) => a.fallible(),
        }
    }

    fn fields(&self, out: &mut Vec<usize>) {
        let mut push = |i: usize| {
            if !out.contains(&i) {
                out.push(i);
            }
        };
        match self {
            Cond::Num(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Cond::Atoms(_, a, b) => {
                for x in [a, b] {
                    if let Atom::Field(i) = x {
                        push(*i);
                    }
                }
            }
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Cond::Not(a) => a.fields(out),
        }
    }
}

/// A compiled condition over a record's fields: a filter (`counter == "x" and value * 2 >
/// 10`), the `when` of a `case`, a rule's `where` or `define`.
///
/// ```
/// use eventide_engine::expr::{ExprLimits, Filter};
/// use eventide_engine::record::{Record, Value};
/// use eventide_engine::spec::schema::{FieldType, InputSpec, TimeFormat};
/// let input = InputSpec {
///     fields: vec![("counter".into(), FieldType::String), ("value".into(), FieldType::Number)],
///     time_field: "t".into(),
///     time_format: TimeFormat::EpochMs,
///     partition: None,
/// };
/// let f = Filter::parse(r#"counter == "x" and value * 2 > 10"#, &input, &ExprLimits::default())
///     .unwrap();
/// let r = Record { time: 0, values: smallvec::smallvec![Value::Str("x".into()), Value::Num(6.0)] };
/// assert!(f.matches(&r));
/// let d = Filter::parse("cast(value as int) % 0 == 1", &input, &ExprLimits::default()).unwrap();
/// assert!(d.fallible());
/// assert!(d.eval(&r).is_err()); // integer modulo by zero
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Cond,
    /// True when evaluation can fail (an integer `/` or `%`).
    fallible: bool,
    /// The source text, for error messages.
    text: String,
}

impl Filter {
    /// Parses and type-checks a condition against the input schema.
    ///
    /// # Errors
    ///
    /// A message naming the column of the problem: an unknown field, sides of different
    /// types, a syntax error, or a condition beyond the bounds ([`MAX_EXPR_BYTES`],
    /// [`MAX_NESTING`], and `limits` for each side's expression, naming the `[limits]`
    /// setting that raises it).
    pub fn parse(src: &str, input: &InputSpec, limits: &ExprLimits) -> Result<Filter, String> {
        if src.len() > MAX_EXPR_BYTES {
            return Err(format!(
                "the filter is {} bytes, longer than {MAX_EXPR_BYTES} \
                 (the limit is eventide_engine::filter::MAX_EXPR_BYTES)",
                src.len()
            ));
        }
        let mut p = Parser::new(src, input, limits)?;
        let root = p.cond()?;
        p.finish()?;
        let fallible = root.fallible();
        Ok(Filter {
            root,
            fallible,
            text: src.to_string(),
        })
    }

    /// Evaluates the condition on a record with SQL's rules: a comparison with a NULL side
    /// (a null field, `null`, a `case` with no match) is false, `and` and `or` stop at the
    /// first side that decides them.
    ///
    /// # Errors
    ///
    /// [`EvalError::DivideByZero`] for an integer division or modulo by zero.
    #[inline]
    pub fn eval(&self, r: &Record<'_>) -> Result<bool, EvalError> {
        self.root.eval(r)
    }

    /// True when the record passes: [`Filter::eval`] with a failure as false (records on
    /// which a filter fails are sent to the dead letters when decoded, see
    /// [`crate::codec::Codec::complete`]).
    #[inline]
    pub fn matches(&self, r: &Record<'_>) -> bool {
        matches!(self.root.eval(r), Ok(true))
    }

    /// True when [`Filter::eval`] can fail (a side divides integers).
    pub fn fallible(&self) -> bool {
        self.fallible
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The fields it reads, in order of first appearance.
    pub fn fields(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.root.fields(&mut out);
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tk {
    Num(String),
    Ident(String),
    Str(String),
    Punct(u8),
    Cmp(CmpOp),
}

#[derive(Debug, Clone)]
struct Tok {
    tk: Tk,
    /// Byte offsets in the source.
    at: usize,
    end: usize,
}

impl Tok {
    fn describe(&self, src: &str) -> String {
        format!("{:?}", &src[self.at..self.end])
    }
}

/// The 1-based character column of a byte offset.
fn column(s: &str, byte: usize) -> usize {
    let mut b = byte.min(s.len());
    while !s.is_char_boundary(b) {
        b -= 1;
    }
    s[..b].chars().count() + 1
}

/// The tokens of `s`.
fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tk = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && matches!(b[i], b'e' | b'E') {
                    i += 1;
                    if i < b.len() && matches!(b[i], b'+' | b'-') {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                Tk::Num(s[start..i].to_string())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Tk::Ident(s[start..i].to_string())
            }
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += 1;
                }
                if i >= b.len() {
                    return Err(format!(
                        "unterminated string starting at column {}",
                        column(s, start)
                    ));
                }
                i += 1;
                Tk::Str(s[start + 1..i - 1].to_string())
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = b.get(i + 1) == Some(&b'=');
                let op = match (c, two) {
                    (b'=', true) => CmpOp::Eq,
                    (b'!', true) => CmpOp::Ne,
                    (b'<', true) => CmpOp::Le,
                    (b'>', true) => CmpOp::Ge,
                    (b'<', false) => CmpOp::Lt,
                    (b'>', false) => CmpOp::Gt,
                    _ => {
                        return Err(format!(
                            "unexpected {:?} at column {}; comparisons are ==, !=, <, <=, >, >=",
                            c as char,
                            column(s, i)
                        ))
                    }
                };
                i += if two { 2 } else { 1 };
                Tk::Cmp(op)
            }
            b'(' | b')' | b'+' | b'-' | b'*' | b'/' | b'%' | b',' => {
                i += 1;
                Tk::Punct(c)
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} at column {}", column(s, i)));
            }
        };
        out.push(Tok {
            tk,
            at: start,
            end: i,
        });
    }
    Ok(out)
}

/// For each token, the index of the `)` that closes it when it is a closed `(`: how a
/// condition tells `(a + b) > c` from `(a > b)` without backtracking.
fn closers(toks: &[Tok]) -> Vec<Option<usize>> {
    let mut close = vec![None; toks.len()];
    let mut open = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t.tk {
            Tk::Punct(b'(') => open.push(i),
            Tk::Punct(b')') => {
                if let Some(o) = open.pop() {
                    close[o] = Some(i);
                }
            }
            _ => {}
        }
    }
    close
}

/// A static type during parsing: a number type, or the type of `null`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Null,
    Num(NumType),
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    /// For each `(`, the index of its `)` ([`closers`]).
    close: Vec<Option<usize>>,
    pos: usize,
    /// Nesting of the expression (parentheses, unary minus, `case`, `cast`).
    depth: usize,
    /// Nesting of the conditions (`(` and `not`), bounded by [`MAX_NESTING`].
    cond_depth: usize,
    nodes: usize,
    input: &'a InputSpec,
    limits: ExprLimits,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, input: &'a InputSpec, limits: &ExprLimits) -> Result<Self, String> {
        let toks = lex(src)?;
        let close = closers(&toks);
        Ok(Parser {
            src,
            toks,
            close,
            pos: 0,
            depth: 0,
            cond_depth: 0,
            nodes: 0,
            input,
            limits: *limits,
        })
    }

    /// An error when tokens are left after a complete expression or condition.
    fn finish(&self) -> Result<(), String> {
        match self.toks.get(self.pos) {
            Some(t) => Err(format!(
                "unexpected {} at column {} after the expression",
                t.describe(self.src),
                column(self.src, t.at)
            )),
            None => Ok(()),
        }
    }

    /// Enters one level of `(` or `not` in a condition, refusing to go deeper than
    /// [`MAX_NESTING`].
    fn enter_cond(&mut self) -> Result<(), String> {
        self.cond_depth += 1;
        if self.cond_depth > MAX_NESTING {
            return Err(format!(
                "nesting deeper than {MAX_NESTING} levels of '(' or `not` at column {} \
                 (the limit is eventide_engine::filter::MAX_NESTING)",
                self.col()
            ));
        }
        Ok(())
    }

    /// `cond := and ("or" and)*`
    fn cond(&mut self) -> Result<Cond, String> {
        let mut l = self.cond_and()?;
        while self.is_kw("or") {
            self.pos += 1;
            let r = self.cond_and()?;
            l = Cond::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    /// `and := unary ("and" unary)*`
    fn cond_and(&mut self) -> Result<Cond, String> {
        let mut l = self.cond_unary()?;
        while self.is_kw("and") {
            self.pos += 1;
            let r = self.cond_unary()?;
            l = Cond::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    /// `unary := "not" unary | "(" cond ")" | operand cmp operand`. A `(` whose `)` is
    /// followed by a comparison or an arithmetic operator opens an operand (`(a + b) > c`).
    fn cond_unary(&mut self) -> Result<Cond, String> {
        if self.is_kw("not") {
            self.enter_cond()?;
            self.pos += 1;
            let inner = self.cond_unary()?;
            self.cond_depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        if self.is_punct(b'(') && !self.paren_is_operand() {
            self.enter_cond()?;
            self.pos += 1;
            let c = self.cond()?;
            self.expect_punct(b')')?;
            self.cond_depth -= 1;
            return Ok(c);
        }
        self.comparison()
    }

    fn paren_is_operand(&self) -> bool {
        let Some(Some(close)) = self.close.get(self.pos) else {
            return false;
        };
        matches!(
            self.toks.get(close + 1),
            Some(Tok {
                tk: Tk::Cmp(_) | Tk::Punct(b'+' | b'-' | b'*' | b'/' | b'%'),
                ..
            })
        )
    }

    fn comparison(&mut self) -> Result<Cond, String> {
        let at = self.col();
        if matches!(
            self.toks.get(self.pos),
            None | Some(Tok {
                tk: Tk::Punct(b')') | Tk::Cmp(_),
                ..
            })
        ) || self.is_kw("and")
            || self.is_kw("or")
        {
            return Err(format!(
                "expected a comparison such as `field == \"x\"` or `a * 2 > b`, `not` or '(' \
                 at column {at}, found {}",
                match self.toks.get(self.pos) {
                    Some(t) => t.describe(self.src),
                    None => "the end of the filter".into(),
                }
            ));
        }
        let l = self.operand()?;
        let Some(Tok {
            tk: Tk::Cmp(op), ..
        }) = self.toks.get(self.pos)
        else {
            return Err(format!(
                "expected a comparison (==, !=, <, <=, >, >=) at column {}, found {}",
                self.col(),
                self.found()
            ));
        };
        let op = *op;
        self.pos += 1;
        let r = self.operand()?;
        Ok(match (l, r) {
            (Operand::Num(a), Operand::Num(b)) => Cond::Num(op, a, b),
            (Operand::Str(a), Operand::Str(b)) | (Operand::Bool(a), Operand::Bool(b)) => {
                Cond::Atoms(op, a, b)
            }
            (l, r) => {
                return Err(format!(
                    "the comparison at column {at}: {} cannot be compared with {}",
                    l.kind(),
                    r.kind()
                ))
            }
        })
    }

    /// One side of a comparison: a string or boolean (a field or a literal), or a numeric
    /// expression (with its own budget of `max_expression_nodes`).
    fn operand(&mut self) -> Result<Operand, String> {
        let atom = match self.toks.get(self.pos).map(|t| &t.tk) {
            Some(Tk::Str(s)) => Some(Operand::Str(Atom::Str(s.clone()))),
            Some(Tk::Ident(w)) if w.eq_ignore_ascii_case("true") => {
                Some(Operand::Bool(Atom::Bool(true)))
            }
            Some(Tk::Ident(w)) if w.eq_ignore_ascii_case("false") => {
                Some(Operand::Bool(Atom::Bool(false)))
            }
            Some(Tk::Ident(w)) => match self.input.field_index(w) {
                Some(i) => match self.input.fields[i].1 {
                    FieldType::String => Some(Operand::Str(Atom::Field(i))),
                    FieldType::Bool => Some(Operand::Bool(Atom::Field(i))),
                    FieldType::Number => None,
                },
                None => None,
            },
            _ => None,
        };
        if let Some(a) = atom {
            self.pos += 1;
            return Ok(a);
        }
        let saved = self.nodes;
        self.nodes = 0;
        let (n, _) = self.expr()?;
        self.nodes = saved;
        Ok(Operand::Num(n))
    }

    /// The column of the current token, or of the end of the text.
    fn col(&self) -> usize {
        column(
            self.src,
            self.toks.get(self.pos).map_or(self.src.len(), |t| t.at),
        )
    }

    fn found(&self) -> String {
        match self.toks.get(self.pos) {
            Some(t) => t.describe(self.src),
            None => "the end of the expression".into(),
        }
    }

    fn node(&mut self) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(format!(
                "more than {} operators and operands at column {} (raise [limits] \
                 max_expression_nodes)",
                self.limits.max_nodes,
                self.col()
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(format!(
                "nesting deeper than {} levels at column {} (raise [limits] \
                 max_expression_depth)",
                self.limits.max_depth,
                self.col()
            ));
        }
        Ok(())
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok { tk: Tk::Ident(s), .. }) if s.eq_ignore_ascii_case(kw))
    }

    fn is_punct(&self, p: u8) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok { tk: Tk::Punct(c), .. }) if *c == p)
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if !self.is_kw(kw) {
            return Err(format!(
                "expected `{kw}` at column {}, found {}",
                self.col(),
                self.found()
            ));
        }
        self.pos += 1;
        Ok(())
    }

    fn expect_punct(&mut self, p: u8) -> Result<(), String> {
        if !self.is_punct(p) {
            return Err(format!(
                "expected '{}' at column {}, found {}",
                p as char,
                self.col(),
                self.found()
            ));
        }
        self.pos += 1;
        Ok(())
    }

    fn expr(&mut self) -> Result<(Node, Ty), String> {
        let mut l = self.term()?;
        loop {
            let op = if self.is_punct(b'+') {
                Arith::Add
            } else if self.is_punct(b'-') {
                Arith::Sub
            } else {
                return Ok(l);
            };
            self.pos += 1;
            self.node()?;
            let r = self.term()?;
            l = binary(op, l, r);
        }
    }

    fn term(&mut self) -> Result<(Node, Ty), String> {
        let mut l = self.unary()?;
        loop {
            let op = if self.is_punct(b'*') {
                Arith::Mul
            } else if self.is_punct(b'/') {
                Arith::Div
            } else if self.is_punct(b'%') {
                Arith::Rem
            } else {
                return Ok(l);
            };
            self.pos += 1;
            self.node()?;
            let r = self.unary()?;
            l = binary(op, l, r);
        }
    }

    fn unary(&mut self) -> Result<(Node, Ty), String> {
        if self.is_punct(b'-') {
            self.enter()?;
            self.node()?;
            self.pos += 1;
            let (e, ty) = self.unary()?;
            self.depth -= 1;
            return Ok(match (e, ty) {
                (Node::Const(Num::F(f)), ty) => (Node::Const(Num::F(-f)), ty),
                (Node::Const(Num::I(i)), Ty::Num(NumType::Int(bits))) => {
                    (Node::Const(Num::I(wrap(i.wrapping_neg(), bits))), ty)
                }
                (e, Ty::Num(NumType::Int(bits))) => (Node::Neg(Some(bits), Box::new(e)), ty),
                (e, Ty::Null) => (Node::Neg(None, Box::new(e)), Ty::Null),
                (e, _) => (Node::Neg(None, Box::new(e)), Ty::Num(NumType::Double)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<(Node, Ty), String> {
        self.node()?;
        let Some(tok) = self.toks.get(self.pos).cloned() else {
            return Err(format!(
                "expected a number, a field, `case`, `cast` or '(' at column {}, found the end \
                 of the expression",
                self.col()
            ));
        };
        match &tok.tk {
            Tk::Num(n) => {
                self.pos += 1;
                let whole = n.bytes().all(|c| c.is_ascii_digit());
                if whole {
                    if let Ok(i) = n.parse::<i64>() {
                        let bits = if i32::try_from(i).is_ok() { 32 } else { 64 };
                        return Ok((Node::Const(Num::I(i)), Ty::Num(NumType::Int(bits))));
                    }
                }
                let f: f64 = n.parse().map_err(|_| {
                    format!("bad number {n:?} at column {}", column(self.src, tok.at))
                })?;
                Ok((Node::Const(Num::F(f)), Ty::Num(NumType::Double)))
            }
            Tk::Punct(b'(') => {
                self.enter()?;
                self.pos += 1;
                let e = self.expr()?;
                self.expect_punct(b')')?;
                self.depth -= 1;
                Ok(e)
            }
            Tk::Ident(w) if w.eq_ignore_ascii_case("null") => {
                self.pos += 1;
                Ok((Node::Null, Ty::Null))
            }
            Tk::Ident(w) if w.eq_ignore_ascii_case("cast") => {
                self.enter()?;
                self.pos += 1;
                self.expect_punct(b'(')?;
                let (e, from) = self.expr()?;
                self.expect_kw("as")?;
                let to = self.type_name()?;
                self.expect_punct(b')')?;
                self.depth -= 1;
                Ok(cast(e, from, to))
            }
            Tk::Ident(w) if w.eq_ignore_ascii_case("case") => {
                self.enter()?;
                self.pos += 1;
                let r = self.case()?;
                self.depth -= 1;
                Ok(r)
            }
            Tk::Ident(name) => {
                self.pos += 1;
                let i = self.input.field_index(name).ok_or_else(|| {
                    format!(
                        "unknown field {name:?} at column {}; declare it in input.fields",
                        column(self.src, tok.at)
                    )
                })?;
                if self.input.fields[i].1 != FieldType::Number {
                    return Err(format!(
                        "field {name:?} at column {} is not a number",
                        column(self.src, tok.at)
                    ));
                }
                Ok((Node::Field(i), Ty::Num(NumType::Double)))
            }
            _ => Err(format!(
                "expected a number, a field, `case`, `cast` or '(' at column {}, found {}",
                self.col(),
                tok.describe(self.src)
            )),
        }
    }

    fn type_name(&mut self) -> Result<NumType, String> {
        let Some(Tok {
            tk: Tk::Ident(name),
            ..
        }) = self.toks.get(self.pos).cloned()
        else {
            return Err(format!(
                "expected a type (double, tinyint, smallint, int, bigint, decimal(p, s)) at \
                 column {}, found {}",
                self.col(),
                self.found()
            ));
        };
        let col = self.col();
        self.pos += 1;
        if let Some(t) = NumType::parse_int(&name) {
            return Ok(t);
        }
        match name.to_ascii_lowercase().as_str() {
            "double" => Ok(NumType::Double),
            "decimal" => {
                self.expect_punct(b'(')?;
                let p = self.small_number()?;
                self.expect_punct(b',')?;
                let s = self.small_number()?;
                self.expect_punct(b')')?;
                if p == 0 || p > 38 || s > p {
                    return Err(format!(
                        "decimal({p}, {s}) at column {col}: the precision is 1 to 38 and the \
                         scale at most the precision"
                    ));
                }
                if s > 9 {
                    return Err(format!(
                        "decimal({p}, {s}) at column {col}: the engine keeps decimals exact to 9 \
                         digits after the point"
                    ));
                }
                Ok(NumType::Decimal(p, s))
            }
            _ => Err(format!(
                "unknown type {name:?} at column {col}; the types are double, tinyint, \
                 smallint, int, bigint and decimal(p, s)"
            )),
        }
    }

    fn small_number(&mut self) -> Result<u8, String> {
        match self.toks.get(self.pos) {
            Some(Tok { tk: Tk::Num(n), .. }) => {
                let v = n.parse::<u8>().map_err(|_| {
                    format!("expected a small whole number at column {}", self.col())
                })?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(format!(
                "expected a whole number at column {}, found {}",
                self.col(),
                self.found()
            )),
        }
    }

    /// After `case`: the branches, the `else` and `end`.
    fn case(&mut self) -> Result<(Node, Ty), String> {
        let mut branches: Vec<(Cond, Node, Ty)> = Vec::new();
        while self.is_kw("when") {
            self.pos += 1;
            let cond = self.cond()?;
            self.expect_kw("then")?;
            self.node()?;
            let (e, ty) = self.expr()?;
            branches.push((cond, e, ty));
        }
        if branches.is_empty() {
            return Err(format!(
                "expected `when` at column {}, found {}",
                self.col(),
                self.found()
            ));
        }
        let otherwise = if self.is_kw("else") {
            self.pos += 1;
            self.node()?;
            Some(self.expr()?)
        } else {
            None
        };
        self.expect_kw("end")?;
        // The result type: the widest of the branches (any double makes it double).
        let tys = branches
            .iter()
            .map(|(_, _, t)| *t)
            .chain(otherwise.as_ref().map(|(_, t)| *t));
        let ty = tys.fold(Ty::Null, join);
        let conv = |e: Node, t: Ty| match (ty, t) {
            (Ty::Num(NumType::Double), Ty::Num(NumType::Int(_))) => Node::ToDouble(Box::new(e)),
            _ => e,
        };
        let otherwise = match otherwise {
            Some((e, t)) => conv(e, t),
            None => Node::Null,
        };
        let branches = branches
            .into_iter()
            .map(|(c, e, t)| (c, conv(e, t)))
            .collect();
        Ok((Node::Case(branches, Box::new(otherwise)), ty))
    }
}

/// The common type of two CASE branches.
fn join(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Null, t) | (t, Ty::Null) => t,
        (Ty::Num(NumType::Int(x)), Ty::Num(NumType::Int(y))) => Ty::Num(NumType::Int(x.max(y))),
        (Ty::Num(x), Ty::Num(y)) if x == y => Ty::Num(x),
        _ => Ty::Num(NumType::Double),
    }
}

/// A binary operation with SQL's promotion: two integers stay integers at the wider width,
/// anything else is a double.
fn binary(op: Arith, (a, ta): (Node, Ty), (b, tb): (Node, Ty)) -> (Node, Ty) {
    match (ta, tb) {
        (Ty::Num(NumType::Int(x)), Ty::Num(NumType::Int(y))) => {
            let bits = x.max(y);
            (
                Node::Bin(op, Some(bits), Box::new(a), Box::new(b)),
                Ty::Num(NumType::Int(bits)),
            )
        }
        (Ty::Null, Ty::Null) => (Node::Null, Ty::Null),
        (Ty::Null, t) | (t, Ty::Null) => (
            Node::Null,
            match t {
                Ty::Num(NumType::Decimal(..)) => Ty::Num(NumType::Double),
                t => t,
            },
        ),
        _ => {
            let f = |e: Node, t: Ty| match t {
                Ty::Num(NumType::Int(_)) => Node::ToDouble(Box::new(e)),
                _ => e,
            };
            (
                Node::Bin(op, None, Box::new(f(a, ta)), Box::new(f(b, tb))),
                Ty::Num(NumType::Double),
            )
        }
    }
}

fn cast(e: Node, from: Ty, to: NumType) -> (Node, Ty) {
    let node = match (from, to) {
        (Ty::Null, _) => Node::Null,
        (_, NumType::Double) => match from {
            Ty::Num(NumType::Int(_)) => Node::ToDouble(Box::new(e)),
            _ => e,
        },
        (_, NumType::Int(bits)) => Node::ToInt {
            bits,
            from_double: from == Ty::Num(NumType::Double),
            e: Box::new(e),
        },
        (_, NumType::Decimal(precision, scale)) => Node::ToDecimal {
            precision,
            scale,
            e: Box::new(e),
        },
    };
    (node, Ty::Num(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use crate::spec::schema::TimeFormat;

    fn input() -> InputSpec {
        InputSpec {
            fields: vec![
                ("a".into(), FieldType::Number),
                ("b".into(), FieldType::Number),
                ("s".into(), FieldType::String),
            ],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        }
    }

    fn rec(a: Option<f64>, b: Option<f64>) -> Record<'static> {
        let v = |x: Option<f64>| x.map_or(Value::Null, Value::Num);
        Record {
            time: 0,
            values: smallvec::smallvec![v(a), v(b), Value::Str("x".into())],
        }
    }

    fn eval(src: &str, a: Option<f64>, b: Option<f64>) -> Result<Option<f64>, EvalError> {
        let e = Expr::parse(src, &input(), &ExprLimits::default())
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        e.eval(&rec(a, b))
    }

    #[test]
    fn integer_arithmetic_is_java_arithmetic() {
        let i = "cast(a as int)";
        let j = "cast(b as int)";
        assert_eq!(
            eval(&format!("{i} / {j}"), Some(7.0), Some(2.0)),
            Ok(Some(3.0))
        );
        assert_eq!(
            eval(&format!("{i} / {j}"), Some(-7.0), Some(2.0)),
            Ok(Some(-3.0))
        );
        assert_eq!(
            eval(&format!("{i} % {j}"), Some(-7.0), Some(2.0)),
            Ok(Some(-1.0))
        );
        assert_eq!(
            eval(&format!("{i} % {j}"), Some(7.0), Some(-2.0)),
            Ok(Some(1.0))
        );
        // INT overflow wraps at 32 bits, BIGINT does not.
        assert_eq!(
            eval(&format!("{i} * {j}"), Some(65536.0), Some(65536.0)),
            Ok(Some(0.0))
        );
        assert_eq!(
            eval(
                "cast(a as bigint) * cast(b as int)",
                Some(65536.0),
                Some(65536.0)
            ),
            Ok(Some(4294967296.0))
        );
        assert_eq!(
            eval(
                "cast(a as tinyint) + cast(b as tinyint)",
                Some(127.0),
                Some(1.0)
            ),
            Ok(Some(-128.0))
        );
        assert_eq!(
            eval(&format!("{i} / {j}"), Some(1.0), Some(0.0)),
            Err(EvalError::DivideByZero)
        );
        assert_eq!(
            eval(&format!("{i} % {j}"), Some(1.0), Some(0.0)),
            Err(EvalError::DivideByZero)
        );
        assert_eq!(eval("7 / 2", None, None), Ok(Some(3.0)));
        assert_eq!(eval("7 / 2.0", None, None), Ok(Some(3.5)));
    }

    #[test]
    fn doubles_are_ieee() {
        assert_eq!(eval("a / b", Some(1.0), Some(0.0)), Ok(Some(f64::INFINITY)));
        assert_eq!(
            eval("-a / b", Some(1.0), Some(0.0)),
            Ok(Some(f64::NEG_INFINITY))
        );
        assert!(eval("a / b", Some(0.0), Some(0.0)).is_ok_and(|v| v.is_some_and(f64::is_nan)));
        assert_eq!(eval("a * (b + 1) - 2", Some(2.5), Some(3.0)), Ok(Some(8.0)));
        assert_eq!(eval("a % b", Some(-7.5), Some(2.0)), Ok(Some(-1.5)));
        assert_eq!(eval("-(-a)", Some(2.0), None), Ok(Some(2.0)));
    }

    #[test]
    fn casts_follow_flink() {
        assert_eq!(eval("cast(a as bigint)", Some(-2.7), None), Ok(Some(-2.0)));
        assert_eq!(
            eval("cast(a as int)", Some(1e12), None),
            Ok(Some(i32::MAX as f64))
        );
        assert_eq!(
            eval("cast(a as bigint)", Some(f64::NAN), None),
            Ok(Some(0.0))
        );
        // double -> tinyint goes through int: saturate, then wrap.
        assert_eq!(
            eval("cast(a as tinyint)", Some(300.7), None),
            Ok(Some(44.0))
        );
        assert_eq!(
            eval("cast(cast(a as bigint) as int)", Some(4294967297.0), None),
            Ok(Some(1.0))
        );
        assert_eq!(
            eval("cast(a as decimal(10, 2))", Some(1.005), None),
            Ok(Some(1.01))
        );
        assert_eq!(
            eval("cast(a as decimal(10, 2))", Some(-1.005), None),
            Ok(Some(-1.01))
        );
        assert_eq!(
            eval("cast(a as decimal(10, 2))", Some(2.5), None),
            Ok(Some(2.5))
        );
        assert_eq!(
            eval("cast(a as decimal(10, 0))", Some(2.5), None),
            Ok(Some(3.0))
        );
        assert_eq!(eval("cast(a as decimal(3, 2))", Some(12.5), None), Ok(None));
        assert_eq!(
            eval("cast(a as double) / 2", Some(3.0), None),
            Ok(Some(1.5))
        );
    }

    #[test]
    fn nulls_propagate_and_case_picks_the_first_match() {
        assert_eq!(eval("a + b", Some(1.0), None), Ok(None));
        assert_eq!(eval("a + null", Some(1.0), None), Ok(None));
        assert_eq!(eval("-b", None, None), Ok(None));
        let c = "case when a > 10 then a * 2 when a > 5 then 1 else b end";
        assert_eq!(eval(c, Some(11.0), Some(0.5)), Ok(Some(22.0)));
        assert_eq!(eval(c, Some(6.0), Some(0.5)), Ok(Some(1.0)));
        assert_eq!(eval(c, Some(1.0), Some(0.5)), Ok(Some(0.5)));
        assert_eq!(eval(c, None, None), Ok(None));
        assert_eq!(
            eval("case when s == \"x\" then 1 end", None, None),
            Ok(Some(1.0))
        );
        assert_eq!(
            eval("case when s == \"y\" then 1 end", None, None),
            Ok(None)
        );
        // A CASE of a double and an int branch is a double.
        let e = Expr::parse(
            "case when a > 1 then 1 else a end",
            &input(),
            &ExprLimits::default(),
        )
        .unwrap();
        assert_eq!(e.ty(), NumType::Double);
        let i = Expr::parse(
            "case when a > 1 then 1 else 2 end",
            &input(),
            &ExprLimits::default(),
        )
        .unwrap();
        assert_eq!(i.ty(), NumType::Int(32));
        assert!(!i.fallible());
        let d = Expr::parse("7 / cast(a as int)", &input(), &ExprLimits::default()).unwrap();
        assert!(d.fallible());
    }

    #[test]
    fn errors_name_the_column() {
        let limits = ExprLimits::default();
        for (src, want) in [
            ("a +", "column 4"),
            ("a + zz", "unknown field \"zz\" at column 5"),
            ("s * 2", "not a number"),
            ("(a + 1", "expected ')' at column 7"),
            ("cast(a as float)", "unknown type"),
            ("case a end", "expected `when`"),
            ("case when a > 1 then 1", "expected `end`"),
            ("case when a >> 1 then 1 end", "at column 14"),
            ("case when s * 2 > 1 then 1 end", "at column 13"),
            ("a b", "unexpected \"b\" at column 3"),
            ("cast(a as decimal(10, 12))", "scale"),
        ] {
            let e = Expr::parse(src, &input(), &limits).unwrap_err();
            assert!(e.contains(want), "{src}: {e}");
        }
    }

    /// Deep or long expressions are errors naming the setting, not stack overflows.
    #[test]
    fn hostile_expressions_are_bounded() {
        let limits = ExprLimits::default();
        let deep = format!("{}a{}", "(".repeat(3000), ")".repeat(3000));
        let e = Expr::parse(&deep, &input(), &limits).unwrap_err();
        assert!(e.contains("max_expression_depth"), "{e}");
        let negs = format!("{}a", "-".repeat(5000));
        let e = Expr::parse(&negs, &input(), &limits).unwrap_err();
        assert!(e.contains("max_expression_depth"), "{e}");
        let long = vec!["a"; 1000].join(" + ");
        let e = Expr::parse(&long, &input(), &limits).unwrap_err();
        assert!(e.contains("max_expression_nodes"), "{e}");
        let huge = vec!["a"; 5000].join("+");
        let e = Expr::parse(&huge, &input(), &limits).unwrap_err();
        assert!(e.contains("MAX_EXPR_BYTES"), "{e}");
        let raised = ExprLimits {
            max_nodes: HARD_MAX_NODES,
            max_depth: 32,
        };
        let within = vec!["a"; 500].join(" + ");
        let sum = Expr::parse(&within, &input(), &raised).unwrap();
        assert_eq!(sum.eval(&rec(Some(1.0), None)), Ok(Some(500.0)));
    }
}
