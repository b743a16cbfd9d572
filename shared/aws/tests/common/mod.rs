//! Shared setup of the integration tests: they run against local AWS (`localstack/up`),
//! which `./test` starts; endpoints come from the standard SDK variables.

#![allow(dead_code)]

use eventide_aws::config::Clients;
pub use eventide_testkit::unique;

/// Clients for local AWS. Fails with a clear message when no endpoint is configured.
pub async fn clients() -> Clients {
    eventide_testkit::require_local_aws();
    Clients::from_env().await
}
