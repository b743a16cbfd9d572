//! The bytes of stored state: Snappy compression with a bound on what is decoded, and the
//! error of state that cannot be encoded, decoded or restored.

use thiserror::Error;

/// State that cannot be encoded, decoded or restored.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot encode state: {0}")]
    Encode(String),
    #[error("cannot decode stored state: {0}")]
    Decode(String),
    #[error("stored state of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the log of shard {shard} has a gap: version {found} follows {after}")]
    Gap {
        shard: String,
        after: u64,
        found: u64,
    },
    #[error(transparent)]
    Engine(#[from] eventide_engine::StateError),
    #[error("cannot restore the rules of the stored state: {0}")]
    Rules(String),
}

/// Compresses with Snappy.
pub(crate) fn compress(raw: &[u8]) -> Result<Vec<u8>, StateError> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .map_err(|e| StateError::Encode(e.to_string()))
}

/// Decompresses Snappy, refusing more than `max` bytes before allocating them.
pub(crate) fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, StateError> {
    let size = snap::raw::decompress_len(body).map_err(|e| StateError::Decode(e.to_string()))?;
    if size > max {
        return Err(StateError::TooLarge { size, limit: max });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| StateError::Decode(e.to_string()))
}
