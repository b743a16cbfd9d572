//! What Eventide's tests share, in one place: names unique to a run, scratch directories
//! that are removed when the test ends (passed or failed), the guard of the suites that
//! need local AWS, and the fuzzing budget of the property tests.
//!
//! It depends on no Eventide crate, so every crate's tests can use it.
//!
//! ```
//! let dir = eventide_testkit::Scratch::new("doc");
//! std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
//! let kept = dir.path().to_path_buf();
//! drop(dir);
//! assert!(!kept.exists());
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A lowercase name unique to this run (process id, clock and a counter), valid for
/// DynamoDB tables, Kinesis streams and S3 buckets: `unique("t")` is like
/// `t-12345-678901-0`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the system's temporary directory, removed with everything in
/// it when dropped, so a failed test leaves nothing behind in `/tmp`.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `eventide-<tag>-<unique>` under [`std::env::temp_dir`].
    ///
    /// # Panics
    /// If the directory cannot be created (this is test support: a test cannot go on).
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(unique(&format!("eventide-{tag}")));
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!(
                "cannot create the scratch directory {}: {e}",
                path.display()
            );
        }
        Scratch { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Checks that local AWS is configured (the standard `AWS_ENDPOINT_URL`), with a message
/// that says how to start it. The suites that call this are compiled only with the
/// `aws-integration` feature, which `./test` turns on.
///
/// # Panics
/// When `AWS_ENDPOINT_URL` is not set.
pub fn require_local_aws() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "this suite needs local AWS: run ./test, or localstack/up && eval \"$(localstack/env)\""
    );
}

/// The budget of a property test: `cases` per property, or `PROPTEST_CASES` for a longer
/// (or shorter) run, and no regression files written into the source tree.
pub fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// The reference workload and oracle of `../shared/reference/` (beside the project root):
/// the generator `gen.py`, the Flink-exact `oracle.py` and `compare.py`, run with
/// `python3`.
pub mod reference {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The project root (the workspace).
    pub fn project_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// `../shared/reference`.
    ///
    /// # Panics
    /// When the directory is missing, with where it was expected.
    pub fn dir() -> PathBuf {
        let dir = project_root().join("../shared/reference");
        assert!(
            dir.join("oracle.py").exists(),
            "the reference workload and oracle are expected at {} (shared/ beside the project root)",
            dir.display()
        );
        dir
    }

    /// Runs `python3 <script> <args>` in the reference directory's terms; panics with the
    /// script's error output when it fails.
    pub fn python(script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<u8> {
        let out = Command::new("python3")
            .arg(dir().join(script))
            .args(args.iter().map(|a| a.as_ref()))
            .output()
            .unwrap_or_else(|e| panic!("python3 {script} does not run: {e}"));
        assert!(
            out.status.success(),
            "python3 {script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Writes `n` events of `keys` subscribers (seed `seed`, `gen.py`'s default 10% late)
    /// to `out`, as JSON lines in arrival order.
    pub fn generate(n: u64, keys: u64, seed: u64, out: &Path) {
        run_gen(n, keys, seed, None, out);
    }

    /// [`generate`] with the fraction `late_frac` of the events late (`gen.py --late-frac`)
    /// instead of the default 10%.
    pub fn generate_with_late(n: u64, keys: u64, seed: u64, late_frac: f64, out: &Path) {
        run_gen(n, keys, seed, Some(late_frac), out);
    }

    fn run_gen(n: u64, keys: u64, seed: u64, late_frac: Option<f64>, out: &Path) {
        let (n, keys, seed) = (n.to_string(), keys.to_string(), seed.to_string());
        let late = late_frac.map(|f| f.to_string());
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"--n", &n, &"--keys", &keys, &"--seed", &seed, &"--out", &out,
        ];
        if let Some(late) = &late {
            args.push(&"--late-frac");
            args.push(late);
        }
        python("gen.py", &args);
    }

    /// The oracle's `q1.csv` … `q4.csv` for `input`, written into `out`.
    pub fn oracle(input: &Path, out: &Path) {
        python("oracle.py", &[&"--input", &input, &"--out", &out]);
    }

    /// Whether `compare.py` finds no mismatching row between two CSVs or directories.
    pub fn same_rows(a: &Path, b: &Path) -> bool {
        Command::new("python3")
            .arg(dir().join("compare.py"))
            .args([a, b])
            .status()
            .is_ok_and(|s| s.success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_within_a_run() {
        let a = unique("t");
        let b = unique("t");
        assert_ne!(a, b);
        assert!(a.starts_with("t-"));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn a_scratch_directory_goes_away_even_when_the_test_panics() {
        let kept = std::panic::catch_unwind(|| {
            let dir = Scratch::new("panics");
            std::fs::write(dir.join("f"), "x").unwrap();
            let p = dir.path().to_path_buf();
            assert!(p.exists());
            std::panic::panic_any(p)
        })
        .unwrap_err();
        let path = kept.downcast::<PathBuf>().unwrap();
        assert!(!path.exists(), "{} was left behind", path.display());
    }
}
