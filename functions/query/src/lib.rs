//! The query function: the HTTP API over the stored notifications. [`routes`] parses requests and writes
//! answers over the [`read`] service, which asks the store's ports; [`timeline`] is pure.

pub mod answer;
pub mod console;
pub mod cursor;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod read;
pub mod routes;
pub mod secrets;
pub mod serve;
pub mod timeline;

use std::sync::Arc;

use shared::config::{CursorKey, QueryConfig};
use shared::ports::{NotificationIndex, NotificationReader};

/// The cursor signer `config` names: its key, a generated one, or the Secrets Manager secret read now through
/// `aws` (a secret that cannot be read is a start-up error).
pub async fn cursor_signer(config: &QueryConfig, aws: &aws_config::SdkConfig) -> Result<cursor::CursorSigner, String> {
    let ttl = config.cursor_ttl.as_secs() as i64;
    match &config.cursor_key {
        CursorKey::Given(key) => Ok(cursor::CursorSigner::new(key.clone(), ttl)),
        CursorKey::Generated(key) => {
            tracing::info!("CURSOR_SECRET is not set: cursors are signed with a key of this process");
            Ok(cursor::CursorSigner::new(key.clone(), ttl))
        }
        CursorKey::SecretArn(arn) => {
            let source = secrets::SecretsManagerKeys::new(aws_sdk_secretsmanager::Client::new(aws), arn.clone());
            cursor::CursorSigner::from_source(Arc::new(source), ttl)
                .await
                .map_err(|e| format!("CURSOR_SECRET_ARN: {e}"))
        }
    }
}

/// Builds the router over a store (DynamoDB and S3 in Lambda and locally; the in-memory double in tests).
pub fn app<S>(cursors: cursor::CursorSigner, store: Arc<S>) -> axum::Router
where
    S: NotificationIndex + NotificationReader + 'static,
{
    routes::router(read::ReadService::new(store.clone(), store, cursors))
}
