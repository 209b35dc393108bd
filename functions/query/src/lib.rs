//! The query function: the HTTP API over the stored notifications (see [`api`]).

pub mod api;
pub mod cursor;
pub mod openapi;
pub mod params;
pub mod problem;

use std::sync::Arc;

use shared::config::QueryConfig;
use shared::store::{DynamoStore, S3Store};

/// Builds the router over DynamoDB and S3 clients, as both Lambda and the local server run it.
pub fn app(config: &QueryConfig, dynamodb: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client) -> axum::Router {
    let store = Arc::new(DynamoStore::new(dynamodb, config.table.clone()));
    api::router(api::AppState {
        index: store.clone(),
        items: store,
        blobs: Arc::new(S3Store::new(s3)),
        cursors: cursor::CursorSigner::new(config.cursor_secret.clone(), config.cursor_ttl.as_secs() as i64),
    })
}
