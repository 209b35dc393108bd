//! Wiring only: logging, configuration and SDK clients once at start, then the HTTP router under lambda_http.

use lambda_http::{run, Error};
use shared::config::QueryConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();
    let config = QueryConfig::from_env()?;
    if config.cursor_secret_generated {
        tracing::warn!(
            "CURSOR_SECRET is not set: cursors are signed with a per-instance key and fail across instances"
        );
    }
    let aws = aws_config::load_from_env().await;
    let app = query::app(
        &config,
        aws_sdk_dynamodb::Client::new(&aws),
        shared::store::s3_client(&aws),
    );
    run(app).await
}
