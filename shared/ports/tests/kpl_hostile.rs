//! Fuzzing the KPL framing (issues 10 and 11), run by `cargo test` for a bounded number of
//! cases (256 per property, or `PROPTEST_CASES`): random bytes behind the magic number,
//! mutated aggregates (bytes flipped, cut, inserted, with the MD5 trailer recomputed so the
//! protobuf decoder is reached) and hand-built protobuf messages must each either decode or
//! give an error, never panic, and whatever decodes is bounded by the limit. De-aggregation
//! never loses a record: it yields the user records, or the record itself marked malformed
//! with its original bytes.

use eventide_ports::kpl::{aggregate, deaggregate, decode, KplError, MAGIC};
use eventide_ports::source::InputRecord;
use md5::{Digest, Md5};
use proptest::prelude::*;

/// The magic number, `message`, and the MD5 of `message`: gets past the digest check.
fn frame(message: &[u8]) -> Vec<u8> {
    [MAGIC.as_slice(), message, Md5::digest(message).as_slice()].concat()
}

/// The protobuf bytes of a valid aggregate of `users`.
fn message_of(users: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = users
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_slice()))
        .collect();
    let data = aggregate(&refs);
    data[MAGIC.len()..data.len() - 16].to_vec()
}

fn users() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        ("[a-z0-9]{0,8}", prop::collection::vec(any::<u8>(), 0..40)),
        1..20,
    )
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Varint(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
            any::<usize>().prop_map(Edit::Cut),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(i, b)| Edit::Insert(i, b)),
            // A huge length or index: ten bytes of continuation bits.
            any::<usize>().prop_map(Edit::Varint),
        ],
        1..6,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize| if bytes.is_empty() { 0 } else { i % bytes.len() };
        match e {
            Edit::Flip(i, b) => {
                let i = at(*i);
                if let Some(x) = bytes.get_mut(i) {
                    *x ^= b | 1;
                }
            }
            Edit::Cut(i) => {
                let i = at(*i);
                bytes.truncate(i);
            }
            Edit::Insert(i, b) => {
                let i = at(*i);
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::Varint(i) => {
                let i = at(*i);
                bytes.splice(i..i, [0xFF; 9].into_iter().chain([0x01]));
            }
        }
    }
    bytes
}

/// De-aggregates `data` and checks that nothing is lost: either user records (at most
/// `max`), or the record itself, marked malformed, with its bytes.
fn check(data: Vec<u8>, max: usize) -> Result<(), TestCaseError> {
    let decoded = decode(&data, max);
    let mut out = Vec::new();
    deaggregate(
        "shardId-000000000000",
        InputRecord::new("42", "pk", data.clone(), None),
        max,
        &mut out,
    );
    match decoded {
        Ok(None) => prop_assert_eq!(out, vec![InputRecord::new("42", "pk", data, None)]),
        Ok(Some(users)) => {
            prop_assert!(!users.is_empty() && users.len() <= max);
            prop_assert_eq!(out.len(), users.len());
            for (i, (r, u)) in out.iter().zip(&users).enumerate() {
                prop_assert_eq!(r.sub_sequence_number, Some(i as u32));
                prop_assert_eq!(&r.data, &u.data);
                prop_assert_eq!(&r.partition_key, &u.partition_key);
            }
        }
        Err(e) => {
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(&out[0].data, &data);
            let reason = out[0].malformed.clone().unwrap_or_default();
            prop_assert!(
                reason.contains("sequence number 42") && reason.contains(&e.to_string()),
                "{}",
                reason
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), framed in any::<bool>()) {
        let data = if framed { [MAGIC.as_slice(), &bytes].concat() } else { bytes };
        check(data, 1_000)?;
    }

    #[test]
    fn random_protobuf_behind_a_valid_digest_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check(frame(&bytes), 1_000)?;
    }

    #[test]
    fn valid_aggregates_round_trip(users in users()) {
        let out = decode(&frame(&message_of(&users)), 1_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let out = out.ok_or_else(|| TestCaseError::fail("not aggregated"))?;
        let got: Vec<(String, Vec<u8>)> = out.into_iter().map(|u| (u.partition_key, u.data)).collect();
        prop_assert_eq!(got, users);
    }

    #[test]
    fn mutated_aggregates_decode_or_fail_cleanly(users in users(), edits in edits(), redigest in any::<bool>(), max in 1usize..30) {
        let message = message_of(&users);
        let data = if redigest {
            frame(&apply(message, &edits))
        } else {
            apply(frame(&message), &edits)
        };
        check(data, max)?;
    }
}

#[test]
fn a_mutation_without_a_new_digest_is_caught_by_the_digest() {
    let data = aggregate(&[("k", b"{\"a\":1}".as_slice()), ("j", b"2".as_slice())]);
    for i in MAGIC.len()..data.len() {
        let mut bad = data.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(decode(&bad, 10), Err(KplError::BadDigest { .. })),
            "byte {i}"
        );
    }
}
