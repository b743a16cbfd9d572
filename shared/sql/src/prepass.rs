//! The pre-pass: the few pieces of Flink syntax that sqlparser does not parse, taken out of
//! the token stream before the parser sees it.
//!
//! It works on sqlparser's own tokens, each with its line and column, so every position
//! that the parser or the compiler reports is still a position in the user's text. It is
//! bounded (one linear scan) and recognises exactly these forms, nothing else:
//!
//! | Flink syntax | what the pre-pass does |
//! |---|---|
//! | `EXECUTE STATEMENT SET BEGIN … END;` and `BEGIN STATEMENT SET; … END;` | drops the wrapper (the statements inside are the pipeline's INSERTs either way) |
//! | `WATERMARK FOR ts AS <expr>` in a `CREATE TABLE` column list | removes it; `<expr>` is parsed by sqlparser and kept with the table |
//! | a computed column `ts AS <expr>` in a `CREATE TABLE` column list | the same |
//! | `TABLE t [PARTITION BY k \| PARTITION BY (k1, k2)]` as a function argument (window TVFs) | removes `TABLE` and the `PARTITION BY` clause, kept by the position of `t` |
//! | `CREATE CATALOG c WITH ('type' = 'glue', …);` | removes the statement and records the catalog ([`crate::catalog`]) |

use std::collections::HashMap;

use sqlparser::ast::Expr;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan};

use crate::dialect::FlinkDialect;
use crate::error::{SqlError, MAX_NESTING};

/// A computed column or a watermark declared in a `CREATE TABLE` column list.
#[derive(Debug, Clone)]
pub struct Computed {
    /// The column's name (for a watermark: the rowtime column it is declared for).
    pub name: String,
    pub name_span: Span,
    pub expr: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// What a `CREATE TABLE` column list declared besides its physical columns.
#[derive(Debug, Clone, Default)]
pub struct TableExtras {
    pub computed: Vec<Computed>,
    pub watermark: Option<Computed>,
}

/// A `TABLE t` function argument.
#[derive(Debug, Clone, Default)]
pub struct TableArg {
    /// `PARTITION BY` columns, each with its position.
    pub partition_by: Vec<(String, Span)>,
}

/// The pre-pass's result: the tokens for sqlparser and what was taken out.
#[derive(Debug, Default)]
pub struct Prepassed {
    pub tokens: Vec<TokenWithSpan>,
    /// By the table's name as written (unquoted).
    pub tables: HashMap<String, TableExtras>,
    /// By the start of the table name's token.
    pub table_args: HashMap<(u64, u64), TableArg>,
    /// `EXECUTE STATEMENT SET` or `BEGIN STATEMENT SET` was used.
    pub statement_set: bool,
    /// `CREATE CATALOG … WITH (…)` statements, taken out whole.
    pub catalogs: Vec<crate::catalog::Catalog>,
}

fn word_is(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

fn error_at(loc: Location, message: impl Into<String>) -> SqlError {
    SqlError::At {
        line: loc.line,
        column: loc.column,
        message: message.into(),
    }
}

/// Parses `tokens` as exactly one expression.
pub fn parse_expr(tokens: &[TokenWithSpan]) -> Result<Expr, SqlError> {
    let dialect = FlinkDialect::default();
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .with_tokens_with_locations(tokens.to_vec());
    let expr = parser.parse_expr().map_err(crate::error::parser_error)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(error_at(
            next.span.start,
            format!("unexpected `{}` after the expression", next.token),
        ));
    }
    Ok(expr)
}

/// Runs the pre-pass over the tokens of the whole text.
pub fn prepass(tokens: Vec<TokenWithSpan>) -> Result<Prepassed, SqlError> {
    let mut p = Pass {
        toks: tokens,
        out: Prepassed::default(),
    };
    p.run()?;
    Ok(p.out)
}

struct Pass {
    toks: Vec<TokenWithSpan>,
    out: Prepassed,
}

impl Pass {
    /// The index of the first non-whitespace token at or after `i`.
    fn sig(&self, mut i: usize) -> usize {
        while i < self.toks.len() && matches!(self.toks[i].token, Token::Whitespace(_)) {
            i += 1;
        }
        i
    }

    fn tok(&self, i: usize) -> &Token {
        self.toks.get(i).map(|t| &t.token).unwrap_or(&Token::EOF)
    }

    /// The significant tokens from `i` match `words`; returns the index after the last.
    fn words(&self, i: usize, words: &[&str]) -> Option<usize> {
        let mut j = i;
        for w in words {
            j = self.sig(j);
            if !word_is(self.tok(j), w) {
                return None;
            }
            j += 1;
        }
        Some(j)
    }

    fn run(&mut self) -> Result<(), SqlError> {
        let mut kept: Vec<TokenWithSpan> = Vec::with_capacity(self.toks.len());
        let mut i = 0;
        let mut depth = 0usize;
        let mut stmt_start = true;
        let mut in_set: Option<Location> = None;
        while i < self.toks.len() {
            let t = self.toks[i].clone();
            if matches!(t.token, Token::Whitespace(_)) {
                kept.push(t);
                i += 1;
                continue;
            }
            if stmt_start && depth == 0 {
                if let Some(j) = self.words(i, &["EXECUTE", "STATEMENT", "SET", "BEGIN"]) {
                    in_set = Some(t.span.start);
                    self.out.statement_set = true;
                    i = j;
                    continue;
                }
                if let Some(j) = self.words(i, &["BEGIN", "STATEMENT", "SET"]) {
                    in_set = Some(t.span.start);
                    self.out.statement_set = true;
                    let k = self.sig(j);
                    i = if *self.tok(k) == Token::SemiColon {
                        k + 1
                    } else {
                        j
                    };
                    continue;
                }
                if in_set.is_some() && word_is(&t.token, "END") {
                    in_set = None;
                    let k = self.sig(i + 1);
                    i = if *self.tok(k) == Token::SemiColon {
                        k + 1
                    } else {
                        i + 1
                    };
                    continue;
                }
                if let Some(j) = self.words(i, &["CREATE", "CATALOG"]) {
                    i = self.create_catalog(t.span, j)?;
                    continue;
                }
                let create = self
                    .words(i, &["CREATE", "TABLE"])
                    .or_else(|| self.words(i, &["CREATE", "TEMPORARY", "TABLE"]));
                if let Some(j) = create {
                    i = self.create_table(i, j, &mut kept)?;
                    stmt_start = false;
                    continue;
                }
            }
            stmt_start = false;
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                Token::SemiColon if depth == 0 => stmt_start = true,
                _ => {}
            }
            if depth > 0 && word_is(&t.token, "TABLE") {
                let prev = kept
                    .iter()
                    .rev()
                    .find(|k| !matches!(k.token, Token::Whitespace(_)))
                    .map(|k| &k.token);
                if matches!(prev, Some(Token::LParen | Token::Comma | Token::RArrow)) {
                    i = self.table_arg(i + 1, &mut kept)?;
                    continue;
                }
            }
            kept.push(t);
            i += 1;
        }
        if let Some(at) = in_set {
            return Err(error_at(
                at,
                "the statement set is not closed: end it with END;",
            ));
        }
        self.out.tokens = kept;
        Ok(())
    }

    /// `TABLE t [PARTITION BY k | PARTITION BY (k, …)]` from `i` (after `TABLE`): keeps
    /// `t`, records the partition columns. Returns the index after the clause.
    fn table_arg(&mut self, i: usize, kept: &mut Vec<TokenWithSpan>) -> Result<usize, SqlError> {
        let n = self.sig(i);
        let name = match self.toks.get(n) {
            Some(
                t @ TokenWithSpan {
                    token: Token::Word(_),
                    ..
                },
            ) => t.clone(),
            Some(t) => return Err(error_at(t.span.start, "expected a table name after TABLE")),
            None => return Err(SqlError::Other("expected a table name after TABLE".into())),
        };
        let key = (name.span.start.line, name.span.start.column);
        kept.push(name);
        let mut arg = TableArg::default();
        let mut next = n + 1;
        if let Some(j) = self.words(next, &["PARTITION", "BY"]) {
            let k = self.sig(j);
            let cols: Vec<usize> = if *self.tok(k) == Token::LParen {
                let mut cols = Vec::new();
                let mut m = k + 1;
                loop {
                    m = self.sig(m);
                    match self.tok(m) {
                        Token::Word(_) => cols.push(m),
                        _ => {
                            return Err(error_at(
                                self.loc(m),
                                "expected a column in PARTITION BY ( … )",
                            ))
                        }
                    }
                    m = self.sig(m + 1);
                    match self.tok(m) {
                        Token::Comma => m += 1,
                        Token::RParen => break,
                        _ => {
                            return Err(error_at(
                                self.loc(m),
                                "expected `,` or `)` in PARTITION BY ( … )",
                            ))
                        }
                    }
                }
                next = m + 1;
                cols
            } else if matches!(self.tok(k), Token::Word(_)) {
                next = k + 1;
                vec![k]
            } else {
                return Err(error_at(
                    self.loc(k),
                    "expected a column after PARTITION BY",
                ));
            };
            for c in cols {
                if let Token::Word(w) = &self.toks[c].token {
                    arg.partition_by.push((w.value.clone(), self.toks[c].span));
                }
            }
        }
        self.out.table_args.insert(key, arg);
        Ok(next)
    }

    /// `CREATE CATALOG` from `j` (after `CATALOG`) to its `;`: records the catalog. Returns
    /// the index after the statement.
    fn create_catalog(&mut self, create: Span, j: usize) -> Result<usize, SqlError> {
        let sig: Vec<usize> = (j..self.toks.len())
            .filter(|&k| !matches!(self.toks[k].token, Token::Whitespace(_)))
            .collect();
        let refs: Vec<&TokenWithSpan> = sig.iter().map(|&k| &self.toks[k]).collect();
        let (catalog, n) = crate::catalog::parse_create_catalog(&refs, create)?;
        if self.out.catalogs.iter().any(|c| c.name == catalog.name) {
            return Err(error_at(
                create.start,
                format!("catalog `{}` is declared twice", catalog.name),
            ));
        }
        self.out.catalogs.push(catalog);
        Ok(match n.checked_sub(1).and_then(|last| sig.get(last)) {
            Some(&k) => k + 1,
            None => j,
        })
    }

    fn loc(&self, i: usize) -> Location {
        self.toks
            .get(i)
            .or(self.toks.last())
            .map(|t| t.span.start)
            .unwrap_or(Location { line: 0, column: 0 })
    }

    /// A `CREATE [TEMPORARY] TABLE` from `start`; `j` is after `TABLE`. Copies the statement's
    /// head and its column list without computed columns and watermarks, which it records.
    /// Returns the index after the column list (or where the list would start).
    fn create_table(
        &mut self,
        start: usize,
        j: usize,
        kept: &mut Vec<TokenWithSpan>,
    ) -> Result<usize, SqlError> {
        let mut j = j;
        if let Some(k) = self.words(j, &["IF", "NOT", "EXISTS"]) {
            j = k;
        }
        let n = self.sig(j);
        let name = match self.tok(n) {
            Token::Word(w) => w.value.clone(),
            _ => return Ok(self.copy(start, n, kept)),
        };
        let open = self.sig(n + 1);
        if *self.tok(open) != Token::LParen {
            return Ok(self.copy(start, open, kept));
        }
        self.copy(start, open + 1, kept);
        // Split the column list at commas of depth 0.
        let mut elements: Vec<(usize, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut k = open + 1;
        let mut el_start = k;
        let close = loop {
            match self.toks.get(k).map(|t| &t.token) {
                None | Some(Token::EOF) => {
                    return Err(error_at(
                        self.toks[open].span.start,
                        "the column list of CREATE TABLE is not closed",
                    ))
                }
                Some(Token::LParen) => depth += 1,
                Some(Token::RParen) if depth == 0 => {
                    elements.push((el_start, k));
                    break k;
                }
                Some(Token::RParen) => depth -= 1,
                Some(Token::Comma) if depth == 0 => {
                    elements.push((el_start, k));
                    el_start = k + 1;
                }
                _ => {}
            }
            k += 1;
        };
        let mut extras = TableExtras::default();
        let mut first = true;
        for (a, b) in elements {
            let s = self.sig(a);
            let decl_span = self.span(s, b);
            if let Some(after_for) = self.words(s, &["WATERMARK", "FOR"]) {
                let c = self.sig(after_for);
                let as_kw = self.sig(c + 1);
                if !matches!(self.tok(c), Token::Word(_)) || !word_is(self.tok(as_kw), "AS") {
                    return Err(error_at(
                        self.loc(c),
                        "expected WATERMARK FOR <column> AS <expression>",
                    ));
                }
                let expr = parse_expr(&self.toks[as_kw + 1..b])?;
                if extras.watermark.is_some() {
                    return Err(error_at(self.loc(s), "a table has at most one WATERMARK"));
                }
                extras.watermark = Some(self.computed(c, expr, decl_span));
                continue;
            }
            let second = self.sig(s + 1);
            if matches!(self.tok(s), Token::Word(_))
                && second < b
                && word_is(self.tok(second), "AS")
            {
                let expr = parse_expr(&self.toks[second + 1..b])?;
                extras.computed.push(self.computed(s, expr, decl_span));
                continue;
            }
            if !first {
                kept.push(TokenWithSpan {
                    token: Token::Comma,
                    span: self.toks[a.saturating_sub(1)].span,
                });
            }
            first = false;
            kept.extend(self.toks[a..b].iter().cloned());
        }
        kept.push(self.toks[close].clone());
        self.out.tables.insert(name, extras);
        Ok(close + 1)
    }

    fn computed(&self, name_at: usize, expr: Expr, span: Span) -> Computed {
        let (name, name_span) = match &self.toks[name_at].token {
            Token::Word(w) => (w.value.clone(), self.toks[name_at].span),
            _ => (String::new(), self.toks[name_at].span),
        };
        Computed {
            name,
            name_span,
            expr,
            span,
        }
    }

    fn span(&self, a: usize, b: usize) -> Span {
        let start = self.loc(a);
        let end = self
            .toks
            .get(b.saturating_sub(1))
            .map(|t| t.span.end)
            .unwrap_or(start);
        Span::new(start, end)
    }

    /// Copies tokens `[a, b)` and returns `b`.
    fn copy(&self, a: usize, b: usize, kept: &mut Vec<TokenWithSpan>) -> usize {
        kept.extend(self.toks[a..b.min(self.toks.len())].iter().cloned());
        b
    }
}
