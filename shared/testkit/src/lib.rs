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
