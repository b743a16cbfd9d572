//! Backoff between retries of throttled or partly processed requests.

use std::time::Duration;

/// Exponential backoff with jitter: 25 ms doubling per attempt, at most 2 s plus a quarter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 25u64.saturating_mul(1 << attempt.min(7)).min(2_000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (base / 4 + 1))
        .unwrap_or(0);
    Duration::from_millis(base + jitter)
}
