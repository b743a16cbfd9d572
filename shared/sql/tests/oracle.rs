//! `examples/sql/reference.sql` (the four reference queries as Flink runs them) against the
//! reference oracle (`../shared/reference/oracle.py`, Flink 2.3 semantics), for several
//! seeds and sizes: `compare.py` must report 0 mismatching rows. And the SQL compiles to the
//! same plan as `examples/reference/pipeline.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use eventide_connectors::replay::{replay, ReplayOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python(args: &[&str]) {
    let status = Command::new("python3")
        .args(args)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "python3 {args:?} failed");
}

fn check(seed: u64, n: u64, keys: u64) {
    let refdir = root().join("../shared/reference");
    assert!(
        refdir.join("oracle.py").exists(),
        "the reference oracle is expected at {}",
        refdir.display()
    );
    let work = std::env::temp_dir().join(format!(
        "eventide-sql-oracle-{}-{seed}-{n}",
        std::process::id()
    ));
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
    let p = eventide_sql::load_pipeline(&root().join("examples/sql/reference.sql")).unwrap();
    let report = replay(p.spec, &input, &ours, &ReplayOptions::default()).unwrap();
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
    // With the canonical decimals, every file is byte-identical to the oracle's.
    let exact = work.join("decimals");
    let p =
        eventide_sql::load_pipeline(&root().join("examples/sql/reference-decimals.sql")).unwrap();
    replay(p.spec, &input, &exact, &ReplayOptions::default()).unwrap();
    for q in ["q1", "q2", "q3", "q4"] {
        let a = std::fs::read(exact.join(format!("{q}.csv"))).unwrap();
        let b = std::fs::read(theirs.join(format!("{q}.csv"))).unwrap();
        assert!(a == b, "{q}.csv of reference-decimals.sql is not byte-identical to the oracle's (seed {seed}, n {n}); outputs kept in {}", work.display());
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn reference_sql_matches_the_oracle_seed_1_small_key_space() {
    check(1, 5_000, 50);
}

#[test]
fn reference_sql_matches_the_oracle_seed_7() {
    check(7, 20_000, 200);
}

#[test]
fn reference_sql_matches_the_oracle_seed_42_many_keys() {
    check(42, 30_000, 5_000);
}

/// The SQL and the TOML reference are the same plan: the same windows, keys, filters,
/// triggers and sinks, aggregate for aggregate (the TOML also fixes printed decimals, which
/// plain Flink SQL leaves to the number's shortest form; `reference-decimals.sql` gives
/// them with CAST and is the TOML's plan to the last field).
#[test]
fn reference_sql_is_the_reference_toml_plan() {
    for file in ["reference.sql", "reference-decimals.sql"] {
        same_plan(file);
    }
}

fn same_plan(file: &str) {
    let sql = eventide_sql::load_pipeline(&root().join("examples/sql").join(file))
        .unwrap()
        .spec;
    let toml = eventide_sql::load_pipeline(&root().join("examples/reference/pipeline.toml"))
        .unwrap()
        .spec;
    assert_eq!(sql.input.time_field, toml.input.time_field);
    assert_eq!(sql.watermark, toml.watermark);
    assert_eq!(sql.aggregations.len(), toml.aggregations.len());
    for (a, b) in sql.aggregations.iter().zip(&toml.aggregations) {
        assert_eq!(a.name, b.name);
        let names = |s: &eventide_engine::PipelineSpec, g: &[usize]| -> Vec<String> {
            g.iter().map(|&i| s.input.fields[i].0.clone()).collect()
        };
        assert_eq!(names(&sql, &a.group_by), names(&toml, &b.group_by));
        assert_eq!(a.window, b.window);
        assert_eq!(a.filter.is_some(), b.filter.is_some());
        assert_eq!(a.trigger, b.trigger);
        assert_eq!(a.allowed_lateness_ms, b.allowed_lateness_ms);
        assert_eq!(a.accumulation, b.accumulation);
        assert_eq!(a.sink, b.sink);
        assert_eq!(a.aggregates.len(), b.aggregates.len());
        for (x, y) in a.aggregates.iter().zip(&b.aggregates) {
            assert_eq!((&x.name, x.func), (&y.name, y.func));
            if file == "reference-decimals.sql" {
                assert_eq!(x.decimals, y.decimals, "{} {}", a.name, x.name);
            }
            assert_eq!(
                x.field.map(|i| &sql.input.fields[i].0),
                y.field.map(|i| &toml.input.fields[i].0)
            );
        }
    }
}
