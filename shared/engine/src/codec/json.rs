//! JSON objects, one per record (or per line of a file), decoded against the input schema.
//!
//! Only the fields a pipeline declares are decoded; strings are borrowed from the input
//! when they contain no escapes, so decoding a record allocates nothing. A record is an
//! event or a control line in the style of Beam's TestStream:
//! `{"advance_processing_time": <epoch ms>}` or `{"advance_watermark": <epoch ms> | "+inf"}`.
//! A record is a control line only if it is exactly such an object (one key); an event that
//! also carries a control key is an event, so no record is lost by its shape. A key of the
//! schema (or the time field) that appears twice rejects the record, since which copy won
//! would otherwise be an accident of the decoder. Nesting is bounded by serde_json's
//! recursion limit (128), so a hostile record is an error, never a stack overflow.
//!
//! ```
//! use eventide_engine::codec::json::Schema;
//! use eventide_engine::record::{Line, Value};
//! use eventide_engine::spec::{FieldType, InputSpec, TimeFormat};
//! let schema = Schema::new(&InputSpec {
//!     fields: vec![("user".into(), FieldType::String)],
//!     time_field: "ts".into(),
//!     time_format: TimeFormat::Rfc3339,
//!     partition: None,
//! });
//! match schema.parse_line(br#"{"user":"ann","ts":"2026-01-01T00:00:01.5Z","other":[1,2]}"#).unwrap() {
//!     Line::Event(r) => {
//!         assert_eq!(r.time, 1_767_225_601_500);
//!         assert_eq!(r.values[0], Value::Str("ann".into()));
//!     }
//!     _ => unreachable!(),
//! }
//! assert!(schema.parse_line(br#"{"user":"ann"}"#).unwrap_err().to_string().contains("`ts`"));
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use smallvec::SmallVec;

use crate::error::RecordError;
use crate::record::{parse_rfc3339, Line, Record, Value};
use crate::spec::schema::{FieldType, InputSpec, TimeFormat};
use crate::watermark::WM_MAX;

/// The compiled input schema.
#[derive(Debug, Clone)]
pub struct Schema {
    names: Vec<String>,
    types: Vec<FieldType>,
    time_field: String,
    time_format: TimeFormat,
}

/// What a key of a record's JSON object holds.
#[derive(Clone, Copy)]
enum KeyRole {
    Field(usize),
    Time,
    AdvanceProcessingTime,
    AdvanceWatermark,
    Ignore,
}

impl Schema {
    /// Compiles the schema of a pipeline's input.
    pub fn new(input: &InputSpec) -> Self {
        Schema {
            names: input.fields.iter().map(|(n, _)| n.clone()).collect(),
            types: input.fields.iter().map(|(_, t)| *t).collect(),
            time_field: input.time_field.clone(),
            time_format: input.time_format,
        }
    }

    /// Decodes one JSON line.
    pub fn parse_line<'a>(&self, line: &'a [u8]) -> Result<Line<'a>, RecordError> {
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = LineSeed(self)
            .deserialize(&mut de)
            .map_err(|e| classify(e, self))?;
        de.end().map_err(|e| RecordError::Json(e.to_string()))?;
        parsed
    }

    fn role(&self, key: &str) -> KeyRole {
        if let Some(i) = self.names.iter().position(|n| n == key) {
            return KeyRole::Field(i);
        }
        if key == self.time_field {
            return KeyRole::Time;
        }
        match key {
            "advance_processing_time" => KeyRole::AdvanceProcessingTime,
            "advance_watermark" => KeyRole::AdvanceWatermark,
            _ => KeyRole::Ignore,
        }
    }
}

/// serde_json reports our field errors as custom messages; keep them as field errors.
fn classify(e: serde_json::Error, _s: &Schema) -> RecordError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("field `") {
        if let Some((field, reason)) = rest.split_once("`: ") {
            let reason = reason.rsplit_once(" at line ").map_or(reason, |(r, _)| r);
            return RecordError::Field {
                field: field.to_string(),
                reason: reason.to_string(),
            };
        }
    }
    RecordError::Json(msg)
}

struct LineSeed<'s>(&'s Schema);

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = Result<Line<'de>, RecordError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = Result<Line<'de>, RecordError>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let s = self.0;
        let mut values: SmallVec<[Value<'de>; 4]> = SmallVec::from_elem(Value::Null, s.names.len());
        let mut time: Option<i64> = None;
        // A control key's value, kept raw: the line is a control line only if that key is
        // its only key (an event that also carries such a key stays an event).
        let mut control: Option<(KeyRole, serde_json::Value)> = None;
        let mut keys = 0usize;
        // Which declared fields (and the time field) were seen: a duplicated key would make
        // the record's value depend on which copy wins, so the record is refused instead.
        let mut seen: SmallVec<[bool; 8]> = SmallVec::from_elem(false, s.names.len());
        let mut time_seen = false;
        let mut dup: Option<String> = None;
        while let Some(role) = map.next_key_seed(KeySeed(s))? {
            keys += 1;
            match role {
                KeyRole::Field(i) => {
                    if std::mem::replace(&mut seen[i], true) {
                        dup.get_or_insert_with(|| s.names[i].clone());
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    values[i] = map.next_value_seed(FieldSeed {
                        ty: s.types[i],
                        name: &s.names[i],
                    })?;
                }
                KeyRole::Time => {
                    if std::mem::replace(&mut time_seen, true) {
                        dup.get_or_insert_with(|| s.time_field.clone());
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    time = Some(map.next_value_seed(TimeSeed {
                        format: s.time_format,
                        name: &s.time_field,
                    })?);
                }
                KeyRole::AdvanceProcessingTime | KeyRole::AdvanceWatermark => {
                    let v = map.next_value::<serde_json::Value>()?;
                    control = Some((role, v));
                }
                KeyRole::Ignore => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(field) = dup {
            return Ok(Err(RecordError::Field {
                field,
                reason: "the key appears more than once in the object".into(),
            }));
        }
        if keys == 1 {
            if let Some((role, v)) = control {
                return Ok(match role {
                    KeyRole::AdvanceWatermark => WatermarkSeed
                        .deserialize(v)
                        .map(Line::AdvanceWatermark)
                        .map_err(|e| classify(e, s)),
                    _ => TimeSeed {
                        format: TimeFormat::EpochMs,
                        name: "advance_processing_time",
                    }
                    .deserialize(v)
                    .map(Line::AdvanceProcessingTime)
                    .map_err(|e| classify(e, s)),
                });
            }
        }
        Ok(match time {
            Some(time) => Ok(Line::Event(Record { time, values })),
            None => Err(RecordError::Missing(s.time_field.clone())),
        })
    }
}

struct KeySeed<'s>(&'s Schema);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = KeyRole;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyRole, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = KeyRole;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyRole, E> {
        Ok(self.0.role(v))
    }
}

struct FieldSeed<'s> {
    ty: FieldType,
    name: &'s str,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl FieldSeed<'_> {
    fn wrong<E: de::Error>(&self, got: &str) -> E {
        E::custom(format_args!(
            "field `{}`: expected a {}, got {got}",
            self.name,
            type_name(self.ty)
        ))
    }
}

pub(crate) fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::String => "string",
        FieldType::Number => "number",
        FieldType::Bool => "bool",
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Value<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {}", type_name(self.ty))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        match self.ty {
            FieldType::String => Ok(Value::Str(Cow::Borrowed(v))),
            _ => Err(self.wrong("a string")),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        match self.ty {
            FieldType::String => Ok(Value::Str(Cow::Owned(v.to_owned()))),
            _ => Err(self.wrong("a string")),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'de>, E> {
        match self.ty {
            FieldType::Number => Ok(Value::Num(v)),
            _ => Err(self.wrong("a number")),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'de>, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        self.visit_f64(v as f64)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value<'de>, E> {
        match self.ty {
            FieldType::Bool => Ok(Value::Bool(v)),
            _ => Err(self.wrong("a bool")),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, _m: A) -> Result<Value<'de>, A::Error> {
        Err(self.wrong("an object"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _s: A) -> Result<Value<'de>, A::Error> {
        Err(self.wrong("an array"))
    }
}

struct TimeSeed<'s> {
    format: TimeFormat,
    name: &'s str,
}

impl<'de> DeserializeSeed<'de> for TimeSeed<'_> {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed<'_> {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        match self.format {
            TimeFormat::EpochMs => Ok(v),
            TimeFormat::Rfc3339 => Err(E::custom(format_args!(
                "field `{}`: expected an RFC 3339 string, got a number",
                self.name
            ))),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        let v = i64::try_from(v).map_err(|_| {
            E::custom(format_args!(
                "field `{}`: timestamp out of range",
                self.name
            ))
        })?;
        self.visit_i64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            self.visit_i64(v as i64)
        } else {
            Err(E::custom(format_args!(
                "field `{}`: expected whole epoch milliseconds, got {v}",
                self.name
            )))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        match self.format {
            TimeFormat::Rfc3339 => parse_rfc3339(v).ok_or_else(|| {
                E::custom(format_args!(
                    "field `{}`: {v:?} is not an RFC 3339 timestamp",
                    self.name
                ))
            }),
            TimeFormat::EpochMs => Err(E::custom(format_args!(
                "field `{}`: expected epoch milliseconds, got a string",
                self.name
            ))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
        Err(E::custom(format_args!(
            "field `{}`: the event time is null",
            self.name
        )))
    }
}

struct WatermarkSeed;

impl<'de> DeserializeSeed<'de> for WatermarkSeed {
    type Value = i64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WatermarkSeed {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("epoch milliseconds or \"+inf\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        // Out of range is an error, like an out-of-range `event_time`, not a silent "+inf".
        i64::try_from(v).map_err(|_| {
            E::custom("field `advance_watermark`: timestamp out of range (use \"+inf\")")
        })
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<i64, E> {
        Err(E::custom(
            "field `advance_watermark`: expected whole epoch milliseconds or \"+inf\"",
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        match v {
            "+inf" | "inf" | "+Infinity" => Ok(WM_MAX),
            _ => Err(E::custom(
                "field `advance_watermark`: expected epoch milliseconds or \"+inf\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new(&InputSpec {
            fields: vec![
                ("k".into(), FieldType::String),
                ("v".into(), FieldType::Number),
            ],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        })
    }

    #[test]
    fn decodes_events_and_controls() {
        let s = schema();
        let l = s
            .parse_line(br#"{"k":"a\"b","v":3,"t":10,"extra":{"x":[1]}}"#)
            .unwrap();
        assert_eq!(
            l,
            Line::Event(Record {
                time: 10,
                values: smallvec::smallvec![Value::Str("a\"b".into()), Value::Num(3.0)]
            })
        );
        assert_eq!(
            s.parse_line(br#"{"advance_watermark":"+inf"}"#).unwrap(),
            Line::AdvanceWatermark(WM_MAX)
        );
        assert_eq!(
            s.parse_line(br#"{"advance_processing_time":5}"#).unwrap(),
            Line::AdvanceProcessingTime(5)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let s = schema();
        let e = s.parse_line(br#"{"k":"a","v":"oops","t":1}"#).unwrap_err();
        assert_eq!(
            e,
            RecordError::Field {
                field: "v".into(),
                reason: "expected a number, got a string".into()
            }
        );
        assert_eq!(
            s.parse_line(br#"{"k":"a"}"#).unwrap_err(),
            RecordError::Missing("t".into())
        );
        assert!(matches!(
            s.parse_line(b"{not json").unwrap_err(),
            RecordError::Json(_)
        ));
        assert!(matches!(
            s.parse_line(br#"{"k":"a","t":1} trailing"#).unwrap_err(),
            RecordError::Json(_)
        ));
    }

    /// Issue 10: a line is a control line only if it is exactly a control object; an event
    /// that also carries a control key is an event, never silently taken as control.
    #[test]
    fn control_keys_inside_an_event_leave_it_an_event() {
        let s = schema();
        let Line::Event(r) = s
            .parse_line(br#"{"k":"a","v":1,"t":7,"advance_watermark":"+inf"}"#)
            .unwrap()
        else {
            panic!("not an event")
        };
        assert_eq!(r.time, 7);
        assert!(matches!(
            s.parse_line(br#"{"advance_processing_time":9,"t":3}"#)
                .unwrap(),
            Line::Event(Record { time: 3, .. })
        ));
        // Without an event time, it is a dead letter with a reason, not a control line.
        assert_eq!(
            s.parse_line(br#"{"advance_watermark":5,"k":"a"}"#)
                .unwrap_err(),
            RecordError::Missing("t".into())
        );
        // Two control keys are not a control line either.
        assert!(s
            .parse_line(br#"{"advance_watermark":5,"advance_processing_time":5}"#)
            .is_err());
        // An invalid control key in an event does not spoil the event.
        assert!(s
            .parse_line(br#"{"k":"a","t":1,"advance_watermark":[1]}"#)
            .is_ok());
    }

    #[test]
    fn duplicated_keys_reject_the_record() {
        let s = schema();
        for (line, field) in [
            (&br#"{"k":"a","k":"b","t":1}"#[..], "k"),
            (br#"{"k":"a","t":1,"t":2}"#, "t"),
            (br#"{"v":1,"k":"a","t":1,"v":2,"x":{"y":1}}"#, "v"),
        ] {
            assert_eq!(
                s.parse_line(line).unwrap_err(),
                RecordError::Field {
                    field: field.into(),
                    reason: "the key appears more than once in the object".into()
                }
            );
        }
    }

    #[test]
    fn out_of_range_watermarks_are_errors() {
        let s = schema();
        for line in [
            &br#"{"advance_watermark":18446744073709551615}"#[..],
            br#"{"advance_watermark":9223372036854775808}"#,
            br#"{"advance_watermark":1e300}"#,
            br#"{"advance_watermark":"soon"}"#,
        ] {
            assert!(
                matches!(s.parse_line(line), Err(RecordError::Field { ref field, .. }) if field == "advance_watermark"),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            s.parse_line(br#"{"advance_watermark":9223372036854775807}"#)
                .unwrap(),
            Line::AdvanceWatermark(i64::MAX)
        );
    }
}
