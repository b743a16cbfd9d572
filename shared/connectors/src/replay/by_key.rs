//! `--execution by-key`: the key-by-key replay of a file, for pipelines whose sinks all
//! write in key order (the default for them).
//!
//! The engine's [`eventide_engine::bounded`] runs a finite input one key at a time with the
//! streaming operators and the streaming watermark; this module is its I/O around it:
//!
//! 1. The file is read whole (or, through the file layer, the records of every file and
//!    entry are gathered) and cut at line boundaries into one slice per core; each slice is
//!    decoded on its own thread into a [`Chunk`] (malformed lines become dead letters).
//! 2. [`BoundedInput::new`] joins the chunks, computes the global timeline and groups the
//!    events by key.
//! 3. Each aggregation's keys, in output order, are cut into units of about
//!    [`UNIT_EVENTS`] events. Worker threads take units in order and format their rows into
//!    memory; this thread writes the units to the files in order as they complete, so no
//!    more than a few units are ever held.
//!
//! The output is byte for byte that of a single-threaded streaming run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use eventide_engine::bounded::{BoundedInput, Chunk, KeyOutput, KeyRunner};
use eventide_engine::codec::Codec;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::record::Line;
use eventide_engine::route::Routes;
use eventide_engine::{PipelineSpec, RecordError};
use indicatif::ProgressBar;

use super::options::{ReplayOptions, ReplayReport};
use super::reader::{progress_bar, Reader};
use crate::error::ConnectorError;
use crate::lines::{Lines, TooLong};
use crate::sinks::dead_letter::{DeadLetter, LazyFile};
use crate::sinks::{row_format, RowFormat};
use crate::sources::LineSource;
use crate::sources::Location;

/// Events per unit of work: small enough to balance threads and bound the rows held in
/// memory, large enough that handing units over costs nothing.
pub const UNIT_EVENTS: usize = 1 << 14;

/// A malformed line of a slice: its line number within the slice, the reason, its text.
struct BadLine {
    line: u64,
    reason: String,
    raw: Range<usize>,
}

/// What decoding one slice of the file gave.
struct Decoded {
    chunk: Chunk,
    /// Lines in the slice, blank ones included (for line numbers).
    line_count: u64,
    /// Lines that are not blank.
    lines: u64,
    bad: Vec<BadLine>,
    /// A line over `max_line_bytes`, which stops the run.
    too_long: Option<TooLong>,
}

/// Where the lines of gathered records came from: line `i` (0-based) of the text is line
/// `lines[i].1` of `locations[lines[i].0]`.
struct Origins {
    locations: Vec<Location>,
    lines: Vec<(u32, u64)>,
}

/// The text to run: a plain file as it is, or the records of the file layer's files and
/// entries, one per line, with where each came from.
fn gather(reader: Reader, threads: usize) -> Result<(Vec<u8>, Option<Origins>), ConnectorError> {
    match reader {
        Reader::Plain(path) => {
            let text = read_file(&path, threads).map_err(|source| ConnectorError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            Ok((text, None))
        }
        Reader::Framed(mut src) => {
            let mut text = Vec::new();
            let mut origins = Origins {
                locations: Vec::new(),
                lines: Vec::new(),
            };
            while let Some((n, raw)) = src.next_line()? {
                text.extend_from_slice(raw);
                text.push(b'\n');
                let at = src.location();
                if origins.locations.last() != at {
                    if let Some(at) = at {
                        origins.locations.push(at.clone());
                    }
                }
                let idx = origins.locations.len().saturating_sub(1);
                origins
                    .lines
                    .push((u32::try_from(idx).unwrap_or(u32::MAX), n));
            }
            Ok((text, Some(origins)))
        }
    }
}

/// Runs `spec` over the file `input` key by key, writing what [`super::replay`] writes.
/// The spec must run key by key ([`eventide_engine::bounded::supports`]).
pub(super) fn replay_by_key(
    spec: &PipelineSpec,
    codec: &Codec,
    reader: Reader,
    out_dir: &Path,
    opts: &ReplayOptions,
    threads: usize,
    started: Instant,
) -> Result<ReplayReport, ConnectorError> {
    let routes = Routes::new(spec);
    let plain_path = match &reader {
        Reader::Plain(p) => Some(p.clone()),
        Reader::Framed(_) => None,
    };
    let (text, origins) = gather(reader, threads)?;
    tracing::debug!(elapsed = ?started.elapsed(), bytes = text.len(), "read");
    let bar = if opts.progress {
        progress_bar(Some(text.len() as u64))
    } else {
        ProgressBar::hidden()
    };
    let max_line = usize::try_from(spec.files.max_line_bytes).unwrap_or(usize::MAX);
    let slices = cut_lines(&text, threads);
    let decoded: Vec<Decoded> = std::thread::scope(|s| {
        let handles: Vec<_> = slices
            .iter()
            .map(|r| {
                let (codec, routes, text, bar) = (codec, &routes, &text, &bar);
                let r = r.clone();
                s.spawn(move || decode_slice(codec, routes, text, r, max_line, bar))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    tracing::debug!(elapsed = ?started.elapsed(), "read and decoded");
    let (mut lines, mut base) = (0u64, 0u64);
    let mut chunks = Vec::with_capacity(decoded.len());
    // Dead letters: (line number, reason, where the line starts and ends).
    let mut bad: Vec<(u64, String, Range<usize>)> = Vec::new();
    for d in decoded {
        if let Some(e) = d.too_long {
            let file = plain_path
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string());
            return Err(ConnectorError::Input {
                place: format!("{file}, line {}", base + e.number),
                reason: e.to_string(),
            });
        }
        bad.extend(d.bad.into_iter().map(|b| (base + b.line, b.reason, b.raw)));
        base += d.line_count;
        lines += d.lines;
        chunks.push(d.chunk);
    }
    let input = BoundedInput::new(spec, routes, chunks, opts.wall_ms());
    bad.extend(future_dead_letters(&text, input.future()));
    bad.sort_by_key(|b| b.0);
    let mut dead = LazyFile::new(&out_dir.join("dead_letters.jsonl"));
    for (global, reason, raw) in bad {
        // Line numbers of the gathered text; the file layer's say where each line came from.
        let (line, at) = match &origins {
            None => (global, None),
            Some(o) => {
                let (loc, n) = usize::try_from(global - 1)
                    .ok()
                    .and_then(|i| o.lines.get(i))
                    .copied()
                    .unwrap_or((0, global));
                (n, o.locations.get(loc as usize))
            }
        };
        dead.json(&DeadLetter::new(line, reason, &text[raw]).at(at))?;
    }
    dead.flush()?;
    bar.finish_and_clear();
    tracing::debug!(elapsed = ?started.elapsed(), "grouped by key");

    let n = spec.aggregations.len();
    let units: Vec<(usize, Range<u32>)> = (0..n)
        .flat_map(|a| input.split(a, UNIT_EVENTS).into_iter().map(move |r| (a, r)))
        .collect();
    let mut files = Vec::with_capacity(n);
    for agg in &spec.aggregations {
        let (format, name) = row_format(spec, agg);
        let path = out_dir.join(name);
        let file = crate::sinks::create_file(&path).map_err(|source| ConnectorError::Write {
            path: path.clone(),
            source,
        })?;
        let mut out = OutFile { path, file };
        out.write(&format.header())?;
        files.push(out);
    }
    let mut panes = vec![0u64; n];
    let mut late_counts = vec![0u64; n];
    // Per aggregation, where the lines of its late records start.
    let mut late: Vec<Vec<u64>> = vec![Vec::new(); n];
    let next = AtomicUsize::new(0);
    let written: Result<(), ConnectorError> = std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<(usize, UnitRows)>(threads * 2);
        for _ in 0..threads {
            let (tx, next, units, input) = (tx.clone(), &next, &units, &input);
            s.spawn(move || {
                let mut runners: Vec<Option<KeyRunner>> = (0..n).map(|_| None).collect();
                let mut formats: Vec<Option<Box<dyn RowFormat>>> = (0..n).map(|_| None).collect();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((agg, ranks)) = units.get(i) else {
                        break;
                    };
                    let runner = runners[*agg].get_or_insert_with(|| KeyRunner::new(spec, *agg));
                    let format = formats[*agg]
                        .get_or_insert_with(|| row_format(spec, &spec.aggregations[*agg]).0);
                    let rows = run_unit(input, runner, format.as_mut(), ranks.clone());
                    if tx.send((i, rows)).is_err() {
                        break; // the writer failed and stopped
                    }
                }
            });
        }
        drop(tx);
        // Units complete out of order; write them in order.
        let mut pending: BTreeMap<usize, UnitRows> = BTreeMap::new();
        let mut due = 0usize;
        for (i, rows) in rx {
            pending.insert(i, rows);
            while let Some(rows) = pending.remove(&due) {
                let agg = units[due].0;
                files[agg].write(&rows.rows)?;
                panes[agg] += rows.panes;
                late_counts[agg] += rows.late.len() as u64;
                late[agg].extend(rows.late);
                due += 1;
                if units.get(due).is_none_or(|(next, _)| *next != agg) {
                    // The aggregation is complete: its late records can go while the
                    // workers run the next ones.
                    let path = out_dir.join(format!("{}.late.jsonl", spec.aggregations[agg].name));
                    write_late(&path, &text, std::mem::take(&mut late[agg]))?;
                }
            }
        }
        Ok(())
    });
    written?;
    tracing::debug!(elapsed = ?started.elapsed(), "aggregated and written");
    Ok(ReplayReport {
        lines,
        // Events set aside as future-dated are dead letters, not events.
        events: (input.len() - input.future().len()) as u64,
        controls: input.timeline().controls,
        dead_letters: dead.written,
        aggregations: spec
            .aggregations
            .iter()
            .map(|a| a.name.clone())
            .zip(panes)
            .zip(late_counts)
            .map(|((n, p), l)| (n, p, l))
            .collect(),
        alerts: 0,
        elapsed: started.elapsed(),
    })
}

/// An output file being written.
struct OutFile {
    path: std::path::PathBuf,
    file: File,
}

impl OutFile {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConnectorError> {
        self.file
            .write_all(bytes)
            .map_err(|source| ConnectorError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads a whole file, in `parts` pieces side by side.
fn read_file(path: &Path, parts: usize) -> std::io::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let mut text = vec![0u8; len];
        let piece = len.div_ceil(parts.max(1)).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = text
                .chunks_mut(piece)
                .enumerate()
                .map(|(i, buf)| {
                    let file = &file;
                    s.spawn(move || file.read_exact_at(buf, (i * piece) as u64))
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        })?;
        Ok(text)
    }
    #[cfg(not(unix))]
    {
        let _ = parts;
        std::fs::read(path)
    }
}

/// The dead letters of events left out as dated too far in the future, by the offsets their
/// lines start at: their line numbers (counted in one pass), reasons and extents.
fn future_dead_letters(
    text: &[u8],
    future: &[(u64, eventide_engine::RecordError)],
) -> Vec<(u64, String, Range<usize>)> {
    let mut sorted: Vec<_> = future.iter().collect();
    sorted.sort_unstable_by_key(|f| f.0);
    let (mut line, mut counted) = (1u64, 0usize);
    let mut out = Vec::with_capacity(sorted.len());
    for (at, reason) in sorted {
        let at = (*at as usize).min(text.len());
        line += memchr::memchr_iter(b'\n', &text[counted..at]).count() as u64;
        counted = at;
        let raw = line_at(text, at);
        out.push((line, reason.to_string(), at..at + raw.len()));
    }
    out
}

/// Writes the late records of an aggregation, by where their lines start, in input order
/// as a streaming run does. Nothing is created when there are none.
fn write_late(path: &Path, text: &[u8], mut starts: Vec<u64>) -> Result<(), ConnectorError> {
    let mut file = LazyFile::new(path);
    starts.sort_unstable();
    for at in starts {
        file.raw_line(line_at(text, at as usize))?;
    }
    file.flush()
}

/// Cuts `text` into at most `parts` ranges of whole lines.
fn cut_lines(text: &[u8], parts: usize) -> Vec<Range<usize>> {
    let mut out = Vec::with_capacity(parts);
    let mut from = 0;
    for i in 1..=parts {
        let target = text.len() * i / parts.max(1);
        let to = if i == parts || target <= from {
            text.len()
        } else {
            memchr::memchr(b'\n', &text[target..]).map_or(text.len(), |p| target + p + 1)
        };
        if to > from {
            out.push(from..to);
        }
        from = to;
        if from == text.len() {
            break;
        }
    }
    out
}

/// The line starting at `at`, without its line end.
fn line_at(text: &[u8], at: usize) -> &[u8] {
    let rest = text.get(at..).unwrap_or_default();
    let mut line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    while let [head @ .., b'\r'] = line {
        line = head;
    }
    line
}

/// Decodes the lines of `text[range]` into a chunk, tagging each event with where its line
/// starts. Lines are split by the one splitter of every local reader ([`Lines`]).
fn decode_slice(
    codec: &Codec,
    routes: &Routes,
    text: &[u8],
    range: Range<usize>,
    max_line: usize,
    bar: &ProgressBar,
) -> Decoded {
    let mut d = Decoded {
        chunk: Chunk::new(routes),
        line_count: 0,
        lines: 0,
        bad: Vec::new(),
        too_long: None,
    };
    let mut reported = range.start;
    let mut lines = Lines::of_range(text, range, max_line);
    for l in lines.by_ref() {
        let l = match l {
            Ok(l) => l,
            Err(e) => {
                d.too_long = Some(e);
                break;
            }
        };
        d.lines += 1;
        match codec.decode(l.text) {
            Ok(Line::Event(rec)) => d.chunk.push_event(routes, &rec, l.offset as u64),
            Ok(control) => d.chunk.push_control(&control),
            // Dropped on purpose by an enrichment (`on_miss = "drop"`): not a dead letter.
            Err(RecordError::Dropped(_)) => {}
            Err(reason) => d.bad.push(BadLine {
                line: l.number,
                reason: reason.to_string(),
                raw: l.offset..l.offset + l.text.len(),
            }),
        }
        if l.offset - reported >= 1 << 20 {
            bar.inc((l.offset - reported) as u64);
            reported = l.offset;
        }
    }
    d.line_count = lines.seen();
    bar.inc((lines.position() - reported) as u64);
    d
}

/// The rows of a unit, formatted, and its late records.
struct UnitRows {
    rows: Vec<u8>,
    panes: u64,
    late: Vec<u64>,
}

/// Formats a unit's panes. Panes of one key arrive in window-start order except with late
/// or early panes of several windows; a key whose rows came out of order is re-sorted by
/// start (stably, so the panes of one window keep their order) when it ends.
struct UnitOut<'a> {
    format: &'a mut dyn RowFormat,
    out: UnitRows,
    /// The current key's rows: window start and byte range.
    key_rows: Vec<(i64, Range<usize>)>,
    sorted: bool,
}

impl Emit for UnitOut<'_> {
    #[inline]
    fn pane(&mut self, p: &Pane<'_>) {
        let from = self.out.rows.len();
        self.format.row(&mut self.out.rows, p);
        if self
            .key_rows
            .last()
            .is_some_and(|(s, _)| *s > p.window.start)
        {
            self.sorted = false;
        }
        self.key_rows
            .push((p.window.start, from..self.out.rows.len()));
        self.out.panes += 1;
    }
}

impl KeyOutput for UnitOut<'_> {
    fn late(&mut self, tag: u64) {
        self.out.late.push(tag);
    }
}

impl UnitOut<'_> {
    /// The end of a key's rows.
    fn end_key(&mut self) {
        if !self.sorted {
            if let Some(from) = self.key_rows.first().map(|(_, r)| r.start) {
                let tail = self.out.rows.split_off(from);
                self.key_rows.sort_by_key(|(s, _)| *s);
                for (_, r) in &self.key_rows {
                    self.out
                        .rows
                        .extend_from_slice(&tail[r.start - from..r.end - from]);
                }
            }
        }
        self.key_rows.clear();
        self.sorted = true;
    }
}

/// Runs the keys `ranks` of a runner's aggregation.
fn run_unit(
    input: &BoundedInput,
    runner: &mut KeyRunner,
    format: &mut dyn RowFormat,
    ranks: Range<u32>,
) -> UnitRows {
    let mut out = UnitOut {
        format,
        out: UnitRows {
            rows: Vec::with_capacity(1 << 20),
            panes: 0,
            late: Vec::new(),
        },
        key_rows: Vec::new(),
        sorted: true,
    };
    for rank in ranks {
        runner.run_key(input, rank, &mut out);
        out.end_key();
    }
    out.out
}
