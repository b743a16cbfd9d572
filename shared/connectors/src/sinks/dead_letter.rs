//! Dead letters and late data: records the pipeline could not use, kept with the reason.
//!
//! Nothing is lost: a malformed line goes to `dead_letters.jsonl` as
//! `{"line": 17, "reason": "field `value`: expected a number, got a string", "raw": "…"}`,
//! and a record later than the allowed lateness goes to `<aggregation>.late.jsonl` verbatim.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ConnectorError;

/// A lazily created JSON-lines file.
pub struct LazyFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pub written: u64,
}

impl LazyFile {
    /// A file that is created on its first line only.
    pub fn new(path: &Path) -> Self {
        LazyFile {
            path: path.to_path_buf(),
            out: None,
            written: 0,
        }
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>, ConnectorError> {
        let out = match self.out.take() {
            Some(w) => w,
            None => BufWriter::new(super::create_file(&self.path).map_err(|source| {
                ConnectorError::Write {
                    path: self.path.clone(),
                    source,
                }
            })?),
        };
        Ok(self.out.insert(out))
    }

    /// Appends one raw line.
    pub fn raw_line(&mut self, raw: &[u8]) -> Result<(), ConnectorError> {
        let path = self.path.clone();
        let w = self.writer()?;
        w.write_all(raw.strip_suffix(b"\n").unwrap_or(raw))
            .and_then(|_| w.write_all(b"\n"))
            .map_err(|source| ConnectorError::Write { path, source })?;
        self.written += 1;
        Ok(())
    }

    /// Appends one JSON object.
    pub fn json<T: Serialize>(&mut self, v: &T) -> Result<(), ConnectorError> {
        let line = serde_json::to_vec(v).map_err(|e| ConnectorError::Write {
            path: self.path.clone(),
            source: e.into(),
        })?;
        self.raw_line(&line)
    }

    /// Flushes, if anything was written.
    pub fn flush(&mut self) -> Result<(), ConnectorError> {
        match self.out.as_mut() {
            Some(w) => w.flush().map_err(|source| ConnectorError::Write {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

/// One dead letter.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// 1-based line number in the input.
    pub line: u64,
    pub reason: String,
    /// The line as read (lossy UTF-8).
    pub raw: &'a str,
}
