//! The SDK plumbing every adapter shares, in one place (as Vector's `src/aws/`): what an
//! SDK error means ([`error_code`], [`is_retryable`], [`is_condition_failed`]), retrying
//! throttled calls with [`Backoff`], DynamoDB table creation and attribute access
//! ([`dynamodb`]) and `s3://` URLs ([`s3::S3Url`]).
//!
//! The clients themselves are built once, from the SDK's standard configuration, in
//! [`crate::config::Clients`], and passed down.

pub mod dynamodb;
mod errors;
mod retry;
pub mod s3;

pub use errors::{error_code, is_condition_failed, is_retryable};
pub use retry::{retry_throttled, Backoff};
