//! The store's error, classified for the retry policy: what every adapter answers and every caller reads.

use std::sync::Arc;

/// Whether an operation may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, a 5xx, a timeout or a connection failure: try again after a backoff.
    Transient,
    /// The request itself is wrong (validation, access denied, missing table): trying again cannot help.
    Permanent,
}

/// An error from the store (DynamoDB, S3, or a double), classified for the retry policy. Cheap to clone: one
/// failed request fails every record it carried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub retry: Retry,
    pub message: String,
    #[source]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    pub fn new(operation: &'static str, retry: Retry, message: impl Into<String>) -> Self {
        StoreError {
            operation,
            retry,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, keeping `source` as its cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub fn is_transient(&self) -> bool {
        self.retry == Retry::Transient
    }
}
