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
//!
//! A SQL statement set can send an INSERT's panes elsewhere ([`PaneRoute`]): to a results
//! table of its own, to the S3 panes only, or to an output stream of its own. The other
//! aggregations keep the default sinks (the results table, the S3 panes and the output
//! stream the command line gives).

use std::sync::Arc;

use crate::config::Clients;
use crate::control::{self, ControlTable};
use crate::dead_letter::DeadLetters;
use crate::leases::{self, LeaseTable};
use crate::sinks::{DynamoDbSink, KinesisSink, S3Sink};
use crate::state_log::{self, DynamoStateLog};
use crate::AwsError;
use eventide_ports::clock::SystemClock;
use eventide_ports::sink::{Aggregations, PaneSink, Routed};

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
    /// The aggregations whose panes go to a sink of their own instead of the defaults.
    pub routes: Vec<PaneRoute>,
}

/// One aggregation's panes sent to a sink of its own (a SQL INSERT into an AWS sink table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneRoute {
    /// The aggregation (the INSERT's sink table).
    pub aggregation: String,
    pub to: PaneDestination,
}

/// Where a [`PaneRoute`] sends panes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneDestination {
    /// A DynamoDB results table (the results table's schema: [`DynamoDbSink`]).
    ResultsTable(String),
    /// The S3 panes under `panes/` in the data bucket.
    Panes,
    /// A Kinesis stream (the output stream's record layout: [`KinesisSink`]).
    Stream(String),
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
            routes: Vec::new(),
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
        for table in self.routed_tables() {
            DynamoDbSink::ensure_table(db, table).await?;
        }
        DeadLetters::ensure_bucket(&clients.s3, &self.bucket).await?;
        Ok(())
    }

    /// The results tables that routes name, once each, other than the default one.
    fn routed_tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for r in &self.routes {
            if let PaneDestination::ResultsTable(t) = &r.to {
                if t != &self.results_table && !tables.contains(&t.as_str()) {
                    tables.push(t);
                }
            }
        }
        tables
    }

    /// The pane sinks: each destination once, given the panes of the aggregations routed to
    /// it; the defaults (the results table, the S3 panes and `output_stream`) also get the
    /// panes of every aggregation that no route names.
    fn pane_sinks(&self, clients: &Clients, output_stream: Option<&str>) -> Vec<Arc<dyn PaneSink>> {
        let routed_to = |to: &PaneDestination| -> Vec<String> {
            self.routes
                .iter()
                .filter(|r| &r.to == to)
                .map(|r| r.aggregation.clone())
                .collect()
        };
        let by_default = |to: &PaneDestination| {
            let here = routed_to(to);
            Aggregations::AllBut(
                self.routes
                    .iter()
                    .map(|r| &r.aggregation)
                    .filter(|a| !here.contains(a))
                    .cloned()
                    .collect(),
            )
        };
        let mut sinks: Vec<Arc<dyn PaneSink>> = Vec::new();
        let mut add = |inner: Arc<dyn PaneSink>, aggregations: Aggregations| match aggregations {
            Aggregations::AllBut(none) if none.is_empty() => sinks.push(inner),
            Aggregations::Only(none) if none.is_empty() => {}
            some => sinks.push(Arc::new(Routed::new(some, inner))),
        };
        let results = PaneDestination::ResultsTable(self.results_table.clone());
        add(
            Arc::new(DynamoDbSink::new(
                clients.dynamodb.clone(),
                &self.results_table,
            )),
            by_default(&results),
        );
        add(
            Arc::new(S3Sink::new(clients.s3.clone(), &self.bucket, PANES_PREFIX)),
            by_default(&PaneDestination::Panes),
        );
        if let Some(s) = output_stream {
            let to = PaneDestination::Stream(s.to_string());
            add(
                Arc::new(KinesisSink::new(clients.kinesis.clone(), s)),
                by_default(&to),
            );
        }
        for t in self.routed_tables() {
            let to = PaneDestination::ResultsTable(t.to_string());
            add(
                Arc::new(DynamoDbSink::new(clients.dynamodb.clone(), t)),
                Aggregations::Only(routed_to(&to)),
            );
        }
        let mut streams: Vec<&str> = Vec::new();
        for r in &self.routes {
            if let PaneDestination::Stream(s) = &r.to {
                if Some(s.as_str()) != output_stream && !streams.contains(&s.as_str()) {
                    streams.push(s);
                }
            }
        }
        for s in streams {
            let to = PaneDestination::Stream(s.to_string());
            add(
                Arc::new(KinesisSink::new(clients.kinesis.clone(), s)),
                Aggregations::Only(routed_to(&to)),
            );
        }
        sinks
    }

    /// The ports of a consumer of pipeline `pipeline` on AWS: the state log (the state table
    /// and snapshots under `state/`), control rows, dead letters under `dead-letters/`, late
    /// records under `late/`, and panes to the results table, to `panes/` in the bucket and,
    /// if given, to `output_stream`, except for the aggregations that [`Resources::routes`]
    /// send to a sink of their own. A shard with no new data for `idle_timeout_ms` stops
    /// holding the global watermark back.
    pub fn io(
        &self,
        clients: &Clients,
        pipeline: &str,
        output_stream: Option<&str>,
        idle_timeout_ms: i64,
    ) -> ConsumerPorts {
        let sinks = self.pane_sinks(clients, output_stream);
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
