//! The one line splitter: how every local reader (the streaming [`crate::sources::file`],
//! the key-by-key [`crate::replay::by_key`] and the file layer's framing) cuts bytes into lines.
//!
//! A line ends at `\n`; a trailing `\r` (or several) is not part of it; a line of only
//! ASCII whitespace is skipped but still counted, so line numbers are those an editor
//! shows; a UTF-8 byte-order mark at the very start of a file (or zip entry) is skipped
//! (editors on Windows write one), while one later is data. A line longer than a bound is
//! an error, never read whole into memory.
//!
//! ```
//! use eventide_connectors::lines::Lines;
//! let text = b"\xEF\xBB\xBF{\"t\":1}\r\n\n  \n{\"t\":2}";
//! let got: Vec<(u64, usize, &[u8])> = Lines::new(text, 1 << 20)
//!     .map(|l| l.map(|l| (l.number, l.offset, l.text)))
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(got, vec![(1, 3, &b"{\"t\":1}"[..]), (4, 16, &b"{\"t\":2}"[..])]);
//! ```

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The content of a line read with its line end: without the line end, and without a BOM
/// when it is the first line; `None` when it is blank.
#[inline]
pub fn content(raw: &[u8], first: bool) -> Option<&[u8]> {
    let mut line = match first {
        true => raw.strip_prefix(BOM).unwrap_or(raw),
        false => raw,
    };
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(line)
    }
}

/// A line longer than the bound: its number and the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    pub number: u64,
    pub max: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the line is longer than {} bytes (raise input.max_line_bytes)",
            self.max
        )
    }
}

/// One non-blank line of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef<'a> {
    /// 1-based line number.
    pub number: u64,
    /// Where the content starts in the buffer.
    pub offset: usize,
    pub text: &'a [u8],
}

/// The non-blank lines of a buffer, in order.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    end: usize,
    number: u64,
    max: usize,
}

impl<'a> Lines<'a> {
    /// The lines of a whole file or entry (a leading BOM is skipped), each at most `max`
    /// bytes long with its line end.
    pub fn new(text: &'a [u8], max: usize) -> Self {
        Lines {
            text,
            at: 0,
            end: text.len(),
            number: 0,
            max,
        }
    }

    /// The lines of `text[range]`, which starts at a line boundary: a BOM is skipped only
    /// when the range starts the buffer.
    pub fn of_range(text: &'a [u8], range: std::ops::Range<usize>, max: usize) -> Self {
        Lines {
            text,
            at: range.start,
            end: range.end.min(text.len()),
            number: 0,
            max,
        }
    }

    /// Lines seen so far, blank ones included.
    pub fn seen(&self) -> u64 {
        self.number
    }

    /// Where the next line starts.
    pub fn position(&self) -> usize {
        self.at
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<LineRef<'a>, TooLong>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.at < self.end {
            let rest = self.text.get(self.at..self.end)?;
            let len = memchr::memchr(b'\n', rest).map_or(rest.len(), |p| p + 1);
            let start = self.at;
            self.at += len;
            self.number += 1;
            if len > self.max {
                self.at = self.end;
                return Some(Err(TooLong {
                    number: self.number,
                    max: self.max,
                }));
            }
            let raw = &rest[..len];
            if let Some(text) = content(raw, start == 0) {
                // `text` is a sub-slice of `raw`: after an optional BOM, before the line end.
                let offset = start + (text.as_ptr() as usize - raw.as_ptr() as usize);
                return Some(Ok(LineRef {
                    number: self.number,
                    offset,
                    text,
                }));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_point_at_the_content() {
        let text = b"a\r\n\xEF\xBB\xBFb\n\n c \n";
        let got: Vec<LineRef<'_>> = Lines::new(text, 100).map(Result::unwrap).collect();
        for l in &got {
            assert_eq!(&text[l.offset..l.offset + l.text.len()], l.text);
        }
        // A BOM after the start is data.
        assert_eq!(got[1].text, b"\xEF\xBB\xBFb");
        assert_eq!(
            got.iter().map(|l| l.number).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        let bom: Vec<_> = Lines::new(b"\xEF\xBB\xBFx", 100)
            .map(Result::unwrap)
            .collect();
        assert_eq!((bom[0].offset, bom[0].text), (3, &b"x"[..]));
    }

    #[test]
    fn a_line_over_the_bound_is_an_error() {
        let mut l = Lines::new(b"short\nmuch too long\nok\n", 8);
        assert!(l.next().unwrap().is_ok());
        assert_eq!(
            l.next().unwrap().unwrap_err(),
            TooLong { number: 2, max: 8 }
        );
        assert!(l.next().is_none());
    }
}
