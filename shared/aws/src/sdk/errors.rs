//! What an SDK error means: its service error code, and whether to retry it.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Error codes that mean "slow down" or a transient service failure; retried with
/// [`Backoff`](super::Backoff).
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "KMSThrottlingException",
    "RequestLimitExceeded",
    "InternalFailureException",
    "ServiceUnavailable",
];

/// The code of a service error (`ResourceInUseException`, …), if it is one. Works for the
/// errors of every SDK client (they share `aws-smithy`'s types).
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Whether an SDK error is throttling or a transient failure (network, timeout, a response
/// that could not be read) worth retrying.
pub fn is_retryable<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::ServiceError(_) => error_code(err).is_some_and(|c| THROTTLING_CODES.contains(&c)),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

/// Whether a DynamoDB conditional write lost (`ConditionalCheckFailedException`).
pub fn is_condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    error_code(err) == Some("ConditionalCheckFailedException")
}
