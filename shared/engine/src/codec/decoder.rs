//! The [`Decoder`] trait: bytes of one record to a [`Line`]. Apart from the rest of the
//! codec so that the spec can carry a decoder of your own
//! ([`crate::spec::Format::Custom`]) without depending on the codec.

use crate::error::RecordError;
use crate::record::Line;

/// Bytes of one record to a [`Line`], against the pipeline's input schema: the fields in
/// [`crate::spec::InputSpec::fields`] order, without the enrichments' columns (the codec adds those).
///
/// Implementations must not panic on any input: an input they cannot use is an `Err`
/// whose message says why (it becomes the dead letter's reason).
pub trait Decoder: Send + Sync {
    /// Decodes one record.
    ///
    /// # Errors
    /// The record is malformed; the message names the field where it can.
    fn decode<'a>(&self, raw: &'a [u8]) -> Result<Line<'a>, RecordError>;
}
