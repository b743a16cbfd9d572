//! The one loader of pipeline files, TOML or SQL, for every entry point (replay, validate,
//! bench, explain, the worker and the Lambda handler).

use std::path::Path;

use eventide_engine::{PipelineSpec, SpecError};

use crate::compile::compile;
use crate::error::SqlError;
use crate::extensions::RulesBase;
use crate::plan::{AwsSinks, SinkOptions, SourceOptions};

/// A loaded pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub spec: PipelineSpec,
    /// The pipeline in the spec's own terms: the TOML file itself, or the TOML the SQL
    /// compiles to.
    pub toml: String,
    pub source: PipelineSource,
}

/// What a pipeline was written in, with what SQL says about its connectors.
#[derive(Debug, Clone)]
pub enum PipelineSource {
    Toml,
    Sql {
        source: SourceOptions,
        /// The filesystem sinks' `'path'`: the output directory.
        out_dir: Option<String>,
        sinks: Vec<SinkOptions>,
        /// The consumer's AWS sinks the sink tables name.
        aws: Box<AwsSinks>,
    },
}

impl Pipeline {
    /// The input path a filesystem source table names (`'path'`), if any.
    pub fn input_path(&self) -> Option<&str> {
        match &self.source {
            PipelineSource::Sql { source, .. } => source.path.as_deref(),
            PipelineSource::Toml => None,
        }
    }

    /// The output directory the filesystem sinks name (`'path'`), if any.
    pub fn out_dir(&self) -> Option<&str> {
        match &self.source {
            PipelineSource::Sql { out_dir, .. } => out_dir.as_deref(),
            PipelineSource::Toml => None,
        }
    }

    /// The AWS region a `'connector' = 'kinesis'` source table names (`'aws.region'`), if any.
    pub fn region(&self) -> Option<&str> {
        match &self.source {
            PipelineSource::Sql { source, .. } => source.region.as_deref(),
            PipelineSource::Toml => None,
        }
    }

    /// The consumer's AWS sinks that the SQL's sink tables name (none for a TOML spec).
    pub fn aws_sinks(&self) -> AwsSinks {
        match &self.source {
            PipelineSource::Sql { aws, .. } => (**aws).clone(),
            PipelineSource::Toml => AwsSinks::default(),
        }
    }

    /// True when the source table has `'format' = 'custom'` (Eventide's): the records are
    /// decoded by a `Decoder` of your own, which must be attached with
    /// `PipelineSpec::with_decoder` (`eventide_consumer::main_with_decoder` does) before
    /// the pipeline runs.
    pub fn needs_decoder(&self) -> bool {
        match &self.source {
            PipelineSource::Sql { source, .. } => source.custom_format,
            PipelineSource::Toml => false,
        }
    }

    /// Where a `'connector' = 'kinesis'` source table starts the shards the consumer has no
    /// checkpoint of: `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP` with its time in epoch
    /// ms, if it says.
    pub fn init_position(&self) -> Option<(&str, Option<i64>)> {
        match &self.source {
            PipelineSource::Sql { source, .. } => source
                .init_position
                .as_deref()
                .map(|p| (p, source.init_timestamp_ms)),
            PipelineSource::Toml => None,
        }
    }

    /// The Kinesis stream a `'connector' = 'kinesis'` source table names, if any.
    pub fn stream(&self) -> Option<&str> {
        match &self.source {
            PipelineSource::Sql { source, .. } => source.stream.as_deref(),
            PipelineSource::Toml => None,
        }
    }
}

/// Why a pipeline file does not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read pipeline {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid SQL pipeline {path}: {source}")]
    Sql { path: String, source: SqlError },
    #[error("invalid pipeline spec {path}: {source}")]
    Toml { path: String, source: SpecError },
}

/// Loads a pipeline file: SQL when its name ends in `.sql`, TOML when in `.toml`, otherwise
/// by content (SQL when its first word is CREATE, SET, INSERT, EXECUTE or BEGIN).
///
/// # Errors
///
/// An unreadable file, or one that does not compile or validate ([`LoadError`]).
pub fn load_pipeline(path: &Path) -> Result<Pipeline, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_pipeline_text(&path.display().to_string(), &text)
}

/// Loads a pipeline from its text; `name` (a path or URL) chooses the language by its
/// extension, as [`load_pipeline`] does.
///
/// # Errors
///
/// As [`load_pipeline`].
pub fn load_pipeline_text(name: &str, text: &str) -> Result<Pipeline, LoadError> {
    if is_sql(name, text) {
        // A rules file is relative to the SQL file; a pipeline from S3 cannot name one.
        let remote = name.contains("://");
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        let base = if remote {
            RulesBase::None(
                "a pipeline loaded from a URL cannot read a rules file beside it; give the \
                 consumer the rules with --rules-s3 (EVENTIDE_RULES_S3) instead",
            )
        } else {
            RulesBase::Dir(dir)
        };
        let c = compile(text, base).map_err(|source| LoadError::Sql {
            path: name.to_string(),
            source,
        })?;
        Ok(Pipeline {
            spec: c.spec,
            toml: c.toml,
            source: PipelineSource::Sql {
                source: c.source,
                out_dir: c.out_dir,
                sinks: c.sinks,
                aws: Box::new(c.aws),
            },
        })
    } else {
        let spec = PipelineSpec::from_toml(text).map_err(|source| LoadError::Toml {
            path: name.to_string(),
            source,
        })?;
        Ok(Pipeline {
            spec,
            toml: text.to_string(),
            source: PipelineSource::Toml,
        })
    }
}

fn is_sql(name: &str, text: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".sql") {
        return true;
    }
    if lower.ends_with(".toml") {
        return false;
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--") && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "CREATE" | "SET" | "INSERT" | "EXECUTE" | "BEGIN"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_chosen_by_extension_then_content() {
        assert!(is_sql("p.sql", "[input]"));
        assert!(!is_sql("p.toml", "CREATE TABLE"));
        assert!(is_sql("s3://b/k", "-- a job\nCREATE TABLE t (a INT)"));
        assert!(!is_sql("s3://b/k", "# a spec\n[input]"));
    }
}
