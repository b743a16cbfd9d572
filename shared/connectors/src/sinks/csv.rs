//! CSV file sink.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eventide_engine::pane::{Pane, KEY_SEP};

use super::ordered::RowWriter;
use super::{Layout, RowFormat};
use crate::error::ConnectorError;
use crate::format::{push_csv_field, push_number};

/// Formats panes as CSV rows. The group-by columns of consecutive rows of the same key are
/// escaped once.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    layout: Layout,
    /// The key of the previous row and its escaped group-by columns with the comma after.
    last_key: String,
    prefix: Vec<u8>,
}

impl CsvFormat {
    pub fn new(layout: Layout) -> Self {
        CsvFormat {
            layout,
            last_key: String::new(),
            prefix: Vec::new(),
        }
    }
}

impl RowFormat for CsvFormat {
    fn header(&self) -> Vec<u8> {
        let mut h = self.layout.columns().join(",").into_bytes();
        h.push(b'\n');
        h
    }

    #[inline]
    fn row(&mut self, b: &mut Vec<u8>, p: &Pane<'_>) {
        if self.prefix.is_empty() || self.last_key != p.key {
            let pre = &mut self.prefix;
            pre.clear();
            for (i, part) in p.key.split(KEY_SEP).enumerate() {
                if i > 0 {
                    pre.push(b',');
                }
                push_csv_field(pre, part);
            }
            if !self.layout.group_by.is_empty() {
                pre.push(b',');
            }
            self.last_key.clear();
            self.last_key.push_str(p.key);
        }
        b.extend_from_slice(&self.prefix);
        let mut ib = itoa::Buffer::new();
        b.extend_from_slice(ib.format(p.window.start).as_bytes());
        b.push(b',');
        b.extend_from_slice(ib.format(p.window.end).as_bytes());
        for (v, (_, dec)) in p.values.iter().zip(&self.layout.aggregates) {
            b.push(b',');
            if let Some(v) = v {
                push_number(b, *v, *dec);
            }
        }
        if self.layout.multi_pane {
            b.push(b',');
            b.extend_from_slice(p.timing.as_str().as_bytes());
            b.push(b',');
            b.extend_from_slice(ib.format(p.index).as_bytes());
        }
        if self.layout.retracting {
            b.extend_from_slice(if p.retraction { b",true" } else { b",false" });
        }
        b.push(b'\n');
    }
}

/// Writes one CSV row per pane, with a header.
pub struct CsvRows {
    path: PathBuf,
    out: BufWriter<File>,
    format: CsvFormat,
    buf: Vec<u8>,
}

impl CsvRows {
    /// Creates (truncates) the file and writes the header.
    pub fn create(path: &Path, layout: Layout) -> Result<Self, ConnectorError> {
        let err = |source| ConnectorError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = super::create_file(path).map_err(err)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let format = CsvFormat::new(layout);
        out.write_all(&format.header()).map_err(err)?;
        Ok(CsvRows {
            path: path.to_path_buf(),
            out,
            format,
            buf: Vec::with_capacity(256),
        })
    }
}

impl RowWriter for CsvRows {
    #[inline]
    fn row(&mut self, p: &Pane<'_>) -> Result<(), ConnectorError> {
        self.buf.clear();
        self.format.row(&mut self.buf, p);
        self.out
            .write_all(&self.buf)
            .map_err(|source| ConnectorError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().map_err(|source| ConnectorError::Write {
            path: self.path.clone(),
            source,
        })
    }
}
