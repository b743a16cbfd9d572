//! Replay throughput of the reference pipeline (`examples/reference/pipeline.toml`, q1–q4
//! in one pass, key-ordered CSV) in each execution: wall time per run, median and best of
//! `REPLAY_RUNS` runs (5 by default), with the runs of the executions interleaved so that a
//! busy host slows them alike.
//!
//! `cargo bench -p eventide-connectors --bench replay`. The input is `REPLAY_INPUT` (e.g.
//! `gen.py --n 1000000 --keys 10000 --seed 42`, the README's workload) or, without it,
//! `REPLAY_EVENTS` events (1,000,000 by default) of the same shape written to a temporary
//! file: 10,000 subscribers, two counters, times 259 ms apart with some arriving late.

use std::io::Write;
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, Execution, ReplayOptions};
use eventide_engine::PipelineSpec;

const PIPELINE: &str = include_str!("../../../examples/reference/pipeline.toml");

/// Writes `n` reference-shaped events to `path`, from a fixed seed.
fn synthetic(path: &Path, n: usize) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 42u64;
    let mut next = || {
        // xorshift64*: deterministic, good enough to spread keys and values.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let start = 1_767_225_600_000i64;
    for i in 0..n {
        let r = next();
        let key = r % 10_000;
        let counter = if r >> 20 & 1 == 0 { "x" } else { "y" };
        let value = (r >> 24) % 10_000;
        // One event in 50 arrives up to 10 minutes late (some past the 5-minute bound).
        let late = if (r >> 40) % 50 == 0 {
            ((r >> 44) % 600_000) as i64
        } else {
            0
        };
        let time = start + i as i64 * 259 - late;
        writeln!(
            out,
            r#"{{"subscriber_id":"s{key:06}","counter":"{counter}","value":{}.{:02},"event_time":{time}}}"#,
            value / 100,
            value % 100
        )?;
    }
    out.flush()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("eventide-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let input = match std::env::var_os("REPLAY_INPUT") {
        Some(p) => PathBuf::from(p),
        None => {
            let n = std::env::var("REPLAY_EVENTS").map_or(Ok(1_000_000), |s| s.parse())?;
            let path = tmp.join("events.jsonl");
            synthetic(&path, n)?;
            path
        }
    };
    let runs = std::env::var("REPLAY_RUNS").map_or(Ok(5), |s| s.parse::<usize>())?;
    let spec = PipelineSpec::from_toml(PIPELINE)?;
    let executions = [
        ("by-key", Execution::ByKey),
        ("lanes", Execution::Lanes),
        ("streaming", Execution::Streaming),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); executions.len()];
    let mut events = 0;
    for _ in 0..runs.max(1) {
        for (i, (_, execution)) in executions.iter().enumerate() {
            let opts = ReplayOptions {
                execution: *execution,
                ..ReplayOptions::default()
            };
            let report = replay(spec.clone(), &input, &tmp.join("out"), &opts)?;
            events = report.events;
            times[i].push(report.elapsed.as_secs_f64());
        }
    }
    println!("input: {} ({events} events)", input.display());
    for ((name, _), t) in executions.iter().zip(&mut times) {
        let best = t.iter().copied().fold(f64::MAX, f64::min);
        let med = median(t);
        println!(
            "{name:>10}: median {med:.3} s, best {best:.3} s ({:.2}M events/s at the median)",
            events as f64 / med / 1e6
        );
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
