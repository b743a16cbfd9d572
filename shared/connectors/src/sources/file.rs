//! JSON lines from a file, or from stdin when the path is `-`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::LineSource;
use crate::error::ConnectorError;
use crate::lines;

/// Reads a file line by line with a large buffer, split and trimmed as every local reader
/// does ([`lines`]).
///
/// ```no_run
/// use eventide_connectors::sources::{file::FileSource, LineSource};
/// let mut src = FileSource::open("events.jsonl".as_ref()).unwrap();
/// while let Some((n, line)) = src.next_line().unwrap() {
///     println!("{n}: {} bytes", line.len());
/// }
/// ```
pub struct FileSource {
    path: PathBuf,
    reader: BufReader<Box<dyn Read>>,
    buf: Vec<u8>,
    line_no: u64,
    read: u64,
    total: Option<u64>,
    max_line: u64,
}

impl FileSource {
    /// Opens `path`, or stdin for `-`, with lines of at most
    /// [`eventide_engine::spec::DEFAULT_MAX_LINE_BYTES`].
    pub fn open(path: &Path) -> Result<Self, ConnectorError> {
        Self::with_max_line(path, eventide_engine::spec::DEFAULT_MAX_LINE_BYTES)
    }

    /// Opens `path`, or stdin for `-`, with lines of at most `max_line` bytes
    /// (`[input] max_line_bytes`).
    pub fn with_max_line(path: &Path, max_line: u64) -> Result<Self, ConnectorError> {
        let (inner, total): (Box<dyn Read>, Option<u64>) = if path.as_os_str() == "-" {
            (Box::new(std::io::stdin()), None)
        } else {
            let f = File::open(path).map_err(|source| ConnectorError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, inner),
            buf: Vec::with_capacity(1024),
            line_no: 0,
            read: 0,
            total,
            max_line,
        })
    }
}

impl LineSource for FileSource {
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ConnectorError> {
        loop {
            self.buf.clear();
            // A line longer than the bound is never read whole.
            let n = std::io::Read::take(&mut self.reader, self.max_line.saturating_add(1))
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ConnectorError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.read += n as u64;
            self.line_no += 1;
            if n as u64 > self.max_line {
                return Err(ConnectorError::Input {
                    place: format!("{}, line {}", self.path.display(), self.line_no),
                    reason: lines::TooLong {
                        number: self.line_no,
                        max: usize::try_from(self.max_line).unwrap_or(usize::MAX),
                    }
                    .to_string(),
                });
            }
            let Some(line) = lines::content(&self.buf, self.line_no == 1) else {
                continue;
            };
            // `line` is a sub-slice of the buffer: return it by its position.
            let start = line.as_ptr() as usize - self.buf.as_ptr() as usize;
            let end = start + line.len();
            return Ok(Some((self.line_no, &self.buf[start..end])));
        }
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.read, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let path = std::env::temp_dir().join(format!(
            "eventide-file-source-{}-{}.jsonl",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut src = FileSource::open(&path).unwrap();
        let mut out = Vec::new();
        while let Some((n, l)) = src.next_line().unwrap() {
            out.push((n, l.to_vec()));
        }
        std::fs::remove_file(&path).unwrap();
        out
    }

    /// A BOM at the start of the file is skipped; one later in the file is data.
    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let got = lines(b"\xEF\xBB\xBF{\"t\":1}\r\n\n\xEF\xBB\xBF{\"t\":2}\n\xff\n");
        assert_eq!(
            got,
            vec![
                (1, b"{\"t\":1}".to_vec()),
                (3, b"\xEF\xBB\xBF{\"t\":2}".to_vec()),
                (4, b"\xff".to_vec()),
            ]
        );
        assert!(lines(b"\xEF\xBB\xBF\n").is_empty());
    }
}
