//! The ingest function: stores every record of a Kafka trigger event in DynamoDB (see [`handler`]).

pub mod handler;
pub mod schemas;
