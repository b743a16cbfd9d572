//! The reference pipeline against the reference oracle (`../shared/reference/oracle.py`,
//! Flink 2.3 SQL semantics) on data from the reference generator, for several seeds and
//! sizes. `compare.py` must report 0 mismatching rows, and every query's
//! output must be byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::PipelineSpec;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> PathBuf {
    let dir = root().join("../shared/reference");
    assert!(
        dir.join("oracle.py").exists(),
        "the reference oracle is expected at {} (shared/ beside the project root)",
        dir.display()
    );
    dir
}

fn python(args: &[&str]) {
    let status = Command::new("python3")
        .args(args)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "python3 {args:?} failed");
}

fn check(seed: u64, n: u64, keys: u64) {
    let refdir = reference();
    let work =
        std::env::temp_dir().join(format!("eventide-oracle-{}-{seed}-{n}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let input = work.join("events.jsonl");
    let (ours, theirs) = (work.join("eventide"), work.join("oracle"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    python(&[
        &s(&refdir.join("gen.py")),
        "--n",
        &n.to_string(),
        "--keys",
        &keys.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        &s(&input),
    ]);
    python(&[
        &s(&refdir.join("oracle.py")),
        "--input",
        &s(&input),
        "--out",
        &s(&theirs),
    ]);

    let spec = PipelineSpec::from_toml(
        &std::fs::read_to_string(root().join("examples/reference/pipeline.toml")).unwrap(),
    )
    .unwrap();
    let report = replay(spec, &input, &ours, &ReplayOptions::default()).unwrap();
    assert_eq!(report.events, n);
    assert_eq!(report.dead_letters, 0);

    let status = Command::new("python3")
        .args([&s(&refdir.join("compare.py")), &s(&ours), &s(&theirs)])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "compare.py found mismatching rows (seed {seed}, n {n}); outputs kept in {}",
        work.display()
    );
    for q in ["q1", "q2", "q3", "q4"] {
        let a = std::fs::read(ours.join(format!("{q}.csv"))).unwrap();
        let b = std::fs::read(theirs.join(format!("{q}.csv"))).unwrap();
        assert!(a == b, "{q}.csv is not byte-identical to the oracle's (seed {seed}, n {n}); outputs kept in {}", work.display());
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn matches_oracle_seed_1_small_key_space() {
    check(1, 5_000, 50);
}

#[test]
fn matches_oracle_seed_7() {
    check(7, 20_000, 500);
}

#[test]
fn matches_oracle_seed_42_many_keys() {
    check(42, 30_000, 10_000);
}
