//! Wiring only: logging, configuration and SDK clients once at start, then the HTTP router under lambda_http.

use std::sync::Arc;

use lambda_http::{run, Error};
use shared::config::QueryConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::lambda();
    let config = QueryConfig::from_env()?;
    let aws = aws_config::load_from_env().await;
    let cursors = query::cursor_signer(&config, &aws).await?;
    let store = shared::dynamo::DynamoStore::new(&aws, config.table.clone())?;
    let app = query::app(cursors, Arc::new(store));
    run(app).await
}
