//! SDK configuration for local endpoints (moto, LocalStack): dummy credentials, a fixed region.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};

/// SDK configuration for a local `endpoint` with dummy credentials.
pub fn local_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "local",
        )))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build()
}

/// A DynamoDB client without SDK retries (the ingest writer retries within its deadline).
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates the table (from the shared definition) and the bucket, unless they exist.
pub async fn ensure_table_and_bucket(config: &SdkConfig, table: &str, bucket: &str) -> anyhow::Result<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    if let Err(err) = shared::dynamo::table::create_table(&dynamodb, table).send().await {
        let exists = err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception());
        anyhow::ensure!(
            exists,
            "create table {table}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(err)
        );
    }
    let s3 = shared::dynamo::s3_client(config);
    if let Err(err) = s3.create_bucket().bucket(bucket).send().await {
        let exists = err
            .as_service_error()
            .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
        anyhow::ensure!(
            exists,
            "create bucket {bucket}: {}",
            aws_sdk_s3::error::DisplayErrorContext(err)
        );
    }
    Ok(())
}
