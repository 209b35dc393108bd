//! Wiring only: logging, configuration and SDK clients once at start, then the runtime loop.

use std::sync::Arc;

use ingest::handler::{self, Ingest};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::config::IngestConfig;
use shared::decode::KafkaTrigger;
use shared::dynamo::DynamoStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::logging::lambda();
    let config = IngestConfig::from_env()?;
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("NotificationEventLog")
        .with_dimension(
            "function",
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "ingest".into()),
        )
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("RequestId")
        .init()?;
    let aws = shared::dynamo::ingest_sdk_config(aws_config::load_from_env().await);
    let store = DynamoStore::for_ingest(&aws, &config)?;
    let schemas = ingest::schemas::resolver(&config.schemas, &aws).await?;
    let ingest = Arc::new(Ingest::new(Arc::new(store), config).with_schemas(Arc::new(schemas)));
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        // The records are decoded while the runtime parses the event: no JSON tree of a 6 MB batch is built.
        service_fn(move |event: LambdaEvent<KafkaTrigger>| {
            let ingest = ingest.clone();
            async move { handler::handle(&ingest, event).await }
        }),
    )
    .await
}
