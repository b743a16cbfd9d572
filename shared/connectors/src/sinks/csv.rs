//! CSV file sink.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eventide_engine::pane::Pane;
use smallvec::SmallVec;

use super::ordered::RowWriter;
use super::rows::{RowCell, RowFormat, RowLayout};
use crate::error::ConnectorError;
use crate::format::{push_csv_field, push_number};

/// Formats panes as CSV rows. The group-by columns of consecutive rows of the same key are
/// escaped once, and window bounds are formatted once per [`Bounds`] slot.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    layout: RowLayout,
    /// The key of the previous row and its escaped group-by columns with the comma after.
    last_key: String,
    prefix: Vec<u8>,
    bounds: Bounds,
}

impl CsvFormat {
    pub fn new(layout: RowLayout) -> Self {
        CsvFormat {
            layout,
            last_key: String::new(),
            prefix: Vec::new(),
            bounds: Bounds::default(),
        }
    }
}

/// Recently formatted `window_start,window_end` pairs, direct-mapped by start. Every key's
/// windows share the same few hundred bounds, so nearly every row finds its pair here
/// instead of formatting two 13-digit numbers.
#[derive(Debug, Clone)]
struct Bounds {
    slots: Vec<BoundsSlot>,
}

/// A formatted pair: two `i64`s of at most 20 characters each and the comma between them.
#[derive(Debug, Clone, Copy)]
struct BoundsSlot {
    start: i64,
    end: i64,
    len: u8,
    text: [u8; 41],
}

/// Slots of [`Bounds`] (a power of two).
const BOUNDS_SLOTS: usize = 512;

impl Default for Bounds {
    fn default() -> Self {
        let empty = BoundsSlot {
            start: 0,
            end: 0,
            len: 0,
            text: [0; 41],
        };
        Bounds {
            slots: vec![empty; BOUNDS_SLOTS],
        }
    }
}

impl Bounds {
    /// `start,end`, formatted.
    #[inline]
    fn get(&mut self, start: i64, end: i64) -> &[u8] {
        let h = (start as u64 ^ (end as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The top bits of a multiplicative hash pick the slot.
        let slot = &mut self.slots[(h >> (64 - BOUNDS_SLOTS.trailing_zeros())) as usize];
        if slot.len == 0 || slot.start != start || slot.end != end {
            let mut ib = itoa::Buffer::new();
            let mut n = 0;
            for (i, v) in [start, end].into_iter().enumerate() {
                if i > 0 {
                    slot.text[n] = b',';
                    n += 1;
                }
                let digits = ib.format(v).as_bytes();
                slot.text[n..n + digits.len()].copy_from_slice(digits);
                n += digits.len();
            }
            slot.len = n as u8;
            slot.start = start;
            slot.end = end;
        }
        &slot.text[..slot.len as usize]
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
        if !self.layout.row.is_empty() {
            self.rows_row(b, p);
            return;
        }
        if self.prefix.is_empty() || self.last_key != p.key {
            let pre = &mut self.prefix;
            pre.clear();
            for (i, part) in p.key_parts().enumerate() {
                if i > 0 {
                    pre.push(b',');
                }
                // A null value is an empty field, an empty text `""`: they stay apart.
                match part.as_deref() {
                    None => {}
                    Some("") => pre.extend_from_slice(b"\"\""),
                    Some(s) => push_csv_field(pre, s),
                }
            }
            if !self.layout.group_by.is_empty() {
                pre.push(b',');
            }
            self.last_key.clear();
            self.last_key.push_str(p.key);
        }
        b.extend_from_slice(&self.prefix);
        b.extend_from_slice(self.bounds.get(p.window.start, p.window.end));
        let mut ib = itoa::Buffer::new();
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

impl CsvFormat {
    /// The row of a rows window: its columns in order.
    fn rows_row(&mut self, b: &mut Vec<u8>, p: &Pane<'_>) {
        let parts: SmallVec<[_; 4]> = p.key_parts().collect();
        let mut ib = itoa::Buffer::new();
        for (i, (_, cell)) in self.layout.row.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            match *cell {
                // A null value is an empty field, an empty text `""`: they stay apart.
                RowCell::Key(k) => match parts.get(k).and_then(|x| x.as_deref()) {
                    None => {}
                    Some("") => b.extend_from_slice(b"\"\""),
                    Some(s) => push_csv_field(b, s),
                },
                RowCell::Time => b.extend_from_slice(ib.format(p.window.start).as_bytes()),
                RowCell::Value(v, dec) => {
                    if let Some(Some(x)) = p.values.get(v) {
                        push_number(b, *x, dec);
                    }
                }
            }
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
    pub fn create(path: &Path, layout: RowLayout) -> Result<Self, ConnectorError> {
        let err = |source| ConnectorError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = super::rows::create_file(path).map_err(err)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_formatted_like_display_whatever_the_slot_held() {
        let mut bounds = Bounds::default();
        let mut pairs = vec![
            (i64::MIN, i64::MAX),
            (0, 0),
            (-900_000, 0),
            (1_767_225_600_000, 1_767_226_500_000),
        ];
        // Far more pairs than slots, twice, so slots are reused and collide.
        for round in 0..2 {
            for i in 0..3 * BOUNDS_SLOTS as i64 {
                pairs.push((i * 900_000 - round, i * 900_000 + 7_200_000));
            }
        }
        for (start, end) in pairs.iter().chain(pairs.iter().rev()) {
            assert_eq!(
                std::str::from_utf8(bounds.get(*start, *end)).unwrap(),
                format!("{start},{end}")
            );
        }
    }
}
