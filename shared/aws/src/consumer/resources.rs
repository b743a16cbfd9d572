//! The AWS resources of one deployment, named from a single prefix, so the worker, the
//! Lambda functions, the tests and the infra template agree on them without configuration:
//!
//! | resource | name |
//! |---|---|
//! | state table | `<prefix>-state` |
//! | lease table | `<prefix>-leases` |
//! | control table | `<prefix>-control` |
//! | results table | `<prefix>-results` |
//! | bucket | `<prefix>-data`: dead letters under `dead-letters/`, late records under `late/`, panes under `panes/`, state snapshots under `state/` |
//!
//! In AWS the infra template creates them; [`Resources::ensure_all`] creates them for tests
//! and the local demo with the same schema.

use std::sync::Arc;

use crate::config::Clients;
use crate::control::{self, ControlTable};
use crate::dead_letter::DeadLetters;
use crate::leases::{self, LeaseTable};
use crate::sinks::{DynamoDbSink, KinesisSink, S3Sink};
use crate::state_log::{self, DynamoStateLog};
use crate::AwsError;
use eventide_ports::clock::SystemClock;
use eventide_ports::sink::PaneSink;

use eventide_runtime::shard::{ConsumerPorts, Sinks};
use eventide_runtime::state::SnapshotPolicy;

/// The key prefix of dead letters in the data bucket.
pub const DEAD_LETTER_PREFIX: &str = "dead-letters";
/// The key prefix of records too late for an aggregation in the data bucket.
pub const LATE_PREFIX: &str = "late";
/// The key prefix of fired panes in the data bucket.
pub const PANES_PREFIX: &str = "panes";

/// The names of a deployment's tables and bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// The state table (`<prefix>-state`).
    pub state_table: String,
    /// The lease table (`<prefix>-leases`).
    pub lease_table: String,
    /// The control table (`<prefix>-control`).
    pub control_table: String,
    /// The results table (`<prefix>-results`).
    pub results_table: String,
    /// The data bucket (`<prefix>-data`).
    pub bucket: String,
}

impl Resources {
    /// The resources of the deployment named `prefix`.
    ///
    /// ```
    /// let r = eventide_aws::consumer::resources::Resources::from_prefix("demo");
    /// assert_eq!(r.state_table, "demo-state");
    /// assert_eq!(r.bucket, "demo-data");
    /// ```
    pub fn from_prefix(prefix: &str) -> Self {
        Resources {
            state_table: format!("{prefix}-state"),
            lease_table: format!("{prefix}-leases"),
            control_table: format!("{prefix}-control"),
            results_table: format!("{prefix}-results"),
            bucket: format!("{prefix}-data"),
        }
    }

    /// Creates every table and the bucket unless they exist, and waits until they are
    /// usable. Idempotent.
    ///
    /// # Errors
    /// The first table or bucket that cannot be created or does not become ACTIVE.
    ///
    /// # Cancel safety
    /// Idempotent: a cancelled call leaves some resources created, and the next creates
    /// the rest.
    pub async fn ensure_all(&self, clients: &Clients) -> Result<(), AwsError> {
        let db = &clients.dynamodb;
        state_log::ensure_table(db, &self.state_table).await?;
        leases::ensure_table(db, &self.lease_table).await?;
        control::ensure_table(db, &self.control_table).await?;
        DynamoDbSink::ensure_table(db, &self.results_table).await?;
        DeadLetters::ensure_bucket(&clients.s3, &self.bucket).await?;
        Ok(())
    }

    /// The ports of a consumer of pipeline `pipeline` on AWS: the state log (the state table
    /// and snapshots under `state/`), control rows, dead letters under `dead-letters/`, late
    /// records under `late/`, and panes to the results table, to `panes/` in the bucket and,
    /// if given, to `output_stream`. A shard with no new data for `idle_timeout_ms` stops holding the
    /// global watermark back.
    pub fn io(
        &self,
        clients: &Clients,
        pipeline: &str,
        output_stream: Option<&str>,
        idle_timeout_ms: i64,
    ) -> ConsumerPorts {
        let mut sinks: Vec<Arc<dyn PaneSink>> = vec![
            Arc::new(DynamoDbSink::new(
                clients.dynamodb.clone(),
                &self.results_table,
            )),
            Arc::new(S3Sink::new(clients.s3.clone(), &self.bucket, PANES_PREFIX)),
        ];
        if let Some(s) = output_stream {
            sinks.push(Arc::new(KinesisSink::new(clients.kinesis.clone(), s)));
        }
        ConsumerPorts {
            state: Arc::new(DynamoStateLog::new(
                clients,
                &self.state_table,
                &self.bucket,
                pipeline,
            )),
            control: Arc::new(ControlTable::new(
                clients.dynamodb.clone(),
                &self.control_table,
                pipeline,
            )),
            dead_letters: Arc::new(DeadLetters::new(
                clients.s3.clone(),
                &self.bucket,
                DEAD_LETTER_PREFIX,
            )),
            late: Arc::new(DeadLetters::new(
                clients.s3.clone(),
                &self.bucket,
                LATE_PREFIX,
            )),
            sinks: Sinks {
                sinks,
                print: false,
            },
            snapshots: SnapshotPolicy::default(),
            idle_timeout_ms,
            lookups: None,
            rules: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The lease table of pipeline `pipeline`.
    pub fn leases(&self, clients: &Clients, pipeline: &str) -> LeaseTable {
        LeaseTable::new(clients.dynamodb.clone(), &self.lease_table, pipeline)
    }
}
