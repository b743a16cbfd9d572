//! Where a replay's lines come from, and its progress bar: shared by every execution.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::ConnectorError;
use crate::input::InputSource;
use crate::sources::file::FileSource;
use crate::sources::LineSource;

/// How the records are read: one plain file (or stdin) streamed or split as it is, or
/// anything else through the file layer.
pub(super) enum Reader {
    Plain(PathBuf),
    Framed(Box<InputSource>),
}

impl Reader {
    /// The reader as a source of lines.
    pub(super) fn into_source(self, max_line: u64) -> Result<Box<dyn LineSource>, ConnectorError> {
        Ok(match self {
            Reader::Plain(path) => Box::new(FileSource::with_max_line(&path, max_line)?),
            Reader::Framed(src) => src,
        })
    }
}

/// A progress bar on stderr over `total` bytes, when known.
pub(super) fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
    ) {
        bar.set_style(style);
    }
    bar
}
