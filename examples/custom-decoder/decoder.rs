//! The binary layout `epoch ms (8 bytes, big-endian) | user length (1 byte) | user (UTF-8)
//! | amount (f64, 8 bytes, big-endian)`, decoded by a [`Decoder`] of our own. Shared by the
//! replay example (`main.rs`) and the consumer binary (`consumer.rs`).

use eventide_engine::codec::Decoder;
use eventide_engine::record::{Line, Record, Value};
use eventide_engine::RecordError;

/// Decodes the binary layout into the spec's fields, in `[input] fields` order
/// (alphabetical: `amount`, `user`).
pub struct Binary;

impl Decoder for Binary {
    fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError> {
        let short = |what: &str| RecordError::Field {
            field: what.into(),
            reason: format!("the record ends early ({} bytes)", raw.len()),
        };
        let (time, rest) = raw.split_first_chunk::<8>().ok_or_else(|| short("t"))?;
        let (&len, rest) = rest.split_first().ok_or_else(|| short("user"))?;
        let (user, rest) = rest
            .split_at_checked(usize::from(len))
            .ok_or_else(|| short("user"))?;
        let user = std::str::from_utf8(user).map_err(|_| RecordError::Field {
            field: "user".into(),
            reason: "not valid UTF-8".into(),
        })?;
        let amount = rest.first_chunk::<8>().ok_or_else(|| short("amount"))?;
        if rest.len() != 8 {
            return Err(RecordError::Field {
                field: "amount".into(),
                reason: format!("{} bytes after the amount", rest.len() - 8),
            });
        }
        Ok(Line::Event(Record {
            time: i64::from_be_bytes(*time),
            values: [
                Value::Num(f64::from_be_bytes(*amount)),
                Value::Str(user.into()),
            ]
            .into_iter()
            .collect(),
        }))
    }
}
