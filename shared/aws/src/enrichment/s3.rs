//! Slow tables stored as S3 objects: listing a prefix (with Hive partitions such as
//! `region=eu/`), fetching objects, and the version of a listing (its keys and ETags).
//!
//! ```
//! use eventide_aws::enrichment::s3::hive_partitions;
//! assert_eq!(hive_partitions("region=eu/day=1/part-0.csv"),
//!     vec![("region".to_string(), "eu".to_string()), ("day".to_string(), "1".to_string())]);
//! ```

use std::hash::{BuildHasher, Hasher};

use aws_sdk_s3::Client;

use crate::error::AwsError;

/// One object of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableObject {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub size: i64,
    /// Hive partition values from the object's path below the table location.
    pub partitions: Vec<(String, String)>,
}

/// The `key=value` directories of a path relative to a table's location.
pub fn hive_partitions(relative: &str) -> Vec<(String, String)> {
    let mut parts: Vec<&str> = relative.split('/').collect();
    parts.pop();
    parts
        .into_iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Lists the data objects under `s3://bucket/prefix` (or the one object named so), skipping
/// folder markers and hidden files (`_SUCCESS`, `.crc`).
///
/// # Errors
/// [`AwsError::Service`] when ListObjectsV2 fails.
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<TableObject>, AwsError> {
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let dir = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| AwsError::service(format!("ListObjectsV2 s3://{bucket}/{prefix}"), e))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let name = key.rsplit('/').next().unwrap_or(key);
            if key.ends_with('/') || name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            // `prefix` names a folder or one object; `s3://b/t` must not pick up `s3://b/t2/x`.
            let relative = if key == prefix {
                ""
            } else if let Some(r) = key.strip_prefix(&dir) {
                r
            } else {
                continue;
            };
            out.push(TableObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag: o.e_tag().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0),
                partitions: hive_partitions(relative),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Fetches an object's bytes whole: for small objects (a rules file) only; read anything
/// whose size is not bounded with [`get_chunks`].
///
/// # Errors
/// A failed request or transfer.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    let mut out = Vec::new();
    get_chunks(client, bucket, key, |chunk| {
        out.extend_from_slice(chunk);
        Ok::<(), AwsError>(())
    })
    .await?;
    Ok(out)
}

/// Streams an object's bytes to `each`, chunk by chunk as they arrive, so that memory does
/// not follow the object's size. Stops at the first error `each` returns.
///
/// # Errors
/// A failed request or transfer, or `each`'s error.
///
/// # Cancel safety
/// Cancelling stops the transfer; `each` may have seen part of the object.
pub async fn get_chunks<E: From<AwsError>>(
    client: &Client,
    bucket: &str,
    key: &str,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let op = format!("GetObject s3://{bucket}/{key}");
    let mut resp = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::service(&op, e))?;
    while let Some(chunk) = resp
        .body
        .try_next()
        .await
        .map_err(|e| AwsError::service(&op, e))?
    {
        each(&chunk)?;
    }
    Ok(())
}

/// A version string for a set of objects: their count and a digest of keys and ETags, so
/// an object added, removed or overwritten in place makes a new version.
pub fn version_of(objects: &[TableObject]) -> String {
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    for o in objects {
        h.write(o.key.as_bytes());
        h.write_u8(0);
        h.write(o.etag.as_bytes());
        h.write_u8(0);
    }
    format!("{}objects-{:016x}", objects.len(), h.finish())
}
