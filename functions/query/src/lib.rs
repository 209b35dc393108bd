//! The query function: the HTTP API over the stored notifications. [`routes`] parses requests and writes
//! answers over the [`read`] service, which asks the store's ports; [`timeline`] is pure.

pub mod cursor;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod read;
pub mod routes;
pub mod timeline;

use std::sync::Arc;

use shared::config::QueryConfig;
use shared::ports::{NotificationIndex, NotificationReader};

/// Builds the router over a store (DynamoDB and S3 in Lambda and locally; the in-memory double in tests).
pub fn app<S>(config: &QueryConfig, store: Arc<S>) -> axum::Router
where
    S: NotificationIndex + NotificationReader + 'static,
{
    let cursors = cursor::CursorSigner::new(config.cursor_secret.clone(), config.cursor_ttl.as_secs() as i64);
    routes::router(read::ReadService::new(store.clone(), store, cursors))
}
