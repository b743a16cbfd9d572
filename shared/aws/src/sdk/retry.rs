//! Retrying throttled calls: bounded exponential backoff with jitter.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::errors::{error_code, is_retryable};

/// Bounded exponential backoff with jitter, for throttled calls and for the items a batch
/// call hands back unprocessed.
///
/// The delay of attempt `n` (0-based) is uniformly drawn from `[d/2, d]` where
/// `d = min(max_ms, base_ms * 2^n)` ("equal jitter"): consumers that were throttled
/// together spread out, yet nobody retries immediately.
///
/// ```
/// use eventide_aws::sdk::Backoff;
/// let b = Backoff { base_ms: 100, max_ms: 1_000, max_retries: 3 };
/// assert!(b.delay(0).as_millis() >= 50 && b.delay(0).as_millis() <= 100);
/// assert!(b.delay(9).as_millis() <= 1_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, in ms.
    pub base_ms: u64,
    /// The largest delay, in ms.
    pub max_ms: u64,
    /// How many retries before giving up.
    pub max_retries: u32,
}

impl Default for Backoff {
    /// 50 ms doubling up to 5 s, 8 retries: the Kinesis calls (GetRecords, ListShards, …).
    fn default() -> Self {
        Backoff {
            base_ms: 50,
            max_ms: 5_000,
            max_retries: 8,
        }
    }
}

impl Backoff {
    /// 25 ms doubling up to 2.5 s, 10 retries: the items a BatchWriteItem or PutRecords
    /// call hands back unprocessed.
    pub const BATCH: Backoff = Backoff {
        base_ms: 25,
        max_ms: 2_500,
        max_retries: 10,
    };

    /// The jittered delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self
            .base_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(self.max_ms)
            .max(1);
        let half = d / 2;
        Duration::from_millis(half + jitter(d - half + 1))
    }
}

/// A cheap random number in `[0, bound)`: xorshift seeded from the clock and a counter.
/// Jitter needs spread, not cryptographic quality, and no dependency is worth it.
fn jitter(bound: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if bound == 0 {
        0
    } else {
        x % bound
    }
}

/// Runs `call` (one SDK request, built afresh each time) until it succeeds, fails with an
/// error that is not worth retrying ([`is_retryable`]), or `backoff.max_retries` retries
/// have been spent, sleeping [`Backoff::delay`] between attempts. `op` names the call in
/// the logs.
///
/// ```no_run
/// # async fn f(client: aws_sdk_kinesis::Client) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::sdk::{retry_throttled, Backoff};
/// let op = "DescribeStreamSummary stream events";
/// let out = retry_throttled(op, &Backoff::default(), || {
///     client.describe_stream_summary().stream_name("events").send()
/// })
/// .await
/// .map_err(|e| eventide_aws::AwsError::service(op, e))?;
/// # let _ = out; Ok(()) }
/// ```
///
/// # Errors
/// The last error: one that is not retryable, or the last retryable one.
///
/// # Cancel safety
/// Cancelling it cancels the request in flight or the sleep; a request that reached the
/// service may have taken effect, as with any cancelled SDK call.
pub async fn retry_throttled<T, E, R, F, Fut>(
    op: &str,
    backoff: &Backoff,
    mut call: F,
) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if is_retryable(&e) && attempt < backoff.max_retries => {
                let d = backoff.delay(attempt);
                tracing::warn!(op, code = ?error_code(&e), attempt, delay_ms = d.as_millis() as u64,
                    "throttled, backing off");
                tokio::time::sleep(d).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1000,
            max_retries: 5,
        };
        for attempt in 0..40 {
            let d = b.delay(attempt).as_millis() as u64;
            let cap = (100u64 << attempt.min(20)).min(1000);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d} not in [{}, {cap}]",
                cap / 2
            );
        }
    }
}
