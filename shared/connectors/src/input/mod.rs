//! The file layer: which files an input names, how each is decompressed, and how its lines
//! are framed, before the [codec](eventide_engine::codec) decodes each record.
//!
//! `[input]` of the spec says how files are laid out ([`eventide_engine::spec::FileSpec`]):
//!
//! * **files**: `--input` is a file, a directory (its files in name order), or a glob
//!   (`logs/2026-*.zip`, matches in name order) ([`resolve`]);
//! * **compression**: `gzip` (one or several members), `zip` (every entry, in the archive's
//!   order; directories are skipped) or `none`; by default each file is detected by its
//!   extension (`.gz`, `.zip`), else by its magic bytes;
//! * **framing**, per file or zip entry: `header_lines` lines skipped at the start, then
//!   with CSV `header = true` a header row naming the columns, then the records, then with
//!   `footer` a last non-blank line matching a pattern, whose named group `count` must
//!   equal the number of records.
//!
//! Everything is bounded: a file or entry decompresses to at most `max_entry_bytes`, a line
//! is at most `max_line_bytes` long; each error names the setting to raise. An input that
//! breaks its layout (a corrupt zip, a gzip that ends early, a footer missing or
//! disagreeing with the count, a header row that differs) stops the run with an error
//! naming the file, the entry and the line ([`ConnectorError::Input`]): never a silent
//! truncation. A record that is malformed is the codec's business: a dead letter naming
//! the file, the entry and the line ([`Location`]).
//!
//! One file or entry is held in memory at a time (bounded by `max_entry_bytes`).
//!
//! ```no_run
//! use eventide_connectors::input::{resolve, InputSource};
//! use eventide_connectors::sources::LineSource;
//! # let spec: eventide_engine::PipelineSpec = unimplemented!();
//! let mut src = InputSource::open(resolve("drops/*.zip".as_ref())?, &spec)?;
//! while let Some((line, raw)) = src.next_line()? {
//!     println!("{} line {line}: {} bytes", src.location().unwrap(), raw.len());
//! }
//! # Ok::<(), eventide_connectors::ConnectorError>(())
//! ```

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use eventide_engine::spec::{Compression, FileSpec, Format};
use eventide_engine::PipelineSpec;

use crate::error::ConnectorError;
use crate::lines::Lines;
use crate::sources::LineSource;
pub use crate::sources::Location;

/// One input file: where it is, and the name that errors and dead letters give it (its
/// path, or e.g. the S3 key it was downloaded from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    pub name: String,
}

impl InputFile {
    /// A local file, named by its path.
    pub fn local(path: &Path) -> Self {
        InputFile {
            path: path.to_path_buf(),
            name: path.display().to_string(),
        }
    }
}

fn input_error(at: &Location, line: Option<u64>, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Input {
        place: match line {
            Some(n) => format!("{at}, line {n}"),
            None => at.to_string(),
        },
        reason: reason.into(),
    }
}

/// The files `input` names: a file; a directory's files (not its subdirectories or hidden
/// files) in name order; or the files matching a glob, in name order.
///
/// # Errors
/// Nothing exists there, a directory or glob holds no file, or a directory can't be read.
pub fn resolve(input: &Path) -> Result<Vec<InputFile>, ConnectorError> {
    let read_err = |source| ConnectorError::Read {
        path: input.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = if input.is_dir() {
        let mut v = Vec::new();
        for entry in std::fs::read_dir(input).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().map_err(read_err)?.is_file() {
                v.push(entry.path());
            }
        }
        v
    } else if input.exists() {
        return Ok(vec![InputFile::local(input)]);
    } else {
        let pattern = input.to_string_lossy();
        let not_found = || {
            read_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file, directory or glob match",
            ))
        };
        if !pattern.contains(['*', '?', '[']) {
            return Err(not_found());
        }
        let matches = glob::glob(&pattern).map_err(|e| ConnectorError::Input {
            place: pattern.to_string(),
            reason: format!("not a valid glob: {e}"),
        })?;
        matches
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    };
    if paths.is_empty() {
        return Err(ConnectorError::Input {
            place: input.display().to_string(),
            reason: "no file to read".into(),
        });
    }
    paths.sort();
    Ok(paths.iter().map(|p| InputFile::local(p)).collect())
}

/// How one file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Plain,
    Gzip,
    Zip,
}

/// How `path` is stored: as `compression` says, or when it says `auto`, by its extension
/// (`.gz`, `.gzip`, `.zip`), else by its first bytes.
///
/// # Errors
/// The file cannot be opened or read.
pub fn stored(path: &Path, compression: Compression) -> Result<Stored, ConnectorError> {
    match compression {
        Compression::None => return Ok(Stored::Plain),
        Compression::Gzip => return Ok(Stored::Gzip),
        Compression::Zip => return Ok(Stored::Zip),
        Compression::Auto => {}
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("gz" | "gzip") => return Ok(Stored::Gzip),
        Some("zip") => return Ok(Stored::Zip),
        _ => {}
    }
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(|source| ConnectorError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ConnectorError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Stored::Gzip,
        b"PK\x03\x04" => Stored::Zip,
        _ => Stored::Plain,
    })
}

/// True when `files` is one plain file read without framing: the readers that stream or
/// split a file themselves ([`crate::sources::file`], [`crate::by_key`]) take it as is.
///
/// # Errors
/// The file cannot be opened or read.
pub fn is_plain(files: &[InputFile], spec: &PipelineSpec) -> Result<bool, ConnectorError> {
    let csv_header = matches!(&spec.format, Format::Csv(c) if c.header);
    Ok(match files {
        [f] if spec.files.is_plain() && !csv_header => {
            stored(&f.path, spec.files.compression)? == Stored::Plain
        }
        _ => false,
    })
}

/// Reads at most `max` bytes; more is an error naming the setting.
fn read_bounded(
    r: impl Read,
    max: u64,
    at: &Location,
    what: &str,
) -> Result<Vec<u8>, ConnectorError> {
    let mut text = Vec::new();
    r.take(max.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(|e| input_error(at, None, format!("{what}: {e}")))?;
    if text.len() as u64 > max {
        return Err(input_error(
            at,
            None,
            format!("decompresses to more than {max} bytes (raise input.max_entry_bytes)"),
        ));
    }
    Ok(text)
}

/// The CSV settings the framing needs: the dialect, to split a header row.
#[derive(Debug, Clone, Copy)]
struct CsvHeader {
    delimiter: u8,
    quote: u8,
}

/// Most columns a CSV header row may name.
const MAX_COLUMNS: usize = 4096;

/// The file or entry being read: its text and where its records are.
struct Entry {
    at: Location,
    text: Vec<u8>,
    records: Vec<(u64, Range<usize>)>,
    next: usize,
}

/// An open zip archive and the index of its next entry.
struct OpenZip {
    name: String,
    archive: zip::ZipArchive<BufReader<File>>,
    next: usize,
}

/// The records of every file and entry of an input, in order, as [`LineSource`] lines.
pub struct InputSource {
    files: Vec<InputFile>,
    next_file: usize,
    spec: FileSpec,
    csv_header: Option<CsvHeader>,
    /// The CSV columns: declared, or from the first header row.
    columns: Option<Vec<String>>,
    zip: Option<OpenZip>,
    entry: Option<Entry>,
    read: u64,
    total: u64,
}

impl InputSource {
    /// Opens the input and reads its first file or entry, so that a CSV header row's
    /// columns are known ([`InputSource::csv_columns`]) before any record is decoded.
    ///
    /// # Errors
    /// The first file cannot be read as `[input]` says.
    pub fn open(files: Vec<InputFile>, spec: &PipelineSpec) -> Result<Self, ConnectorError> {
        Self::with_layout(files, &spec.format, &spec.files)
    }

    /// [`InputSource::open`] with a format and file layer of their own (e.g. the defaults:
    /// JSON lines, compression detected, no framing).
    ///
    /// # Errors
    /// The first file cannot be read as the layout says.
    pub fn with_layout(
        files: Vec<InputFile>,
        format: &Format,
        layout: &FileSpec,
    ) -> Result<Self, ConnectorError> {
        let (csv_header, columns) = match format {
            Format::Csv(c) => (
                c.header.then_some(CsvHeader {
                    delimiter: c.delimiter,
                    quote: c.quote,
                }),
                c.columns.clone(),
            ),
            // A custom decoder reads each line (framing is the file layer's) as it likes.
            Format::Json | Format::Custom(_) => (None, None),
        };
        let total = files
            .iter()
            .filter_map(|f| std::fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .sum();
        let mut src = InputSource {
            files,
            next_file: 0,
            spec: layout.clone(),
            csv_header,
            columns,
            zip: None,
            entry: None,
            read: 0,
            total,
        };
        src.next_entry()?;
        Ok(src)
    }

    /// The CSV columns, declared or read from the first header row.
    pub fn csv_columns(&self) -> Option<&[String]> {
        self.columns.as_deref()
    }

    /// Loads the next file or zip entry; false at the end of the input.
    fn next_entry(&mut self) -> Result<bool, ConnectorError> {
        let max = self.spec.max_entry_bytes;
        loop {
            if let Some(z) = self.zip.as_mut() {
                while z.next < z.archive.len() {
                    let i = z.next;
                    z.next += 1;
                    let file_at = Location {
                        file: z.name.clone(),
                        entry: None,
                    };
                    let entry = z.archive.by_index(i).map_err(|e| {
                        input_error(&file_at, None, format!("zip entry {i} cannot be read: {e}"))
                    })?;
                    if entry.is_dir() {
                        continue;
                    }
                    let at = Location {
                        file: z.name.clone(),
                        entry: Some(entry.name().to_string()),
                    };
                    if entry.size() > max {
                        return Err(input_error(
                            &at,
                            None,
                            format!(
                                "decompresses to {} bytes, more than {max} (raise input.max_entry_bytes)",
                                entry.size()
                            ),
                        ));
                    }
                    let text = read_bounded(entry, max, &at, "corrupt zip entry")?;
                    self.load(at, text)?;
                    return Ok(true);
                }
                self.zip = None;
            }
            let Some(file) = self.files.get(self.next_file).cloned() else {
                return Ok(false);
            };
            self.next_file += 1;
            let open = || {
                File::open(&file.path).map_err(|source| ConnectorError::Read {
                    path: file.path.clone(),
                    source,
                })
            };
            let at = Location {
                file: file.name.clone(),
                entry: None,
            };
            self.read += std::fs::metadata(&file.path).map_or(0, |m| m.len());
            match stored(&file.path, self.spec.compression)? {
                Stored::Plain => {
                    let text = read_bounded(open()?, max, &at, "read error")?;
                    self.load(at, text)?;
                    return Ok(true);
                }
                Stored::Gzip => {
                    let gz = flate2::read::MultiGzDecoder::new(BufReader::new(open()?));
                    let text = read_bounded(gz, max, &at, "not a complete gzip stream")?;
                    self.load(at, text)?;
                    return Ok(true);
                }
                Stored::Zip => {
                    let archive = zip::ZipArchive::new(BufReader::new(open()?)).map_err(|e| {
                        input_error(&at, None, format!("not a readable zip archive: {e}"))
                    })?;
                    self.zip = Some(OpenZip {
                        name: file.name.clone(),
                        archive,
                        next: 0,
                    });
                }
            }
        }
    }

    /// Frames a file or entry: skips its header lines and CSV header row, checks its
    /// footer, and keeps where its records are.
    fn load(&mut self, at: Location, text: Vec<u8>) -> Result<(), ConnectorError> {
        let max_line = usize::try_from(self.spec.max_line_bytes).unwrap_or(usize::MAX);
        let mut records = Vec::new();
        let mut header_row = self.csv_header;
        for l in Lines::new(&text, max_line) {
            let l = l.map_err(|e| input_error(&at, Some(e.number), e.to_string()))?;
            if l.number <= self.spec.header_lines {
                continue;
            }
            if let Some(h) = header_row.take() {
                self.header_row(&at, l.number, l.text, h)?;
                continue;
            }
            records.push((l.number, l.offset..l.offset + l.text.len()));
        }
        if let Some(footer) = &self.spec.footer {
            let pattern = footer.pattern.as_str();
            let Some((n, range)) = records.pop() else {
                return Err(input_error(
                    &at,
                    None,
                    format!("the footer is missing: no line after the header matches input.footer.pattern {pattern:?}"),
                ));
            };
            let line = text.get(range).unwrap_or_default();
            let caps = std::str::from_utf8(line)
                .ok()
                .and_then(|s| footer.pattern.captures(s));
            let Some(caps) = caps else {
                return Err(input_error(
                    &at,
                    Some(n),
                    format!("the footer is missing: the last line does not match input.footer.pattern {pattern:?}"),
                ));
            };
            if footer.counts {
                let declared = caps.name("count").map_or("", |m| m.as_str());
                match declared.parse::<u64>() {
                    Ok(c) if c == records.len() as u64 => {}
                    Ok(c) => {
                        return Err(input_error(
                            &at,
                            Some(n),
                            format!(
                                "the footer declares {c} records, but there are {}",
                                records.len()
                            ),
                        ))
                    }
                    Err(_) => {
                        return Err(input_error(
                            &at,
                            Some(n),
                            format!("the footer's count {declared:?} is not a number"),
                        ))
                    }
                }
            }
        }
        self.entry = Some(Entry {
            at,
            text,
            records,
            next: 0,
        });
        Ok(())
    }

    /// Checks a CSV header row against the columns (declared, or from the first header).
    fn header_row(
        &mut self,
        at: &Location,
        n: u64,
        raw: &[u8],
        h: CsvHeader,
    ) -> Result<(), ConnectorError> {
        let fields = eventide_engine::codec::csv::split(raw, h.delimiter, h.quote, MAX_COLUMNS)
            .map_err(|e| input_error(at, Some(n), format!("CSV header row: {e}")))?;
        let mut cols = Vec::with_capacity(fields.len());
        for f in fields {
            let s = std::str::from_utf8(&f)
                .map_err(|_| input_error(at, Some(n), "CSV header row: not valid UTF-8"))?;
            cols.push(s.trim().to_string());
        }
        match &self.columns {
            None => self.columns = Some(cols),
            Some(want) if *want != cols => {
                return Err(input_error(
                    at,
                    Some(n),
                    format!("the CSV header row names the columns {cols:?}, not {want:?} (input.csv.columns, or the first file's header)"),
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }
}

impl LineSource for InputSource {
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, ConnectorError> {
        loop {
            if self
                .entry
                .as_ref()
                .is_some_and(|e| e.next < e.records.len())
            {
                break;
            }
            if !self.next_entry()? {
                self.entry = None;
                return Ok(None);
            }
        }
        let Some(e) = self.entry.as_mut() else {
            return Ok(None);
        };
        let (n, range) = e.records[e.next].clone();
        e.next += 1;
        Ok(Some((n, e.text.get(range).unwrap_or_default())))
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.read, Some(self.total))
    }

    fn location(&self) -> Option<&Location> {
        self.entry.as_ref().map(|e| &e.at)
    }
}
