//! Loading and refreshing a pipeline's enrichment tables: Glue-catalogued or plain S3
//! tables and local files, preloaded in memory, and live DynamoDB lookups.
//!
//! [`Lookups::start`] loads every slow table before the consumer starts, then a tokio task
//! per table with a `refresh` interval checks the source's version (the Glue table's
//! VersionId and UpdateTime plus the objects' ETags; the S3 objects' ETags; a file's size
//! and mtime). A new version is loaded in the background and swapped in atomically
//! (`ArcSwap`); a failed load is logged and the old version stays. Records never wait for
//! a load: each batch takes a [`Snapshot`] ([`Lookups::snapshot_for_batch`]) and sees
//! exactly one version of every table.
//!
//! ```no_run
//! # async fn f(spec: eventide_engine::PipelineSpec) -> Result<(), eventide_aws::AwsError> {
//! use eventide_aws::enrichment::Lookups;
//! use eventide_engine::codec::Codec;
//! use eventide_engine::record::Line;
//! let lookups = Lookups::start(&spec).await?;
//! // The consumer decodes each record of a batch once; the lookups read the decoded events.
//! let codec = Codec::new(&spec);
//! let Ok(Line::Event(rec)) = codec.decode_unenriched(br#"{"sub":"s1","t":1}"#) else { return Ok(()) };
//! let snapshot = lookups.snapshot_for_batch([&rec]).await?;
//! # let _ = snapshot; Ok(()) }
//! ```

pub mod dynamodb;
pub mod glue;
pub mod s3;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use eventide_connectors::tables::{self, formats};
use eventide_engine::enrich::spec::TableFormat;
use eventide_engine::enrich::table::{LookupTable, TableBuilder};
use eventide_engine::enrich::{table_shape, Enricher, EnrichmentSpec, Snapshot, SourceSpec};
use eventide_engine::record::Record;
use eventide_engine::PipelineSpec;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Clients;
use crate::error::AwsError;
use crate::sdk::s3::S3Url;
use dynamodb::DynamoLookup;
use s3::TableObject;

/// What one load of a table measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub version: String,
    pub rows: usize,
    pub bytes: usize,
    pub objects: usize,
    pub elapsed: Duration,
}

enum TableSource {
    Preloaded {
        spec: EnrichmentSpec,
        current: ArcSwapOption<LookupTable>,
    },
    Live(DynamoLookup),
}

/// The enrichment tables of a running pipeline.
pub struct Lookups {
    clients: Clients,
    slots: Vec<TableSource>,
    /// Computes the keys of live lookups from a batch's decoded records.
    enricher: Enricher,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("snapshot", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl Drop for Lookups {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

/// Where a table's version and objects come from, resolved for one load.
enum Resolved {
    Objects {
        objects: Vec<TableObject>,
        format: TableFormat,
        version: String,
    },
    File {
        path: std::path::PathBuf,
        format: TableFormat,
        version: String,
    },
}

impl Resolved {
    fn version(&self) -> &str {
        match self {
            Resolved::Objects { version, .. } | Resolved::File { version, .. } => version,
        }
    }
}

async fn resolve(clients: &Clients, spec: &EnrichmentSpec) -> Result<Resolved, AwsError> {
    match &spec.source {
        SourceSpec::S3 { location, format } => {
            let url = S3Url::parse(location)?;
            let objects = s3::list(&clients.s3, &url.bucket, &url.key).await?;
            let version = s3::version_of(&objects);
            Ok(Resolved::Objects {
                objects,
                format: format.clone(),
                version,
            })
        }
        SourceSpec::Glue { database, table } => {
            let t = glue::resolve(&clients.glue, database, table).await?;
            let mut objects = Vec::new();
            if t.partitions.is_empty() {
                let url = S3Url::parse(&t.location)?;
                objects = s3::list(&clients.s3, &url.bucket, &url.key).await?;
            } else {
                for (values, loc) in &t.partitions {
                    let url = S3Url::parse(loc)?;
                    for mut o in s3::list(&clients.s3, &url.bucket, &url.key).await? {
                        o.partitions = t
                            .partition_keys
                            .iter()
                            .cloned()
                            .zip(values.iter().cloned())
                            .collect();
                        objects.push(o);
                    }
                }
            }
            let version = format!("{}|{}", t.version, s3::version_of(&objects));
            Ok(Resolved::Objects {
                objects,
                format: t.format,
                version,
            })
        }
        SourceSpec::File { path, format } => Ok(Resolved::File {
            path: path.into(),
            format: format.clone(),
            version: tables::version(&spec.name, std::path::Path::new(path))?,
        }),
        SourceSpec::DynamoDb { .. } => Err(AwsError::Corrupt {
            what: format!("enrichment `{}`", spec.name),
            message: "a dynamodb lookup is not preloaded".into(),
        }),
    }
}

/// Loads one version of a preloaded table. Parsing runs on a blocking thread so the
/// consumer's tasks keep running.
async fn load(
    clients: &Clients,
    spec: &EnrichmentSpec,
    resolved: Resolved,
) -> Result<(LookupTable, LoadReport), AwsError> {
    let started = Instant::now();
    let wanted: Arc<Vec<String>> = Arc::new(tables::wanted(spec));
    let version = resolved.version().to_string();
    let mut builder = TableBuilder::new(table_shape(spec));
    let corrupt = |e: formats::FormatError| AwsError::Corrupt {
        what: format!("enrichment `{}`", spec.name),
        message: e.to_string(),
    };
    let join_err = |e: tokio::task::JoinError| AwsError::Corrupt {
        what: format!("enrichment `{}`", spec.name),
        message: format!("loader task failed: {e}"),
    };
    let mut count = 0;
    match resolved {
        Resolved::Objects {
            objects, format, ..
        } => {
            let format = Arc::new(format);
            for o in objects {
                count += 1;
                let name = format!("s3://{}/{}", o.bucket, o.key);
                // Parsed as the bytes arrive (each chunk is small work): memory follows
                // the table, not the object.
                let mut loader = formats::ObjectLoader::new(
                    &format,
                    &wanted,
                    &o.partitions,
                    &name,
                    &mut builder,
                );
                s3::get_chunks(&clients.s3, &o.bucket, &o.key, |chunk| {
                    loader.push(chunk).map_err(corrupt)
                })
                .await?;
                loader.finish().map_err(corrupt)?;
            }
        }
        Resolved::File { path, format, .. } => {
            // Parsed on a blocking thread, so that the consumer's tasks keep running.
            let name = spec.name.clone();
            let files;
            (builder, files) = tokio::task::spawn_blocking(move || {
                tables::load_path(&name, &path, &format, &wanted, &mut builder)
                    .map(|files| (builder, files))
            })
            .await
            .map_err(join_err)??;
            count += files;
        }
    }
    let table = builder
        .try_finish(&version)
        .map_err(|e| AwsError::Corrupt {
            what: format!("enrichment `{}`", spec.name),
            message: e.to_string(),
        })?;
    let report = LoadReport {
        version,
        rows: table.rows(),
        bytes: table.heap_bytes(),
        objects: count,
        elapsed: started.elapsed(),
    };
    Ok((table, report))
}

impl Lookups {
    /// Loads every preloaded table of `spec` (failing if one cannot be loaded: the consumer
    /// must not start without its tables) and starts the refresh tasks.
    /// Tables that are all local files need no AWS configuration, so none is looked for
    /// (no region or credential lookups, no IMDS calls): `eventide replay` runs offline.
    /// A consumer, which has its [`Clients`] already, calls [`Lookups::start_with`].
    ///
    /// # Errors
    /// As [`Lookups::start_with`].
    pub async fn start(spec: &PipelineSpec) -> Result<Arc<Self>, AwsError> {
        let local = spec
            .enrichments
            .iter()
            .all(|e| matches!(e.source, SourceSpec::File { .. }));
        let clients = if local {
            Clients::offline()
        } else {
            Clients::from_env().await
        };
        Self::start_with(spec, clients).await
    }

    /// [`Lookups::start`] with the clients the caller built (see [`Clients`]).
    ///
    /// # Errors
    /// A table that cannot be resolved, read or decoded ([`AwsError::Service`],
    /// [`AwsError::Corrupt`], [`AwsError::Url`] for a location that is not `s3://`).
    pub async fn start_with(spec: &PipelineSpec, clients: Clients) -> Result<Arc<Self>, AwsError> {
        let mut slots = Vec::with_capacity(spec.enrichments.len());
        for e in &spec.enrichments {
            match DynamoLookup::new(clients.dynamodb.clone(), e) {
                Some(l) => slots.push(TableSource::Live(l)),
                None => {
                    let resolved = resolve(&clients, e).await?;
                    let (table, report) = load(&clients, e, resolved).await?;
                    info!(enrichment = %e.name, version = %report.version, rows = report.rows,
                        bytes = report.bytes, ms = report.elapsed.as_millis() as u64, "loaded slow table");
                    slots.push(TableSource::Preloaded {
                        spec: e.clone(),
                        current: ArcSwapOption::from_pointee(table),
                    });
                }
            }
        }
        let this = Arc::new(Lookups {
            clients,
            slots,
            enricher: Enricher::new(spec),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        for (i, s) in this.slots.iter().enumerate() {
            if let TableSource::Preloaded { spec: e, .. } = s {
                if let Some(every) = e.refresh_ms {
                    let weak = Arc::downgrade(&this);
                    tasks.push(tokio::spawn(refresh_loop(
                        weak,
                        i,
                        Duration::from_millis(every as u64),
                    )));
                }
            }
        }
        if let Ok(mut t) = this.tasks.lock() {
            *t = tasks;
        }
        Ok(this)
    }

    /// The current version of every preloaded table (live lookups absent).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(
            self.slots
                .iter()
                .map(|s| match s {
                    TableSource::Preloaded { current, .. } => current.load_full(),
                    TableSource::Live(_) => None,
                })
                .collect(),
        )
    }

    /// True when some enrichment needs per-batch lookups.
    pub fn has_live(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, TableSource::Live(_)))
    }

    /// The snapshot a batch runs with: the current preloaded versions, plus for each live
    /// lookup a table of the batch's distinct keys fetched from DynamoDB (or its cache).
    /// `records` are the batch's events as the consumer decoded them, once, before
    /// enrichment.
    ///
    /// # Errors
    /// A live lookup that fails ([`AwsError::Service`]).
    pub async fn snapshot_for_batch<'a, 'r: 'a, I>(&self, records: I) -> Result<Snapshot, AwsError>
    where
        I: IntoIterator<Item = &'a Record<'r>>,
    {
        let mut tables: Vec<_> = self
            .slots
            .iter()
            .map(|s| match s {
                TableSource::Preloaded { current, .. } => current.load_full(),
                TableSource::Live(_) => None,
            })
            .collect();
        if !self.has_live() {
            return Ok(Snapshot::new(tables));
        }
        let mut keys: Vec<Vec<String>> = vec![Vec::new(); self.slots.len()];
        let mut seen: Vec<std::collections::HashSet<String>> =
            vec![Default::default(); self.slots.len()];
        for rec in records {
            for (i, s) in self.slots.iter().enumerate() {
                if matches!(s, TableSource::Live(_)) {
                    if let Some(k) = self.enricher.key_of(i, rec) {
                        if seen[i].insert(k.clone()) {
                            keys[i].push(k);
                        }
                    }
                }
            }
        }
        for (i, s) in self.slots.iter().enumerate() {
            if let TableSource::Live(l) = s {
                let k = std::mem::take(&mut keys[i]);
                tables[i] = Some(Arc::new(l.table_for(k).await?));
            }
        }
        Ok(Snapshot::new(tables))
    }

    /// The live lookup of enrichment `i`, if it is one.
    pub fn live(&self, i: usize) -> Option<&DynamoLookup> {
        match self.slots.get(i) {
            Some(TableSource::Live(l)) => Some(l),
            _ => None,
        }
    }

    /// Checks enrichment `i`'s source and, if its version changed, loads and swaps it in.
    /// Returns the new version's report, `None` when unchanged. On error the old version
    /// stays.
    ///
    /// # Errors
    /// The source cannot be resolved, read or decoded.
    ///
    /// # Cancel safety
    /// A cancelled refresh swaps nothing in: the old version stays.
    pub async fn refresh(&self, i: usize) -> Result<Option<LoadReport>, AwsError> {
        let Some(TableSource::Preloaded { spec, current }) = self.slots.get(i) else {
            return Ok(None);
        };
        let resolved = resolve(&self.clients, spec).await?;
        if current
            .load()
            .as_ref()
            .is_some_and(|t| t.version() == resolved.version())
        {
            return Ok(None);
        }
        let (table, report) = load(&self.clients, spec, resolved).await?;
        current.store(Some(Arc::new(table)));
        Ok(Some(report))
    }
}

async fn refresh_loop(lookups: std::sync::Weak<Lookups>, i: usize, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(l) = lookups.upgrade() else {
            return;
        };
        let name = match l.slots.get(i) {
            Some(TableSource::Preloaded { spec, .. }) => spec.name.clone(),
            _ => return,
        };
        match l.refresh(i).await {
            Ok(Some(r)) => info!(enrichment = %name, version = %r.version, rows = r.rows,
                bytes = r.bytes, ms = r.elapsed.as_millis() as u64, "swapped in a new version"),
            Ok(None) => {}
            Err(e) => {
                warn!(enrichment = %name, error = %e, "reload failed; keeping the current version")
            }
        }
    }
}
