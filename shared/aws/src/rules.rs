//! Rules kept as an S3 object (`[[rule]]` tables, see `docs/pipeline-spec.md`), hot-reloaded.
//!
//! [`LiveRules::current`] polls the object at most once per poll interval: a `HeadObject`
//! compares its ETag with the last one seen, and only a new ETag is downloaded and compiled.
//! A valid new file becomes the next [`RulesVersion`], which every shard consumer swaps in
//! before its next batch (no restart, no redeploy). An invalid file is rejected with the
//! rule, field, column and reason in the log, and the previous version keeps running; the
//! same bad ETag is not reported again.
//!
//! Alerts become pane rows ([`alert_row`]) so that every configured sink (results table,
//! S3, Kinesis) receives them with the same idempotence as panes: the row's `pane_id` is
//! the alert's deterministic id.
//!
//! ```no_run
//! # async fn f(clients: eventide_aws::config::Clients, input: eventide_engine::spec::InputSpec) {
//! use eventide_aws::rules::LiveRules;
//! let live = LiveRules::new(clients.s3.clone(), "s3://my-bucket/rules.toml", input,
//!                           std::time::Duration::from_secs(10)).unwrap();
//! if let Some(v) = live.current().await {
//!     println!("rules version {} ({} rules)", v.version, v.rules.len());
//! }
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use eventide_engine::rules::parse_rules;
use eventide_engine::spec::InputSpec;
use tokio::sync::Mutex;
use tracing::{error, info};

use crate::sdk::s3::S3Url;
use crate::AwsError;

pub use eventide_ports::rules::RulesVersion;

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Same ETag as before (or the object is absent and nothing was loaded yet).
    Unchanged,
    /// A new valid file became this version.
    Updated { version: u64 },
    /// A new file was rejected; the reason names the rule, field, column and problem.
    Rejected { reason: String },
}

#[derive(Debug, Default)]
struct Polled {
    last_poll: Option<Instant>,
    /// The ETag last examined, valid or not.
    etag: Option<String>,
    current: Option<Arc<RulesVersion>>,
}

/// A rules object in S3, polled by ETag.
#[derive(Debug)]
pub struct LiveRules {
    s3: Client,
    bucket: String,
    key: String,
    input: InputSpec,
    every: Duration,
    state: Mutex<Polled>,
}

impl LiveRules {
    /// Rules at `url` (`s3://bucket/key`) compiled against `input` (the pipeline's input,
    /// enriched fields included), polled at most every `every`. Nothing is read yet.
    ///
    /// # Errors
    /// [`AwsError::Url`] when `url` does not name an S3 object.
    pub fn new(s3: Client, url: &str, input: InputSpec, every: Duration) -> Result<Self, AwsError> {
        let S3Url { bucket, key } = S3Url::object(url)?;
        Ok(LiveRules {
            s3,
            bucket,
            key,
            input,
            every,
            state: Mutex::new(Polled::default()),
        })
    }

    /// The rules to run: polls the object if the interval has passed, then returns the
    /// latest valid version (`None` until one was loaded). A failed poll is logged and the
    /// current version kept.
    pub async fn current(&self) -> Option<Arc<RulesVersion>> {
        let due = {
            let st = self.state.lock().await;
            st.last_poll.is_none_or(|t| t.elapsed() >= self.every)
        };
        if due {
            if let Err(e) = self.poll().await {
                error!(bucket = %self.bucket, key = %self.key, "cannot poll the rules: {e}");
            }
        }
        self.state.lock().await.current.clone()
    }

    /// Polls now: compares the ETag and loads a new file.
    ///
    /// # Errors
    /// [`AwsError::Service`] when HeadObject or GetObject fails. A file that does not
    /// compile is no error: it is [`PollOutcome::Rejected`] and the current version stays.
    ///
    /// # Cancel safety
    /// A cancelled poll swaps nothing in.
    pub async fn poll(&self) -> Result<PollOutcome, AwsError> {
        let mut st = self.state.lock().await;
        st.last_poll = Some(Instant::now());
        let op = || format!("HeadObject s3://{}/{}", self.bucket, self.key);
        let head = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let etag = match head {
            Ok(h) => h.e_tag().unwrap_or_default().to_string(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                return Ok(PollOutcome::Unchanged)
            }
            Err(e) => return Err(AwsError::service(op(), e)),
        };
        if st.etag.as_deref() == Some(etag.as_str()) {
            return Ok(PollOutcome::Unchanged);
        }
        let obj = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| {
                AwsError::service(format!("GetObject s3://{}/{}", self.bucket, self.key), e)
            })?;
        // The ETag of what was actually read (the object may have changed since the head).
        let etag = obj.e_tag().map_or(etag, str::to_string);
        let bytes = obj.body.collect().await.map_err(|e| AwsError::Service {
            op: format!("GetObject s3://{}/{}", self.bucket, self.key),
            message: e.to_string(),
        })?;
        st.etag = Some(etag.clone());
        let text = String::from_utf8_lossy(&bytes.into_bytes()).into_owned();
        match parse_rules(&text, &self.input) {
            Ok(rules) => {
                let version = st.current.as_ref().map_or(1, |c| c.version + 1);
                info!(bucket = %self.bucket, key = %self.key, version, rules = rules.len(), %etag, "rules loaded");
                st.current = Some(Arc::new(RulesVersion {
                    version,
                    etag,
                    rules,
                    text,
                }));
                Ok(PollOutcome::Updated { version })
            }
            Err(e) => {
                let reason = e.to_string();
                error!(bucket = %self.bucket, key = %self.key, %etag, "rules rejected, the previous rules keep running: {reason}");
                Ok(PollOutcome::Rejected { reason })
            }
        }
    }
}

pub use eventide_ports::rows::alert_row;
