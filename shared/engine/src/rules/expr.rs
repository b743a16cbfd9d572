//! The grammar of rule conditions, parsed by hand into a typed, compiled [`Expr`].
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
//! sum     := product (("+" | "-") product)*
//! product := unary (("*" | "/") unary)*
//! unary   := "-" unary | atom
//! atom    := number | field | aggregate | "(" expr ")"
//! aggregate := ("count" | "sum" | "min" | "max" | "avg" | "first" | "last")
//!              "(" [field] ["where" filter] "," duration ")"  |  "count" "(" duration ")"
//! ```
//!
//! `filter` is the record filter of [`crate::filter`] (`counter == "x" and value > 0`), so
//! a rule's `where` means exactly what an aggregation's `filter` means. `duration` is a
//! spec duration without quotes (`72h`, `10m`, `1h30m`). A bare `field` is the value of that
//! numeric field in the key's latest record (see [`crate::rules`] for the exact semantics),
//! e.g. a per-subscriber `threshold` added by an enrichment.
//!
//! **Why a hand-written grammar and not CEL.** The heart of a rule is the windowed
//! aggregate `sum(value where counter == "x", 72h)`: a term that names a field, a record
//! filter and a window length, and that compiles into incremental per-key state. CEL has no
//! such construct: we would have to pre-extract the aggregates from the text (or invent CEL
//! macros), evaluate CEL over a map of their values, and translate CEL's errors back into
//! positions of the user's text, all for a boolean algebra over numbers that fits in the
//! 200 lines below. A CEL crate would also add a dependency tree to every Lambda and worker
//! build. The grammar here is small, reuses the filter grammar the pipeline spec already
//! has, type-checks at load time and reports every error with its column.
//!
//! ```
//! use eventide_engine::rules::expr::Expr;
//! use eventide_engine::spec::{FieldType, InputSpec, TimeFormat};
//! let input = InputSpec {
//!     fields: vec![("counter".into(), FieldType::String), ("value".into(), FieldType::Number)],
//!     time_field: "t".into(), time_format: TimeFormat::EpochMs, partition: None,
//! };
//! let c = Expr::compile(r#"sum(value where counter == "x", 72h) < 1000"#, &input).unwrap();
//! assert_eq!(c.terms[0].window_ms, 72 * 3_600_000);
//! let e = Expr::compile("sum(value, 72h) < ", &input).unwrap_err();
//! assert_eq!((e.column, e.reason.as_str()), (19, "expected a number, a field, an aggregate or '('"));
//! ```

use crate::aggregate::{Acc, AggFn};
use crate::duration::parse_ms;
use crate::expr::ExprLimits;
use crate::filter::{Filter, Op, MAX_EXPR_BYTES, MAX_NESTING};
use crate::spec::schema::{FieldType, InputSpec};

/// A record condition of a rule (a term's `where`, a pattern's `define`): the filter
/// grammar, with arithmetic in its comparisons bounded by the default
/// [`ExprLimits`] (a rules file has no `[limits]`).
///
/// # Errors
///
/// The filter's parse error, or an integer `/` or `%`: a rule evaluates its conditions as
/// it updates its state, where a division by zero could not send the record to the dead
/// letters, so it is refused (cast an operand as double).
pub fn parse_filter(src: &str, input: &InputSpec) -> Result<Filter, String> {
    let f = Filter::parse(src, input, &ExprLimits::default())?;
    if f.fallible() {
        return Err(
            "an integer division or modulo could divide by zero, which a rule cannot send to \
             the dead letters; cast an operand as double"
                .into(),
        );
    }
    Ok(f)
}

/// A syntax or type error at a 1-based character column of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub column: usize,
    pub reason: String,
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// A windowed aggregate of the key's records, e.g. `min(value where counter == "y", 2h)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub func: AggFn,
    /// Input field index; `None` for `count` of records.
    pub field: Option<usize>,
    pub filter: Option<Filter>,
    pub window_ms: i64,
    /// The term as written, used to label its value in alerts.
    pub text: String,
}

impl Term {
    /// The term's value over an accumulator of its window (one cell: its field). An empty
    /// window has count 0 and sum 0; its min, max, avg, first and last are undefined.
    pub fn value(&self, acc: &Acc) -> Option<f64> {
        match (self.func, self.field) {
            (AggFn::Count, None) => Some(acc.rows as f64),
            (AggFn::Sum, _) if acc.cells.first().is_none_or(|c| c.n == 0) => Some(0.0),
            (f, _) => acc.value(f, Some(0)),
        }
    }

    /// True when the term needs min, max, first or last.
    pub fn extrema(&self) -> bool {
        matches!(
            self.func,
            AggFn::Min | AggFn::Max | AggFn::First | AggFn::Last
        )
    }
}

/// A compiled condition: numbers and booleans over terms and latest field values.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Num(f64),
    /// The latest value of a field: index into [`Expr::fields`].
    Latest(usize),
    /// Index into [`Expr::terms`].
    Term(usize),
    Neg(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Cmp(Op, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

/// A compiled rule condition with the terms and fields it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub root: Node,
    pub terms: Vec<Term>,
    /// Input field indices read as "latest value" (thresholds from enriched fields).
    pub fields: Vec<usize>,
}

/// What an evaluation reads: the value of each term and each latest field.
pub struct Inputs<'a> {
    pub terms: &'a [Option<f64>],
    pub fields: &'a [Option<f64>],
}

impl Node {
    /// The numeric value; `None` when undefined (an empty window's min, a missing field,
    /// a division by zero).
    pub fn num(&self, i: &Inputs<'_>) -> Option<f64> {
        match self {
            Node::Num(n) => Some(*n),
            Node::Latest(f) => i.fields[*f],
            Node::Term(t) => i.terms[*t],
            Node::Neg(a) => a.num(i).map(|v| -v),
            Node::Arith(op, a, b) => {
                let (a, b) = (a.num(i)?, b.num(i)?);
                let v = match op {
                    Arith::Add => a + b,
                    Arith::Sub => a - b,
                    Arith::Mul => a * b,
                    Arith::Div => a / b,
                };
                v.is_finite().then_some(v)
            }
            _ => None,
        }
    }

    /// The truth value. A comparison with an undefined side is false.
    pub fn truth(&self, i: &Inputs<'_>) -> bool {
        match self {
            Node::Cmp(op, a, b) => match (a.num(i), b.num(i)) {
                (Some(a), Some(b)) => match op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                },
                _ => false,
            },
            Node::And(a, b) => a.truth(i) && b.truth(i),
            Node::Or(a, b) => a.truth(i) || b.truth(i),
            Node::Not(a) => !a.truth(i),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Num,
    Bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Dur(i64),
    Ident(String),
    Str,
    Cmp(Op),
    Arith(Arith),
    LParen,
    RParen,
    Comma,
    Bad(char),
    End,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    input: &'a InputSpec,
    terms: Vec<Term>,
    fields: Vec<usize>,
    /// Current nesting of `(`, `not` and unary `-`, bounded by [`MAX_NESTING`] so that a
    /// hostile rules file is an error, never a stack overflow.
    depth: usize,
}

const FUNCS: [&str; 7] = ["count", "sum", "min", "max", "avg", "first", "last"];
const KEYWORDS: [&str; 4] = ["and", "or", "not", "where"];

impl<'a> Parser<'a> {
    fn err<T>(&self, at: usize, reason: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            column: self.src[..at.min(self.src.len())].chars().count() + 1,
            reason: reason.into(),
        })
    }

    /// Enters one nesting level at byte `at`, refusing to go deeper than [`MAX_NESTING`].
    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err(
                at,
                format!(
                    "nesting deeper than {MAX_NESTING} levels of '(', `not` or `-` \
                     (the limit is eventide_engine::filter::MAX_NESTING)"
                ),
            );
        }
        Ok(())
    }

    fn skip_ws(&mut self) {
        while self
            .src
            .as_bytes()
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    /// The next token, its start and its end, without consuming it.
    fn peek(&mut self) -> Result<(Tok, usize, usize), ExprError> {
        self.skip_ws();
        let b = self.src.as_bytes();
        let start = self.pos;
        let Some(&c) = b.get(start) else {
            return Ok((Tok::End, start, start));
        };
        let one = |t| Ok((t, start, start + 1));
        match c {
            b'(' => one(Tok::LParen),
            b')' => one(Tok::RParen),
            b',' => one(Tok::Comma),
            b'+' => one(Tok::Arith(Arith::Add)),
            b'-' => one(Tok::Arith(Arith::Sub)),
            b'*' => one(Tok::Arith(Arith::Mul)),
            b'/' => one(Tok::Arith(Arith::Div)),
            b'"' | b'\'' => {
                let end = b[start + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .map_or(b.len(), |p| start + p + 2);
                Ok((Tok::Str, start, end))
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = b.get(start + 1) == Some(&b'=');
                let op = match (c, two) {
                    (b'=', true) => Op::Eq,
                    (b'!', true) => Op::Ne,
                    (b'<', true) => Op::Le,
                    (b'>', true) => Op::Ge,
                    (b'<', false) => Op::Lt,
                    (b'>', false) => Op::Gt,
                    _ => return one(Tok::Bad(c as char)),
                };
                Ok((Tok::Cmp(op), start, start + 1 + usize::from(two)))
            }
            b'0'..=b'9' | b'.' => {
                let mut i = start;
                while b.get(i).is_some_and(|x| x.is_ascii_digit() || *x == b'.') {
                    i += 1;
                }
                if b.get(i).is_some_and(|x| x.is_ascii_alphabetic()) {
                    // A duration such as `72h` or `1h30m`.
                    while b.get(i).is_some_and(|x| x.is_ascii_alphanumeric()) {
                        i += 1;
                    }
                    return match parse_ms("", &self.src[start..i]) {
                        Ok(ms) => Ok((Tok::Dur(ms), start, i)),
                        Err(_) => self.err(
                            start,
                            format!(
                                "bad duration {:?} (use e.g. 30s, 10m, 2h, 3d)",
                                &self.src[start..i]
                            ),
                        ),
                    };
                }
                match self.src[start..i].parse::<f64>() {
                    Ok(n) => Ok((Tok::Num(n), start, i)),
                    Err(_) => self.err(start, format!("bad number {:?}", &self.src[start..i])),
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut i = start;
                while b
                    .get(i)
                    .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_')
                {
                    i += 1;
                }
                Ok((Tok::Ident(self.src[start..i].to_string()), start, i))
            }
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                Ok((Tok::Bad(ch), start, start + ch.len_utf8()))
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), ExprError> {
        let (t, s, e) = self.peek()?;
        self.pos = e;
        Ok((t, s))
    }

    fn keyword(&mut self, kw: &str) -> Result<bool, ExprError> {
        let (t, _, e) = self.peek()?;
        if matches!(&t, Tok::Ident(s) if s == kw) {
            self.pos = e;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), ExprError> {
        let (t, s) = self.next()?;
        if t != want {
            return self.err(s, format!("expected {what}"));
        }
        Ok(())
    }

    fn boolean(&self, at: usize, (n, ty): (Node, Ty), ctx: &str) -> Result<Node, ExprError> {
        if ty != Ty::Bool {
            return self.err(
                at,
                format!("{ctx} needs a condition (a comparison), not a number"),
            );
        }
        Ok(n)
    }

    fn number(&self, at: usize, (n, ty): (Node, Ty), ctx: &str) -> Result<Node, ExprError> {
        if ty != Ty::Num {
            return self.err(at, format!("{ctx} needs a number, not a condition"));
        }
        Ok(n)
    }

    fn or(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.peek()?.1;
        let mut l = self.and()?;
        while self.keyword("or")? {
            let rat = self.peek()?.1;
            let r = self.and()?;
            let a = self.boolean(at, l, "`or`")?;
            let b = self.boolean(rat, r, "`or`")?;
            l = (Node::Or(Box::new(a), Box::new(b)), Ty::Bool);
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.peek()?.1;
        let mut l = self.not()?;
        while self.keyword("and")? {
            let rat = self.peek()?.1;
            let r = self.not()?;
            let a = self.boolean(at, l, "`and`")?;
            let b = self.boolean(rat, r, "`and`")?;
            l = (Node::And(Box::new(a), Box::new(b)), Ty::Bool);
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<(Node, Ty), ExprError> {
        let kw_at = self.peek()?.1;
        if self.keyword("not")? {
            self.enter(kw_at)?;
            let at = self.peek()?.1;
            let e = self.not()?;
            let e = self.boolean(at, e, "`not`")?;
            self.depth -= 1;
            return Ok((Node::Not(Box::new(e)), Ty::Bool));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.peek()?.1;
        let l = self.sum()?;
        let (t, _, e) = self.peek()?;
        let Tok::Cmp(op) = t else {
            return Ok(l);
        };
        self.pos = e;
        let rat = self.peek()?.1;
        let r = self.sum()?;
        let a = self.number(at, l, "a comparison")?;
        let b = self.number(rat, r, "a comparison")?;
        let (t2, s2, _) = self.peek()?;
        if matches!(t2, Tok::Cmp(_)) {
            return self.err(s2, "comparisons cannot be chained; join them with `and`");
        }
        Ok((Node::Cmp(op, Box::new(a), Box::new(b)), Ty::Bool))
    }

    fn sum(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.peek()?.1;
        let mut l = self.product()?;
        loop {
            let (t, _, e) = self.peek()?;
            let op = match t {
                Tok::Arith(op @ (Arith::Add | Arith::Sub)) => op,
                _ => return Ok(l),
            };
            self.pos = e;
            let rat = self.peek()?.1;
            let r = self.product()?;
            let a = self.number(at, l, "arithmetic")?;
            let b = self.number(rat, r, "arithmetic")?;
            l = (Node::Arith(op, Box::new(a), Box::new(b)), Ty::Num);
        }
    }

    fn product(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.peek()?.1;
        let mut l = self.unary()?;
        loop {
            let (t, _, e) = self.peek()?;
            let op = match t {
                Tok::Arith(op @ (Arith::Mul | Arith::Div)) => op,
                _ => return Ok(l),
            };
            self.pos = e;
            let rat = self.peek()?.1;
            let r = self.unary()?;
            let a = self.number(at, l, "arithmetic")?;
            let b = self.number(rat, r, "arithmetic")?;
            l = (Node::Arith(op, Box::new(a), Box::new(b)), Ty::Num);
        }
    }

    fn unary(&mut self) -> Result<(Node, Ty), ExprError> {
        let (t, s, e) = self.peek()?;
        if t == Tok::Arith(Arith::Sub) {
            self.enter(s)?;
            self.pos = e;
            let at = self.peek()?.1;
            let v = self.unary()?;
            let v = self.number(at, v, "`-`")?;
            self.depth -= 1;
            return Ok((Node::Neg(Box::new(v)), Ty::Num));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<(Node, Ty), ExprError> {
        let (t, s) = self.next()?;
        match t {
            Tok::Num(n) => Ok((Node::Num(n), Ty::Num)),
            Tok::LParen => {
                self.enter(s)?;
                let e = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                self.depth -= 1;
                Ok(e)
            }
            Tok::Ident(name) if FUNCS.contains(&name.as_str()) => {
                let (t2, _, e2) = self.peek()?;
                if t2 != Tok::LParen {
                    return self.field(&name, s);
                }
                self.pos = e2;
                self.aggregate(&name, s)
            }
            Tok::Ident(name) if !KEYWORDS.contains(&name.as_str()) => self.field(&name, s),
            Tok::Dur(_) => self.err(
                s,
                "a duration is only allowed as the window of an aggregate, e.g. sum(value, 2h)",
            ),
            Tok::Str => self.err(
                s,
                "strings are only allowed inside `where`, e.g. count(where counter == \"x\", 1h)",
            ),
            Tok::Bad(c) => self.err(s, format!("unexpected {c:?}")),
            _ => self.err(s, "expected a number, a field, an aggregate or '('"),
        }
    }

    /// The index of a numeric input field.
    fn numeric_field(&self, name: &str, at: usize) -> Result<usize, ExprError> {
        let Some(f) = self.input.field_index(name) else {
            return self.err(
                at,
                format!("unknown field {name:?}; declare it in input.fields"),
            );
        };
        if self.input.fields[f].1 != FieldType::Number {
            return self.err(
                at,
                format!(
                    "field {name:?} is not a number; rules compare numbers (use `where` for strings)"
                ),
            );
        }
        Ok(f)
    }

    /// A bare field: its latest value.
    fn field(&mut self, name: &str, at: usize) -> Result<(Node, Ty), ExprError> {
        let f = self.numeric_field(name, at)?;
        let slot = match self.fields.iter().position(|&x| x == f) {
            Some(i) => i,
            None => {
                self.fields.push(f);
                self.fields.len() - 1
            }
        };
        Ok((Node::Latest(slot), Ty::Num))
    }

    fn aggregate(&mut self, name: &str, at: usize) -> Result<(Node, Ty), ExprError> {
        let func = AggFn::parse(name).unwrap_or(AggFn::Count);
        // Optional field.
        let mut field = None;
        let (t, s, e) = self.peek()?;
        if let Tok::Ident(f) = &t {
            if f != "where" {
                field = Some(self.numeric_field(f, s)?);
                self.pos = e;
            }
        }
        if field.is_none() && func != AggFn::Count {
            let at = self.peek()?.1;
            return self.err(
                at,
                format!("{name} needs a numeric field, e.g. {name}(value, 1h)"),
            );
        }
        // Optional filter: the text up to the `,` at depth 0 outside quotes.
        let mut filter = None;
        if self.keyword("where")? {
            self.skip_ws();
            let start = self.pos;
            let end = self.filter_end(start)?;
            let text = &self.src[start..end];
            match parse_filter(text, self.input) {
                Ok(f) => filter = Some(f),
                Err(reason) => return self.err(start, format!("in `where`: {reason}")),
            }
            self.pos = end;
        }
        // `count(1h)`: with neither field nor filter, the comma is optional.
        let bare = field.is_none() && filter.is_none() && matches!(self.peek()?.0, Tok::Dur(_));
        if !bare {
            self.expect(
                Tok::Comma,
                &format!("',' then the window length, e.g. {name}(…, 1h)"),
            )?;
        }
        let (t, s) = self.next()?;
        let window_ms = match t {
            Tok::Dur(ms) if ms > 0 => ms,
            Tok::Dur(_) => return self.err(s, "the window must be longer than zero"),
            _ => return self.err(s, "expected the window length, a duration such as 2h"),
        };
        self.expect(Tok::RParen, "')' after the window length")?;
        let text = self.src[at..self.pos].to_string();
        let term = Term {
            func,
            field,
            filter,
            window_ms,
            text,
        };
        let idx = match self.terms.iter().position(|x| *x == term) {
            Some(i) => i,
            None => {
                self.terms.push(term);
                self.terms.len() - 1
            }
        };
        Ok((Node::Term(idx), Ty::Num))
    }

    fn filter_end(&self, start: usize) -> Result<usize, ExprError> {
        let b = self.src.as_bytes();
        let mut depth = 0i32;
        let mut i = start;
        while i < b.len() {
            match b[i] {
                q @ (b'"' | b'\'') => {
                    i += 1;
                    while i < b.len() && b[i] != q {
                        i += 1;
                    }
                }
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                b',' if depth == 0 => return Ok(i),
                _ => {}
            }
            i += 1;
        }
        self.err(
            i,
            "expected ',' then the window length after the `where` condition",
        )
    }
}

impl Expr {
    /// Parses and type-checks a rule condition against the input schema. The result must be
    /// a condition (true or false), not a number.
    pub fn compile(src: &str, input: &InputSpec) -> Result<Expr, ExprError> {
        if src.len() > MAX_EXPR_BYTES {
            return Err(ExprError {
                column: 1,
                reason: format!(
                    "the condition is {} bytes, longer than {MAX_EXPR_BYTES} \
                     (the limit is eventide_engine::filter::MAX_EXPR_BYTES)",
                    src.len()
                ),
            });
        }
        let mut p = Parser {
            src,
            pos: 0,
            input,
            terms: Vec::new(),
            fields: Vec::new(),
            depth: 0,
        };
        let (node, ty) = p.or()?;
        let (t, s, _) = p.peek()?;
        if t != Tok::End {
            return p.err(
                s,
                "unexpected text after the condition; join conditions with `and` or `or`",
            );
        }
        if ty != Ty::Bool {
            return p.err(
                0,
                "a rule must be a condition (e.g. `sum(value, 1h) > 10`), not a number",
            );
        }
        if p.terms.is_empty() {
            return p.err(
                0,
                "a rule needs at least one windowed aggregate such as sum(value, 1h)",
            );
        }
        Ok(Expr {
            root: node,
            terms: p.terms,
            fields: p.fields,
        })
    }
}
