//! Counting requests and capacity units as AWS bills them, for the in-memory ports.
//!
//! DynamoDB on demand: a write of an item costs one write request unit (WRU) per started
//! KB of the item (a failed conditional write too); a strongly consistent read costs one
//! read request unit (RRU) per started 4 KB, an eventually consistent one half that; a
//! query is billed on the total size of the items it returns. S3 bills PUT and GET
//! requests.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What one resource (a table or a bucket prefix) was asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// DynamoDB requests (each item write of a batch counted as one).
    pub requests: u64,
    /// DynamoDB write request units.
    pub wru: u64,
    /// DynamoDB read request units.
    pub rru: f64,
    /// S3 PUT (and DELETE) requests.
    pub puts: u64,
    /// S3 GET requests.
    pub gets: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// A thread-safe tally of [`Usage`] by resource name.
///
/// ```
/// use eventide_ports::meter::Meter;
/// let m = Meter::default();
/// m.dynamodb_write("state", 1_500);
/// m.dynamodb_read("state", 5_000, true);
/// let u = &m.usage()["state"];
/// assert_eq!((u.requests, u.wru, u.rru), (2, 2, 2.0));
/// ```
#[derive(Debug, Default)]
pub struct Meter(Mutex<BTreeMap<String, Usage>>);

impl Meter {
    fn with(&self, resource: &str, f: impl FnOnce(&mut Usage)) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(m.entry(resource.to_string()).or_default());
    }

    /// One item write of `size` bytes.
    pub fn dynamodb_write(&self, resource: &str, size: usize) {
        self.with(resource, |u| {
            u.requests += 1;
            u.wru += crate::state::write_units(size);
            u.bytes_written += size as u64;
        });
    }

    /// One read (get or query) returning `size` bytes in all.
    pub fn dynamodb_read(&self, resource: &str, size: usize, consistent: bool) {
        let units = size.div_ceil(4096).max(1) as f64;
        self.with(resource, |u| {
            u.requests += 1;
            u.rru += if consistent { units } else { units / 2.0 };
            u.bytes_read += size as u64;
        });
    }

    /// One S3 PUT (or DELETE) of `size` bytes.
    pub fn s3_put(&self, resource: &str, size: usize) {
        self.with(resource, |u| {
            u.puts += 1;
            u.bytes_written += size as u64;
        });
    }

    /// One S3 GET of `size` bytes.
    pub fn s3_get(&self, resource: &str, size: usize) {
        self.with(resource, |u| {
            u.gets += 1;
            u.bytes_read += size as u64;
        });
    }

    /// Usage so far, by resource.
    pub fn usage(&self) -> BTreeMap<String, Usage> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
