//! What a replay is asked to do and what it reports: [`ReplayOptions`], [`Execution`],
//! [`Input`] and [`ReplayReport`].

use std::time::Duration;

use crate::input::InputFile;

/// Options of a replay run.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// A rules file (`[[rule]]` tables) that replaces the spec's rules; a streaming run
    /// reloads it when it changes (see [`crate::rules_file`]).
    pub rules_file: Option<std::path::PathBuf>,
    /// The enrichment tables every record is joined with (loaded by the caller).
    pub lookups: eventide_engine::enrich::Snapshot,
    /// How the run is executed; every way writes the same files.
    pub execution: Execution,
    /// The processing time that `[watermark] max_future_skew` measures events against
    /// until the input gives its own with `advance_processing_time` lines; `None` is the
    /// wall clock when the run starts.
    pub wall_ms: Option<i64>,
}

impl ReplayOptions {
    /// [`ReplayOptions::wall_ms`], or the wall clock now.
    pub fn wall_ms(&self) -> i64 {
        self.wall_ms.unwrap_or_else(|| {
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }
}

/// How a replay runs. Every way writes the same bytes; they differ in speed and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Execution {
    /// Key by key when every sink writes in key order and the input is a file without rules;
    /// lanes when it has rules; one streaming thread otherwise.
    #[default]
    Auto,
    /// One thread, lines processed as they are read: memory bounded by the state (plus the
    /// rows of key-ordered sinks), and the only way for stdin.
    Streaming,
    /// The keys split by hash over lanes, one thread each, all reading the input decoded
    /// once ([`super::lanes`]). `--execution sharded` is accepted for it.
    Lanes,
    /// Key by key ([`super::by_key`]): the fastest; holds the input file in memory.
    ByKey,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub lines: u64,
    pub events: u64,
    pub controls: u64,
    pub dead_letters: u64,
    /// Per aggregation: name, panes written, records dropped as too late.
    pub aggregations: Vec<(String, u64, u64)>,
    /// Rule alerts written to `alerts.jsonl`.
    pub alerts: u64,
    pub elapsed: Duration,
}

/// What a replay reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input, streamed (plain lines only).
    Stdin,
    /// Files in order (see [`crate::input::resolve`]).
    Files(Vec<InputFile>),
}
