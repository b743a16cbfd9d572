//! `eventide replay`: runs a pipeline over input files with no AWS at all.
//!
//! The input is read by the file layer ([`crate::input`]: files, directories, globs, gzip,
//! zip, header and footer lines) and each record decoded by the pipeline's codec
//! ([`eventide_engine::codec`]: JSON lines, or CSV). A JSON record is an event or a
//! TestStream-style control line. Panes go to one file per
//! aggregation under the output directory; malformed lines go to `dead_letters.jsonl` with
//! their line number and reason, and records later than the allowed lateness go to
//! `<aggregation>.late.jsonl`. A bad line never aborts the run. At the end of the input the
//! watermark goes to +∞ and every window fires.
//!
//! How it runs is an [`Execution`]; every way writes the same bytes:
//! * [`by_key`]: when every sink writes in key order and the input is a file, the input is
//!   run one key at a time (the default);
//! * [`lanes`]: with rules, which alert in time order across keys, the keys are split by
//!   hash over lanes, one thread each, fed by one decoding thread (`decoded`);
//! * [`streaming`]: one thread, lines processed as read (stdin, sinks in firing order).
//!
//! This module chooses the way and the reader (`reader`); the ways share only the options
//! and report ([`options`]) and the reader, never each other.

pub mod by_key;
mod decoded;
pub mod lanes;
pub mod options;
mod reader;
pub mod streaming;

use std::path::{Path, PathBuf};
use std::time::Instant;

use eventide_engine::codec::Codec;
use eventide_engine::spec::SinkOrder;
use eventide_engine::PipelineSpec;

pub use options::{Execution, Input, ReplayOptions, ReplayReport};

use crate::error::ConnectorError;
use crate::input::{is_plain, resolve, InputSource};
use reader::Reader;

/// Runs `spec` over `input` (`-` for stdin, a file, a directory or a glob), writing results
/// under `out_dir`.
pub fn replay(
    spec: PipelineSpec,
    input: &Path,
    out_dir: &Path,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ConnectorError> {
    let input = if input.as_os_str() == "-" {
        Input::Stdin
    } else {
        Input::Files(resolve(input)?)
    };
    replay_input(spec, input, out_dir, opts)
}

/// Runs `spec` over `input`, writing results under `out_dir`.
pub fn replay_input(
    spec: PipelineSpec,
    input: Input,
    out_dir: &Path,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ConnectorError> {
    let started = Instant::now();
    let mut spec = spec;
    if let Some(path) = &opts.rules_file {
        match crate::rules_file::RulesFile::new(path).poll(&spec.input) {
            Some(Ok(rules)) => spec.rules = rules,
            Some(Err(e)) => return Err(ConnectorError::Rules(e.to_string())),
            None => {}
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|source| ConnectorError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    clear_outputs(&spec, out_dir)?;
    let all_key_ordered = !spec.aggregations.is_empty()
        && spec
            .aggregations
            .iter()
            .all(|a| a.sink.order == SinkOrder::Key);
    let file = input != Input::Stdin;
    let csv_header = matches!(&spec.format, eventide_engine::spec::Format::Csv(c) if c.header);
    let reader = match input {
        Input::Stdin if !spec.files.is_plain() || csv_header => {
            return Err(ConnectorError::Unsupported(
                "stdin is read as plain lines: [input] compression, header_lines, footer and \
                 csv.header need a file"
                    .into(),
            ))
        }
        Input::Stdin => Reader::Plain(PathBuf::from("-")),
        Input::Files(files) => match files.as_slice() {
            [f] if is_plain(&files, &spec)? => Reader::Plain(f.path.clone()),
            _ => Reader::Framed(Box::new(InputSource::open(files, &spec)?)),
        },
    };
    let mut codec = Codec::new(&spec);
    if let Reader::Framed(src) = &reader {
        if let Some(columns) = src.csv_columns() {
            codec = codec.with_csv_columns(&spec, columns);
        }
    }
    codec.set_lookups(opts.lookups.clone());
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(lanes::MAX_LANES);
    let by_key_ok = eventide_engine::bounded::supports(&spec);
    let execution = match opts.execution {
        Execution::Auto if all_key_ordered && file && by_key_ok => Execution::ByKey,
        Execution::Auto if all_key_ordered && file && cores > 1 => Execution::Lanes,
        Execution::Auto => Execution::Streaming,
        Execution::ByKey | Execution::Lanes if !file => {
            return Err(ConnectorError::Unsupported(
                "only a file can be replayed key by key or in lanes, not stdin".into(),
            ))
        }
        Execution::ByKey | Execution::Lanes if !all_key_ordered => {
            return Err(ConnectorError::Unsupported(
                "a key-by-key or lanes replay needs every sink to write in key order \
                 (sink.order = \"key\")"
                    .into(),
            ))
        }
        other => other,
    };
    if execution == Execution::ByKey {
        if !by_key_ok {
            return Err(ConnectorError::Unsupported(format!(
                "a pipeline with rules or more than {} aggregations can't run key by key",
                eventide_engine::bounded::MAX_AGGREGATIONS
            )));
        }
        return by_key::replay_by_key(&spec, &codec, reader, out_dir, opts, cores, started);
    }
    let src = reader.into_source(spec.files.max_line_bytes)?;
    if execution == Execution::Lanes {
        lanes::replay_lanes(spec, &codec, src, out_dir, opts, cores.max(2), started)
    } else {
        streaming::replay_streaming(spec, codec, src, out_dir, opts, started)
    }
}

/// Removes every file this run may write in `out_dir`, so that nothing of an earlier run
/// (a `dead_letters.jsonl` this run has no reason to write) is mistaken for its output.
/// Files that no run of this pipeline writes are left alone.
fn clear_outputs(spec: &PipelineSpec, out_dir: &Path) -> Result<(), ConnectorError> {
    let mut names = vec!["dead_letters.jsonl".to_string(), "alerts.jsonl".to_string()];
    for a in &spec.aggregations {
        for ext in ["csv", "jsonl", "late.jsonl"] {
            names.push(format!("{}.{ext}", a.name));
        }
    }
    for name in names {
        let path = out_dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ConnectorError::Write { path, source: e })
            }
            _ => {}
        }
    }
    Ok(())
}
