//! JSON lines from a file, or from stdin when the path is `-`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::LineSource;
use crate::error::ConnectorError;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a file line by line with a large buffer.
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
}

impl FileSource {
    /// Opens `path`, or stdin for `-`.
    pub fn open(path: &Path) -> Result<Self, ConnectorError> {
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
        })
    }
}

impl LineSource for FileSource {
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ConnectorError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
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
            // A byte-order mark at the start of the file (editors on Windows write one) is
            // not part of the first line, which would otherwise be a dead letter.
            let start = if self.line_no == 1 && self.buf.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            let mut line: &[u8] = &self.buf[start..];
            while let [rest @ .., b'\n' | b'\r'] = line {
                line = rest;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
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
