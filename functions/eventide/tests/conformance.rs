//! Conformance: replays every case of `examples/streaming-systems/` and compares the produced
//! files with `expected/*.csv` exactly, line by line (row order matters).
//!
//! All failing cases are reported with a diff of their first differing lines; the test fails
//! once at the end, listing them.

use eventide_testkit::Scratch;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::PipelineSpec;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn lines_of(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.trim_end_matches('\r')).collect()
}

/// A readable diff: the first differing line with a little context, or `None` when equal.
fn diff(expected: &str, actual: &str) -> Option<String> {
    let (e, a) = (lines_of(expected), lines_of(actual));
    if e == a {
        return None;
    }
    let first = e
        .iter()
        .zip(a.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "    first difference at line {} (expected {} lines, got {})",
        first + 1,
        e.len(),
        a.len()
    );
    for (i, line) in e
        .iter()
        .enumerate()
        .take(first)
        .skip(first.saturating_sub(2))
    {
        let _ = writeln!(s, "      {:>3}   {}", i + 1, line);
    }
    let to = (first + 4).min(e.len().max(a.len()));
    for i in first..to {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {
                let _ = writeln!(s, "      {:>3}   {}", i + 1, x);
            }
            (x, y) => {
                let _ = writeln!(
                    s,
                    "      {:>3} - {}",
                    i + 1,
                    x.copied().unwrap_or("<missing>")
                );
                let _ = writeln!(
                    s,
                    "      {:>3} + {}",
                    i + 1,
                    y.copied().unwrap_or("<missing>")
                );
            }
        }
    }
    Some(s)
}

/// Runs one case; returns a description of every mismatch.
fn run_case(case: &Path) -> Result<(), String> {
    let name = case
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("case")
        .to_string();
    let toml = std::fs::read_to_string(case.join("pipeline.toml"))
        .map_err(|e| format!("  reading pipeline.toml: {e}\n"))?;
    let spec = PipelineSpec::from_toml(&toml).map_err(|e| format!("  pipeline.toml: {e}\n"))?;
    let out = Scratch::new(&format!("conformance-{name}"));
    replay(
        spec,
        &case.join("input.jsonl"),
        &out,
        &ReplayOptions::default(),
    )
    .map_err(|e| format!("  replay failed: {e}\n"))?;

    let mut expected: Vec<PathBuf> = std::fs::read_dir(case.join("expected"))
        .map_err(|e| format!("  reading expected/: {e}\n"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    expected.sort();
    if expected.is_empty() {
        return Err("  no expected/*.csv file\n".into());
    }
    let mut report = String::new();
    for exp in expected {
        let file = exp.file_name().unwrap_or_default().to_owned();
        let want = std::fs::read_to_string(&exp)
            .map_err(|e| format!("  reading {}: {e}\n", exp.display()))?;
        match std::fs::read_to_string(out.join(&file)) {
            Err(e) => {
                let _ = writeln!(report, "  {}: not produced ({e})", file.to_string_lossy());
            }
            Ok(got) => {
                if let Some(d) = diff(&want, &got) {
                    let _ = write!(report, "  {}:\n{d}", file.to_string_lossy());
                }
            }
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

#[test]
fn streaming_systems_cases_match_expected_output() {
    let root = examples_dir().join("streaming-systems");
    let cases = sorted_dirs(&root);
    assert!(!cases.is_empty(), "no cases under {}", root.display());
    let mut failed = Vec::new();
    let mut report = String::new();
    for case in &cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        if let Err(r) = run_case(case) {
            let _ = write!(report, "\n[{name}]\n{r}");
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        eprintln!("{report}");
        panic!(
            "{} of {} conformance cases failed: {}",
            failed.len(),
            cases.len(),
            failed.join(", ")
        );
    }
}

fn pipeline_tomls(dir: &Path, found: &mut Vec<PathBuf>) {
    for d in sorted_dirs(dir) {
        pipeline_tomls(&d, found);
    }
    let p = dir.join("pipeline.toml");
    if p.is_file() {
        found.push(p);
    }
}

#[test]
fn every_example_pipeline_parses() {
    let root = examples_dir();
    let mut files = Vec::new();
    pipeline_tomls(&root, &mut files);
    let reference = root.join("reference/pipeline.toml");
    assert!(
        files.contains(&reference),
        "{} not found",
        reference.display()
    );
    let mut errors = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        if let Err(e) = PipelineSpec::from_toml(&text) {
            errors.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(
        errors.is_empty(),
        "pipeline specs that do not parse:\n{}",
        errors.join("\n")
    );
    // The reference pipeline runs its four queries.
    let spec = PipelineSpec::from_toml(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let names: Vec<&str> = spec.aggregations.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["q1", "q2", "q3", "q4"]);
}
