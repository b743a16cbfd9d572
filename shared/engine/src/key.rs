//! Group keys: a record's group-by values as one string that no other list of values gives.
//!
//! State, pane ids, sinks and `eventide results` all name a key by this string, so two keys
//! that met in it would be merged into one group. The values are joined by [`SEP`]
//! (U+001F); inside a value, U+001B (escape) and U+001F are escaped, and a null value is
//! written as escape + `0`, which no escaped string is. So `["a\u{1f}b"]` and `["a", "b"]`,
//! or a missing field and `""`, are different keys. Keys whose values hold neither
//! character, nearly all of them, are just their values joined by U+001F.
//!
//! ```
//! use eventide_engine::key::{self, Part};
//! use eventide_engine::record::Value;
//! let mut a = String::new();
//! key::push(&mut a, &Value::Str("a\u{1f}b".into()));
//! let mut b = String::new();
//! key::push(&mut b, &Value::Str("a".into()));
//! key::push_sep(&mut b);
//! key::push(&mut b, &Value::Str("b".into()));
//! assert_ne!(a, b);
//! assert_eq!(key::parts(&a).collect::<Vec<_>>(), vec![Some("a\u{1f}b".into())]);
//! let mut null = String::new();
//! key::push(&mut null, &Value::Null);
//! assert_ne!(null, "");
//! assert_eq!(key::parts(&null).collect::<Vec<Part<'_>>>(), vec![None]);
//! ```

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::record::{Record, Value};

/// Separator of the values inside a key.
pub const SEP: char = '\u{1f}';
/// Starts an escape inside a value.
const ESC: char = '\u{1b}';
/// A null value.
const NULL: &str = "\u{1b}0";

/// One value of a key: `None` for null.
pub type Part<'a> = Option<Cow<'a, str>>;

/// Appends the separator before every value but the first.
pub fn push_sep(buf: &mut String) {
    buf.push(SEP);
}

/// Appends a text value, escaped.
pub fn push_str(buf: &mut String, s: &str) {
    if is_plain(s) {
        buf.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            ESC => buf.extend([ESC, ESC]),
            SEP => buf.extend([ESC, '/']),
            c => buf.push(c),
        }
    }
}

/// True when a text is its own encoding (holds no character that needs escaping), so that
/// a one-value key can be looked up without copying it.
pub fn is_plain(s: &str) -> bool {
    !s.contains([SEP, ESC])
}

/// Appends a null value.
pub fn push_null(buf: &mut String) {
    buf.push_str(NULL);
}

/// Appends a record value (numbers as Rust prints them, booleans as `true`/`false`).
pub fn push(buf: &mut String, v: &Value<'_>) {
    use std::fmt::Write;
    match v {
        Value::Str(s) => push_str(buf, s),
        Value::Num(n) => {
            let _ = write!(buf, "{n}");
        }
        Value::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
        Value::Null => push_null(buf),
    }
}

/// Encodes the group-by `fields` of a record as one key into `buf` (cleared first): the
/// key of an aggregation or of a rule.
#[inline]
pub(crate) fn encode_key(buf: &mut String, fields: &[usize], rec: &Record<'_>) {
    buf.clear();
    for (j, &f) in fields.iter().enumerate() {
        if j > 0 {
            push_sep(buf);
        }
        push(buf, &rec.values[f]);
    }
}

/// The key of these values (`None` for null).
pub fn join<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut buf = String::new();
    for (i, p) in parts.into_iter().enumerate() {
        if i > 0 {
            push_sep(&mut buf);
        }
        match p {
            Some(s) => push_str(&mut buf, s),
            None => push_null(&mut buf),
        }
    }
    buf
}

/// The values of a key, unescaped; `None` for null.
pub fn parts(key: &str) -> impl Iterator<Item = Part<'_>> {
    key.split(SEP).map(part)
}

/// One escaped value, unescaped.
fn part(p: &str) -> Part<'_> {
    if p == NULL {
        return None;
    }
    if !p.contains(ESC) {
        return Some(Cow::Borrowed(p));
    }
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match (c, c == ESC) {
            (_, true) => match chars.next() {
                Some('/') => out.push(SEP),
                Some(ESC) => out.push(ESC),
                // Not written by this module: kept as it is.
                Some(other) => out.extend([ESC, other]),
                None => out.push(ESC),
            },
            (c, false) => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// The order in which key-ordered sinks write keys: value by value, as text (a null value
/// first), the same order for every execution of a replay.
pub fn cmp(a: &str, b: &str) -> Ordering {
    a.split(SEP).cmp(b.split(SEP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(values: &[Option<String>]) -> String {
        join(values.iter().map(Option::as_deref))
    }

    proptest! {
        /// Distinct lists of values (of one length, as one group-by gives) never share a
        /// key, and every key gives its values back.
        #[test]
        fn distinct_values_never_meet(
            a in proptest::collection::vec(proptest::option::of("[a\u{1b}\u{1f}0/]{0,4}"), 1..4),
            b in proptest::collection::vec(proptest::option::of("[a\u{1b}\u{1f}0/]{0,4}"), 1..4),
        ) {
            let (ka, kb) = (encode(&a), encode(&b));
            if a.len() == b.len() {
                prop_assert_eq!(a == b, ka == kb, "{:?} {:?} -> {:?} {:?}", a, b, ka, kb);
            }
            let back: Vec<Option<String>> = parts(&ka).map(|p| p.map(Cow::into_owned)).collect();
            prop_assert_eq!(back, a);
        }
    }

    #[test]
    fn plain_values_are_joined_as_they_are() {
        assert_eq!(join([Some("s1"), Some("x")]), "s1\u{1f}x");
        assert_eq!(join([None, Some("")]), "\u{1b}0\u{1f}");
        assert_eq!(join([Some("\u{1b}0")]), "\u{1b}\u{1b}0");
    }
}
