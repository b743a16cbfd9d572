//! The client bundle: every SDK client Eventide uses, built once from the SDK's standard
//! configuration chain and passed down to the adapters (the worker, the Lambda handler,
//! the enrichment tables, the CLI). Nothing else loads a configuration.

use aws_config::{BehaviorVersion, SdkConfig};

/// The clients Eventide uses, built once from the environment ([`Clients::from_env`]).
/// Cloning is cheap (the SDK's clients share their connection pools).
///
/// ```no_run
/// # async fn f() {
/// let clients = eventide_aws::config::Clients::from_env().await;
/// let tables = clients.dynamodb.list_tables().send().await;
/// # let _ = tables; }
/// ```
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub s3: aws_sdk_s3::Client,
    /// The Glue Data Catalog (enrichment tables declared by `glue = { … }`).
    pub glue: aws_sdk_glue::Client,
}

/// Checks, before any call, that the environment names a region: without one the SDK
/// probes the EC2 instance metadata service and prints pages of warnings before failing.
///
/// # Errors
/// One line that says what is missing and how to set it.
///
/// ```
/// # std::env::set_var("AWS_REGION", "eu-west-1");
/// assert!(eventide_aws::config::check_environment().is_ok());
/// ```
pub fn check_environment() -> Result<(), String> {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let config_file = std::env::var_os("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".aws/config")));
    let region_in_file = config_file
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|t| t.lines().any(|l| l.trim_start().starts_with("region")));
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") || region_in_file {
        Ok(())
    } else {
        Err(
            "no AWS region is set: export AWS_REGION (for the local emulators: \
             localstack/up && eval \"$(localstack/env)\")"
                .to_string(),
        )
    }
}

impl Clients {
    /// Loads region, credentials and endpoints (`AWS_ENDPOINT_URL`, and per-service
    /// overrides such as `AWS_ENDPOINT_URL_KINESIS`) the standard way.
    pub async fn from_env() -> Self {
        Self::from_conf(&aws_config::defaults(BehaviorVersion::latest()).load().await)
    }

    /// Clients for work that makes no AWS call (every enrichment table a local file):
    /// built without reading any configuration, so no region or credential lookup and no
    /// instance-metadata probe happens. A call through them fails.
    pub fn offline() -> Self {
        Self::from_conf(
            &SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        )
    }

    /// The clients of one SDK configuration.
    pub fn from_conf(conf: &SdkConfig) -> Self {
        // Path-style S3 addressing works with AWS and with local emulators alike.
        let s3_conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(conf),
            kinesis: aws_sdk_kinesis::Client::new(conf),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            glue: aws_sdk_glue::Client::new(conf),
        }
    }
}
