//! Dead letters: input records that cannot be decoded go to S3 with where they came from
//! and why, so nothing is silently lost and the consumer keeps going
//! (`docs/aws-runtime.md`, exactly-once step 1).
//!
//! One object per shard and batch: `<prefix>/shard=<shard id>/<first sequence number>.jsonl`,
//! one JSON line per record: `{"shard", "sequence_number", "reason", "raw"}`, where `raw` is
//! the record's data as (lossy) UTF-8, plus `"data_hex"` holding the exact bytes when the
//! data is not valid UTF-8. A replayed batch rewrites the same object.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::error::AwsError;

pub use eventide_ports::rows::DeadLetter;

/// Writes dead letters under a prefix of a bucket.
///
/// ```no_run
/// # async fn f() -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::dead_letter::{DeadLetter, DeadLetters};
/// let clients = eventide_aws::config::Clients::from_env().await;
/// DeadLetters::ensure_bucket(&clients.s3, "demo-bucket").await?;
/// let dl = DeadLetters::new(clients.s3.clone(), "demo-bucket", "dead-letters");
/// let bad = DeadLetter { sequence_number: "4958".into(), reason: "expected JSON".into(), data: b"{oops".to_vec() };
/// // s3://demo-bucket/dead-letters/shard=shardId-000000000000/4958.jsonl
/// dl.write("shardId-000000000000", &[bad]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: Client,
    bucket: String,
    prefix: String,
}

impl DeadLetters {
    /// Dead letters under `prefix` (slashes at either end are ignored; may be empty) in an
    /// existing bucket (see [`DeadLetters::ensure_bucket`]).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        DeadLetters {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
        }
    }

    /// Creates the bucket if it does not exist (in the client's region). Idempotent.
    ///
    /// # Errors
    /// [`AwsError::Service`] when CreateBucket fails for another reason than the bucket
    /// existing and being ours.
    pub async fn ensure_bucket(client: &Client, name: &str) -> Result<(), AwsError> {
        let op = format!("CreateBucket {name}");
        let mut req = client.create_bucket().bucket(name);
        // us-east-1 takes no location constraint; every other region requires one.
        if let Some(region) = client.config().region().map(|r| r.as_ref().to_string()) {
            if region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region.as_str()))
                        .build(),
                );
            }
        }
        match req.send().await {
            Ok(_) => {
                info!(bucket = name, "created bucket");
                Ok(())
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), CreateBucketError::BucketAlreadyOwnedByYou(_)) =>
            {
                debug!(bucket = name, "bucket exists");
                Ok(())
            }
            Err(e) => Err(AwsError::service(op, e)),
        }
    }

    /// The object key of a batch's dead letters from `shard` starting at `first_seq`.
    pub fn object_key(&self, shard: &str, first_seq: &str) -> String {
        let rel = format!("shard={shard}/{first_seq}.jsonl");
        if self.prefix.is_empty() {
            rel
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// One JSON line (without newline) describing `record` of `shard`.
    ///
    /// ```
    /// use eventide_aws::dead_letter::{DeadLetter, DeadLetters};
    /// let line = DeadLetters::line("s-1", &DeadLetter { sequence_number: "7".into(), reason: "bad".into(), data: vec![b'x', 0xff] });
    /// assert!(line.contains(r#""data_hex":"78ff""#));
    /// ```
    pub fn line(shard: &str, record: &DeadLetter) -> String {
        let mut m = Map::new();
        m.insert("shard".into(), Value::from(shard));
        m.insert(
            "sequence_number".into(),
            Value::from(record.sequence_number.as_str()),
        );
        m.insert("reason".into(), Value::from(record.reason.as_str()));
        match std::str::from_utf8(&record.data) {
            Ok(s) => {
                m.insert("raw".into(), Value::from(s));
            }
            Err(_) => {
                m.insert(
                    "raw".into(),
                    Value::from(String::from_utf8_lossy(&record.data).into_owned()),
                );
                m.insert("data_hex".into(), Value::from(hex(&record.data)));
            }
        }
        Value::Object(m).to_string()
    }

    /// Writes the dead letters of one batch of `shard` as one object named by the first
    /// record's sequence number, and returns its key; `None` (and no call) when `records`
    /// is empty. Deterministic, so a replayed batch overwrites its object.
    ///
    /// # Errors
    /// [`AwsError::Service`] when PutObject fails.
    ///
    /// # Cancel safety
    /// One PutObject: a cancelled write wrote the object or not, and the batch's retry
    /// writes the same key again.
    pub async fn write(
        &self,
        shard: &str,
        records: &[DeadLetter],
    ) -> Result<Option<String>, AwsError> {
        let Some(first) = records.first() else {
            return Ok(None);
        };
        let key = self.object_key(shard, &first.sequence_number);
        let mut body = Vec::new();
        for r in records {
            body.extend_from_slice(Self::line(shard, r).as_bytes());
            body.push(b'\n');
        }
        crate::sinks::s3::put(&self.client, &self.bucket, &key, body).await?;
        warn!(bucket = %self.bucket, %key, shard, records = records.len(), "wrote dead letters");
        Ok(Some(key))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}
