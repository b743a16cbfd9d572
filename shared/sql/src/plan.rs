//! What SQL compiles into: the pipeline, its source's and sinks' options, and the AWS
//! sinks its sink tables name.

use eventide_engine::PipelineSpec;

/// SQL compiled into a pipeline.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The validated pipeline.
    pub spec: PipelineSpec,
    /// The equivalent pipeline spec in TOML: what `eventide explain` prints.
    pub toml: String,
    /// The source table's connector options.
    pub source: SourceOptions,
    /// The output directory of the filesystem sinks (`'path'`), when they give one.
    pub out_dir: Option<String>,
    /// The sinks in the order of their INSERTs: table name and connector options.
    pub sinks: Vec<SinkOptions>,
    /// The consumer's AWS sinks that the sink tables name.
    pub aws: AwsSinks,
}

/// The AWS sinks of the consumer as the SQL's sink tables name them. The consumer writes
/// every INSERT's rows to its results table and its S3 panes, and to its output stream when
/// it has one (see `docs/aws-runtime.md`); a sink table names which ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsSinks {
    /// `'connector' = 'dynamodb'`, `'table-name'`: the results table.
    pub results_table: Option<String>,
    /// `'connector' = 'filesystem'` with an `s3://bucket/prefix` `'path'`: where the panes go.
    pub s3_path: Option<String>,
    /// `'connector' = 'kinesis'`, `'stream'` (or the name in `'stream.arn'`): the output stream.
    pub output_stream: Option<String>,
    /// `'aws.region'` of the sinks.
    pub region: Option<String>,
}

impl AwsSinks {
    /// Checks the sinks against a consumer's own and fills in what the SQL names: the
    /// results table, and the output stream when the command line gives none. The panes'
    /// S3 location is fixed (`s3://<bucket>/<panes prefix>/`), so an S3 sink must name it.
    ///
    /// ```
    /// let sinks = eventide_sql::AwsSinks {
    ///     results_table: Some("rollups".into()),
    ///     output_stream: Some("alerts".into()),
    ///     ..Default::default()
    /// };
    /// let (mut table, mut stream) = ("demo-results".to_string(), None);
    /// sinks.apply(&mut table, "demo-data", "panes", &mut stream, Some("eu-west-1")).unwrap();
    /// assert_eq!((table.as_str(), stream.as_deref()), ("rollups", Some("alerts")));
    /// ```
    ///
    /// # Errors
    ///
    /// An S3 path other than the consumer's pane location, an output stream other than the
    /// one the command line gives, or a region other than the consumer's.
    pub fn apply(
        &self,
        results_table: &mut String,
        bucket: &str,
        panes_prefix: &str,
        output_stream: &mut Option<String>,
        region: Option<&str>,
    ) -> Result<(), String> {
        if let (Some(want), Some(have)) = (&self.region, region) {
            if want != have {
                return Err(format!(
                    "the pipeline's sinks are in 'aws.region' = '{want}', and the consumer runs \
                     against {have} (AWS_REGION); set AWS_REGION={want}"
                ));
            }
        }
        if let Some(p) = &self.s3_path {
            let here = format!("s3://{bucket}/{panes_prefix}");
            if p.trim_end_matches('/') != here {
                return Err(format!(
                    "the S3 sink's 'path' = '{p}', and the consumer writes its panes under \
                     {here}/ (the deployment's data bucket); name that path"
                ));
            }
        }
        if let Some(s) = &self.output_stream {
            match output_stream {
                Some(given) if given != s => {
                    return Err(format!(
                        "the kinesis sink names stream '{s}', and the consumer is given \
                         --output-stream {given}; give the same stream or leave one out"
                    ))
                }
                _ => *output_stream = Some(s.clone()),
            }
        }
        if let Some(t) = &self.results_table {
            *results_table = t.clone();
        }
        Ok(())
    }
}

/// Where the source table reads from (its `WITH` options).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceOptions {
    /// `'connector'`: `filesystem` or `kinesis`.
    pub connector: String,
    /// `'path'` of a filesystem source.
    pub path: Option<String>,
    /// A Kinesis source: `'stream'` (or the stream name in `'stream.arn'`).
    pub stream: Option<String>,
    /// `'aws.region'`.
    pub region: Option<String>,
    /// `'source.init.position'` / `'scan.stream.initpos'` (`LATEST`, `TRIM_HORIZON`, `AT_TIMESTAMP`).
    pub init_position: Option<String>,
    /// `'format' = 'custom'` (Eventide's): the records are decoded by a `Decoder` of your
    /// own, which the entry point attaches with `PipelineSpec::with_decoder`; without one
    /// the pipeline must not run.
    pub custom_format: bool,
}

/// A sink table's connector options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkOptions {
    pub table: String,
    /// `'connector'`: `filesystem`, `dynamodb`, `s3` or `kinesis`.
    pub connector: String,
    /// The other options, as written.
    pub options: Vec<(String, String)>,
}
