//! The local event source mapping: reads Kafka with a consumer group and invokes the ingest function the way
//! AWS's MSK (or self-managed Kafka) trigger does, as a library so that `notifications dev` and the integration
//! tests run exactly what `local-esm` runs.

mod run;
mod standalone;

pub use run::*;
pub use standalone::{lambda_client, run_mapping, InvokeArgs};
