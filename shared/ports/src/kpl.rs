//! KPL de-aggregation: the user records packed into one Kinesis record by the Kinesis
//! Producer Library (and AWS Labs' `aws-kinesis-agg` libraries).
//!
//! Most high-volume producers aggregate: one Kinesis record carries many user records as
//! the 4-byte magic number `F3 89 9A C2`, a protobuf `AggregatedRecord` (a table of
//! partition keys, a table of explicit hash keys, and the records, each naming its keys by
//! index) and the MD5 of the protobuf bytes. The KCL de-aggregates; Lambda's event source
//! mapping does not. Eventide does it once, where records enter the consumer: every
//! [`ShardSource`](crate::source::ShardSource) (GetRecords polling, the in-memory stream)
//! and the Lambda handler pass what they read through [`deaggregate`], so the shard
//! consumer only ever sees user records.
//!
//! - A record without the magic number is a plain record and passes unchanged.
//! - Each user record keeps the Kinesis record's sequence number and gets its index in the
//!   aggregate as [`InputRecord::sub_sequence_number`]: its position is (sequence number,
//!   sub-sequence number), so a batch redelivered in the middle of an aggregate counts each
//!   user record once. It carries its own partition key.
//! - A corrupt aggregate (magic number but too short, a digest that does not match, a
//!   protobuf that does not decode, a key index outside its table, no user records, more
//!   user records than [`DEFAULT_MAX_RECORDS`]) is passed on whole with
//!   [`InputRecord::malformed`] set to the reason, naming the shard and sequence number;
//!   the consumer sets it aside as a dead letter with its original bytes, and the shard
//!   keeps moving.
//!
//! Decoding is bounded: the user records are counted (by decoding the message with a
//! field-less record type, which allocates nothing per record) before any is built, so a
//! hostile aggregate costs at most `max_records` records of memory. Record tags are not
//! decoded (Eventide has no use for them).
//!
//! ```
//! use eventide_ports::kpl::{aggregate, deaggregate, DEFAULT_MAX_RECORDS};
//! use eventide_ports::source::InputRecord;
//!
//! let data = aggregate(&[("k1", b"{\"a\":1}".as_slice()), ("k2", b"{\"a\":2}".as_slice())]);
//! let mut out = Vec::new();
//! deaggregate("shardId-0", InputRecord::new("49", "k1", data, None), DEFAULT_MAX_RECORDS, &mut out);
//! assert_eq!(out.len(), 2);
//! assert_eq!((out[1].partition_key.as_str(), out[1].data.as_slice()), ("k2", b"{\"a\":2}".as_slice()));
//! assert_eq!(out[1].position(), "49:1");
//! ```

use md5::{Digest, Md5};
use prost::Message;
use thiserror::Error;

use crate::source::InputRecord;

/// The first four bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The MD5 trailer's length.
const DIGEST_LEN: usize = 16;

/// The most user records one aggregated record may carry by default. A 1 MiB record of
/// the smallest possible user records holds about 175,000; real producers pack hundreds
/// to a few thousand. The consumer's `--kpl-max-records` (`EVENTIDE_KPL_MAX_RECORDS`)
/// raises it.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// The protobuf message of an aggregated record (the KPL's `messages.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

/// One user record. Its tags (field 4) are skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct Record {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
}

/// [`AggregatedRecord`] with records of no fields: decoding it counts the user records
/// without building them (a `Vec` of a zero-sized type never allocates).
#[derive(Clone, PartialEq, prost::Message)]
struct Count {
    #[prost(message, repeated, tag = "3")]
    records: Vec<Nothing>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Nothing {}

/// Why an aggregated record cannot be de-aggregated.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KplError {
    /// The magic number, then fewer bytes than the MD5 trailer.
    #[error("{len} bytes: too short for the magic number and the 16-byte MD5 trailer")]
    TooShort { len: usize },
    /// The trailer is not the MD5 of the protobuf bytes.
    #[error("the MD5 trailer does not match the {len} protobuf bytes")]
    BadDigest { len: usize },
    /// The protobuf bytes are not an `AggregatedRecord`.
    #[error("the protobuf message does not decode: {0}")]
    Protobuf(String),
    /// More user records than the bound.
    #[error("{count} user records, above the limit of {max} (--kpl-max-records or EVENTIDE_KPL_MAX_RECORDS raises it)")]
    TooManyRecords { count: usize, max: usize },
    /// An aggregate that holds nothing: no producer writes one.
    #[error("no user records")]
    Empty,
    /// A user record names a partition key that the table does not have.
    #[error(
        "user record {index}: partition key index {key_index} is outside the table of {table} keys"
    )]
    PartitionKeyIndex {
        index: usize,
        key_index: u64,
        table: usize,
    },
    /// A user record names an explicit hash key that the table does not have.
    #[error("user record {index}: explicit hash key index {key_index} is outside the table of {table} keys")]
    ExplicitHashKeyIndex {
        index: usize,
        key_index: u64,
        table: usize,
    },
}

/// One user record of an aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Its own partition key.
    pub partition_key: String,
    /// The explicit hash key it was put with, if any (a decimal 128-bit number).
    pub explicit_hash_key: Option<String>,
    /// Its payload.
    pub data: Vec<u8>,
}

/// Whether `data` is framed as an aggregated record (starts with [`MAGIC`]).
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// The user records of `data`: `Ok(None)` for a plain record (no magic number), the user
/// records in order for an aggregated one.
///
/// # Errors
/// A corrupt aggregate (see [`KplError`]), or more than `max_records` user records.
pub fn decode(data: &[u8], max_records: usize) -> Result<Option<Vec<UserRecord>>, KplError> {
    if !is_aggregated(data) {
        return Ok(None);
    }
    let body = &data[MAGIC.len()..];
    let Some(split) = body.len().checked_sub(DIGEST_LEN) else {
        return Err(KplError::TooShort { len: data.len() });
    };
    let (message, digest) = body.split_at(split);
    if Md5::digest(message).as_slice() != digest {
        return Err(KplError::BadDigest { len: message.len() });
    }
    let count = Count::decode(message)
        .map_err(|e| KplError::Protobuf(e.to_string()))?
        .records
        .len();
    if count > max_records {
        return Err(KplError::TooManyRecords {
            count,
            max: max_records,
        });
    }
    if count == 0 {
        return Err(KplError::Empty);
    }
    let agg = AggregatedRecord::decode(message).map_err(|e| KplError::Protobuf(e.to_string()))?;
    let keys = &agg.partition_key_table;
    let hashes = &agg.explicit_hash_key_table;
    let mut out = Vec::with_capacity(agg.records.len());
    for (index, r) in agg.records.into_iter().enumerate() {
        let partition_key = usize::try_from(r.partition_key_index)
            .ok()
            .and_then(|i| keys.get(i))
            .ok_or(KplError::PartitionKeyIndex {
                index,
                key_index: r.partition_key_index,
                table: keys.len(),
            })?
            .clone();
        let explicit_hash_key = match r.explicit_hash_key_index {
            None => None,
            Some(k) => Some(
                usize::try_from(k)
                    .ok()
                    .and_then(|i| hashes.get(i))
                    .ok_or(KplError::ExplicitHashKeyIndex {
                        index,
                        key_index: k,
                        table: hashes.len(),
                    })?
                    .clone(),
            ),
        };
        out.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data: r.data,
        });
    }
    Ok(Some(out))
}

/// Appends to `out` what the consumer sees of Kinesis record `record` of `shard`: the record
/// itself when it is plain; its user records when it is an aggregate (each with the record's
/// sequence number and arrival time, its index as sub-sequence number and its own partition
/// key); the record itself marked [`InputRecord::malformed`] when it is a corrupt aggregate.
///
/// ```
/// use eventide_ports::kpl::{deaggregate, MAGIC, DEFAULT_MAX_RECORDS};
/// use eventide_ports::source::InputRecord;
///
/// let mut out = Vec::new();
/// deaggregate("shardId-0", InputRecord::new("7", "k", b"{}".to_vec(), None), DEFAULT_MAX_RECORDS, &mut out);
/// let bad = [MAGIC.as_slice(), &[0u8; 20]].concat();
/// deaggregate("shardId-0", InputRecord::new("8", "k", bad.clone(), None), DEFAULT_MAX_RECORDS, &mut out);
/// assert_eq!(out[0].malformed, None);
/// assert!(out[1].malformed.as_deref().is_some_and(|m| m.contains("sequence number 8") && m.contains("MD5")));
/// assert_eq!(out[1].data, bad);
/// ```
pub fn deaggregate(
    shard: &str,
    mut record: InputRecord,
    max_records: usize,
    out: &mut Vec<InputRecord>,
) {
    match decode(&record.data, max_records) {
        Ok(None) => out.push(record),
        Ok(Some(users)) => {
            out.reserve(users.len());
            for (i, u) in users.into_iter().enumerate() {
                out.push(InputRecord {
                    sequence_number: record.sequence_number.clone(),
                    // `decode` returns at most `max_records` records, and a u32 holds more
                    // than any Kinesis record can carry.
                    sub_sequence_number: Some(u32::try_from(i).unwrap_or(u32::MAX)),
                    partition_key: u.partition_key,
                    data: u.data,
                    arrival_ms: record.arrival_ms,
                    malformed: None,
                });
            }
        }
        Err(e) => {
            mark_malformed(&mut record, shard, &e);
            out.push(record);
        }
    }
}

/// Marks `record` as a corrupt aggregate: the reason names the shard and the record.
fn mark_malformed(record: &mut InputRecord, shard: &str, e: &KplError) {
    record.malformed = Some(format!(
        "KPL aggregated record (shard {shard}, sequence number {}): {e}",
        record.sequence_number
    ));
}

/// An aggregated record of `records` (partition key, data), as the KPL writes it: the
/// magic number, the protobuf message (each distinct partition key once in the table) and
/// its MD5. For tests, benchmarks and producers; Kinesis takes at most 1 MiB per record.
///
/// ```
/// use eventide_ports::kpl::{aggregate, decode};
/// let data = aggregate(&[("a", b"1".as_slice()), ("b", b"2".as_slice()), ("a", b"3".as_slice())]);
/// let users = decode(&data, 10).unwrap().unwrap();
/// assert_eq!(users.iter().map(|u| u.partition_key.as_str()).collect::<Vec<_>>(), ["a", "b", "a"]);
/// ```
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut agg = AggregatedRecord::default();
    let mut index = std::collections::HashMap::new();
    for (pk, data) in records {
        let next = agg.partition_key_table.len() as u64;
        let i = *index.entry(*pk).or_insert_with(|| {
            agg.partition_key_table.push((*pk).to_string());
            next
        });
        agg.records.push(Record {
            partition_key_index: i,
            explicit_hash_key_index: None,
            data: data.to_vec(),
        });
    }
    let message = agg.encode_to_vec();
    let digest = Md5::digest(&message);
    [MAGIC.as_slice(), &message, digest.as_slice()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &[u8]) -> Vec<u8> {
        [MAGIC.as_slice(), message, Md5::digest(message).as_slice()].concat()
    }

    fn expand(data: Vec<u8>) -> Vec<InputRecord> {
        let mut out = Vec::new();
        deaggregate(
            "shardId-000000000001",
            InputRecord::new("4960", "outer", data, Some(5)),
            DEFAULT_MAX_RECORDS,
            &mut out,
        );
        out
    }

    fn reason(data: Vec<u8>) -> String {
        let out = expand(data.clone());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, data, "the original bytes are kept");
        assert_eq!(out[0].sub_sequence_number, None);
        let m = out[0].malformed.clone().expect("malformed");
        assert!(
            m.contains("shard shardId-000000000001") && m.contains("sequence number 4960"),
            "{m}"
        );
        m
    }

    #[test]
    fn round_trip_keeps_order_keys_positions_and_arrival() {
        let users: Vec<(String, Vec<u8>)> = (0..50)
            .map(|i| (format!("k{}", i % 7), format!("{{\"i\":{i}}}").into_bytes()))
            .collect();
        let refs: Vec<(&str, &[u8])> = users
            .iter()
            .map(|(k, d)| (k.as_str(), d.as_slice()))
            .collect();
        let out = expand(aggregate(&refs));
        assert_eq!(out.len(), 50);
        for (i, (r, (k, d))) in out.iter().zip(&users).enumerate() {
            assert_eq!((&r.partition_key, &r.data), (k, d));
            assert_eq!(r.sequence_number, "4960");
            assert_eq!(r.sub_sequence_number, Some(i as u32));
            assert_eq!(r.position(), format!("4960:{i}"));
            assert_eq!(r.arrival_ms, Some(5));
            assert_eq!(r.malformed, None);
        }
    }

    #[test]
    fn explicit_hash_keys_are_read_from_their_table() {
        let agg = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec!["12345".into()],
            records: vec![
                Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: Some(0),
                    data: b"x".to_vec(),
                },
                Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: b"y".to_vec(),
                },
            ],
        };
        let users = decode(&frame(&agg.encode_to_vec()), 10).unwrap().unwrap();
        assert_eq!(users[0].explicit_hash_key.as_deref(), Some("12345"));
        assert_eq!(users[1].explicit_hash_key, None);
    }

    #[test]
    fn without_the_magic_number_a_record_is_plain() {
        for data in [&b"{\"a\":1}"[..], b"", &MAGIC[..3], b"\xF3\x89\x9A"] {
            let out = expand(data.to_vec());
            assert_eq!(
                out,
                vec![InputRecord::new("4960", "outer", data.to_vec(), Some(5))]
            );
        }
    }

    #[test]
    fn a_wrong_digest_is_a_dead_letter() {
        let mut data = aggregate(&[("a", b"1".as_slice())]);
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(reason(data).contains("MD5 trailer does not match"));
        // A flipped protobuf byte breaks the digest too.
        let mut data = aggregate(&[("a", b"1".as_slice())]);
        data[6] ^= 0x40;
        assert!(reason(data).contains("MD5"));
    }

    #[test]
    fn too_short_and_truncated_aggregates_are_dead_letters() {
        let short = [MAGIC.as_slice(), &[1, 2, 3]].concat();
        assert!(reason(short).contains("too short"));
        // A protobuf cut in the middle of a record, with a digest that matches the cut bytes.
        let whole = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: vec![7; 40],
            }],
        }
        .encode_to_vec();
        let cut = frame(&whole[..whole.len() - 10]);
        assert!(reason(cut).contains("does not decode"));
        // Not protobuf at all.
        assert!(reason(frame(&[0xFF; 12])).contains("does not decode"));
    }

    #[test]
    fn key_indexes_outside_their_tables_are_dead_letters() {
        let agg = |pk: u64, ehk: Option<u64>| AggregatedRecord {
            partition_key_table: vec!["a".into(), "b".into()],
            explicit_hash_key_table: vec!["1".into()],
            records: vec![
                Record {
                    partition_key_index: 1,
                    explicit_hash_key_index: None,
                    data: b"ok".to_vec(),
                },
                Record {
                    partition_key_index: pk,
                    explicit_hash_key_index: ehk,
                    data: b"x".to_vec(),
                },
            ],
        };
        let m = reason(frame(&agg(2, None).encode_to_vec()));
        assert!(
            m.contains("user record 1: partition key index 2 is outside the table of 2"),
            "{m}"
        );
        let m = reason(frame(&agg(u64::MAX, None).encode_to_vec()));
        assert!(
            m.contains("partition key index 18446744073709551615"),
            "{m}"
        );
        let m = reason(frame(&agg(0, Some(1)).encode_to_vec()));
        assert!(m.contains("explicit hash key index 1"), "{m}");
        assert_eq!(expand(frame(&agg(0, Some(0)).encode_to_vec())).len(), 2);
    }

    #[test]
    fn an_empty_aggregate_is_a_dead_letter() {
        assert!(reason(frame(&[])).contains("no user records"));
        let keys_only = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            ..Default::default()
        };
        assert!(reason(frame(&keys_only.encode_to_vec())).contains("no user records"));
    }

    #[test]
    fn counts_above_the_bound_are_refused_before_records_are_built() {
        let pairs: Vec<(&str, &[u8])> = vec![("k", b"".as_slice()); 1_000];
        let data = aggregate(&pairs);
        assert_eq!(decode(&data, 1_000).unwrap().unwrap().len(), 1_000);
        assert_eq!(
            decode(&data, 999),
            Err(KplError::TooManyRecords {
                count: 1_000,
                max: 999
            })
        );
        // The most user records that fit in 1 MiB: empty records of key index 0, 4 bytes each.
        let tiny = Record {
            partition_key_index: 0,
            explicit_hash_key_index: None,
            data: vec![],
        }
        .encode_to_vec();
        let one = [&[0x1A, tiny.len() as u8][..], &tiny].concat();
        let n = (1 << 20) / one.len();
        let message = [
            AggregatedRecord {
                partition_key_table: vec!["k".into()],
                ..Default::default()
            }
            .encode_to_vec(),
            one.repeat(n),
        ]
        .concat();
        let m = reason(frame(&message));
        assert!(
            m.contains(&format!("{n} user records, above the limit of 100000")),
            "{m}"
        );
    }
}
