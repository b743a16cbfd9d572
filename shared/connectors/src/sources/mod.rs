//! Where input lines come from. One source per file, behind [`LineSource`].

pub mod file;

use crate::error::ConnectorError;

/// A source of input lines in arrival order.
pub trait LineSource {
    /// The next line (without its newline) and its 1-based number, or `None` at the end.
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ConnectorError>;
    /// Bytes consumed so far and the total, when known (for progress).
    fn progress(&self) -> (u64, Option<u64>);
}
