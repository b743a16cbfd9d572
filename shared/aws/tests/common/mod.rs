//! Shared setup of the integration tests: they run against local AWS (`localstack/up`),
//! which `./test` starts; endpoints come from the standard SDK variables.

#![allow(dead_code)]

use eventide_aws::config::Clients;

/// Clients for local AWS. Fails with a clear message when no endpoint is configured.
pub async fn clients() -> Clients {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "integration tests need local AWS: run ./test, or localstack/up && eval \"$(localstack/env)\""
    );
    Clients::from_env().await
}

/// A name unique to this test run, for tables, streams and buckets.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
