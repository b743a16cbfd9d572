//! AWS clients from the SDK's standard configuration chain.

use aws_config::BehaviorVersion;

/// The clients Eventide uses, built once from the environment.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Loads region, credentials and endpoints (`AWS_ENDPOINT_URL`, and per-service
    /// overrides such as `AWS_ENDPOINT_URL_KINESIS`) the standard way.
    pub async fn from_env() -> Self {
        let conf = aws_config::defaults(BehaviorVersion::latest()).load().await;
        // Path-style S3 addressing works with AWS and with local emulators alike.
        let s3_conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&conf),
            kinesis: aws_sdk_kinesis::Client::new(&conf),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
        }
    }
}
