//! Where input lines come from, behind [`LineSource`]: one plain file or stdin, streamed
//! ([`file`]), or the file layer's files and entries ([`crate::input::InputSource`]).

pub mod file;

use crate::error::ConnectorError;

/// Where a record came from: the file and, in a zip archive, the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub entry: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entry {
            Some(e) => write!(f, "{}, entry {e:?}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// A source of input lines in arrival order.
pub trait LineSource {
    /// The next line (without its newline) and its 1-based number, or `None` at the end.
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ConnectorError>;
    /// Bytes consumed so far and the total, when known (for progress).
    fn progress(&self) -> (u64, Option<u64>);
    /// The file (and zip entry) of the line last returned, when the source reads several;
    /// dead letters name it. `None` for a single plain file.
    fn location(&self) -> Option<&Location> {
        None
    }
}
