//! Resolving a slow table through the Glue Data Catalog: its location, columns, SerDe
//! (format and delimiter), partitions, and version.
//!
//! ```
//! use eventide_aws::enrichment::glue::format_of;
//! use eventide_engine::enrich::spec::FormatKind;
//! use std::collections::HashMap;
//! let params = HashMap::from([("separatorChar".to_string(), "|".to_string())]);
//! let f = format_of(Some("org.apache.hadoop.hive.serde2.OpenCSVSerde"), Some(&params), None).unwrap();
//! assert_eq!((f.kind, f.delimiter), (FormatKind::Csv, b'|'));
//! ```

use std::collections::HashMap;

use aws_sdk_glue::Client;
use eventide_engine::enrich::spec::{FormatKind, TableFormat};

use crate::error::AwsError;

/// A catalogued table, as far as loading it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTable {
    pub location: String,
    pub format: TableFormat,
    pub partition_keys: Vec<String>,
    /// Partition values and locations from GetPartitions; empty when the catalog has none
    /// registered (then partitions are found from the S3 layout).
    pub partitions: Vec<(Vec<String>, String)>,
    /// `VersionId` and `UpdateTime` of the table.
    pub version: String,
}

fn one_char(v: Option<&String>, default: Option<u8>) -> Option<u8> {
    match v.map(String::as_str) {
        None => default,
        Some("\\t") | Some("\t") => Some(b'\t'),
        Some(s) if !s.is_empty() => Some(s.as_bytes()[0]),
        Some(_) => default,
    }
}

/// The format of a table from its SerDe library and parameters (and input format).
pub fn format_of(
    serde_lib: Option<&str>,
    params: Option<&HashMap<String, String>>,
    input_format: Option<&str>,
) -> Result<TableFormat, String> {
    let lib = serde_lib.unwrap_or("");
    let empty = HashMap::new();
    let p = params.unwrap_or(&empty);
    if lib.contains("OpenCSVSerde") {
        return Ok(TableFormat {
            delimiter: one_char(p.get("separatorChar"), Some(b',')).unwrap_or(b','),
            quote: one_char(p.get("quoteChar"), Some(b'"')),
            ..TableFormat::new(FormatKind::Csv)
        });
    }
    if lib.contains("LazySimpleSerDe") {
        let delim = one_char(
            p.get("field.delim")
                .or_else(|| p.get("serialization.format")),
            Some(1),
        )
        .unwrap_or(1);
        return Ok(TableFormat {
            delimiter: delim,
            quote: None,
            ..TableFormat::new(FormatKind::Csv)
        });
    }
    if lib.contains("JsonSerDe") || lib.contains("JsonSerde") {
        return Ok(TableFormat::new(FormatKind::Jsonl));
    }
    if lib.contains("Parquet") || input_format.is_some_and(|f| f.contains("Parquet")) {
        return Ok(TableFormat::new(FormatKind::Parquet));
    }
    Err(format!(
        "unsupported SerDe {lib:?}; use LazySimpleSerDe, OpenCSVSerde, JsonSerDe or Parquet"
    ))
}

/// Looks a table up in the catalog (GetTable, then GetPartitions for partitioned tables).
///
/// # Errors
/// [`AwsError::Service`] when GetTable or GetPartitions fails, [`AwsError::Corrupt`] for a
/// table without a location or with a SerDe Eventide cannot read.
pub async fn resolve(
    client: &Client,
    database: &str,
    table: &str,
) -> Result<CatalogTable, AwsError> {
    let name = format!("glue table {database}.{table}");
    let t = client
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
        .map_err(|e| AwsError::service(format!("GetTable {database}.{table}"), e))?;
    let t = t.table().ok_or_else(|| AwsError::Corrupt {
        what: name.clone(),
        message: "GetTable returned no table".into(),
    })?;
    let sd = t.storage_descriptor().ok_or_else(|| AwsError::Corrupt {
        what: name.clone(),
        message: "the table has no storage descriptor".into(),
    })?;
    let location = sd.location().unwrap_or_default().to_string();
    if location.is_empty() {
        return Err(AwsError::Corrupt {
            what: name,
            message: "the table has no location".into(),
        });
    }
    let serde = sd.serde_info();
    let mut format = format_of(
        serde.and_then(|s| s.serialization_library()),
        serde.and_then(|s| s.parameters()),
        sd.input_format(),
    )
    .map_err(|message| AwsError::Corrupt {
        what: name.clone(),
        message,
    })?;
    if format.kind == FormatKind::Csv {
        let skip = t
            .parameters()
            .and_then(|p| p.get("skip.header.line.count"))
            .or_else(|| {
                serde
                    .and_then(|s| s.parameters())
                    .and_then(|p| p.get("skip.header.line.count"))
            });
        format.header = skip.is_some_and(|s| s.trim() == "1");
        format.columns = sd.columns().iter().map(|c| c.name().to_string()).collect();
    }
    let partition_keys: Vec<String> = t
        .partition_keys()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut partitions = Vec::new();
    if !partition_keys.is_empty() {
        let mut pages = client
            .get_partitions()
            .database_name(database)
            .table_name(table)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| AwsError::service(format!("GetPartitions {database}.{table}"), e))?;
            for p in page.partitions() {
                let loc = p
                    .storage_descriptor()
                    .and_then(|s| s.location())
                    .unwrap_or_default()
                    .to_string();
                if !loc.is_empty() {
                    partitions.push((p.values().to_vec(), loc));
                }
            }
        }
    }
    let version = format!(
        "glue:{}@{}",
        t.version_id().unwrap_or("-"),
        t.update_time().map_or(0, |d| d.to_millis().unwrap_or(0))
    );
    Ok(CatalogTable {
        location,
        format,
        partition_keys,
        partitions,
        version,
    })
}
