//! Delivering one batch with AWS's error handling controls for Kafka
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>):
//!
//! - a record older than `MaximumRecordAgeInSeconds` (by its Kafka timestamp) is not sent to the function, on the
//!   first attempt or any retry;
//! - a failed invocation is retried with backoff, at most `MaximumRetryAttempts` times (the first attempt is not a
//!   retry); a partial batch response retries the listed partitions from the listed offsets and counts as a
//!   failed attempt;
//! - with `BisectBatchOnFunctionError`, a batch the function fails is split in two and each half is delivered on
//!   its own (splitting does not count as a retry), until a failing record is alone;
//! - records that run out of retries or age go to the on-failure destination
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>), or are discarded with a
//!   warning when there is none, and the mapping moves on: their offsets are committed with the batch.
//!
//! Nothing is committed until every record is delivered or has reached the destination: a destination that
//! fails is retried, and a stop leaves the batch uncommitted for the next start.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use shared::dynamo::retry::Backoff;
use tokio::sync::watch;

use crate::event::{build_event, retain_failed, Record};
use crate::invoke::{Invocation, Invoke};
use crate::{EsmConfig, SourceKind};

/// Why records did not reach the function. The names are those of AWS's invocation records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// Records given up on, with why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub records: Vec<Record>,
    pub condition: Condition,
    /// The last invocation error (none for records that aged out before an invocation).
    pub error: Option<String>,
    /// Invocations made with these records.
    pub attempts: u32,
}

/// Where failed records go.
#[async_trait]
pub trait OnFailure: Send + Sync {
    /// Takes the failed records; an error leaves the batch uncommitted and is retried.
    async fn send(&self, failed: &Failed) -> anyhow::Result<()>;
    /// How the destination is named in logs.
    fn name(&self) -> String;
}

/// How a batch is delivered.
#[derive(Debug, Clone)]
pub struct Policy {
    pub retries: Option<u32>,
    pub maximum_record_age: Option<Duration>,
    pub bisect: bool,
    pub backoff: Backoff,
    pub source: SourceKind,
    pub bootstrap_servers: String,
}

impl Policy {
    pub fn from_config(config: &EsmConfig) -> Policy {
        Policy {
            retries: config.retries(),
            maximum_record_age: config.maximum_record_age(),
            bisect: config.bisect_batch_on_function_error,
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_millis(config.max_backoff_ms.max(100)),
            },
            source: config.source,
            bootstrap_servers: config.bootstrap_servers.clone(),
        }
    }
}

/// What delivering a batch came to.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    pub invocations: u64,
    pub failed_invocations: u64,
    /// Records sent to the destination, or discarded without one.
    pub failed: Vec<Failed>,
}

impl Delivered {
    pub fn failed_records(&self) -> usize {
        self.failed.iter().map(|f| f.records.len()).sum()
    }
}

/// Splits off the records older than `maximum` at `now_ms` (records without a timestamp never age out).
fn split_aged(records: Vec<Record>, maximum: Option<Duration>, now_ms: i64) -> (Vec<Record>, Vec<Record>) {
    let Some(maximum) = maximum else {
        return (records, Vec::new());
    };
    let limit = maximum.as_millis() as i64;
    records
        .into_iter()
        .partition(|r| r.timestamp.is_none_or(|ts| now_ms.saturating_sub(ts) <= limit))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Delivers `batch`; `None` when `shutdown` came first (nothing may be committed then).
pub async fn deliver(
    batch: Vec<Record>,
    invoker: &dyn Invoke,
    policy: &Policy,
    destination: Option<&dyn OnFailure>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Delivered> {
    let mut outcome = Delivered::default();
    // Parts of the batch still to deliver, in order, with the invocations each has had.
    let mut queue: VecDeque<(Vec<Record>, u32)> = VecDeque::from([(batch, 0)]);
    while let Some((records, attempts)) = queue.pop_front() {
        let (pending, aged) = split_aged(records, policy.maximum_record_age, now_ms());
        if !aged.is_empty() {
            outcome.failed.push(Failed {
                records: aged,
                condition: Condition::RecordAgeExceeded,
                error: None,
                attempts,
            });
        }
        if pending.is_empty() {
            continue;
        }
        let event = build_event(&pending, policy.source, &policy.bootstrap_servers);
        outcome.invocations += 1;
        let started = tokio::time::Instant::now();
        let (rest, error) = match invoker.invoke(&event).await {
            Ok(Invocation::Success) => {
                tracing::info!(
                    records = pending.len(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "invoked"
                );
                continue;
            }
            Ok(Invocation::Partial(failures)) => {
                tracing::warn!(?failures, "partial batch failure; delivering those partitions again");
                let rest = retain_failed(pending, &failures);
                if rest.is_empty() {
                    continue;
                }
                (rest, format!("partial batch response: {failures:?}"))
            }
            Err(error) => {
                outcome.failed_invocations += 1;
                tracing::warn!(%error, attempt = attempts, records = pending.len(), "invocation failed; offsets not committed");
                (pending, error.to_string())
            }
        };
        let attempts = attempts + 1;
        if policy.bisect && rest.len() > 1 {
            let mut first = rest;
            let second = first.split_off(first.len() / 2);
            tracing::info!(
                halves = ?(first.len(), second.len()),
                "BisectBatchOnFunctionError: delivering each half on its own"
            );
            queue.push_front((second, attempts - 1));
            queue.push_front((first, attempts - 1));
            continue;
        }
        if policy.retries.is_some_and(|retries| attempts > retries) {
            tracing::warn!(records = rest.len(), attempts, %error, "MaximumRetryAttempts reached; giving the records up");
            outcome.failed.push(Failed {
                records: rest,
                condition: Condition::RetryAttemptsExhausted,
                error: Some(error),
                attempts,
            });
            continue;
        }
        let delay = policy.backoff.ceiling(attempts - 1);
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        queue.push_front((rest, attempts));
    }
    for failed in &outcome.failed {
        let partitions: std::collections::BTreeSet<String> = failed
            .records
            .iter()
            .map(|r| format!("{}-{}", r.topic, r.partition))
            .collect();
        let Some(destination) = destination else {
            tracing::warn!(
                records = failed.records.len(),
                condition = failed.condition.as_str(),
                ?partitions,
                "no on-failure destination: the records are discarded and the mapping moves on, as AWS does"
            );
            continue;
        };
        let mut attempt = 0u32;
        loop {
            match destination.send(failed).await {
                Ok(()) => {
                    tracing::warn!(
                        records = failed.records.len(),
                        condition = failed.condition.as_str(),
                        ?partitions,
                        destination = %destination.name(),
                        "records sent to the on-failure destination"
                    );
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, destination = %destination.name(), "the on-failure destination failed; retrying");
                    let delay = policy.backoff.ceiling(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
    Some(outcome)
}

/// Unit tests over a test double of the function (fails the records whose value says so) and an in-memory
/// destination double.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::Value;

    use super::*;
    use crate::invoke::InvokeError;

    /// A function double: fails an invocation that carries a record whose value is `poison`, and remembers the
    /// offsets of each invocation.
    #[derive(Default)]
    struct PoisonFunction {
        calls: Mutex<Vec<Vec<i64>>>,
    }

    #[async_trait]
    impl Invoke for PoisonFunction {
        async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
            let mut offsets = Vec::new();
            let mut poisoned = false;
            for records in event["records"].as_object().unwrap().values() {
                for record in records.as_array().unwrap() {
                    offsets.push(record["offset"].as_i64().unwrap());
                    poisoned |= record["value"] == "cG9pc29u"; // base64 of "poison"
                }
            }
            self.calls.lock().unwrap().push(offsets);
            if poisoned {
                Err(InvokeError::Function {
                    kind: "Unhandled".into(),
                    body: "poison".into(),
                })
            } else {
                Ok(Invocation::Success)
            }
        }
    }

    #[derive(Default)]
    struct MemoryDestination {
        taken: Mutex<Vec<Failed>>,
    }

    #[async_trait]
    impl OnFailure for MemoryDestination {
        async fn send(&self, failed: &Failed) -> anyhow::Result<()> {
            self.taken.lock().unwrap().push(failed.clone());
            Ok(())
        }
        fn name(&self) -> String {
            "memory".into()
        }
    }

    fn record(offset: i64, value: &str, age_ms: i64) -> Record {
        Record {
            topic: "orders".into(),
            partition: 0,
            offset,
            timestamp: Some(now_ms() - age_ms),
            timestamp_type: "CREATE_TIME",
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    fn policy(retries: Option<u32>, bisect: bool, age: Option<u64>) -> Policy {
        Policy {
            retries,
            maximum_record_age: age.map(Duration::from_secs),
            bisect,
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(2),
            },
            source: SourceKind::Msk,
            bootstrap_servers: "b:9092".into(),
        }
    }

    fn batch(poison_at: Option<i64>) -> Vec<Record> {
        (0..8)
            .map(|o| record(o, if Some(o) == poison_at { "poison" } else { "fine" }, 0))
            .collect()
    }

    async fn run(batch: Vec<Record>, policy: Policy) -> (Delivered, Vec<Vec<i64>>, Vec<Failed>) {
        let function = PoisonFunction::default();
        let destination = MemoryDestination::default();
        let (_stop, mut shutdown) = watch::channel(false);
        let delivered = deliver(batch, &function, &policy, Some(&destination), &mut shutdown)
            .await
            .expect("not stopped");
        let calls = function.calls.lock().unwrap().clone();
        let taken = destination.taken.lock().unwrap().clone();
        (delivered, calls, taken)
    }

    #[tokio::test]
    async fn a_batch_that_keeps_failing_goes_to_the_destination_after_its_retries() {
        let (delivered, calls, taken) = run(batch(Some(3)), policy(Some(2), false, None)).await;
        assert_eq!(calls.len(), 3, "the first attempt and two retries");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].condition, Condition::RetryAttemptsExhausted);
        assert_eq!(taken[0].records.len(), 8, "the whole batch, without bisection");
        assert_eq!(taken[0].attempts, 3);
        assert!(taken[0].error.as_deref().unwrap_or_default().contains("poison"));
        assert_eq!(delivered.failed_invocations, 3);
    }

    #[tokio::test]
    async fn bisection_isolates_the_failing_record_and_delivers_every_other() {
        let (_, calls, taken) = run(batch(Some(5)), policy(Some(1), true, None)).await;
        assert_eq!(taken.len(), 1);
        let given_up: Vec<i64> = taken[0].records.iter().map(|r| r.offset).collect();
        assert_eq!(given_up, [5], "only the poison record");
        let delivered: Vec<i64> = calls
            .iter()
            .filter(|offsets| !offsets.contains(&5))
            .flatten()
            .copied()
            .collect();
        assert_eq!(delivered, [0, 1, 2, 3, 4, 6, 7], "the others, once each and in order");
        // 8 → 4+4 → (4,5)+(6,7)... the poison alone is tried twice (one retry).
        assert_eq!(calls.iter().filter(|c| c.as_slice() == [5]).count(), 2);
    }

    #[tokio::test]
    async fn records_past_the_maximum_age_are_not_sent_to_the_function() {
        let mut records = batch(None);
        records[1] = record(1, "fine", 120_000);
        records[6] = record(6, "fine", 61_000);
        let (delivered, calls, taken) = run(records, policy(None, false, Some(60))).await;
        assert_eq!(calls, [vec![0, 2, 3, 4, 5, 7]]);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].condition, Condition::RecordAgeExceeded);
        assert_eq!(taken[0].records.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 6]);
        assert_eq!((taken[0].attempts, taken[0].error.as_deref()), (0, None));
        assert_eq!(delivered.failed_records(), 2);
    }

    #[tokio::test]
    async fn without_a_limit_a_failing_batch_is_retried_until_the_mapping_stops_and_nothing_is_given_up() {
        let function = PoisonFunction::default();
        let (stop, mut shutdown) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = stop.send(true);
        });
        let outcome = deliver(
            batch(Some(0)),
            &function,
            &policy(None, false, None),
            None,
            &mut shutdown,
        )
        .await;
        stopper.await.unwrap();
        assert!(
            outcome.is_none(),
            "stopped with the batch undelivered: nothing to commit"
        );
        assert!(function.calls.lock().unwrap().len() > 3, "retried meanwhile");
    }

    #[tokio::test]
    async fn without_a_destination_exhausted_records_are_discarded_and_reported() {
        let function = PoisonFunction::default();
        let (_stop, mut shutdown) = watch::channel(false);
        let outcome = deliver(
            batch(Some(2)),
            &function,
            &policy(Some(0), false, None),
            None,
            &mut shutdown,
        )
        .await
        .expect("not stopped");
        assert_eq!(
            function.calls.lock().unwrap().len(),
            1,
            "MaximumRetryAttempts 0: no retry"
        );
        assert_eq!(outcome.failed_records(), 8);
    }
}
