//! Dead letters and late data: records the pipeline could not use, kept with the reason.
//!
//! Nothing is lost: a malformed line goes to `dead_letters.jsonl` as
//! `{"line": 17, "reason": "field `value`: expected a number, got a string", "raw": "…"}`,
//! plus `"raw_base64"` with the exact bytes when the line is not valid UTF-8, and
//! `"file"` (and `"entry"`, in a zip archive) when the input is read by the file layer
//! ([`crate::input`]),
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
            None => BufWriter::new(super::rows::create_file(&self.path).map_err(|source| {
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
    /// The file the line is in, when the input is read by the file layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
    /// The zip entry the line is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<&'a str>,
    /// 1-based line number in the input (in its file or zip entry).
    pub line: u64,
    pub reason: String,
    /// The line as read (lossy UTF-8, for reading).
    pub raw: std::borrow::Cow<'a, str>,
    /// The exact bytes of the line, base64 (standard alphabet, padded), present only when
    /// the line is not valid UTF-8 and `raw` therefore is not the line as read: a dead
    /// letter keeps the original bytes, as the Kinesis dead letters do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl<'a> DeadLetter<'a> {
    /// The dead letter of line `line` with these bytes.
    pub fn new(line: u64, reason: String, bytes: &'a [u8]) -> Self {
        let raw = String::from_utf8_lossy(bytes);
        let raw_base64 = match raw {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(_) => Some(base64(bytes)),
        };
        DeadLetter {
            file: None,
            entry: None,
            line,
            reason,
            raw,
            raw_base64,
        }
    }

    /// The same dead letter, naming the file and entry it is in.
    pub fn at(mut self, at: Option<&'a crate::sources::Location>) -> Self {
        if let Some(at) = at {
            self.file = Some(&at.file);
            self.entry = at.entry.as_deref();
        }
        self
    }
}

/// Standard, padded base64 (RFC 4648 §4); a dozen lines rather than a dependency.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    /// Invalid UTF-8 keeps its exact bytes; valid UTF-8 is not duplicated.
    #[test]
    fn dead_letters_keep_the_original_bytes() {
        let d = DeadLetter::new(3, "bad".into(), b"{\"k\":\"\xff\xfe\"}");
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(j["raw_base64"], "eyJrIjoi//4ifQ==");
        assert_eq!(j["line"], 3);
        let d = DeadLetter::new(1, "bad".into(), "{\"k\":\"é\"".as_bytes());
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(j["raw"], "{\"k\":\"é\"");
        assert!(j.get("raw_base64").is_none());
    }
}
