//! Enrichment tables from local files, with no AWS: the table formats ([`formats`]: CSV,
//! JSON lines and Parquet, parsed as the bytes arrive) and the loading of a
//! `file = { path = … }` source, one file or a directory of files.
//!
//! `eventide replay` loads its tables here ([`load_snapshot`]); the AWS adapters
//! (`eventide_aws::enrichment`) read S3 and Glue tables with the same [`formats`] and local
//! ones with [`load_path`], and refresh them when [`version`] changes.
//!
//! ```
//! use eventide_connectors::tables::load_snapshot;
//! use eventide_engine::PipelineSpec;
//! let dir = std::env::temp_dir().join(format!("tables-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("tiers.csv"), "id,tier\ns1,gold\n").unwrap();
//! let spec = PipelineSpec::from_toml(&format!(r#"
//!     [input]
//!     event_time = {{ field = "t" }}
//!     fields = {{ sub = "string" }}
//!     [[enrichment]]
//!     name = "tiers"
//!     file = {{ path = "{}" }}
//!     join = [{{ field = "sub", column = "id" }}]
//!     columns = [{{ column = "tier", type = "string" }}]
//!     [[aggregation]]
//!     name = "n"
//!     group_by = ["tier"]
//!     window = {{ type = "global" }}
//!     aggregates = [{{ name = "n", fn = "count" }}]
//! "#, dir.join("tiers.csv").display())).unwrap();
//! assert!(load_snapshot(&spec).unwrap().is_some());
//! // A missing file is an error that names it.
//! std::fs::remove_dir_all(&dir).unwrap();
//! let e = load_snapshot(&spec).unwrap_err().to_string();
//! assert!(e.contains("tiers.csv"), "{e}");
//! ```

pub mod formats;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventide_engine::enrich::spec::TableFormat;
use eventide_engine::enrich::table::{LookupTable, TableBuilder, TableError};
use eventide_engine::enrich::{table_shape, EnrichmentSpec, Snapshot, SourceSpec};
use eventide_engine::PipelineSpec;
use thiserror::Error;

use formats::{FormatError, ObjectLoader};

/// A local table that cannot be loaded.
#[derive(Debug, Error)]
pub enum TableFileError {
    /// A file or directory cannot be read (e.g. it does not exist).
    #[error("enrichment `{table}`: cannot read {path}: {source}")]
    Read {
        table: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's content does not fit the table's format or bounds.
    #[error("enrichment `{table}`: {source}")]
    Format {
        table: String,
        #[source]
        source: Box<FormatError>,
    },
    /// The rows do not make a table (e.g. over its bounds).
    #[error("enrichment `{table}`: {source}")]
    Table {
        table: String,
        #[source]
        source: Box<TableError>,
    },
}

/// The columns a table's objects are read for: the join columns, then the enriched ones
/// (the order of the table's layout).
pub fn wanted(spec: &EnrichmentSpec) -> Vec<String> {
    spec.join
        .iter()
        .map(|k| k.column.clone())
        .chain(spec.columns.iter().map(|c| c.column.clone()))
        .collect()
}

/// The version of a local table, `file:<bytes>@<mtime in ns>` of its file or directory: a
/// new version means a reload.
///
/// # Errors
/// [`TableFileError::Read`] naming the path when it cannot be read.
pub fn version(table: &str, path: &Path) -> Result<String, TableFileError> {
    let meta = std::fs::metadata(path).map_err(|source| read_error(table, path, source))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("file:{}@{mtime}", meta.len()))
}

/// Loads the rows of a local table into `builder`: the file `path`, or the files of the
/// directory `path` in name order (names starting with `.` or `_`, as Spark and Hive mark
/// their own files, left out). Returns the number of files read.
///
/// # Errors
/// [`TableFileError::Read`] naming the file or directory that cannot be read, and
/// [`TableFileError::Format`] for content that does not fit the table.
pub fn load_path(
    table: &str,
    path: &Path,
    format: &TableFormat,
    wanted: &[String],
    builder: &mut TableBuilder,
) -> Result<usize, TableFileError> {
    let mut files = Vec::new();
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| read_error(table, path, e))?;
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_file() && !name.starts_with('.') && !name.starts_with('_') {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    for f in &files {
        load_file(table, f, format, wanted, builder)?;
    }
    Ok(files.len())
}

/// Loads one local file into `builder`, a chunk at a time (see [`ObjectLoader`]): memory
/// follows the table, not the file.
fn load_file(
    table: &str,
    path: &Path,
    format: &TableFormat,
    wanted: &[String],
    builder: &mut TableBuilder,
) -> Result<(), TableFileError> {
    let name = path.display().to_string();
    let format_error = |source: FormatError| TableFileError::Format {
        table: table.to_string(),
        source: Box::new(source),
    };
    let mut file = std::fs::File::open(path).map_err(|e| read_error(table, path, e))?;
    let mut loader = ObjectLoader::new(format, wanted, &[], &name, builder);
    let mut buf = vec![0; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return loader.finish().map_err(format_error),
            Ok(n) => loader.push(&buf[..n]).map_err(format_error)?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(table, path, e)),
        }
    }
}

/// Loads enrichment `spec` from the local file or directory `path`.
///
/// # Errors
/// As [`load_path`], and [`TableFileError::Table`] when the rows do not make a table.
pub fn load_local(
    spec: &EnrichmentSpec,
    path: &Path,
    format: &TableFormat,
) -> Result<LookupTable, TableFileError> {
    let version = version(&spec.name, path)?;
    let mut builder = TableBuilder::new(table_shape(spec));
    let files = load_path(&spec.name, path, format, &wanted(spec), &mut builder)?;
    let table = builder
        .try_finish(&version)
        .map_err(|source| TableFileError::Table {
            table: spec.name.clone(),
            source: Box::new(source),
        })?;
    tracing::info!(enrichment = %spec.name, %version, rows = table.rows(),
        bytes = table.heap_bytes(), files, "loaded local table");
    Ok(table)
}

/// The tables of a pipeline whose every enrichment is a local file, loaded once: what a
/// replay joins its records with. `None` when some enrichment is not a local file (S3,
/// Glue or DynamoDB: the AWS adapters load those).
///
/// # Errors
/// As [`load_local`], for the first table that cannot be loaded.
pub fn load_snapshot(spec: &PipelineSpec) -> Result<Option<Snapshot>, TableFileError> {
    let mut tables = Vec::with_capacity(spec.enrichments.len());
    for e in &spec.enrichments {
        let SourceSpec::File { path, format } = &e.source else {
            return Ok(None);
        };
        tables.push(Some(Arc::new(load_local(e, Path::new(path), format)?)));
    }
    Ok(Some(Snapshot::new(tables)))
}

fn read_error(table: &str, path: &Path, source: std::io::Error) -> TableFileError {
    TableFileError::Read {
        table: table.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_engine::enrich::spec::FormatKind;
    use eventide_engine::enrich::table::TableShape;
    use eventide_engine::record::Value;
    use eventide_engine::spec::FieldType;

    fn builder() -> TableBuilder {
        TableBuilder::new(TableShape::new(
            "t",
            vec![FieldType::String],
            vec![FieldType::Number],
            100,
            1 << 20,
        ))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tables-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let path = scratch("missing").join("nope.csv");
        let format = TableFormat::new(FormatKind::Csv);
        let cols = ["id".to_string(), "n".to_string()];
        for e in [
            load_path("t", &path, &format, &cols, &mut builder()).map(|_| ()),
            version("t", &path).map(|_| ()),
        ] {
            match e {
                Err(TableFileError::Read { table, path: p, .. }) => {
                    assert_eq!((table.as_str(), p), ("t", path.clone()))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_directory_loads_its_visible_files_in_name_order() {
        let dir = scratch("dir");
        std::fs::write(dir.join("b.csv"), "id,n\nb,2\na,9\n").unwrap();
        std::fs::write(dir.join("a.csv"), "id,n\na,1\n").unwrap();
        std::fs::write(dir.join("_SUCCESS"), "not csv").unwrap();
        std::fs::write(dir.join(".a.csv.crc"), "not csv").unwrap();
        let format = TableFormat::new(FormatKind::Csv);
        let cols = ["id".to_string(), "n".to_string()];
        let mut b = builder();
        assert_eq!(load_path("t", &dir, &format, &cols, &mut b).unwrap(), 2);
        let t = b.finish("v");
        assert_eq!(t.rows(), 2);
        // b.csv comes after a.csv: its row for `a` is the one kept.
        assert_eq!(t.get("a").map(|r| r.value(0)), Some(Value::Num(9.0)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
