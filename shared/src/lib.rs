//! The shared core of the notification event log: decoding of Kafka trigger events, normalization of each
//! record into the domain model, the store's ports ([`ports`]) with their DynamoDB and S3 adapter ([`dynamo`]),
//! and configuration.
//!
//! Nothing here depends on the Lambda runtime: the functions and tools are thin edges around this crate.

pub mod config;
pub mod decode;
pub mod dynamo;
pub mod error;
pub mod fixtures;
pub mod logging;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod model;
pub mod normalize;
pub mod ports;
pub mod schema;
pub mod sigv4;
