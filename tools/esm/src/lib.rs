//! The local event source mapping: reads Kafka with a consumer group and invokes the ingest function the way
//! AWS's MSK (or self-managed Kafka) trigger does, as a library so that `notifications dev` and the integration
//! tests run exactly what `local-esm` runs.
//!
//! - `config.rs`: the settings (topics by list or pattern, starting position, batching).
//! - `event.rs`: the trigger's event JSON for a batch of records (pure).
//! - `invoke.rs`: invoking the function, in-process or through the Lambda Invoke API, and reading its answer.
//! - `deliver.rs`: one batch through the function with AWS's error handling controls (retries, record age,
//!   bisection) and the on-failure destinations (`destination.rs`: a Kafka topic, S3, SQS, SNS; `failure.rs`:
//!   the invocation records AWS writes to them, pure).
//! - `filter.rs`: `FilterCriteria` on the record's value, in Lambda's filter pattern syntax (pure).
//! - `run.rs`: the poll and commit loop; `rebalance.rs`: what a rebalance takes from the batch being built.
//! - `status.rs`: the status line and `--status-json` (records, rate, lag by partition, invocations).
//! - `standalone.rs`: the mapping on its own (`local-esm`, `notifications esm`) until a signal.

mod config;
mod deliver;
mod destination;
mod event;
mod failure;
mod filter;
mod invoke;
mod rebalance;
mod run;
mod standalone;
mod status;

pub use config::{Destination, EsmConfig, SourceKind, StartingPosition, ALL_TOPICS};
pub use deliver::{deliver, Condition, Delivered, Failed, OnFailure, Policy};
pub use destination::{s3_key, AwsDestination, KafkaDestination};
pub use event::{build_event, retain_failed, Record, MAX_EVENT_BYTES};
pub use failure::{batch_record, kafka_record, Origin};
pub use filter::{Filters, MAX_FILTERS};
pub use invoke::{read_response, InProcess, Invocation, Invoke, InvokeError, LambdaInvoke};
pub use run::{function_arn, run, Progress};
pub use standalone::{lambda_client, run_mapping, InvokeArgs, StandaloneArgs};
