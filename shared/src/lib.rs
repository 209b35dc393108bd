//! The shared core of the notification event log: decoding of Kafka trigger events, normalization of each
//! record into the stored model, the table definition, item layout, and the store ports with their AWS
//! adapters and the retrying writer.
//!
//! Nothing here depends on the Lambda runtime: the functions and tools are thin edges around this crate.

pub mod config;
pub mod decode;
pub mod fixtures;
pub mod item;
pub mod json;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod model;
pub mod normalize;
pub mod store;
pub mod table;
pub mod writer;
