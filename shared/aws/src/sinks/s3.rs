//! S3 sink: JSON lines partitioned Glue/Athena (Hive) style by aggregation and by the UTC
//! date and hour of the window end:
//!
//! `<prefix>/aggregation=<name>/dt=YYYY-MM-DD/hour=HH/<batch_id>.jsonl`
//!
//! One object per (aggregation, partition) per batch. Object names depend only on the
//! batch id and the rows, so a retried batch overwrites its objects instead of adding
//! duplicates.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use tokio::task::JoinSet;
use tracing::debug;

use crate::error::AwsError;
use eventide_ports::rows::PaneRow;

/// PutObject calls in flight at once.
const PUT_CONCURRENCY: usize = 8;

/// Writes batches of panes as JSON-lines objects.
///
/// ```no_run
/// # async fn f(rows: Vec<eventide_aws::sinks::PaneRow>) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::sinks::S3Sink;
/// let clients = eventide_aws::config::Clients::from_env().await;
/// let sink = S3Sink::new(clients.s3.clone(), "demo-bucket", "results");
/// // e.g. results/aggregation=q1/dt=2026-11-24/hour=00/shardId-000000000000-4958.jsonl
/// sink.write(&rows, "shardId-000000000000-4958").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    prefix: String,
}

/// The UTC `(year, month, day, hour)` of an epoch-millisecond instant (proleptic
/// Gregorian; negative instants are before 1970).
///
/// ```
/// use eventide_aws::sinks::s3::utc_date_hour;
/// assert_eq!(utc_date_hour(0), (1970, 1, 1, 0));
/// assert_eq!(utc_date_hour(1_709_164_800_000), (2024, 2, 29, 0));
/// ```
pub fn utc_date_hour(epoch_ms: i64) -> (i64, u32, u32, u32) {
    const DAY_MS: i64 = 86_400_000;
    let days = epoch_ms.div_euclid(DAY_MS);
    let hour = (epoch_ms.rem_euclid(DAY_MS) / 3_600_000) as u32;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, hour)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The partition path of a window end: `dt=YYYY-MM-DD/hour=HH`.
///
/// ```
/// use eventide_aws::sinks::s3::partition;
/// assert_eq!(partition(1_700_000_000_000), "dt=2023-11-14/hour=22");
/// ```
pub fn partition(window_end_ms: i64) -> String {
    let (y, m, d, h) = utc_date_hour(window_end_ms);
    format!("dt={y:04}-{m:02}-{d:02}/hour={h:02}")
}

impl S3Sink {
    /// A sink writing under `prefix` (no leading or trailing `/` needed; may be empty) in
    /// an existing bucket.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Sink {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
        }
    }

    /// The object key of the rows of `aggregation` whose window ends at `window_end_ms`.
    pub fn object_key(&self, aggregation: &str, window_end_ms: i64, batch_id: &str) -> String {
        let rel = format!(
            "aggregation={aggregation}/{}/{batch_id}.jsonl",
            partition(window_end_ms)
        );
        if self.prefix.is_empty() {
            rel
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// The keys [`S3Sink::write`] writes for `batch`, sorted and without duplicates.
    pub fn object_keys(&self, batch: &[PaneRow], batch_id: &str) -> Vec<String> {
        let keys: std::collections::BTreeSet<String> = batch
            .iter()
            .map(|r| self.object_key(&r.aggregation, r.window_end, batch_id))
            .collect();
        keys.into_iter().collect()
    }

    /// Writes `batch` as one JSON-lines object per (aggregation, partition), rows in batch
    /// order (keys: [`S3Sink::object_keys`]). `batch_id` must be deterministic for the
    /// batch (e.g. shard id and first sequence number) and a valid key segment.
    ///
    /// # Errors
    /// [`AwsError::Service`] when a PutObject fails (the objects before it are written).
    ///
    /// # Cancel safety
    /// A cancelled write may have written some of the objects; the batch's retry writes
    /// the same keys again with the same bodies.
    pub async fn write(&self, batch: &[PaneRow], batch_id: &str) -> Result<(), AwsError> {
        let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for row in batch {
            let key = self.object_key(&row.aggregation, row.window_end, batch_id);
            let body = objects.entry(key).or_default();
            body.extend_from_slice(row.to_json_string().as_bytes());
            body.push(b'\n');
        }
        let count = objects.len();
        let mut tasks = JoinSet::new();
        let mut result = Ok(());
        for (key, body) in objects {
            if tasks.len() >= PUT_CONCURRENCY {
                if let Some(joined) = tasks.join_next().await {
                    result = result.and(flatten(joined, &self.bucket));
                }
            }
            let client = self.client.clone();
            let bucket = self.bucket.clone();
            tasks.spawn(async move { put(&client, &bucket, &key, body).await });
        }
        while let Some(joined) = tasks.join_next().await {
            result = result.and(flatten(joined, &self.bucket));
        }
        result?;
        debug!(bucket = %self.bucket, batch_id, rows = batch.len(), objects = count, "wrote panes to S3");
        Ok(())
    }
}

fn flatten(
    joined: Result<Result<(), AwsError>, tokio::task::JoinError>,
    bucket: &str,
) -> Result<(), AwsError> {
    joined.map_err(|e| AwsError::Service {
        op: format!("PutObject s3://{bucket}"),
        message: format!("task failed: {e}"),
    })?
}

/// PutObject of a JSON-lines body (the SDK retries transient failures).
pub(crate) async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), AwsError> {
    let len = body.len();
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-ndjson")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| AwsError::service(format!("PutObject s3://{bucket}/{key}"), e))?;
    debug!(bucket, key, bytes = len, "put object");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: days → date by counting whole years and months from 1970.
    fn naive(days: i64) -> (i64, u32, u32) {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut y, mut d) = (1970i64, days);
        while d < 0 {
            y -= 1;
            d += if leap(y) { 366 } else { 365 };
        }
        while d >= if leap(y) { 366 } else { 365 } {
            d -= if leap(y) { 366 } else { 365 };
            y += 1;
        }
        let lens = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut m = 0;
        while d >= lens[m] {
            d -= lens[m];
            m += 1;
        }
        (y, m as u32 + 1, d as u32 + 1)
    }

    #[test]
    fn civil_from_days_matches_a_naive_calendar() {
        // Step a calendar one day at a time across ±2,000 years around 1970.
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let first = -800_000i64;
        let mut date = naive(first);
        for days in first..800_000 {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (y, m, d) = date;
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            date = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(utc_date_hour(0), (1970, 1, 1, 0));
        assert_eq!(utc_date_hour(-1), (1969, 12, 31, 23));
        assert_eq!(utc_date_hour(951_782_400_000), (2000, 2, 29, 0)); // leap century
        assert_eq!(utc_date_hour(4_107_542_400_000 - 1), (2100, 2, 28, 23)); // 2100 is not leap
        assert_eq!(utc_date_hour(4_107_542_400_000), (2100, 3, 1, 0));
        assert_eq!(utc_date_hour(1_735_689_599_999), (2024, 12, 31, 23));
        assert_eq!(partition(1_735_689_600_000), "dt=2025-01-01/hour=00");
        // The global window's end does not overflow.
        let (y, m, d, h) = utc_date_hour(i64::MAX);
        assert!(y > 200_000_000 && (1..=12).contains(&m) && (1..=31).contains(&d) && h < 24);
    }
}
