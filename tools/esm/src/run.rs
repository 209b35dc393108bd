//! The local event source mapping: reads Kafka with a consumer group and invokes the ingest function the way
//! AWS's MSK (or self-managed Kafka) trigger does.
//!
//! - The same event JSON as the trigger ([`build_event`]): records grouped by `topic-partition`, key and value
//!   in base64, headers as arrays of signed bytes, `timestampType`.
//! - Batches close at `batch_size` records, `batching_window` after their first record, or 6 MB.
//! - One batch at a time, so each partition is delivered in order; offsets are committed only after the
//!   function succeeded. A failed invocation is retried with exponential backoff; a partial batch response
//!   (`batchItemFailures`) retries each listed partition from the listed offset.
//! - Topics by list or by pattern (new matching topics are picked up within seconds); starting position
//!   `TRIM_HORIZON` (earliest) or `LATEST` for partitions the group has no offset for yet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use shared::writer::Backoff;
use tokio::sync::watch;
use tokio::time::Instant;

/// The trigger's limit on one invocation's payload.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;
/// The default topic pattern: every topic but Kafka's internal ones (`__consumer_offsets`, `_schemas`, ...).
pub const ALL_TOPICS: &str = "^[^_].*";

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartingPosition {
    /// The oldest records still in the topic (`auto.offset.reset=earliest`).
    #[value(name = "TRIM_HORIZON")]
    TrimHorizon,
    /// Only records produced from now on.
    #[value(name = "LATEST")]
    Latest,
}

/// Which trigger is imitated (it sets `eventSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Amazon MSK: `aws:kafka`, with an `eventSourceArn`.
    Msk,
    /// Self-managed Apache Kafka: `SelfManagedKafka`.
    SelfManaged,
}

/// The mapping's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EsmConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub bootstrap_servers: String,
    /// Consumer group id.
    #[arg(long, default_value = "notification-event-log")]
    pub group_id: String,
    /// Topics to read, comma-separated; a name starting with `^` is a regular expression.
    #[arg(long, value_delimiter = ',', default_value = ALL_TOPICS)]
    pub topics: Vec<String>,
    #[arg(long, value_enum, default_value = "TRIM_HORIZON")]
    pub starting_position: StartingPosition,
    /// Most records in one invocation (1 to 10,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long to gather records after the first one of a batch, in milliseconds (0 to 300,000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=300_000))]
    pub batching_window_ms: u64,
    #[arg(long, value_enum, default_value = "msk")]
    pub source: SourceKind,
    /// The largest backoff between retries of a failed invocation, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub max_backoff_ms: u64,
    /// How often to look for new topics that match a pattern, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub metadata_refresh_ms: u64,
    /// Extra librdkafka settings, NAME=VALUE (repeatable), e.g. security.protocol=SASL_SSL.
    #[arg(long = "kafka-option", value_name = "NAME=VALUE")]
    pub kafka_options: Vec<String>,
}

impl EsmConfig {
    /// The settings with their defaults and `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> EsmConfig {
        EsmConfig {
            bootstrap_servers: bootstrap_servers.to_owned(),
            group_id: "notification-event-log".into(),
            topics: vec![ALL_TOPICS.into()],
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 100,
            batching_window_ms: 500,
            source: SourceKind::Msk,
            max_backoff_ms: 10_000,
            metadata_refresh_ms: 2_000,
            kafka_options: Vec::new(),
        }
    }
}

/// What an invocation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Every record was processed.
    Success,
    /// `batchItemFailures`: resume each `topic-partition` at the offset.
    Partial(Vec<(String, i64)>),
}

/// Invokes the function with one event.
#[async_trait]
pub trait Invoke: Send + Sync {
    async fn invoke(&self, event: &Value) -> Result<Invocation, String>;
}

/// Reads a function response: success, or the partial batch response of the Kafka trigger.
pub fn read_response(response: &Value) -> Result<Invocation, String> {
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return Ok(Invocation::Success);
    };
    if failures.is_empty() {
        return Ok(Invocation::Success);
    }
    failures
        .iter()
        .map(|failure| {
            let id = &failure["itemIdentifier"];
            match (id["partition"].as_str(), id["offset"].as_i64()) {
                (Some(partition), Some(offset)) => Ok((partition.to_owned(), offset)),
                // AWS treats a malformed identifier as the whole batch failing.
                _ => Err(format!(
                    "malformed batch item failure {failure}; retrying the whole batch"
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Invocation::Partial)
}

/// Invokes the ingest handler in this process.
pub struct InProcess {
    pub ingest: Arc<ingest::handler::Ingest>,
    /// The time the handler gets, as a Lambda timeout would give it.
    pub timeout: Duration,
}

#[async_trait]
impl Invoke for InProcess {
    async fn invoke(&self, event: &Value) -> Result<Invocation, String> {
        match self.ingest.process(event, self.timeout).await {
            Ok((response, _)) => read_response(&serde_json::to_value(response).map_err(|e| e.to_string())?),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// Invokes a function through the Lambda Invoke API: `cargo lambda watch`, LocalStack or AWS itself.
pub struct LambdaInvoke {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
}

#[async_trait]
impl Invoke for LambdaInvoke {
    async fn invoke(&self, event: &Value) -> Result<Invocation, String> {
        let payload = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Invoke {}: {}",
                    self.function,
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
        let body = output.payload.map(|p| p.into_inner()).unwrap_or_default();
        if let Some(kind) = output.function_error {
            return Err(format!("{kind} function error: {}", String::from_utf8_lossy(&body)));
        }
        let response: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        read_response(&response)
    }
}

/// One consumed record, as the trigger would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub timestamp_type: &'static str,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    pub fn from_message(message: &OwnedMessage) -> Record {
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::CreateTime(ms) => (Some(ms), "CREATE_TIME"),
            Timestamp::LogAppendTime(ms) => (Some(ms), "LOG_APPEND_TIME"),
            Timestamp::NotAvailable => (None, "NO_TIMESTAMP_TYPE"),
        };
        Record {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp,
            timestamp_type,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The record's approximate size in the event, to keep batches under 6 MB.
    pub fn event_size(&self) -> usize {
        let b64 = |n: usize| n.div_ceil(3) * 4;
        200 + self.topic.len()
            + self.key.as_ref().map_or(0, |k| b64(k.len()))
            + self.value.as_ref().map_or(0, |v| b64(v.len()))
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + 8 + v.as_ref().map_or(0, |v| v.len() * 5))
                .sum::<usize>()
    }
}

/// The trigger's event for `records` (pure).
pub fn build_event(records: &[Record], source: SourceKind, bootstrap_servers: &str) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in records {
        let mut entry = serde_json::Map::new();
        entry.insert("topic".into(), json!(record.topic));
        entry.insert("partition".into(), json!(record.partition));
        entry.insert("offset".into(), json!(record.offset));
        entry.insert("timestamp".into(), json!(record.timestamp.unwrap_or(-1)));
        entry.insert("timestampType".into(), json!(record.timestamp_type));
        if let Some(key) = &record.key {
            entry.insert("key".into(), json!(b64(key)));
        }
        if let Some(value) = &record.value {
            entry.insert("value".into(), json!(b64(value)));
        }
        let headers: Vec<Value> = record
            .headers
            .iter()
            .map(|(name, value)| {
                let signed: Vec<i8> = value.as_deref().unwrap_or_default().iter().map(|b| *b as i8).collect();
                json!({ name.clone(): signed })
            })
            .collect();
        entry.insert("headers".into(), json!(headers));
        groups
            .entry(format!("{}-{}", record.topic, record.partition))
            .or_default()
            .push(Value::Object(entry));
    }
    match source {
        SourceKind::Msk => json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": "arn:aws:kafka:us-east-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1",
            "bootstrapServers": bootstrap_servers,
            "records": groups,
        }),
        SourceKind::SelfManaged => json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": bootstrap_servers,
            "records": groups,
        }),
    }
}

/// Keeps the records a partial batch response asks to be delivered again.
pub fn retain_failed(records: Vec<Record>, failures: &[(String, i64)]) -> Vec<Record> {
    records
        .into_iter()
        .filter(|r| {
            let group = format!("{}-{}", r.topic, r.partition);
            failures
                .iter()
                .any(|(partition, offset)| *partition == group && r.offset >= *offset)
        })
        .collect()
}

/// What the mapping has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub batches: u64,
    pub records: u64,
    pub failed_invocations: u64,
}

/// Creates the consumer for `config`.
pub fn consumer(config: &EsmConfig) -> anyhow::Result<StreamConsumer> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match config.starting_position {
                StartingPosition::TrimHorizon => "earliest",
                StartingPosition::Latest => "latest",
            },
        )
        .set(
            "topic.metadata.refresh.interval.ms",
            config.metadata_refresh_ms.to_string(),
        )
        .set("session.timeout.ms", "6000")
        // Retries of one batch may take long; the group must not evict the consumer meanwhile.
        .set("max.poll.interval.ms", "86400000")
        .set("allow.auto.create.topics", "false");
    for option in &config.kafka_options {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--kafka-option {option:?} is not NAME=VALUE"))?;
        client.set(name, value);
    }
    let consumer: StreamConsumer = client.create()?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Runs the mapping until `shutdown` turns true. A batch being delivered is finished (or, if it keeps
/// failing, left uncommitted for the next run) before it returns.
pub async fn run(
    config: &EsmConfig,
    invoker: &dyn Invoke,
    mut shutdown: watch::Receiver<bool>,
    on_progress: &(dyn Fn(&Progress) + Send + Sync),
) -> anyhow::Result<Progress> {
    let consumer = Arc::new(consumer(config)?);
    let mut progress = Progress::default();
    let window = Duration::from_millis(config.batching_window_ms);
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(config.max_backoff_ms.max(100)),
    };
    loop {
        // Wait for the first record of a batch, or shutdown.
        let first = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            message = consumer.recv() => message,
        };
        let first = match first {
            Ok(message) => Record::from_message(&message.detach()),
            Err(err) => {
                if err.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) {
                    // A pattern that matches no topic yet: new topics are picked up at the next refresh.
                    tracing::debug!(error = %err, "no matching topic yet");
                } else {
                    tracing::warn!(error = %err, "kafka consumer error");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut bytes = first.event_size();
        let mut batch = vec![first];
        let closes = Instant::now() + window;
        while batch.len() < config.batch_size as usize {
            let next = tokio::select! {
                _ = tokio::time::sleep_until(closes) => break,
                message = consumer.recv() => message,
            };
            match next {
                Ok(message) => {
                    let record = Record::from_message(&message.detach());
                    bytes += record.event_size();
                    batch.push(record);
                    if bytes >= MAX_EVENT_BYTES - 64 * 1024 {
                        break;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "kafka consumer error"),
            }
        }
        // Where each partition stands once this batch is done.
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for record in &batch {
            let entry = next_offsets
                .entry((record.topic.clone(), record.partition))
                .or_insert(0);
            *entry = (*entry).max(record.offset + 1);
        }
        let count = batch.len();
        let mut pending = batch;
        let mut attempt = 0u32;
        let delivered = loop {
            let event = build_event(&pending, config.source, &config.bootstrap_servers);
            let started = Instant::now();
            match invoker.invoke(&event).await {
                Ok(Invocation::Success) => {
                    tracing::info!(
                        records = pending.len(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        "invoked"
                    );
                    break true;
                }
                Ok(Invocation::Partial(failures)) => {
                    tracing::warn!(?failures, "partial batch failure; delivering those partitions again");
                    pending = retain_failed(pending, &failures);
                    if pending.is_empty() {
                        break true;
                    }
                }
                Err(error) => {
                    progress.failed_invocations += 1;
                    tracing::warn!(%error, attempt, records = pending.len(), "invocation failed; offsets not committed, retrying");
                }
            }
            let delay = backoff.ceiling(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break false,
                _ = tokio::time::sleep(delay) => {}
            }
        };
        if !delivered {
            tracing::info!("stopping with a batch undelivered; it is delivered again on the next start");
            break;
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &next_offsets {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        // A synchronous commit blocks until the broker answers (for as long as it is down): off the runtime's
        // threads, so that everything else on them (other tasks, the timers of a test) goes on meanwhile.
        let committing = consumer.clone();
        match tokio::task::spawn_blocking(move || committing.commit(&offsets, CommitMode::Sync)).await {
            Ok(Ok(())) => {}
            // Not fatal: the records are stored, and redelivery of stored records is idempotent.
            Ok(Err(err)) => tracing::warn!(error = %err, "offset commit failed; the batch may be delivered again"),
            Err(err) => tracing::warn!(error = %err, "offset commit did not finish; the batch may be delivered again"),
        }
        progress.batches += 1;
        progress.records += count as u64;
        on_progress(&progress);
    }
    consumer.unsubscribe();
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, partition: i32, offset: i64) -> Record {
        Record {
            topic: topic.into(),
            partition,
            offset,
            timestamp: Some(1_700_000_000_000),
            timestamp_type: "CREATE_TIME",
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![("h".into(), Some(vec![0xff, 0x41])), ("h".into(), None)],
        }
    }

    #[test]
    fn the_event_has_the_msk_trigger_shape() {
        let mut tombstone = record("orders", 1, 8);
        tombstone.value = None;
        tombstone.key = None;
        let event = build_event(
            &[record("orders", 1, 7), tombstone, record("pay-ments", 0, 3)],
            SourceKind::Msk,
            "b:9092",
        );
        assert_eq!(event["eventSource"], "aws:kafka");
        assert!(event["eventSourceArn"].as_str().unwrap().starts_with("arn:aws:kafka:"));
        assert_eq!(event["bootstrapServers"], "b:9092");
        let first = &event["records"]["orders-1"][0];
        assert_eq!(
            first,
            &json!({"topic": "orders", "partition": 1, "offset": 7, "timestamp": 1_700_000_000_000i64,
                    "timestampType": "CREATE_TIME", "key": "aw==", "value": "e30=",
                    "headers": [{"h": [-1, 65]}, {"h": []}]})
        );
        assert!(event["records"]["orders-1"][1].get("value").is_none());
        assert_eq!(event["records"]["pay-ments-0"][0]["offset"], 3);
        // The ingest function reads it back exactly.
        let decoded = shared::decode::decode_event(&event).unwrap();
        assert_eq!(decoded.records.len(), 3);
        assert_eq!(
            decoded.records[0].headers,
            vec![("h".to_owned(), vec![0xff, 0x41]), ("h".to_owned(), vec![])]
        );
        assert_eq!(decoded.records[1].value, None);
    }

    #[test]
    fn the_self_managed_event_has_no_arn() {
        let event = build_event(&[record("t", 0, 0)], SourceKind::SelfManaged, "b:9092");
        assert_eq!(event["eventSource"], "SelfManagedKafka");
        assert!(event.get("eventSourceArn").is_none());
    }

    #[test]
    fn partial_batch_responses_are_read_and_applied() {
        assert_eq!(
            read_response(&json!({"batchItemFailures": []})),
            Ok(Invocation::Success)
        );
        assert_eq!(read_response(&Value::Null), Ok(Invocation::Success));
        let partial =
            read_response(&json!({"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": 5}}]}))
                .unwrap();
        assert_eq!(partial, Invocation::Partial(vec![("t-0".into(), 5)]));
        assert!(read_response(&json!({"batchItemFailures": [{"itemIdentifier": "t-0-5"}]})).is_err());
        let kept = retain_failed(
            vec![
                record("t", 0, 4),
                record("t", 0, 5),
                record("t", 0, 6),
                record("t", 1, 9),
            ],
            &[("t-0".into(), 5)],
        );
        let offsets: Vec<i64> = kept.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [5, 6]);
    }
}
