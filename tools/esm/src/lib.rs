//! The local event source mapping: reads Kafka with a consumer group and invokes the ingest function the way
//! AWS's MSK (or self-managed Kafka) trigger does, as a library so that `notifications dev` and the integration
//! tests run exactly what `local-esm` runs.
//!
//! - `config.rs`: the settings (topics by list or pattern, starting position, batching).
//! - `event.rs`: the trigger's event JSON for a batch of records (pure).
//! - `invoke.rs`: invoking the function, in-process or through the Lambda Invoke API, and reading its answer.
//! - `run.rs`: the poll and commit loop.
//! - `standalone.rs`: the mapping on its own (`local-esm`, `notifications esm`) until a signal.

mod config;
mod event;
mod invoke;
mod run;
mod standalone;

pub use config::{EsmConfig, SourceKind, StartingPosition, ALL_TOPICS};
pub use event::{build_event, retain_failed, Record, MAX_EVENT_BYTES};
pub use invoke::{read_response, InProcess, Invocation, Invoke, InvokeError, LambdaInvoke};
pub use run::{consumer, run, Progress};
pub use standalone::{lambda_client, run_mapping, InvokeArgs, StandaloneArgs};
