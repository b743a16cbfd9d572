//! The ports of `eventide-ports` implemented by the AWS adapters.

use eventide_ports::control::{ControlPlane, ShardStatus};
use eventide_ports::rows::{DeadLetter, PaneRow};
use eventide_ports::sink::{PaneSink, RecordSink};
use eventide_ports::{BoxFuture, PortError};

use std::sync::Arc;

use eventide_engine::enrich::Snapshot;
use eventide_engine::record::Record;
use eventide_ports::enrich::Enrichment;
use eventide_ports::rules::{RulesSource, RulesVersion};

use crate::control::ControlTable;
use crate::dead_letter::DeadLetters;
use crate::enrichment::Lookups;
use crate::rules::LiveRules;
use crate::sinks::{DynamoDbSink, KinesisSink, S3Sink};
use crate::AwsError;

impl From<AwsError> for eventide_runtime::shard::RuntimeError {
    fn from(e: AwsError) -> Self {
        eventide_runtime::shard::RuntimeError::Port(e.into())
    }
}

impl From<AwsError> for PortError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::Service { op, message } => PortError::Unavailable { op, message },
            AwsError::Conflict { op, what } => PortError::Conflict { op, what },
            AwsError::Corrupt { what, message } => PortError::Corrupt { what, message },
            AwsError::Url(e) => PortError::Corrupt {
                what: e.url,
                message: format!("not an S3 location: {}", e.reason),
            },
            AwsError::TableFile(e) => PortError::Unavailable {
                op: "loading a local enrichment table".into(),
                message: e.to_string(),
            },
        }
    }
}

impl ControlPlane for ControlTable {
    fn publish<'a>(&'a self, status: &'a ShardStatus) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move { Ok(ControlTable::publish(self, status).await?) })
    }

    fn publish_if_absent<'a>(
        &'a self,
        status: &'a ShardStatus,
    ) -> BoxFuture<'a, Result<bool, PortError>> {
        Box::pin(async move { Ok(ControlTable::publish_if_absent(self, status).await?) })
    }

    fn shards_status(&self) -> BoxFuture<'_, Result<Vec<ShardStatus>, PortError>> {
        Box::pin(async move { Ok(ControlTable::shards_status(self).await?) })
    }
}

macro_rules! pane_sink {
    ($t:ty) => {
        impl PaneSink for $t {
            fn write<'a>(
                &'a self,
                rows: &'a [PaneRow],
                batch_id: &'a str,
            ) -> BoxFuture<'a, Result<(), PortError>> {
                Box::pin(async move { Ok(<$t>::write(self, rows, batch_id).await?) })
            }
        }
    };
}

pane_sink!(DynamoDbSink);
pane_sink!(S3Sink);
pane_sink!(KinesisSink);

impl RecordSink for DeadLetters {
    fn write<'a>(
        &'a self,
        shard: &'a str,
        records: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            DeadLetters::write(self, shard, records).await?;
            Ok(())
        })
    }
}

impl Enrichment for Lookups {
    fn snapshot_for_batch<'a, 'r: 'a>(
        &'a self,
        records: &'a [&'a Record<'r>],
    ) -> BoxFuture<'a, Result<Snapshot, PortError>> {
        Box::pin(
            async move { Ok(Lookups::snapshot_for_batch(self, records.iter().copied()).await?) },
        )
    }
}

impl RulesSource for LiveRules {
    fn current(&self) -> BoxFuture<'_, Option<Arc<RulesVersion>>> {
        Box::pin(LiveRules::current(self))
    }
}
