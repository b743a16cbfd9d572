//! Shards: their hash-key ranges and how a partition key is routed to one.

/// The 128-bit hash key Kinesis routes `partition_key` by: the MD5 of its UTF-8 bytes read
/// as a big-endian unsigned integer. A record goes to the open shard whose
/// [`ShardInfo::contains`] this value.
///
/// ```
/// use eventide_ports::shard::hash_key;
/// assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
/// ```
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(md5(partition_key.as_bytes()))
}

/// MD5 of `input`. Only used for routing, never for security.
fn md5(input: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(input).into()
}

/// One shard of a stream: its id, parents and hash-key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// The shard this one was split from or merged from.
    pub parent_shard_id: Option<String>,
    /// The other parent of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// First hash key of the shard's range (inclusive).
    pub starting_hash_key: u128,
    /// Last hash key of the shard's range (inclusive).
    pub ending_hash_key: u128,
    /// The shard has an ending sequence number: it was split or merged and takes no new
    /// records (it can still be read to its end).
    pub closed: bool,
}

impl ShardInfo {
    /// The parent shard ids (0, 1 or 2 of them).
    pub fn parents(&self) -> Vec<String> {
        self.parent_shard_id
            .iter()
            .chain(self.adjacent_parent_shard_id.iter())
            .cloned()
            .collect()
    }

    /// Whether `hash_key` falls into this shard's range.
    pub fn contains(&self, hash_key: u128) -> bool {
        self.starting_hash_key <= hash_key && hash_key <= self.ending_hash_key
    }
}
