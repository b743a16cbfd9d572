//! Records: what a decoder ([`crate::codec`]) makes of the bytes of one input record.
//!
//! A [`Line`] is an event ([`Record`]: its event time and the declared fields in schema
//! order) or a TestStream-style control line. Strings borrow from the input where they can.

use std::borrow::Cow;

use smallvec::SmallVec;

/// A decoded field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
}

impl Value<'_> {
    /// The number, if this is one.
    #[inline]
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }
}

/// An event: its event time and the declared fields in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub time: i64,
    pub values: SmallVec<[Value<'a>; 4]>,
}

/// One input line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    Event(Record<'a>),
    AdvanceProcessingTime(i64),
    /// `i64::MAX` stands for "+inf".
    AdvanceWatermark(i64),
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}
