//! Record filters such as `counter == "x" and value > 10`.
//!
//! A deliberately small grammar, compiled once against the input schema so that evaluation
//! on the hot path is a few comparisons with no allocation:
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | field op literal
//! op      := == | != | < | <= | > | >=
//! literal := "string" | number | true | false
//! ```
//!
//! ```
//! use eventide_engine::spec::PipelineSpec;
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { counter = "string", value = "number" }
//!     [[aggregation]]
//!     name = "a"
//!     filter = 'counter == "x" and not (value < 0)'
//!     window = { type = "global" }
//!     aggregates = [{ name = "n", fn = "count" }]
//! "#).unwrap();
//! assert!(spec.aggregations[0].filter.is_some());
//! ```

use std::cmp::Ordering;

/// The deepest nesting of `(` and `not` a filter (or a rule condition, see
/// [`crate::rules::expr`]) may have. Parsing is recursive, so without a bound a hostile
/// spec or rules file (5,000 nested parentheses) would overflow the stack and abort the
/// process instead of being rejected. Real filters nest a handful of levels.
pub const MAX_NESTING: usize = 64;

/// The longest filter or rule condition accepted, in bytes. Chains of `and`/`or` build a
/// tree as deep as the chain is long, and that tree is evaluated and dropped recursively;
/// this bound keeps that depth in the low thousands whatever the input.
pub const MAX_EXPR_BYTES: usize = 8 * 1024;

use crate::record::{Record, Value};
use crate::spec::schema::{FieldType, InputSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// A compiled filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cmp { field: usize, op: Op, lit: Lit },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
}

/// The tokens and, for each, its 0-based byte offset in the source.
fn lex(s: &str) -> Result<(Vec<Tok>, Vec<usize>), String> {
    let mut out = Vec::new();
    let mut at = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let before = out.len();
        let start_i = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1
            }
            b'"' | b'\'' => {
                let q = c;
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != q {
                    j += 1;
                }
                if j >= b.len() {
                    return Err(format!("unterminated string starting at column {}", i + 1));
                }
                out.push(Tok::Str(s[start..j].to_string()));
                i = j + 1;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = b.get(i + 1) == Some(&b'=');
                let op = match (c, two) {
                    (b'=', true) => Op::Eq,
                    (b'!', true) => Op::Ne,
                    (b'<', true) => Op::Le,
                    (b'>', true) => Op::Ge,
                    (b'<', false) => Op::Lt,
                    (b'>', false) => Op::Gt,
                    _ => {
                        return Err(format!(
                            "unexpected {:?} at column {}; comparisons are ==, !=, <, <=, >, >=",
                            c as char,
                            i + 1
                        ))
                    }
                };
                out.push(Tok::Op(op));
                i += if two { 2 } else { 1 };
            }
            b'0'..=b'9' | b'-' | b'.' => {
                let start = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b'e' | b'E' | b'-' | b'+'))
                {
                    i += 1;
                }
                let n: f64 = s[start..i]
                    .parse()
                    .map_err(|_| format!("bad number {:?}", &s[start..i]))?;
                out.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Ident(s[start..i].to_string()));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} at column {}", column(s, i)));
            }
        }
        if out.len() > before {
            at.push(start_i);
        }
    }
    Ok((out, at))
}

/// The 1-based character column of a byte offset.
fn column(s: &str, byte: usize) -> usize {
    let mut b = byte.min(s.len());
    while !s.is_char_boundary(b) {
        b -= 1;
    }
    s[..b].chars().count() + 1
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    at: Vec<usize>,
    pos: usize,
    depth: usize,
    input: &'a InputSpec,
}

impl Parser<'_> {
    /// The column of the current token, or of the end of the text.
    fn col(&self) -> usize {
        column(
            self.src,
            self.at.get(self.pos).copied().unwrap_or(self.src.len()),
        )
    }

    /// Enters one level of `(` or `not`, refusing to go deeper than [`MAX_NESTING`].
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "nesting deeper than {MAX_NESTING} levels of '(' or `not` at column {} \
                 (the limit is eventide_engine::filter::MAX_NESTING)",
                self.col()
            ));
        }
        Ok(())
    }

    fn peek_ident(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(s)) if s == kw)
    }

    fn expr(&mut self) -> Result<Filter, String> {
        let mut l = self.and()?;
        while self.peek_ident("or") {
            self.pos += 1;
            let r = self.and()?;
            l = Filter::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut l = self.unary()?;
        while self.peek_ident("and") {
            self.pos += 1;
            let r = self.unary()?;
            l = Filter::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_ident("not") {
            self.enter()?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::LParen) => {
                self.enter()?;
                self.pos += 1;
                let e = self.expr()?;
                if self.toks.get(self.pos) != Some(&Tok::RParen) {
                    return Err(format!("missing ')' at column {}", self.col()));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                let field = self
                    .input
                    .field_index(&name)
                    .ok_or_else(|| format!("unknown field {name:?}; declare it in input.fields"))?;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Op(op)) => *op,
                    _ => return Err(format!("expected a comparison after {name:?}")),
                };
                self.pos += 1;
                let lit = match self.toks.get(self.pos).cloned() {
                    Some(Tok::Str(s)) => Lit::Str(s),
                    Some(Tok::Num(n)) => Lit::Num(n),
                    Some(Tok::Ident(s)) if s == "true" => Lit::Bool(true),
                    Some(Tok::Ident(s)) if s == "false" => Lit::Bool(false),
                    _ => {
                        return Err(format!(
                            "expected a literal after the comparison on {name:?}"
                        ))
                    }
                };
                self.pos += 1;
                let ty = self.input.fields[field].1;
                let ok = matches!(
                    (ty, &lit),
                    (FieldType::String, Lit::Str(_))
                        | (FieldType::Number, Lit::Num(_))
                        | (FieldType::Bool, Lit::Bool(_))
                );
                if !ok {
                    return Err(format!(
                        "field {name:?} is a {ty:?} and cannot be compared with {lit:?}"
                    ));
                }
                Ok(Filter::Cmp { field, op, lit })
            }
            None => Err(format!(
                "expected a comparison such as `field == \"x\"`, `not` or '(' at column {}, \
                 found the end of the filter",
                self.col()
            )),
            Some(other) => Err(format!(
                "expected a comparison such as `field == \"x\"`, `not` or '(' at column {}, \
                 found {other:?}",
                self.col()
            )),
        }
    }
}

impl Filter {
    /// Parses and type-checks an expression against the input schema.
    pub fn parse(src: &str, input: &InputSpec) -> Result<Filter, String> {
        if src.len() > MAX_EXPR_BYTES {
            return Err(format!(
                "the filter is {} bytes, longer than {MAX_EXPR_BYTES} \
                 (the limit is eventide_engine::filter::MAX_EXPR_BYTES)",
                src.len()
            ));
        }
        let (toks, at) = lex(src)?;
        let mut p = Parser {
            src,
            toks,
            at,
            pos: 0,
            depth: 0,
            input,
        };
        let f = p.expr()?;
        if p.pos != p.toks.len() {
            return Err(format!(
                "unexpected {:?} at column {} after the expression",
                p.toks[p.pos],
                p.col()
            ));
        }
        Ok(f)
    }

    /// Evaluates the filter on a record. A null field makes a comparison false.
    #[inline]
    pub fn matches(&self, r: &Record<'_>) -> bool {
        match self {
            Filter::Cmp { field, op, lit } => {
                let ord = match (&r.values[*field], lit) {
                    (Value::Str(a), Lit::Str(b)) => a.as_ref().cmp(b.as_str()),
                    (Value::Num(a), Lit::Num(b)) => match a.partial_cmp(b) {
                        Some(o) => o,
                        None => return false,
                    },
                    (Value::Bool(a), Lit::Bool(b)) => a.cmp(b),
                    _ => return false,
                };
                match op {
                    Op::Eq => ord == Ordering::Equal,
                    Op::Ne => ord != Ordering::Equal,
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                    Op::Gt => ord == Ordering::Greater,
                    Op::Ge => ord != Ordering::Less,
                }
            }
            Filter::And(a, b) => a.matches(r) && b.matches(r),
            Filter::Or(a, b) => a.matches(r) || b.matches(r),
            Filter::Not(a) => !a.matches(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TimeFormat;

    fn input() -> InputSpec {
        InputSpec {
            fields: vec![
                ("counter".into(), FieldType::String),
                ("value".into(), FieldType::Number),
            ],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        }
    }

    fn rec(c: &str, v: f64) -> Record<'static> {
        Record {
            time: 0,
            values: smallvec::smallvec![Value::Str(c.to_string().into()), Value::Num(v)],
        }
    }

    #[test]
    fn evaluates_boolean_structure() {
        let f = Filter::parse(
            r#"counter == "x" and (value >= 10 or not value > -1)"#,
            &input(),
        )
        .unwrap();
        assert!(f.matches(&rec("x", 10.0)));
        assert!(f.matches(&rec("x", -5.0)));
        assert!(!f.matches(&rec("x", 5.0)));
        assert!(!f.matches(&rec("y", 10.0)));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(Filter::parse("nope == 1", &input())
            .unwrap_err()
            .contains("unknown field"));
        assert!(Filter::parse("counter == 1", &input())
            .unwrap_err()
            .contains("cannot be compared"));
        assert!(Filter::parse("counter = 'x'", &input()).is_err());
        assert!(Filter::parse("(counter == 'x'", &input())
            .unwrap_err()
            .contains("')'"));
    }

    /// 4,000 nested parentheses (or 2,000 `not`s), within [`MAX_EXPR_BYTES`], are an error
    /// naming the column and the bound, not a stack overflow.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}value > 1{}", "(".repeat(4000), ")".repeat(4000));
        let e = Filter::parse(&deep, &input()).unwrap_err();
        assert!(e.contains("MAX_NESTING"), "{e}");
        assert!(e.contains(&format!("column {}", MAX_NESTING + 1)), "{e}");
        let nots = format!("{}value > 1", "not ".repeat(2000));
        let e = Filter::parse(&nots, &input()).unwrap_err();
        assert!(e.contains("MAX_NESTING"), "{e}");
        // The bound itself is accepted.
        let ok = format!(
            "{}value > 1{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(Filter::parse(&ok, &input()).is_ok());
    }

    #[test]
    fn overlong_filters_are_refused_with_the_bound() {
        let long = vec!["value > 1"; 2000].join(" and ");
        let e = Filter::parse(&long, &input()).unwrap_err();
        assert!(e.contains("MAX_EXPR_BYTES"), "{e}");
    }

    #[test]
    fn empty_filter_and_trailing_and_say_what_was_expected() {
        for (src, col) in [
            ("", 1),
            ("   ", 4),
            ("value > 1 and", 14),
            ("value > 1 or ", 14),
        ] {
            let e = Filter::parse(src, &input()).unwrap_err();
            assert!(e.contains("expected a comparison"), "{src:?}: {e}");
            assert!(e.contains("found the end"), "{src:?}: {e}");
            assert!(e.contains(&format!("column {col}")), "{src:?}: {e}");
        }
    }
}
