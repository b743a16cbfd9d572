//! The reference pipeline against the reference oracle (`../shared/reference/oracle.py`,
//! Flink 2.3 SQL semantics) on data from the reference generator, for several seeds and
//! sizes. `compare.py` must report 0 mismatching rows, and every query's
//! output must be byte-identical.

use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::PipelineSpec;
use eventide_testkit::reference::{generate, oracle, project_root, same_rows};

fn check(seed: u64, n: u64, keys: u64) {
    // Kept when a check fails, to look at; removed when it passes.
    let work =
        std::env::temp_dir().join(format!("eventide-oracle-{}-{seed}-{n}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let input = work.join("events.jsonl");
    let (ours, theirs) = (work.join("eventide"), work.join("oracle"));
    generate(n, keys, seed, &input);
    oracle(&input, &theirs);

    let spec = PipelineSpec::from_toml(
        &std::fs::read_to_string(project_root().join("examples/reference/pipeline.toml")).unwrap(),
    )
    .unwrap();
    let report = replay(spec, &input, &ours, &ReplayOptions::default()).unwrap();
    assert_eq!(report.events, n);
    assert_eq!(report.dead_letters, 0);

    assert!(
        same_rows(&ours, &theirs),
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
