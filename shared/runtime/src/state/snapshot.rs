//! A snapshot of a shard's whole state: every key of every aggregation and rule, with the
//! hash key that routes it (so a child shard takes exactly the keys of its hash-key range),
//! the watermark and processing time, the running rules and the input position.

use serde::{Deserialize, Serialize};

use super::codec::{compress, decompress, StateError};

/// One key's state in one aggregation or rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The aggregation's name, or the rule's slot (`rule:<id>@<hash of its text>`).
    pub slot: String,
    /// The group-by values joined by U+001F.
    pub key: String,
    /// The Kinesis hash key of the partition key of the key's last record, high and low
    /// 64 bits.
    pub hk: (u64, u64),
    /// The engine's serialized state of the key.
    pub blob: Vec<u8>,
}

impl KeyState {
    /// The hash key as one number.
    pub fn hash_key(&self) -> u128 {
        (u128::from(self.hk.0) << 64) | u128::from(self.hk.1)
    }
}

/// Splits a hash key into the halves stored in [`KeyState::hk`].
pub fn split_hash_key(hk: u128) -> (u64, u64) {
    ((hk >> 64) as u64, hk as u64)
}

/// A shard's state at one version of its log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last input position whose effects it includes.
    pub position: Option<String>,
    /// The shard's own watermark (max event time − bound).
    pub local_wm: Option<i64>,
    /// The watermark the engine had reached (the shard's, capped by the others').
    pub wm: i64,
    /// Processing time.
    pub now: i64,
    /// The other shards' watermark last seen.
    pub others: Option<i64>,
    /// The rules file running (`None`: the spec's rules).
    pub rules: Option<String>,
    pub keys: Vec<KeyState>,
}

impl Snapshot {
    /// The snapshot as stored: postcard, then Snappy.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        let raw = postcard::to_allocvec(self).map_err(|e| StateError::Encode(e.to_string()))?;
        compress(&raw)
    }

    /// Decodes a stored snapshot of at most `max_bytes` uncompressed.
    pub fn decode(body: &[u8], max_bytes: usize) -> Result<Self, StateError> {
        let raw = decompress(body, max_bytes)?;
        postcard::from_bytes(&raw).map_err(|e| StateError::Decode(format!("snapshot: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hash_keys() {
        let hk = u128::MAX - 12345;
        let s = Snapshot {
            position: Some("49".into()),
            local_wm: Some(-5),
            wm: i64::MIN,
            now: 7,
            others: None,
            rules: Some("[[rule]]".into()),
            keys: vec![KeyState {
                slot: "q1".into(),
                key: "a\u{1f}b".into(),
                hk: split_hash_key(hk),
                blob: b"{}".to_vec(),
            }],
        };
        let back = Snapshot::decode(&s.encode().unwrap(), 1 << 20).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.keys[0].hash_key(), hk);
    }
}
