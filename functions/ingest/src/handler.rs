//! The ingest handler: one Kafka trigger event in; every record stored, or the invocation failed (or the
//! unstored records reported) so that the trigger delivers them again. Nothing is acknowledged unstored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use shared::config::{FailureMode, IngestConfig};
use shared::decode::{self, DecodedEvent, EventError, KafkaTrigger};
use shared::model::{KafkaMessage, Notification};
use shared::normalize::{self, Context};
use shared::ports::{Failure, NotificationSink, NotificationSource, WriteError};
use shared::schema::registry::{Resolution, SchemaResolver, Schemas};
use shared::schema::{schema_ref, SchemaRef};
use tokio::time::Instant;

/// The invocation budget used when the runtime gives no deadline (tests, local runs).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("not a Kafka trigger event: {0}")]
    NotKafka(#[from] EventError),
    #[error(
        "{failed} of {total} records were not stored ({first}); failing the invocation so the trigger delivers them again"
    )]
    NotStored {
        failed: usize,
        total: usize,
        /// Why the first of them was not stored.
        #[source]
        first: Arc<WriteError>,
        failures: Vec<Failure>,
    },
}

impl From<IngestError> for Diagnostic {
    fn from(error: IngestError) -> Diagnostic {
        let error_type = match error {
            IngestError::NotKafka(_) => "NotAKafkaEvent",
            IngestError::NotStored { .. } => "RecordsNotStored",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// The response to the trigger. With `ReportBatchItemFailures` on the event source mapping, it lists every
/// record that was not stored, and Lambda delivers those again; an empty list means every record was processed.
/// Format: <https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>
/// (`{"batchItemFailures": [{"itemIdentifier": {"partition": "topic-0", "offset": 15}}]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: ItemIdentifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemIdentifier {
    /// `{topic}-{partition}`, as the event's record groups are keyed.
    pub partition: String,
    pub offset: i64,
}

/// What one invocation did: logged as one line and emitted as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvocationSummary {
    pub records: usize,
    pub bytes: usize,
    pub stored: usize,
    pub retried: u64,
    pub failed: usize,
    pub offloaded: usize,
    /// Write capacity units the store reported for the writes (table and indexes): what the batch cost.
    pub write_units: u64,
    pub warnings: usize,
    /// Records held back because their schema registry was unavailable (counted in `failed` too).
    pub held_for_schema: usize,
    pub duration_ms: u64,
}

/// The ingest function's state, built once at start.
pub struct Ingest {
    sink: Arc<dyn NotificationSink>,
    config: IngestConfig,
    schemas: Arc<SchemaResolver>,
}

/// One batch's records as the sink takes them: each normalized only when its write is next, and counted and
/// logged the first time.
struct Batch<'a> {
    records: &'a [KafkaMessage],
    /// The records to store, by index into `records` (those held back for their schema are not).
    indices: Vec<usize>,
    context: Context<'a>,
    built: Vec<AtomicBool>,
    warnings: AtomicUsize,
    log_payloads: bool,
}

impl NotificationSource for Batch<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn id(&self, index: usize) -> String {
        self.indices
            .get(index)
            .and_then(|i| self.records.get(*i))
            .map(KafkaMessage::id)
            .unwrap_or_default()
    }

    fn build(&self, index: usize) -> Notification {
        let notification = normalize::normalize(&self.records[self.indices[index]], &self.context);
        let first = self.built.get(index).is_some_and(|b| !b.swap(true, Ordering::Relaxed));
        if first {
            self.warnings.fetch_add(notification.warnings.len(), Ordering::Relaxed);
            if !notification.warnings.is_empty() {
                let codes: Vec<&str> = notification.warnings.iter().map(|w| w.code.as_str()).collect();
                tracing::info!(id = %notification.id, warnings = ?codes, "record normalized with warnings");
            }
            if self.log_payloads {
                tracing::info!(id = %notification.id, payload = %String::from_utf8_lossy(notification.payload.as_deref().unwrap_or_default()), "payload");
            }
        }
        notification
    }
}

impl Ingest {
    /// An ingest with no schema source: registry-framed records are stored undecoded, with a warning.
    pub fn new(sink: Arc<dyn NotificationSink>, config: IngestConfig) -> Self {
        Ingest {
            sink,
            config,
            schemas: Arc::new(SchemaResolver::none()),
        }
    }

    /// The same ingest, decoding registry-framed records with schemas from `schemas`.
    pub fn with_schemas(mut self, schemas: Arc<SchemaResolver>) -> Self {
        self.schemas = schemas;
        self
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Stores every record of the trigger event `event` (its JSON bytes, as Lambda delivers them) within
    /// `budget`: what the local event source mapping, `ingest-file` and the tests call. The records are decoded
    /// by the decoder the runtime runs ([`decode::decode_event_bytes`]), then stored as [`handle`] stores them.
    pub async fn process(
        &self,
        event: Vec<u8>,
        budget: Duration,
    ) -> Result<(Response, InvocationSummary), IngestError> {
        let started = Instant::now();
        let decoded = decode::decode_event_bytes(&event).map_err(|error| rejected(error, started))?;
        // The bytes are freed once decoded: a 6 MB event is not held twice while it is stored.
        drop(event);
        self.store(decoded, started, budget).await
    }

    async fn store(
        &self,
        event: DecodedEvent,
        started: Instant,
        budget: Duration,
    ) -> Result<(Response, InvocationSummary), IngestError> {
        let deadline = started + budget.saturating_sub(self.config.deadline_margin);
        let received_at: DateTime<Utc> = Utc::now();
        let mut summary = InvocationSummary {
            records: event.records.len(),
            bytes: event.records.iter().map(|m| m.value.as_ref().map_or(0, Vec::len)).sum(),
            ..Default::default()
        };
        // The schemas of registry-framed records first, each id once; a registry that does not answer within
        // half of what is left holds its records back.
        let schemas = self.resolve_schemas(&event.records, deadline).await;
        let mut held = Vec::new();
        let mut indices = Vec::with_capacity(event.records.len());
        for (index, record) in event.records.iter().enumerate() {
            match unavailable_schema(record, &schemas) {
                Some(why) => held.push(Failure {
                    id: record.id(),
                    error: Arc::new(WriteError::SchemaUnavailable(why)),
                }),
                None => indices.push(index),
            }
        }
        // Each record is normalized only when its write is next: a full batch of 10,000 records never holds
        // more than the items in flight. A record whose write must be sent again is built again; it is
        // counted and logged once.
        let batch = Batch {
            records: &event.records,
            indices,
            context: Context {
                received_at,
                topic_services: &self.config.topic_services,
                schemas: &schemas,
            },
            built: event.records.iter().map(|_| AtomicBool::new(false)).collect(),
            warnings: AtomicUsize::new(0),
            log_payloads: self.config.log_payloads,
        };
        let report = if batch.indices.is_empty() {
            Default::default()
        } else {
            self.sink.store(&batch, deadline).await
        };
        summary.held_for_schema = held.len();
        let mut failures = report.failed;
        failures.extend(held);
        summary.warnings = batch.warnings.into_inner();
        summary.offloaded = report.offloaded;
        summary.stored = report.stored;
        summary.retried = report.retries;
        // Whole units: DynamoDB charges writes in whole units.
        summary.write_units = report.write_units.ceil() as u64;
        summary.failed = failures.len();
        summary.duration_ms = started.elapsed().as_millis() as u64;
        emit(&summary);

        let Some(first) = failures.first().map(|f| f.error.clone()) else {
            return Ok((
                Response {
                    batch_item_failures: Vec::new(),
                },
                summary,
            ));
        };
        for failure in failures.iter().take(5) {
            tracing::warn!(id = %failure.id, kind = failure.error.kind(), error = %failure.error, "record not stored");
        }
        if self.config.failure_mode == FailureMode::ReportBatchItemFailures {
            if let Some(response) = batch_item_failures(&event.records, &failures) {
                return Ok((response, summary));
            }
        }
        Err(IngestError::NotStored {
            failed: failures.len(),
            total: summary.records,
            first,
            failures,
        })
    }
}

impl Ingest {
    async fn resolve_schemas(&self, records: &[KafkaMessage], deadline: Instant) -> Schemas {
        let ids: Vec<SchemaRef> = records
            .iter()
            .flat_map(|r| [r.value.as_deref(), r.key.as_deref()])
            .flatten()
            .filter_map(schema_ref)
            .collect();
        if ids.is_empty() {
            return Schemas::default();
        }
        let now = Instant::now();
        let schemas = self
            .schemas
            .resolve(ids, now + deadline.saturating_duration_since(now) / 2)
            .await;
        let unavailable = schemas.unavailable().count();
        if unavailable > 0 {
            for (id, why) in schemas.unavailable().take(3) {
                tracing::error!(schema = %id, error = %why, "schema registry unavailable; holding its records back");
            }
            metrics::counter!("SchemaRegistryErrors").increment(unavailable as u64);
        }
        schemas
    }
}

/// Why a record must wait for its schema: its value is framed with one that could not be fetched. (A key whose
/// schema cannot be fetched does not hold its record back: keys that merely look framed are common, and a
/// record's ids come from its value.)
fn unavailable_schema(record: &KafkaMessage, schemas: &Schemas) -> Option<String> {
    let id = schema_ref(record.value.as_deref()?)?;
    match schemas.get(&id) {
        Some(Resolution::Unavailable(why)) => Some(format!("schema {id}: {why}")),
        _ => None,
    }
}

/// Every record not stored, by topic-partition and offset. AWS documents the Kafka partial batch response as
/// letting Lambda "retry only the failed records", so each one is listed: naming only the lowest offset of a
/// partition would acknowledge the failed records above it. (A mapping that resumes each partition at its
/// lowest listed offset, as ours does, redelivers the same records either way.) `None` when a failed record
/// has no offset to name (then only failing the whole invocation is safe).
pub fn batch_item_failures(records: &[KafkaMessage], failures: &[Failure]) -> Option<Response> {
    let failed: std::collections::HashSet<&str> = failures.iter().map(|f| f.id.as_str()).collect();
    let mut unstored: BTreeMap<(String, i64), ()> = BTreeMap::new();
    for record in records {
        if !failed.contains(record.id().as_str()) {
            continue;
        }
        let offset = record.offset?;
        unstored.insert((format!("{}-{}", record.topic, record.partition), offset), ());
    }
    Some(Response {
        batch_item_failures: unstored
            .into_keys()
            .map(|(partition, offset)| BatchItemFailure {
                item_identifier: ItemIdentifier { partition, offset },
            })
            .collect(),
    })
}

/// An event that is not a Kafka trigger event: still one summary line (nothing received), the error, and a count.
fn rejected(error: EventError, started: Instant) -> IngestError {
    emit(&InvocationSummary {
        duration_ms: started.elapsed().as_millis() as u64,
        ..InvocationSummary::default()
    });
    tracing::error!(error = %error, "event rejected: not a Kafka trigger event");
    metrics::counter!("EventsRejected").increment(1);
    IngestError::NotKafka(error)
}

fn emit(summary: &InvocationSummary) {
    tracing::info!(
        records = summary.records,
        bytes = summary.bytes,
        stored = summary.stored,
        retried = summary.retried,
        failed = summary.failed,
        offloaded = summary.offloaded,
        write_units = summary.write_units,
        warnings = summary.warnings,
        held_for_schema = summary.held_for_schema,
        duration_ms = summary.duration_ms,
        "invocation summary"
    );
    metrics::counter!("RecordsReceived").increment(summary.records as u64);
    metrics::counter!("BytesReceived").increment(summary.bytes as u64);
    metrics::counter!("RecordsStored").increment(summary.stored as u64);
    metrics::counter!("WriteRetries").increment(summary.retried);
    metrics::counter!("RecordsFailed").increment(summary.failed as u64);
    metrics::counter!("PayloadsOffloaded").increment(summary.offloaded as u64);
    metrics::counter!("WriteUnits").increment(summary.write_units);
    metrics::histogram!("IngestDurationMs").record(summary.duration_ms as f64);
}

/// The earliest value taken as a deadline (2001-01-01 in epoch milliseconds).
const EARLIEST_DEADLINE_MS: u64 = 978_307_200_000;

/// The time left until the runtime's deadline (epoch milliseconds); [`DEFAULT_BUDGET`] when it gave none, or a
/// value that is not an epoch time: `cargo lambda watch` 1.9 sends a constant `600000` (a timeout, not a time),
/// which read as a time in 1970 left no time at all and failed every invocation with records.
pub fn budget_from(deadline_ms: u64, now: SystemTime) -> Duration {
    if deadline_ms < EARLIEST_DEADLINE_MS {
        return DEFAULT_BUDGET;
    }
    (SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
        .duration_since(now)
        .unwrap_or_default()
}

/// The Lambda entry point: `service_fn(|event: LambdaEvent<KafkaTrigger>| ..)` has the runtime decode the
/// records while it parses the event ([`KafkaTrigger`] runs [`decode::decode_event_bytes`]'s decoder), instead
/// of building the event's JSON tree first.
pub async fn handle(ingest: &Ingest, event: LambdaEvent<KafkaTrigger>) -> Result<Response, IngestError> {
    let started = Instant::now();
    let budget = budget_from(event.context.deadline, SystemTime::now());
    let decoded = event.payload.0.map_err(|error| rejected(error, started))?;
    ingest
        .store(decoded, started, budget)
        .await
        .map(|(response, _)| response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context as LambdaContext;
    use serde_json::json;
    use serde_json::Value;
    use shared::config::IngestConfig;
    use shared::memory::{Faults, InMemoryStore};

    fn config(extra: &[(&str, &str)]) -> IngestConfig {
        let mut pairs: Vec<(String, String)> = vec![("TABLE_NAME".into(), "notifications".into())];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        IngestConfig::from_lookup(&move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).unwrap()
    }

    fn ingest_with(store: &Arc<InMemoryStore>, extra: &[(&str, &str)]) -> Ingest {
        Ingest::new(store.clone(), config(extra))
    }

    fn b64(text: &[u8]) -> String {
        shared::dynamo::codec::b64(text)
    }

    fn bytes(event: &Value) -> Vec<u8> {
        serde_json::to_vec(event).unwrap()
    }

    fn trigger(event: &str) -> LambdaEvent<KafkaTrigger> {
        LambdaEvent::new(serde_json::from_str(event).unwrap(), LambdaContext::default())
    }

    fn event(records: &[(&str, i64, i64, Option<&[u8]>)]) -> Value {
        let mut groups = serde_json::Map::new();
        for (topic, partition, offset, value) in records {
            let group = groups
                .entry(format!("{topic}-{partition}"))
                .or_insert_with(|| json!([]));
            group.as_array_mut().unwrap().push(json!({
                "topic": topic, "partition": partition, "offset": offset, "timestamp": 1_700_000_000_000i64,
                "timestampType": "CREATE_TIME", "key": b64(b"k"), "value": value.map(b64), "headers": []
            }));
        }
        json!({"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:x", "records": groups})
    }

    #[tokio::test]
    async fn the_aws_sample_msk_event_is_stored_and_other_events_are_rejected_clearly() {
        let store = Arc::new(InMemoryStore::new());
        let ingest = ingest_with(&store, &[]);
        let response = handle(
            &ingest,
            trigger(include_str!("../../../fixtures/events/msk-sample.json")),
        )
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(store.len(), 1);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": []})
        );
        let err = handle(&ingest, trigger(r#"{"Records": []}"#)).await.unwrap_err();
        assert_eq!(Diagnostic::from(err).error_type, "NotAKafkaEvent");
    }

    #[tokio::test]
    async fn the_same_event_delivered_three_times_leaves_one_item_per_record() {
        let store = Arc::new(InMemoryStore::new());
        let ingest = ingest_with(&store, &[]);
        let records: Vec<(&str, i64, i64, Option<&[u8]>)> = (0..60)
            .map(|i| ("orders", i % 3, i, Some(&br#"{"orderId":"o-1"}"#[..])))
            .collect();
        let event = event(&records);
        for _ in 0..3 {
            ingest.process(bytes(&event), DEFAULT_BUDGET).await.unwrap();
        }
        assert_eq!(store.len(), 60);
    }

    #[tokio::test]
    async fn a_record_listed_twice_in_one_event_is_written_once() {
        let store = Arc::new(InMemoryStore::new());
        let ingest = ingest_with(&store, &[]);
        let event = event(&[("t", 0, 1, Some(b"a")), ("t", 0, 1, Some(b"a"))]);
        let (_, summary) = ingest.process(bytes(&event), DEFAULT_BUDGET).await.unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(summary.stored, 1);
    }

    #[tokio::test]
    async fn when_the_store_is_down_the_invocation_fails_naming_how_many_and_why() {
        let store = Arc::new(InMemoryStore::new());
        store.set_faults(Faults {
            down: true,
            ..Faults::default()
        });
        let ingest = ingest_with(&store, &[("DEADLINE_MARGIN_MS", "0")]);
        let records: Vec<(&str, i64, i64, Option<&[u8]>)> = (0..30).map(|i| ("t", 0, i, Some(&b"x"[..]))).collect();
        let err = ingest
            .process(bytes(&event(&records)), Duration::from_millis(300))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("30 of 30 records were not stored"), "{message}");
        assert!(message.contains("connection refused"), "{message}");
        assert!(store.is_empty());
        let diagnostic = Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "RecordsNotStored");
    }

    #[tokio::test]
    async fn in_report_mode_every_unstored_record_is_reported() {
        let store = Arc::new(InMemoryStore::new());
        store.set_faults(Faults {
            down: true,
            ..Faults::default()
        });
        let ingest = ingest_with(
            &store,
            &[
                ("FAILURE_MODE", "report-batch-item-failures"),
                ("DEADLINE_MARGIN_MS", "0"),
            ],
        );
        let event = event(&[
            ("a", 0, 7, Some(b"x")),
            ("a", 0, 8, Some(b"x")),
            ("a", 1, 3, Some(b"x")),
            ("b-c", 2, 5, None),
        ]);
        let (response, _) = ingest.process(bytes(&event), Duration::from_millis(200)).await.unwrap();
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "a-0", "offset": 7}},
                {"itemIdentifier": {"partition": "a-0", "offset": 8}},
                {"itemIdentifier": {"partition": "a-1", "offset": 3}},
                {"itemIdentifier": {"partition": "b-c-2", "offset": 5}},
            ]})
        );
    }

    #[tokio::test]
    async fn in_report_mode_a_stored_record_between_two_failed_ones_does_not_hide_the_second() {
        // Offsets 8 and 10 are large, and storing large payloads fails; 9 is stored. Naming only offset 8 would
        // acknowledge 10 to a mapping that retries only the records listed.
        let store = Arc::new(InMemoryStore::new());
        store.set_faults(Faults {
            fail_payloads_over: Some(300_000),
            ..Faults::default()
        });
        let ingest = ingest_with(
            &store,
            &[
                ("FAILURE_MODE", "report-batch-item-failures"),
                ("PAYLOAD_BUCKET", "payloads"),
                ("DEADLINE_MARGIN_MS", "0"),
            ],
        );
        let big = shared::fixtures::noise(600_000);
        let event = event(&[
            ("a", 0, 8, Some(&big)),
            ("a", 0, 9, Some(b"{}")),
            ("a", 0, 10, Some(&big)),
        ]);
        let (response, summary) = ingest.process(bytes(&event), Duration::from_millis(300)).await.unwrap();
        assert_eq!(summary.stored, 1, "{summary:?}");
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "a-0", "offset": 8}},
                {"itemIdentifier": {"partition": "a-0", "offset": 10}},
            ]})
        );
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn events_that_are_not_kafka_events_are_rejected_clearly() {
        let store = Arc::new(InMemoryStore::new());
        let ingest = ingest_with(&store, &[]);
        for event in [json!({"Records": []}), json!("text"), json!({"eventSource": "aws:sqs"})] {
            let err = ingest.process(bytes(&event), DEFAULT_BUDGET).await.unwrap_err();
            assert!(matches!(err, IngestError::NotKafka(_)), "{err}");
            assert_eq!(Diagnostic::from(err).error_type, "NotAKafkaEvent");
        }
    }

    #[tokio::test]
    async fn bytes_that_are_not_json_are_rejected_clearly() {
        let store = Arc::new(InMemoryStore::new());
        let ingest = ingest_with(&store, &[]);
        for event in [
            &b"\xff\x00"[..],
            b"{\"eventSource\": \"aws:kafka\", \"records\": {",
            b"",
        ] {
            let err = ingest.process(event.to_vec(), DEFAULT_BUDGET).await.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("not a Kafka trigger event: the event is not JSON"),
                "{err}"
            );
        }
        assert!(store.is_empty());
        assert_eq!(store.store_calls(), 0);
    }

    #[test]
    fn the_budget_is_the_time_to_the_deadline() {
        let now_ms: u64 = 1_795_000_000_000; // 2026-11
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms);
        assert_eq!(budget_from(now_ms + 500, now), Duration::from_millis(500));
        assert_eq!(budget_from(now_ms - 1_000, now), Duration::ZERO);
        assert_eq!(budget_from(0, now), DEFAULT_BUDGET);
        // Not an epoch time: what `cargo lambda watch` sends.
        assert_eq!(budget_from(600_000, now), DEFAULT_BUDGET);
    }
}
