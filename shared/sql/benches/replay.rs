//! Replay speed of the reference workload from SQL and from TOML: the same plan, so the same
//! speed. Runs `examples/reference/pipeline.toml`, `examples/sql/reference.sql` and
//! `examples/sql/reference-decimals.sql` (the TOML's plan to the last field) in alternating
//! rounds through `eventide_connectors::replay` (what `eventide replay` and `eventide bench`
//! run) and prints each run and the median per pipeline.
//!
//! ```sh
//! cargo bench -p eventide-sql --bench replay            # 1M events, 3 rounds
//! EVENTIDE_BENCH_INPUT=events.jsonl EVENTIDE_BENCH_ROUNDS=5 cargo bench -p eventide-sql --bench replay
//! ```
//!
//! Without `EVENTIDE_BENCH_INPUT` the input is made once by the reference generator
//! (`../shared/reference/gen.py --n 1000000 --keys 10000 --seed 42`) and kept in the temp
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use eventide_connectors::replay::{replay, ReplayOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn input() -> PathBuf {
    if let Ok(p) = std::env::var("EVENTIDE_BENCH_INPUT") {
        return PathBuf::from(p);
    }
    let path = std::env::temp_dir().join("eventide-bench-reference-1m-seed42.jsonl");
    if !path.exists() {
        let gen = root().join("../shared/reference/gen.py");
        let status = Command::new("python3")
            .arg(&gen)
            .args(["--n", "1000000", "--keys", "10000", "--seed", "42", "--out"])
            .arg(&path)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!(
                "cannot generate the input with {}; set EVENTIDE_BENCH_INPUT",
                gen.display()
            );
            std::process::exit(2);
        }
    }
    path
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let input = input();
    let rounds: usize = std::env::var("EVENTIDE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let pipelines = [
        "examples/reference/pipeline.toml",
        "examples/sql/reference.sql",
        "examples/sql/reference-decimals.sql",
    ];
    let out = std::env::temp_dir().join(format!("eventide-bench-sql-{}", std::process::id()));
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); pipelines.len()];
    let mut events = 0;
    for round in 0..rounds {
        for (i, p) in pipelines.iter().enumerate() {
            let spec = match eventide_sql::load_pipeline(&root().join(p)) {
                Ok(pl) => pl.spec,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            };
            let _ = std::fs::remove_dir_all(&out);
            let start = Instant::now();
            let report = match replay(spec, &input, &out, &ReplayOptions::default()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{p}: {e}");
                    std::process::exit(2);
                }
            };
            let s = start.elapsed().as_secs_f64();
            events = report.events;
            println!("round {} {p}: {s:.2} s", round + 1);
            times[i].push(s);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    println!("\n| pipeline | median of {rounds} | events/s |\n|---|---|---|");
    for (p, t) in pipelines.iter().zip(times.iter_mut()) {
        let m = median(t);
        println!("| `{p}` | {m:.2} s | {:.0}k |", events as f64 / m / 1e3);
    }
}
