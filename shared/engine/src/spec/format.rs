//! How input records and files are encoded: `[input] format`, the CSV dialect, compression
//! and framing. The file layer (`eventide_connectors::input`) and the codecs read it.

use crate::codec::decoder::Decoder;

/// How each input record is encoded: `[input] format = "json" | "csv"`, or a decoder of
/// your own given in Rust ([`crate::spec::PipelineSpec::with_decoder`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Format {
    /// One JSON object per record (per line of a file).
    #[default]
    Json,
    /// One CSV row per record (per line of a file).
    Csv(CsvSpec),
    /// A [`Decoder`] of your own (not expressible in TOML).
    Custom(CustomDecoder),
}

/// A decoder of your own carried by the spec ([`crate::spec::PipelineSpec::with_decoder`]), so that every
/// consumer of the spec (replay, the worker, Lambda) decodes with it.
#[derive(Clone)]
pub struct CustomDecoder(pub std::sync::Arc<dyn Decoder>);

impl std::fmt::Debug for CustomDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomDecoder")
    }
}

impl PartialEq for CustomDecoder {
    /// The same decoder instance.
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// `[input] csv = { ... }`: the CSV dialect and columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSpec {
    /// The field separator (`delimiter`, one ASCII character; `,` by default).
    pub delimiter: u8,
    /// The quote character (`quote`; `"` by default). A quoted field may hold delimiters and
    /// doubled quotes, not line breaks: one row is one line.
    pub quote: u8,
    /// `header = true`: the first row of each file (or zip entry), after `header_lines`, is
    /// a header naming the columns. It must equal `columns` when both are given.
    pub header: bool,
    /// The columns of a row, in order (`columns`); `None` when a header row names them.
    pub columns: Option<Vec<String>>,
}

/// Compression of input files (`[input] compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Detected per file: by extension (`.gz`, `.zip`), else by magic bytes.
    #[default]
    Auto,
    None,
    Gzip,
    /// A zip archive of one or many entries, read in the archive's entry order.
    Zip,
}

/// `[input] footer = { pattern = '...' }`: the last non-blank line of each file (or zip
/// entry) is a footer that must match `pattern`. When the pattern has a named group `count`,
/// the number it captures must equal the number of records before the footer.
#[derive(Debug, Clone)]
pub struct FooterSpec {
    pub pattern: regex_lite::Regex,
    /// True when `pattern` has a group named `count`.
    pub counts: bool,
}

impl PartialEq for FooterSpec {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str()
    }
}

/// The default of `[input] max_entry_bytes`: 1 GiB.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 1 << 30;
/// The default of `[input] max_line_bytes`: 8 MiB.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 8 << 20;

/// The file layer of `[input]`: how `eventide replay` and `eventide put` read files.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    pub compression: Compression,
    /// Lines skipped at the start of each file or zip entry (`header_lines`).
    pub header_lines: u64,
    pub footer: Option<FooterSpec>,
    /// Most bytes one file or zip entry may decompress to (`max_entry_bytes`): a bound
    /// against zip and gzip bombs.
    pub max_entry_bytes: u64,
    /// Longest line (`max_line_bytes`).
    pub max_line_bytes: u64,
}

impl Default for FileSpec {
    fn default() -> Self {
        FileSpec {
            compression: Compression::Auto,
            header_lines: 0,
            footer: None,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl FileSpec {
    /// True when files are read as plain lines: no compression asked for and no framing
    /// (a file may still be detected as compressed).
    pub fn is_plain(&self) -> bool {
        matches!(self.compression, Compression::Auto | Compression::None)
            && self.header_lines == 0
            && self.footer.is_none()
    }
}
