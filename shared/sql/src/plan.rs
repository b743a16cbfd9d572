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

/// The AWS sinks that the SQL's sink tables name, INSERT by INSERT. As in Flink, an
/// INSERT into an AWS sink table writes its rows there only; the INSERTs into other sink
/// tables (files, in replay) go to the consumer's default sinks: its results table, its S3
/// panes and its output stream (see `docs/aws-runtime.md`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsSinks {
    /// The INSERTs into AWS sink tables, in INSERT order.
    pub routes: Vec<AwsRoute>,
    /// `'aws.region'` of the sinks.
    pub region: Option<String>,
}

/// One INSERT into an AWS sink table.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsRoute {
    /// The INSERT's aggregation (named after its sink table).
    pub aggregation: String,
    pub sink: AwsSink,
}

/// An AWS sink table's connector.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsSink {
    /// `'connector' = 'dynamodb'`, `'table-name'`: a results table.
    DynamoDb { table: String },
    /// `'connector' = 'filesystem'` with an `s3://bucket/prefix` `'path'`: the S3 panes.
    S3 { path: String },
    /// `'connector' = 'kinesis'`, `'stream'` (or the name in `'stream.arn'`): a stream.
    Kinesis { stream: String },
}

impl AwsSinks {
    /// Checks the sinks against a consumer's: the region it runs in, and the location of its
    /// S3 panes (`s3://<bucket>/<panes prefix>/`, the deployment's, which an S3 sink must
    /// name).
    ///
    /// ```
    /// use eventide_sql::{AwsRoute, AwsSink, AwsSinks};
    /// let sinks = AwsSinks {
    ///     routes: vec![AwsRoute {
    ///         aggregation: "q1".into(),
    ///         sink: AwsSink::S3 { path: "s3://demo-data/panes/".into() },
    ///     }],
    ///     region: Some("eu-west-1".into()),
    /// };
    /// assert!(sinks.check("demo-data", "panes", Some("eu-west-1")).is_ok());
    /// assert!(sinks.check("prod-data", "panes", Some("eu-west-1")).is_err());
    /// assert!(sinks.check("demo-data", "panes", Some("us-east-1")).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// An S3 path other than the consumer's pane location, or a region other than the
    /// consumer's.
    pub fn check(
        &self,
        bucket: &str,
        panes_prefix: &str,
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
        for r in &self.routes {
            if let AwsSink::S3 { path } = &r.sink {
                let here = format!("s3://{bucket}/{panes_prefix}");
                if path.trim_end_matches('/') != here {
                    return Err(format!(
                        "the S3 sink of INSERT INTO {} has 'path' = '{path}', and the consumer \
                         writes its panes under {here}/ (the deployment's data bucket); name \
                         that path",
                        r.aggregation
                    ));
                }
            }
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
    /// `'source.init.position'` / `'scan.stream.initpos'`: `TRIM_HORIZON`, `LATEST` or
    /// `AT_TIMESTAMP`: where the consumer starts the shards it has no checkpoint of.
    pub init_position: Option<String>,
    /// `'format' = 'custom'` (Eventide's): the records are decoded by a `Decoder` of your
    /// own, which the entry point attaches with `PipelineSpec::with_decoder`; without one
    /// the pipeline must not run.
    pub custom_format: bool,
    /// With `AT_TIMESTAMP`, `'source.init.timestamp'` / `'scan.stream.initpos-timestamp'`
    /// in epoch ms.
    pub init_timestamp_ms: Option<i64>,
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
