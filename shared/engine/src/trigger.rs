//! When in processing time: the trigger algebra and per-window pane state.
//!
//! A [`Trigger`] says when a window emits a pane. It is Beam's trigger algebra, written as
//! a short expression in the spec (`trigger = "repeat(count(1))"`):
//!
//! | expression | Beam | fires |
//! |---|---|---|
//! | `watermark()` | `AfterWatermark.pastEndOfWindow()` | once, when the watermark passes the end of the window |
//! | `watermark(early = T, late = U)` | `…withEarlyFirings(T).withLateFirings(U)` | whenever `T` fires before the end, at the end, then whenever `U` fires (both repeat) |
//! | `count(n)` | `AfterPane.elementCountAtLeast(n)` | once `n` elements arrived |
//! | `after(1m)` | `AfterProcessingTime.pastFirstElementInPane().plusDelayOf(1m)` | 1m of processing time after the first element |
//! | `every(2m, offset = 1m)` | `…alignedTo(2m, offset)` | at the next multiple of 2m (shifted by 1m) after the first element |
//! | `repeat(T)` | `Repeatedly.forever(T)` | whenever `T` fires, forever |
//! | `first(T, U, …)` | `AfterFirst.of(…)` | once, when any of them fires |
//! | `all(T, U, …)` | `AfterAll.of(…)` | once, when all of them have fired |
//! | `each(T, U, …)` | `AfterEach.inOrder(…)` | `T` until it finishes, then `U`, … |
//! | `or_finally(T, U)` | `T.orFinally(U)` | like `T`, and a last time when `U` fires |
//! | `never` | `Never.ever()` | never |
//!
//! A trigger that finishes closes its window: it emits no further pane, and records that
//! fall only in closed (or expired) windows go to the late-data output. Each window keeps
//! the trigger's state ([`PaneState::trig`]); merging session windows merge it as Beam's
//! `onMerge` does (counts add up, the earliest pending processing-time firing is kept).
//!
//! A pane's timing follows Beam's `PaneInfo`: `EARLY` before the watermark reaches the end
//! of the window, `ON_TIME` for the first pane once it has (the firing at the end of the
//! window, or if the trigger did not fire then, the next pane), `LATE` after that. A window
//! whose first element arrives after the watermark passed its end has only `LATE` panes.
//!
//! Processing time is injected (`advance_processing_time`), so runs are deterministic.
//!
//! ```
//! use eventide_engine::trigger::Trigger;
//! let t = Trigger::parse("watermark(early = every(1m), late = count(1))").unwrap();
//! assert_eq!(t.to_string(), "watermark(early = every(1m), late = count(1))");
//! let micro = Trigger::parse("repeat(every(2m, offset = 1m))").unwrap();
//! assert!(micro.uses_processing_time());
//! ```

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::aggregate::Acc;
use crate::duration::format_ms;

/// Most levels of `(` a trigger expression may nest.
pub const MAX_NESTING: usize = 16;

/// Longest trigger expression, in bytes.
pub const MAX_EXPR_BYTES: usize = 2048;

/// A processing-time firing: a delay after the first element of a pane, optionally rounded
/// up to the next point of a grid (`offset + k × period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub delay_ms: i64,
    pub align: Option<Align>,
}

/// A grid of processing times: `offset_ms + k × period_ms`, with `0 <= offset_ms < period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Align {
    pub period_ms: i64,
    pub offset_ms: i64,
}

impl Delay {
    /// The processing time at which it fires when the first element of its pane arrives at
    /// `now`: `now + delay`, or with a grid, the first grid point strictly after it.
    ///
    /// ```
    /// use eventide_engine::trigger::{Align, Delay};
    /// let every_2m_from_12_05 = Delay { delay_ms: 0, align: Some(Align { period_ms: 120_000, offset_ms: 60_000 }) };
    /// assert_eq!(every_2m_from_12_05.deadline(125_000), 180_000);
    /// assert_eq!(every_2m_from_12_05.deadline(180_000), 300_000);
    /// ```
    pub fn deadline(&self, now: i64) -> i64 {
        let t = now.saturating_add(self.delay_ms);
        match self.align {
            None => t,
            Some(a) => {
                let shifted = t.saturating_sub(a.offset_ms);
                crate::window::floor_to(shifted, a.period_ms)
                    .saturating_add(a.offset_ms)
                    .saturating_add(a.period_ms)
            }
        }
    }

    /// The shortest processing time between two firings of one window.
    pub fn period(&self) -> i64 {
        match self.align {
            Some(a) => a.period_ms,
            None => self.delay_ms,
        }
    }
}

/// A trigger expression (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Watermark {
        early: Option<Box<Trigger>>,
        late: Option<Box<Trigger>>,
    },
    Count(u64),
    ProcessingTime(Delay),
    Repeat(Box<Trigger>),
    First(Vec<Trigger>),
    All(Vec<Trigger>),
    Each(Vec<Trigger>),
    OrFinally(Box<Trigger>, Box<Trigger>),
    Never,
}

/// The default: a pane when the watermark passes the end of the window, then one per late
/// element (Beam's default trigger, `Repeatedly.forever(AfterWatermark.pastEndOfWindow())`).
impl Default for Trigger {
    fn default() -> Self {
        Trigger::Watermark {
            early: None,
            late: Some(Box::new(Trigger::Count(1))),
        }
    }
}

/// The expression, in the syntax [`Trigger::parse`] reads.
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, name: &str, ts: &[Trigger]| {
            write!(f, "{name}(")?;
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{t}")?;
            }
            write!(f, ")")
        };
        match self {
            Trigger::Watermark { early, late } => {
                write!(f, "watermark(")?;
                if let Some(e) = early {
                    write!(f, "early = {e}")?;
                }
                if let Some(l) = late {
                    if early.is_some() {
                        write!(f, ", ")?;
                    }
                    write!(f, "late = {l}")?;
                }
                write!(f, ")")
            }
            Trigger::Count(n) => write!(f, "count({n})"),
            Trigger::ProcessingTime(d) => match (d.delay_ms, d.align) {
                (delay, None) => write!(f, "after({})", format_ms(delay)),
                (delay, Some(a)) => {
                    if delay == 0 {
                        write!(f, "every({}", format_ms(a.period_ms))?;
                    } else {
                        write!(
                            f,
                            "after({}, every = {}",
                            format_ms(delay),
                            format_ms(a.period_ms)
                        )?;
                    }
                    if a.offset_ms != 0 {
                        write!(f, ", offset = {}", format_ms(a.offset_ms))?;
                    }
                    write!(f, ")")
                }
            },
            Trigger::Repeat(t) => write!(f, "repeat({t})"),
            Trigger::First(ts) => list(f, "first", ts),
            Trigger::All(ts) => list(f, "all", ts),
            Trigger::Each(ts) => list(f, "each", ts),
            Trigger::OrFinally(t, u) => write!(f, "or_finally({t}, {u})"),
            Trigger::Never => write!(f, "never"),
        }
    }
}

/// A trigger expression that cannot be read, with the column (1-based, in characters)
/// where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {reason}")]
pub struct TriggerError {
    pub column: usize,
    pub reason: String,
}

/// Bounds that keep a trigger's work per window reasonable, from `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerLimits {
    /// The shortest processing-time delay or period (`[limits] min_processing_time_period`).
    pub min_processing_time_period_ms: i64,
}

impl Trigger {
    /// Reads a trigger expression (grammar in `docs/pipeline-spec.md`, "Triggers").
    ///
    /// # Errors
    ///
    /// A [`TriggerError`] naming the column and the reason: an unknown name, a missing or
    /// extra argument, a bad duration or count, nesting deeper than [`MAX_NESTING`] or a
    /// text longer than [`MAX_EXPR_BYTES`].
    ///
    /// ```
    /// use eventide_engine::trigger::Trigger;
    /// assert_eq!(Trigger::parse("repeat(count(1))").unwrap(), Trigger::Repeat(Box::new(Trigger::Count(1))));
    /// let e = Trigger::parse("repeat(cuont(1))").unwrap_err();
    /// assert_eq!(e.column, 8);
    /// ```
    pub fn parse(text: &str) -> Result<Trigger, TriggerError> {
        if text.len() > MAX_EXPR_BYTES {
            return Err(TriggerError {
                column: 1,
                reason: format!(
                    "the trigger is {} bytes, longer than {MAX_EXPR_BYTES} \
                     (the limit is eventide_engine::trigger::MAX_EXPR_BYTES)",
                    text.len()
                ),
            });
        }
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            depth: 0,
            end: text.chars().count() + 1,
        };
        let ast = p.node()?;
        if let Some(t) = p.peek() {
            return Err(TriggerError {
                column: t.col,
                reason: format!("unexpected {} after the trigger", t.describe()),
            });
        }
        to_trigger(&ast)
    }

    /// True when it can fire more than once per window, or fires before or after the
    /// watermark passes the end: anything but a single on-time pane.
    pub fn is_on_time_only(&self) -> bool {
        match self {
            Trigger::Watermark { early: None, .. } => true,
            Trigger::Repeat(t) => matches!(
                **t,
                Trigger::Watermark {
                    early: None,
                    late: None
                }
            ),
            _ => false,
        }
    }

    /// True when it has a part that fires on processing time.
    pub fn uses_processing_time(&self) -> bool {
        self.any(&|t| matches!(t, Trigger::ProcessingTime(_)))
    }

    /// True when it has `watermark(late = …)`: late firings.
    pub fn has_late_firings(&self) -> bool {
        self.any(&|t| matches!(t, Trigger::Watermark { late: Some(_), .. }))
    }

    fn any(&self, f: &dyn Fn(&Trigger) -> bool) -> bool {
        f(self) || self.children().iter().any(|c| c.any(f))
    }

    fn children(&self) -> Vec<&Trigger> {
        match self {
            Trigger::Watermark { early, late } => {
                early.iter().chain(late.iter()).map(|b| &**b).collect()
            }
            Trigger::Repeat(t) => vec![t],
            Trigger::First(ts) | Trigger::All(ts) | Trigger::Each(ts) => ts.iter().collect(),
            Trigger::OrFinally(t, u) => vec![t, u],
            Trigger::Count(_) | Trigger::ProcessingTime(_) | Trigger::Never => Vec::new(),
        }
    }

    /// True when it can ever fire.
    fn can_fire(&self) -> bool {
        match self {
            Trigger::Watermark { .. } | Trigger::Count(_) | Trigger::ProcessingTime(_) => true,
            Trigger::Never => false,
            Trigger::Repeat(t) => t.can_fire(),
            Trigger::First(ts) => ts.iter().any(Trigger::can_fire),
            Trigger::All(ts) => ts.iter().all(Trigger::can_fire),
            Trigger::Each(ts) => ts.first().is_some_and(Trigger::can_fire),
            Trigger::OrFinally(t, u) => t.can_fire() || u.can_fire(),
        }
    }

    /// Checks that the trigger can fire and does not fire more often than `limits` allow.
    ///
    /// # Errors
    ///
    /// The reason, naming the part of the expression and the `[limits]` setting that raises
    /// a bound.
    pub fn validate(&self, limits: &TriggerLimits) -> Result<(), String> {
        if !self.can_fire() {
            return Err(format!(
                "`{self}` can never fire, so its windows would never emit a pane \
                 (`never` only makes sense inside another trigger, e.g. `watermark(late = never)`)"
            ));
        }
        self.validate_parts(limits)
    }

    fn validate_parts(&self, limits: &TriggerLimits) -> Result<(), String> {
        match self {
            Trigger::ProcessingTime(d) => {
                let min = limits.min_processing_time_period_ms;
                if d.period() < min {
                    return Err(format!(
                        "`{self}` would fire every {} of processing time per window, more often \
                         than {}; use a longer period, or lower [limits] min_processing_time_period",
                        format_ms(d.period()),
                        format_ms(min)
                    ));
                }
            }
            Trigger::All(ts) | Trigger::Each(ts) => {
                if let Some(t) = ts.iter().find(|t| !t.can_fire()) {
                    return Err(format!(
                        "`{t}` in `{self}` can never fire, so `{self}` {}",
                        if matches!(self, Trigger::All(_)) {
                            "can never fire"
                        } else {
                            "never gets past it"
                        }
                    ));
                }
            }
            _ => {}
        }
        self.children()
            .iter()
            .try_for_each(|c| c.validate_parts(limits))
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Word(&'a str),
    Open,
    Close,
    Comma,
    Eq,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    col: usize,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self.tok {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eq => "`=`".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token<'_>>, TriggerError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().enumerate().peekable();
    while let Some((col0, (i, c))) = it.next() {
        let col = col0 + 1;
        let tok = match c {
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            '=' => Tok::Eq,
            c if c.is_whitespace() => continue,
            c if c.is_ascii_alphanumeric() || "_:-+.".contains(c) => {
                let mut end = i + c.len_utf8();
                while let Some(&(_, (j, d))) = it.peek() {
                    if d.is_ascii_alphanumeric() || "_:-+.".contains(d) {
                        end = j + d.len_utf8();
                        it.next();
                    } else {
                        break;
                    }
                }
                Tok::Word(&text[i..end])
            }
            other => {
                return Err(TriggerError {
                    column: col,
                    reason: format!("unexpected character {other:?}"),
                })
            }
        };
        out.push(Token { tok, col });
    }
    Ok(out)
}

/// A parsed call: `name`, `name(args)`, or a bare value such as `1m`.
#[derive(Debug)]
struct Node<'a> {
    name: &'a str,
    col: usize,
    /// `None` without parentheses.
    args: Option<Vec<Arg<'a>>>,
}

#[derive(Debug)]
struct Arg<'a> {
    /// `Some((name, column))` for `name = value`.
    key: Option<(&'a str, usize)>,
    value: Node<'a>,
}

struct Parser<'a, 't> {
    tokens: &'t [Token<'a>],
    pos: usize,
    depth: usize,
    /// The column just past the text, for errors at the end.
    end: usize,
}

impl<'a> Parser<'a, '_> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn err_here(&self, reason: impl Into<String>) -> TriggerError {
        TriggerError {
            column: self.peek().map_or(self.end, |t| t.col),
            reason: reason.into(),
        }
    }

    fn node(&mut self) -> Result<Node<'a>, TriggerError> {
        let (name, col) = match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                col,
            }) => (*w, *col),
            Some(t) => {
                let d = t.describe();
                return Err(self.err_here(format!("expected a trigger or a value, found {d}")));
            }
            None => return Err(self.err_here("expected a trigger, found the end")),
        };
        self.pos += 1;
        if !matches!(self.peek().map(|t| &t.tok), Some(Tok::Open)) {
            return Ok(Node {
                name,
                col,
                args: None,
            });
        }
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err_here(format!(
                "nesting deeper than {MAX_NESTING} levels of '(' \
                 (the limit is eventide_engine::trigger::MAX_NESTING)"
            )));
        }
        self.pos += 1;
        let mut args = Vec::new();
        if matches!(self.peek().map(|t| &t.tok), Some(Tok::Close)) {
            self.pos += 1;
        } else {
            loop {
                let key = match (self.peek(), self.tokens.get(self.pos + 1)) {
                    (
                        Some(Token {
                            tok: Tok::Word(k),
                            col,
                        }),
                        Some(Token { tok: Tok::Eq, .. }),
                    ) => {
                        let key = (*k, *col);
                        self.pos += 2;
                        Some(key)
                    }
                    _ => None,
                };
                let value = self.node()?;
                args.push(Arg { key, value });
                match self.peek().map(|t| &t.tok) {
                    Some(Tok::Comma) => self.pos += 1,
                    Some(Tok::Close) => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.err_here(format!("expected `,` or `)` in `{name}(…)`"))),
                }
            }
        }
        self.depth -= 1;
        Ok(Node {
            name,
            col,
            args: Some(args),
        })
    }
}

fn err(col: usize, reason: impl Into<String>) -> TriggerError {
    TriggerError {
        column: col,
        reason: reason.into(),
    }
}

/// A duration such as `1m` or `1h30m`.
fn duration(n: &Node<'_>) -> Result<i64, TriggerError> {
    if n.args.is_some() {
        return Err(err(
            n.col,
            format!("expected a duration, found `{}(…)`", n.name),
        ));
    }
    let ms = crate::duration::parse_ms("", n.name).map_err(|e| match e {
        crate::error::SpecError::Invalid { reason, .. } => err(n.col, reason),
        other => err(n.col, other.to_string()),
    })?;
    if ms <= 0 {
        return Err(err(n.col, "must be greater than zero"));
    }
    Ok(ms)
}

/// A grid offset: a duration, or a time (RFC 3339) that is a point of the grid.
fn offset(n: &Node<'_>, period: i64) -> Result<i64, TriggerError> {
    let t = match crate::record::parse_rfc3339(n.name) {
        Some(t) if n.args.is_none() => t,
        _ => {
            let ms = crate::duration::parse_ms("", n.name).map_err(|_| {
                err(
                    n.col,
                    format!(
                        "offset {:?} is neither a duration (\"1m\") nor a time \
                         (\"2026-01-01T12:05:00Z\")",
                        n.name
                    ),
                )
            })?;
            if n.args.is_some() {
                return Err(err(n.col, "expected a duration or a time"));
            }
            ms
        }
    };
    Ok(t.rem_euclid(period))
}

/// The arguments of a call: positional ones in order, then named ones.
struct Args<'n, 'a> {
    name: &'a str,
    col: usize,
    positional: Vec<&'n Node<'a>>,
    named: Vec<(&'a str, usize, &'n Node<'a>)>,
}

impl<'n, 'a> Args<'n, 'a> {
    fn of(n: &'n Node<'a>) -> Self {
        let mut a = Args {
            name: n.name,
            col: n.col,
            positional: Vec::new(),
            named: Vec::new(),
        };
        for arg in n.args.iter().flatten() {
            match arg.key {
                Some((k, c)) => a.named.push((k, c, &arg.value)),
                None => a.positional.push(&arg.value),
            }
        }
        a
    }

    /// Exactly `n` positional arguments (`what` describes them).
    fn exactly(&self, n: usize, what: &str) -> Result<(), TriggerError> {
        if self.positional.len() != n {
            return Err(err(
                self.col,
                format!(
                    "`{}` takes {what}, not {} argument{}",
                    self.name,
                    self.positional.len(),
                    if self.positional.len() == 1 { "" } else { "s" }
                ),
            ));
        }
        Ok(())
    }

    /// Named arguments, refusing any not in `allowed`.
    fn named(&self, allowed: &[&str]) -> Result<Vec<(&'a str, &'n Node<'a>)>, TriggerError> {
        let mut out: Vec<(&str, &Node<'_>)> = Vec::new();
        for &(k, c, v) in &self.named {
            if !allowed.contains(&k) {
                return Err(err(
                    c,
                    if allowed.is_empty() {
                        format!("`{}` takes no named argument (found `{k} =`)", self.name)
                    } else {
                        format!(
                            "unknown argument `{k}` of `{}`; use {}",
                            self.name,
                            allowed
                                .iter()
                                .map(|a| format!("`{a}`"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        )
                    },
                ));
            }
            if out.iter().any(|(o, _)| *o == k) {
                return Err(err(c, format!("`{k}` given twice")));
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

fn to_trigger(n: &Node<'_>) -> Result<Trigger, TriggerError> {
    let a = Args::of(n);
    let boxed = |n: &Node<'_>| to_trigger(n).map(Box::new);
    let list = |a: &Args<'_, '_>| -> Result<Vec<Trigger>, TriggerError> {
        a.named(&[])?;
        if a.positional.is_empty() {
            return Err(err(
                a.col,
                format!("`{}` needs at least one trigger", a.name),
            ));
        }
        a.positional.iter().map(|n| to_trigger(n)).collect()
    };
    let parens = |what: &str| -> Result<(), TriggerError> {
        if n.args.is_none() {
            return Err(err(
                n.col,
                format!("`{}` needs {what} in parentheses", n.name),
            ));
        }
        Ok(())
    };
    Ok(match n.name {
        "watermark" => {
            a.exactly(0, "only `early = …` and `late = …`")?;
            let mut t = (None, None);
            for (k, v) in a.named(&["early", "late"])? {
                if k == "early" {
                    t.0 = Some(boxed(v)?);
                } else {
                    t.1 = Some(boxed(v)?);
                }
            }
            Trigger::Watermark {
                early: t.0,
                late: t.1,
            }
        }
        "never" => {
            a.exactly(0, "no argument")?;
            a.named(&[])?;
            Trigger::Never
        }
        "count" => {
            parens("a number of elements")?;
            a.exactly(1, "one number of elements")?;
            a.named(&[])?;
            let v = a.positional[0];
            let k = match (v.args.is_none(), v.name.parse::<u64>()) {
                (true, Ok(k)) if k > 0 => k,
                _ => {
                    return Err(err(
                        v.col,
                        format!("expected a positive number of elements, found `{}`", v.name),
                    ))
                }
            };
            Trigger::Count(k)
        }
        "after" => {
            parens("a duration")?;
            a.exactly(1, "one duration")?;
            let delay_ms = duration(a.positional[0])?;
            let mut every = None;
            let mut off = None;
            for (k, v) in a.named(&["every", "offset"])? {
                if k == "every" {
                    every = Some(duration(v)?);
                } else {
                    off = Some(v);
                }
            }
            let align = match (every, off) {
                (Some(p), o) => Some(Align {
                    period_ms: p,
                    offset_ms: o.map(|o| offset(o, p)).transpose()?.unwrap_or(0),
                }),
                (None, Some(o)) => {
                    return Err(err(o.col, "`offset` needs `every = <period>`"));
                }
                (None, None) => None,
            };
            Trigger::ProcessingTime(Delay { delay_ms, align })
        }
        "every" => {
            parens("a period")?;
            a.exactly(1, "one period")?;
            let period_ms = duration(a.positional[0])?;
            let mut offset_ms = 0;
            for (_, v) in a.named(&["offset"])? {
                offset_ms = offset(v, period_ms)?;
            }
            Trigger::ProcessingTime(Delay {
                delay_ms: 0,
                align: Some(Align {
                    period_ms,
                    offset_ms,
                }),
            })
        }
        "repeat" => {
            parens("a trigger")?;
            a.exactly(1, "one trigger")?;
            a.named(&[])?;
            Trigger::Repeat(boxed(a.positional[0])?)
        }
        "first" => {
            parens("triggers")?;
            Trigger::First(list(&a)?)
        }
        "all" => {
            parens("triggers")?;
            Trigger::All(list(&a)?)
        }
        "each" => {
            parens("triggers")?;
            Trigger::Each(list(&a)?)
        }
        "or_finally" => {
            parens("two triggers")?;
            a.exactly(2, "two triggers (the trigger, then the one that ends it)")?;
            a.named(&[])?;
            Trigger::OrFinally(boxed(a.positional[0])?, boxed(a.positional[1])?)
        }
        other => {
            return Err(err(
                n.col,
                format!(
                    "unknown trigger `{other}`; use watermark, count, after, every, repeat, \
                     first, all, each, or_finally or never"
                ),
            ))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Flink SQL's emit settings
// ---------------------------------------------------------------------------------------------

/// Flink SQL's emit settings for a window aggregation, as a SQL front end reads them from
/// its configuration. `None` means disabled (or not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlinkEmit {
    /// `table.exec.emit.early-fire.enabled` with `…early-fire.delay` (0 fires on every element).
    pub early_fire_delay_ms: Option<i64>,
    /// `table.exec.emit.late-fire.enabled` with `…late-fire.delay` (0 fires on every element).
    pub late_fire_delay_ms: Option<i64>,
    /// `table.exec.emit.allow-lateness`.
    pub allow_lateness_ms: Option<i64>,
    /// `table.exec.state.ttl`: the allowed lateness of late firings when `allow-lateness`
    /// is not set (as older Flink versions do).
    pub state_ttl_ms: Option<i64>,
}

impl FlinkEmit {
    /// The trigger and the allowed lateness (ms) that give Flink's panes.
    ///
    /// Early firings every `delay` are `after(delay)` (Flink fires `delay` after the first
    /// element since the last firing), a delay of 0 is `count(1)`; the same for late
    /// firings. Without late firings Flink drops late records, which here go to the
    /// late-data output: `watermark()` without `late` closes the window after its on-time
    /// pane.
    ///
    /// ```
    /// use eventide_engine::trigger::FlinkEmit;
    /// let e = FlinkEmit { early_fire_delay_ms: Some(60_000), late_fire_delay_ms: Some(0), allow_lateness_ms: Some(3_600_000), ..Default::default() };
    /// let (t, lateness) = e.to_trigger().unwrap();
    /// assert_eq!(t.to_string(), "watermark(early = after(1m), late = count(1))");
    /// assert_eq!(lateness, 3_600_000);
    /// ```
    ///
    /// # Errors
    ///
    /// Late firings with no lateness (neither `allow-lateness` nor `state.ttl` above 0), or
    /// a negative delay.
    pub fn to_trigger(&self) -> Result<(Trigger, i64), String> {
        let fire = |name: &str, d: Option<i64>| -> Result<Option<Box<Trigger>>, String> {
            match d {
                None => Ok(None),
                Some(d) if d < 0 => {
                    Err(format!("table.exec.emit.{name}.delay must not be negative"))
                }
                Some(0) => Ok(Some(Box::new(Trigger::Count(1)))),
                Some(d) => Ok(Some(Box::new(Trigger::ProcessingTime(Delay {
                    delay_ms: d,
                    align: None,
                })))),
            }
        };
        let early = fire("early-fire", self.early_fire_delay_ms)?;
        let late = fire("late-fire", self.late_fire_delay_ms)?;
        let lateness = match (self.allow_lateness_ms, late.is_some()) {
            (Some(l), _) => l,
            (None, true) => self.state_ttl_ms.unwrap_or(0),
            (None, false) => 0,
        };
        if lateness < 0 {
            return Err("table.exec.emit.allow-lateness must not be negative".into());
        }
        if late.is_some() && lateness == 0 {
            return Err(
                "table.exec.emit.late-fire.enabled needs table.exec.emit.allow-lateness \
                        (or table.exec.state.ttl) greater than zero"
                    .into(),
            );
        }
        Ok((Trigger::Watermark { early, late }, lateness))
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// The state of one node of a trigger in one window: finished, and a value (a count, a
/// processing-time deadline, or a watermark trigger's phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState(bool, i64);

/// No deadline.
const NONE: i64 = i64::MAX;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// With the node indexes of its early and late triggers.
    Watermark {
        early: Option<usize>,
        late: Option<usize>,
    },
    Count(u64),
    Delay(Delay),
    Repeat,
    First,
    All,
    Each,
    OrFinally,
    Never,
}

#[derive(Debug, Clone, Copy)]
struct Step {
    op: Op,
    /// Nodes in the subtree, this one included.
    size: usize,
}

/// The time context of a trigger event.
#[derive(Debug, Clone, Copy)]
struct At {
    now: i64,
    /// The watermark has reached the end of the window.
    eow: bool,
}

/// A trigger compiled for evaluation: its nodes in pre-order.
#[derive(Debug, Clone)]
pub struct Program {
    steps: Vec<Step>,
    /// True when a node fires on processing time (else no window ever arms a timer).
    timed: bool,
}

impl Program {
    /// Compiles a trigger.
    pub fn new(t: &Trigger) -> Self {
        let mut steps = Vec::new();
        fn walk(t: &Trigger, steps: &mut Vec<Step>) {
            let at = steps.len();
            let op = match t {
                Trigger::Watermark { .. } => Op::Watermark {
                    early: None,
                    late: None,
                },
                Trigger::Count(n) => Op::Count(*n),
                Trigger::ProcessingTime(d) => Op::Delay(*d),
                Trigger::Repeat(_) => Op::Repeat,
                Trigger::First(_) => Op::First,
                Trigger::All(_) => Op::All,
                Trigger::Each(_) => Op::Each,
                Trigger::OrFinally(..) => Op::OrFinally,
                Trigger::Never => Op::Never,
            };
            steps.push(Step { op, size: 1 });
            let mut starts = Vec::new();
            for c in t.children() {
                starts.push(steps.len());
                walk(c, steps);
            }
            steps[at].size = steps.len() - at;
            if let Trigger::Watermark { early, late } = t {
                let mut k = starts.into_iter();
                steps[at].op = Op::Watermark {
                    early: early.as_ref().and_then(|_| k.next()),
                    late: late.as_ref().and_then(|_| k.next()),
                };
            }
        }
        walk(t, &mut steps);
        let timed = steps.iter().any(|s| matches!(s.op, Op::Delay(_)));
        Program { steps, timed }
    }

    fn init(&self, i: usize) -> NodeState {
        match self.steps[i].op {
            Op::Delay(_) => NodeState(false, NONE),
            _ => NodeState(false, 0),
        }
    }

    fn reset(&self, i: usize, s: &mut [NodeState]) {
        let end = i + self.steps[i].size;
        for (j, slot) in s.iter_mut().enumerate().take(end).skip(i) {
            *slot = self.init(j);
        }
    }

    /// The children of node `i`.
    fn kids(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let end = i + self.steps[i].size;
        let mut j = i + 1;
        std::iter::from_fn(move || {
            if j >= end {
                return None;
            }
            let k = j;
            j += self.steps[j].size;
            Some(k)
        })
    }

    fn current(&self, i: usize, s: &[NodeState]) -> Option<usize> {
        self.kids(i).find(|&k| !s[k].0)
    }

    fn elem(&self, i: usize, s: &mut [NodeState], at: At) {
        if s[i].0 {
            return;
        }
        match self.steps[i].op {
            Op::Count(_) => s[i].1 = s[i].1.saturating_add(1),
            Op::Delay(d) => {
                if s[i].1 == NONE {
                    s[i].1 = d.deadline(at.now);
                }
            }
            Op::Never => {}
            Op::Watermark { early: e, late: l } => {
                let child = if s[i].1 == 0 { e } else { l };
                if let Some(c) = child {
                    self.elem(c, s, at);
                }
            }
            Op::Each => {
                if let Some(c) = self.current(i, s) {
                    self.elem(c, s, at);
                }
            }
            Op::Repeat | Op::First | Op::All | Op::OrFinally => {
                let kids: SmallVec<[usize; 4]> = self.kids(i).collect();
                for c in kids {
                    self.elem(c, s, at);
                }
            }
        }
    }

    fn should(&self, i: usize, s: &[NodeState], at: At) -> bool {
        if s[i].0 {
            return false;
        }
        match self.steps[i].op {
            Op::Count(n) => u64::try_from(s[i].1).is_ok_and(|c| c >= n),
            Op::Delay(_) => s[i].1 != NONE && s[i].1 <= at.now,
            Op::Never => false,
            Op::Watermark { early: e, late: l } => {
                if s[i].1 == 0 {
                    at.eow || e.is_some_and(|c| self.should(c, s, at))
                } else {
                    l.is_some_and(|c| self.should(c, s, at))
                }
            }
            Op::Repeat | Op::First => self.kids(i).any(|c| self.should(c, s, at)),
            Op::All => self.kids(i).all(|c| s[c].0 || self.should(c, s, at)),
            Op::Each => self.current(i, s).is_some_and(|c| self.should(c, s, at)),
            Op::OrFinally => self.kids(i).any(|c| self.should(c, s, at)),
        }
    }

    /// Records a firing of node `i`, which [`Program::should`] allowed.
    fn fire(&self, i: usize, s: &mut [NodeState], at: At) {
        match self.steps[i].op {
            Op::Count(_) | Op::Delay(_) => s[i].0 = true,
            Op::Never => {}
            Op::Watermark { early: e, late: l } => {
                if s[i].1 == 0 {
                    if at.eow {
                        // The on-time firing: on to the late phase.
                        if let Some(c) = e {
                            self.reset(c, s);
                        }
                        s[i].1 = 1;
                        if l.is_none() {
                            s[i].0 = true;
                        }
                    } else if let Some(c) = e {
                        // Early firings repeat.
                        self.fire(c, s, at);
                        self.reset(c, s);
                    }
                } else if let Some(c) = l {
                    // So do late firings.
                    self.fire(c, s, at);
                    self.reset(c, s);
                }
            }
            Op::Repeat => {
                if let Some(c) = self.kids(i).next() {
                    self.fire(c, s, at);
                    if s[c].0 {
                        self.reset(c, s);
                    }
                }
            }
            Op::First | Op::All => {
                let kids: SmallVec<[usize; 4]> = self.kids(i).collect();
                for c in kids {
                    if self.should(c, s, at) {
                        self.fire(c, s, at);
                    }
                }
                s[i].0 = true;
            }
            Op::Each => {
                if let Some(c) = self.current(i, s) {
                    self.fire(c, s, at);
                }
                if self.current(i, s).is_none() {
                    s[i].0 = true;
                }
            }
            Op::OrFinally => {
                let mut k = self.kids(i);
                let (Some(main), Some(until)) = (k.next(), k.next()) else {
                    return;
                };
                if self.should(until, s, at) {
                    self.fire(until, s, at);
                    self.reset(main, s);
                    s[i].0 = true;
                } else {
                    self.fire(main, s, at);
                    if s[main].0 {
                        s[i].0 = true;
                    }
                }
            }
        }
    }

    /// The earliest processing-time firing under node `i` after `now`. A firing already
    /// due that its parent did not take (`all(…)` waiting for another part) needs no timer:
    /// it stays due, and the next event asks again.
    fn deadline(&self, i: usize, s: &[NodeState], now: i64) -> Option<i64> {
        if s[i].0 {
            return None;
        }
        match self.steps[i].op {
            Op::Delay(_) => (s[i].1 != NONE && s[i].1 > now).then_some(s[i].1),
            Op::Count(_) | Op::Never => None,
            Op::Watermark { early: e, late: l } => {
                let child = if s[i].1 == 0 { e } else { l };
                child.and_then(|c| self.deadline(c, s, now))
            }
            Op::Each => self.current(i, s).and_then(|c| self.deadline(c, s, now)),
            Op::Repeat | Op::First | Op::All | Op::OrFinally => {
                self.kids(i).filter_map(|c| self.deadline(c, s, now)).min()
            }
        }
    }

    /// Merges the state `from` of a swallowed window into `into` (Beam's `onMerge`): a node
    /// is finished only if it is in both, counts add up, the earliest pending deadline of
    /// the unfinished ones is kept, and a watermark trigger is in its late phase only if it
    /// is in both.
    fn merge(&self, into: &mut [NodeState], from: &[NodeState]) {
        for (j, (a, b)) in into.iter_mut().zip(from).enumerate() {
            let v = match self.steps[j].op {
                Op::Count(_) => a.1.saturating_add(b.1),
                Op::Delay(_) => match (a.0, b.0) {
                    (false, false) => a.1.min(b.1),
                    (true, false) => b.1,
                    _ => a.1,
                },
                Op::Watermark { .. } => a.1.min(b.1),
                _ => a.1,
            };
            *a = NodeState(a.0 && b.0, v);
        }
    }
}

/// Per-window trigger and accumulation state, kept only for windows that can fire again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaneState {
    /// Index of the next pane.
    pub next_index: u32,
    /// Elements added since the last pane.
    pub pending: u64,
    /// Elements since the last pane, for discarding mode.
    pub delta: Option<Acc>,
    /// The last emitted value, for retracting mode.
    pub last_emitted: Option<Acc>,
    /// The processing-time timer armed for this window.
    pub timer: Option<i64>,
    /// True once the watermark passed the end of the window and that was handled (the
    /// trigger asked at the end of the window, or the window first seen late).
    pub on_time_done: bool,
    /// True while the next pane is `ON_TIME`: the watermark passed the end of the window
    /// and the trigger did not fire then.
    #[serde(default)]
    pub on_time_open: bool,
    /// True once the trigger finished: the window emits no further pane.
    #[serde(default)]
    pub closed: bool,
    /// The trigger's state, one slot per node (empty until the first event).
    #[serde(default)]
    pub trig: SmallVec<[NodeState; 3]>,
}

impl Program {
    fn slots<'s>(&self, ps: &'s mut PaneState) -> &'s mut [NodeState] {
        if ps.trig.len() != self.steps.len() {
            ps.trig = (0..self.steps.len()).map(|i| self.init(i)).collect();
        }
        &mut ps.trig
    }

    /// Fires the root if it should, and returns the pane's timing.
    fn try_fire(&self, ps: &mut PaneState, at: At) -> Option<Timing> {
        let s = self.slots(ps);
        if !self.should(0, s, at) {
            return None;
        }
        self.fire(0, s, at);
        if s[0].0 {
            ps.closed = true;
        }
        Some(if !at.eow {
            Timing::Early
        } else if ps.on_time_open {
            ps.on_time_open = false;
            Timing::OnTime
        } else {
            Timing::Late
        })
    }

    /// Arms the window's next processing-time firing, if it changed, through `arm`.
    fn rearm(&self, ps: &mut PaneState, now: i64, arm: &mut impl FnMut(i64)) {
        if !self.timed {
            return;
        }
        let d = if ps.closed {
            None
        } else {
            self.deadline(0, self.slots(ps), now)
        };
        if d != ps.timer {
            ps.timer = d;
            if let Some(t) = d {
                arm(t);
            }
        }
    }

    /// A new element (already counted in `ps.pending`) of a window whose end the watermark
    /// has reached (`eow`) or not, at processing time `now`. Returns the timing of the pane
    /// to fire now, if any; a newly due processing-time firing is recorded in `ps.timer`
    /// and passed to `arm`.
    pub fn on_element(
        &self,
        ps: &mut PaneState,
        eow: bool,
        now: i64,
        mut arm: impl FnMut(i64),
    ) -> Option<Timing> {
        if eow && !ps.on_time_done {
            // First seen after the watermark passed its end: a late window.
            ps.on_time_done = true;
        }
        let at = At { now, eow };
        self.elem(0, self.slots(ps), at);
        let fired = self.try_fire(ps, at);
        self.rearm(ps, now, &mut arm);
        fired
    }

    /// The watermark reached the end of the window. Returns the timing of the pane to fire
    /// (`ON_TIME`), if the trigger fires; otherwise the next pane will be `ON_TIME`.
    pub fn on_end_of_window(
        &self,
        ps: &mut PaneState,
        now: i64,
        mut arm: impl FnMut(i64),
    ) -> Option<Timing> {
        if ps.on_time_done || ps.closed {
            return None;
        }
        ps.on_time_done = true;
        ps.on_time_open = true;
        let fired = self.try_fire(ps, At { now, eow: true });
        self.rearm(ps, now, &mut arm);
        fired
    }

    /// Processing time reached `now`, at or after the window's armed timer.
    pub fn on_timer(
        &self,
        ps: &mut PaneState,
        eow: bool,
        now: i64,
        mut arm: impl FnMut(i64),
    ) -> Option<Timing> {
        ps.timer = None;
        if ps.closed {
            return None;
        }
        let fired = self.try_fire(ps, At { now, eow });
        self.rearm(ps, now, &mut arm);
        fired
    }

    /// The window expires: the timing of a last pane if elements are still pending (Beam's
    /// `FIRE_IF_NON_EMPTY` closing behaviour).
    pub fn on_close(&self, ps: &mut PaneState) -> Option<Timing> {
        if ps.closed || ps.pending == 0 {
            return None;
        }
        ps.closed = true;
        Some(if ps.on_time_open || !ps.on_time_done {
            ps.on_time_open = false;
            Timing::OnTime
        } else {
            Timing::Late
        })
    }

    /// Merges the state of a window that a session merge swallows (`part`) into the new
    /// window's `ps`, whose end the watermark has reached (`eow`) or not: Beam's `onMerge`
    /// (see [`Program::merge`]). The elements pending in `part` stay pending; the merged
    /// window's processing-time firing is armed at its next element.
    pub fn merge_into(&self, ps: &mut PaneState, part: &mut PaneState, eow: bool) {
        let first = ps.trig.is_empty();
        let from: SmallVec<[NodeState; 3]> = self.slots(part).iter().copied().collect();
        let into = self.slots(ps);
        if first {
            into.copy_from_slice(&from);
        } else {
            self.merge(into, &from);
        }
        if !eow {
            // The merged window ends later than the watermark: its watermark triggers are
            // waiting for its end again.
            for (j, st) in self.steps.iter().enumerate() {
                if let Op::Watermark { .. } = st.op {
                    into[j].1 = 0;
                }
            }
        }
        ps.pending += part.pending;
        if eow && part.on_time_done {
            // The next pane is ON_TIME only if no swallowed window had its own.
            ps.on_time_open = if ps.on_time_done {
                ps.on_time_open && part.on_time_open
            } else {
                part.on_time_open
            };
            ps.on_time_done = true;
        }
    }
}

/// Which firing produced a pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Timing {
    Early,
    OnTime,
    Late,
}

impl Timing {
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Early => "EARLY",
            Timing::OnTime => "ON_TIME",
            Timing::Late => "LATE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_from_its_display() {
        for text in [
            "watermark()",
            "watermark(early = after(1m))",
            "watermark(late = count(1))",
            "watermark(early = every(1m), late = count(1))",
            "watermark(early = count(100), late = never)",
            "count(10)",
            "after(1h30m)",
            "every(2m)",
            "every(2m, offset = 1m)",
            "after(30s, every = 1m, offset = 15s)",
            "repeat(count(1))",
            "first(count(1000), after(30s))",
            "all(count(10), after(1m))",
            "each(count(1), repeat(after(5m)))",
            "or_finally(repeat(count(1)), count(100))",
            "repeat(first(all(count(2), after(1s)), each(count(3), every(1s))))",
        ] {
            let t = Trigger::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.to_string(), text);
            assert_eq!(Trigger::parse(&t.to_string()), Ok(t));
        }
        // Spaces, `never` and `watermark` without parentheses, and a time as the offset.
        assert_eq!(
            Trigger::parse(" watermark ( late=never ) ").map(|t| t.to_string()),
            Ok("watermark(late = never)".into())
        );
        assert_eq!(
            Trigger::parse("every(2m, offset = 2026-01-01T12:05:00Z)").map(|t| t.to_string()),
            Ok("every(2m, offset = 1m)".into())
        );
    }

    #[test]
    fn parse_errors_name_the_column() {
        for (text, column, what) in [
            ("", 1, "found the end"),
            ("count(0)", 7, "positive number"),
            ("count(x)", 7, "positive number"),
            ("count", 1, "needs a number of elements"),
            ("count(1, 2)", 1, "one number of elements"),
            ("after(soon)", 7, "duration"),
            ("after(1m, offset = 5s)", 20, "needs `every"),
            ("every(1m, offset = noon)", 20, "neither a duration"),
            (
                "watermark(early = count(1), early = count(2))",
                29,
                "given twice",
            ),
            ("watermark(soon = count(1))", 11, "unknown argument `soon`"),
            ("watermark(count(1))", 1, "only `early"),
            ("repeat(count(1)", 16, "expected `,` or `)`"),
            ("repeat(count(1)))", 17, "unexpected `)`"),
            ("first()", 1, "at least one trigger"),
            ("or_finally(count(1))", 1, "two triggers"),
            ("count(1) count(2)", 10, "unexpected `count`"),
            ("count(1); drop", 9, "unexpected character"),
            ("repeat(1m)", 8, "unknown trigger `1m`"),
        ] {
            let e = Trigger::parse(text).unwrap_err();
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.reason.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn aligned_deadlines_follow_the_grid() {
        let d = |delay_ms, align| Delay { delay_ms, align };
        assert_eq!(d(60_000, None).deadline(5), 60_005);
        let grid = Some(Align {
            period_ms: 10,
            offset_ms: 5,
        });
        assert_eq!(d(0, grid).deadline(0), 5);
        assert_eq!(d(0, grid).deadline(5), 15);
        assert_eq!(d(0, grid).deadline(-7), -5);
        assert_eq!(d(3, grid).deadline(4), 15);
        assert_eq!(d(0, grid).deadline(i64::MAX - 1), i64::MAX);
    }

    /// The state machine of one window, event by event.
    #[test]
    fn a_window_fires_as_its_trigger_says() {
        let t = Trigger::parse("watermark(early = count(2), late = after(5ms))").unwrap();
        let p = Program::new(&t);
        let mut ps = PaneState::default();
        let mut armed = Vec::new();
        let mut elem = |ps: &mut PaneState, eow, now| {
            ps.pending += 1;
            let f = p.on_element(ps, eow, now, |d| armed.push(d));
            if f.is_some() {
                ps.pending = 0;
            }
            f
        };
        assert_eq!(elem(&mut ps, false, 0), None);
        assert_eq!(elem(&mut ps, false, 1), Some(Timing::Early));
        assert_eq!(elem(&mut ps, false, 2), None);
        assert_eq!(p.on_end_of_window(&mut ps, 3, |_| {}), Some(Timing::OnTime));
        ps.pending = 0;
        assert_eq!(p.on_end_of_window(&mut ps, 3, |_| {}), None);
        assert_eq!(elem(&mut ps, true, 10), None);
        assert_eq!(elem(&mut ps, true, 11), None);
        assert_eq!(ps.timer, Some(15));
        assert_eq!(p.on_timer(&mut ps, true, 15, |_| {}), Some(Timing::Late));
        assert!(!ps.closed);
        assert_eq!(armed, vec![15]);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_earliest_deadline() {
        let t = Trigger::parse("repeat(all(count(3), after(10ms)))").unwrap();
        let p = Program::new(&t);
        let mut a = PaneState::default();
        let mut b = PaneState::default();
        a.pending = 1;
        b.pending = 1;
        assert_eq!(p.on_element(&mut a, false, 0, |_| {}), None);
        assert_eq!(p.on_element(&mut b, false, 4, |_| {}), None);
        let mut merged = PaneState::default();
        p.merge_into(&mut merged, &mut a, false);
        p.merge_into(&mut merged, &mut b, false);
        assert_eq!(merged.pending, 2);
        merged.pending += 1;
        let mut armed = Vec::new();
        assert_eq!(p.on_element(&mut merged, false, 6, |d| armed.push(d)), None);
        assert_eq!(armed, vec![10]);
        assert_eq!(
            p.on_timer(&mut merged, false, 10, |_| {}),
            Some(Timing::Early)
        );
    }

    #[test]
    fn flink_emit_settings_map_onto_the_algebra() {
        let f = |early, late, allow, ttl| FlinkEmit {
            early_fire_delay_ms: early,
            late_fire_delay_ms: late,
            allow_lateness_ms: allow,
            state_ttl_ms: ttl,
        };
        let ok = |e: FlinkEmit| e.to_trigger().map(|(t, l)| (t.to_string(), l));
        assert_eq!(ok(f(None, None, None, None)), Ok(("watermark()".into(), 0)));
        assert_eq!(
            ok(f(Some(0), None, None, None)),
            Ok(("watermark(early = count(1))".into(), 0))
        );
        assert_eq!(
            ok(f(Some(60_000), Some(0), Some(3_600_000), None)),
            Ok((
                "watermark(early = after(1m), late = count(1))".into(),
                3_600_000
            ))
        );
        assert_eq!(
            ok(f(None, Some(10_000), None, Some(86_400_000))),
            Ok(("watermark(late = after(10s))".into(), 86_400_000))
        );
        assert!(ok(f(None, Some(0), None, None))
            .unwrap_err()
            .contains("allow-lateness"));
        assert!(ok(f(Some(-1), None, None, None))
            .unwrap_err()
            .contains("early-fire.delay"));
        // What it builds is a valid spec trigger.
        let (t, _) = f(Some(60_000), Some(0), Some(1), None)
            .to_trigger()
            .unwrap();
        let limits = TriggerLimits {
            min_processing_time_period_ms: 1_000,
        };
        assert_eq!(t.validate(&limits), Ok(()));
    }
}
