//! Wiring only: logging, configuration and SDK clients once at start, then the HTTP router under lambda_http.

use std::sync::Arc;

use lambda_http::{run, Error};
use shared::config::QueryConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::lambda();
    let config = QueryConfig::from_env()?;
    if config.cursor_secret_generated {
        tracing::warn!(
            "CURSOR_SECRET is not set: cursors are signed with a per-instance key and fail across instances"
        );
    }
    let aws = aws_config::load_from_env().await;
    let store = shared::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        shared::dynamo::s3_client(&aws),
        config.table.clone(),
    );
    let app = query::app(&config, Arc::new(store));
    run(app).await
}
